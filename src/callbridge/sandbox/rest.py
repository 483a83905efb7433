"""The REST API under ``/services/data``: routing, records, query, search, composite."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import Response

from callbridge.sandbox.records import (
    create_record,
    delete_record,
    external_id_field,
    find_by_external_id,
    locate_record,
    parse_json_body,
    record_url,
    render_record,
    update_record,
)
from callbridge.sandbox.schema import FieldDef, SObjectType
from callbridge.sandbox.search import (
    SEARCH_SCOPES,
    ReturningSpec,
    SearchSpec,
    parse_search_term,
    parse_sosl,
    run_query,
    run_search,
    search_body,
)
from callbridge.sandbox.soql import FieldPath, Parser, tokenize
from callbridge.sandbox.state import QueryCursor
from callbridge.sandbox.wire import (
    JSON_CONTENT_TYPE,
    ApiResult,
    SalesforceError,
    compact_json,
    invalid_session,
    not_found,
)

if TYPE_CHECKING:
    from callbridge.sandbox.state import SandboxState, SandboxUser

OLDEST_VERSION = 31
NEWEST_VERSION = 68
UPSERT_UPDATED_BODY_SINCE = (46, 0)
COMPOSITE_SOBJECTS_SINCE = (42, 0)
MAX_COMPOSITE_SUBREQUESTS = 25
MAX_COLLECTION_RECORDS = 200
DEFAULT_BATCH_SIZE = 2000
_VERSION_RE = re.compile(r"^v(\d{2})\.(\d)$")
_SEASONS = ("Winter", "Spring", "Summer")
_REFERENCE_RE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


def release_label(major: int) -> str:
    """``Winter '11`` for v20.0: three releases a year since then."""
    offset = major - 20
    return f"{_SEASONS[offset % 3]} '{11 + offset // 3:02d}"


def api_versions() -> list[dict[str, str]]:
    """``GET /services/data``: the versions this org speaks, oldest first."""
    return [
        {
            "label": release_label(major),
            "url": f"/services/data/v{major}.0",
            "version": f"{major}.0",
        }
        for major in range(OLDEST_VERSION, NEWEST_VERSION + 1)
    ]


def parse_version(segment: str) -> str | None:
    match = _VERSION_RE.match(segment)
    if not match or not OLDEST_VERSION <= int(match.group(1)) <= NEWEST_VERSION:
        return None
    return f"{int(match.group(1))}.{match.group(2)}"


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


@dataclass
class RestCall:
    """One REST request (or composite subrequest) as the dispatcher sees it."""

    state: SandboxState
    user: SandboxUser
    version: str
    method: str
    segments: list[str]
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]
    in_composite: bool = False

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json_body(self) -> Any:
        content_type = self.headers.get("content-type", "")
        if content_type and "json" not in content_type.lower():
            media = content_type.split(";")[0].strip()
            raise SalesforceError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content-Type header specified in HTTP request is not supported: {media}",
            )
        return parse_json_body(self.body)

    @property
    def raw_text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _method_not_allowed(method: str, allowed: str) -> SalesforceError:
    return SalesforceError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )


def _sobject(call: RestCall, name: str) -> SObjectType:
    sobject = call.state.schema.get(name)
    if sobject is None:
        raise not_found()
    return sobject


def dispatch(call: RestCall) -> ApiResult:
    """Route one call to its resource; every expected failure becomes Salesforce's error."""
    try:
        return _route(call)
    except SalesforceError as error:
        return ApiResult.from_error(error)


def _route(call: RestCall) -> ApiResult:
    segments = call.segments
    method = call.method
    head = segments[0] if segments else ""
    if not segments:
        if method != "GET":
            raise _method_not_allowed(method, "HEAD,GET")
        return ApiResult(200, _resources(call.version))
    if head == "limits" and len(segments) == 1:
        if method != "GET":
            raise _method_not_allowed(method, "HEAD,GET")
        return ApiResult(200, _limits(call.state))
    if head in ("query", "queryAll") and len(segments) <= 2:
        if method != "GET":
            raise _method_not_allowed(method, "HEAD,GET")
        if len(segments) == 2:
            return _query_more(call, segments[1])
        return _query(call, include_deleted=head == "queryAll")
    if head == "search" and len(segments) == 1:
        if method != "GET":
            raise _method_not_allowed(method, "HEAD,GET")
        return _search(call)
    if head == "parameterizedSearch" and len(segments) == 1:
        if method not in ("GET", "POST"):
            raise _method_not_allowed(method, "HEAD,GET,POST")
        return _parameterized_search(call)
    if head == "sobjects":
        return _sobjects(call)
    if head == "composite":
        if len(segments) == 1:
            if call.in_composite:
                raise not_found()
            if method != "POST":
                raise _method_not_allowed(method, "POST")
            return _composite(call)
        if segments[1] == "sobjects":
            if _version_tuple(call.version) < COMPOSITE_SOBJECTS_SINCE:
                raise not_found()
            return _collections(call)
    raise not_found()


def _resources(version: str) -> dict[str, str]:
    base = f"/services/data/v{version}"
    names = [
        "tooling",
        "metadata",
        "query",
        "queryAll",
        "search",
        "parameterizedSearch",
        "sobjects",
        "composite",
        "limits",
        "identity",
        "recent",
        "tabs",
        "theme",
    ]
    body = {name: f"{base}/{name}" for name in names}
    body["identity"] = "/id"
    return body


def _limits(state: SandboxState) -> dict[str, Any]:
    limit = state.knobs.api_request_limit

    def pair(maximum: int, remaining: int | None = None) -> dict[str, int]:
        return {"Max": maximum, "Remaining": maximum if remaining is None else remaining}

    return {
        "ConcurrentAsyncGetReportInstances": pair(200),
        "ConcurrentSyncReportRuns": pair(20),
        "DailyApiRequests": pair(limit, max(0, limit - state.api_usage)),
        "DailyAsyncApexExecutions": pair(250000),
        "DailyBulkApiBatches": pair(15000),
        "DailyBulkV2QueryFileStorageMB": pair(976562),
        "DailyBulkV2QueryJobs": pair(10000),
        "DailyStreamingApiEvents": pair(10000),
        "DataStorageMB": pair(5, 5),
        "FileStorageMB": pair(20, 20),
        "HourlyODataCallout": pair(20000),
        "HourlyTimeBasedWorkflow": pair(1000),
        "SingleEmail": pair(5000),
    }


# --- query and search ---------------------------------------------------------------------


def _batch_size(call: RestCall) -> int:
    options = call.headers.get("sforce-query-options", "")
    match = re.search(r"batchSize\s*=\s*(\d+)", options)
    if not match:
        return DEFAULT_BATCH_SIZE
    return max(200, min(DEFAULT_BATCH_SIZE, int(match.group(1))))


def _query_page(call: RestCall, cursor_id: str, cursor: QueryCursor, start: int) -> dict[str, Any]:
    end = start + cursor.batch_size
    page: dict[str, Any] = {"totalSize": cursor.total, "done": end >= len(cursor.records)}
    if end < len(cursor.records):
        cursor.position = end
        page["nextRecordsUrl"] = (
            f"/services/data/v{call.version}/{cursor.resource}/{cursor_id}-{end}"
        )
    else:
        call.state.cursors.pop(cursor_id, None)
    page["records"] = cursor.records[start:end]
    return page


def _query(call: RestCall, *, include_deleted: bool) -> ApiResult:
    text = call.param("q")
    if not text or not text.strip():
        raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
    result = run_query(call.state, text, call.version, include_deleted=include_deleted)
    batch = _batch_size(call)
    if len(result.records) <= batch:
        return ApiResult(200, {"totalSize": result.total, "done": True, "records": result.records})
    cursor_id = "01g" + call.state.pod + secrets.token_hex(5).upper()[:8] + "AAA"
    cursor = QueryCursor(
        result.records, result.total, 0, batch, "queryAll" if include_deleted else "query"
    )
    call.state.cursors[cursor_id] = cursor
    return ApiResult(200, _query_page(call, cursor_id, cursor, 0))


def _query_more(call: RestCall, locator: str) -> ApiResult:
    cursor_id, _, start = locator.partition("-")
    cursor = call.state.cursors.get(cursor_id)
    if cursor is None or not start.isdigit() or int(start) != cursor.position:
        raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return ApiResult(200, _query_page(call, cursor_id, cursor, int(start)))


def _search(call: RestCall) -> ApiResult:
    text = call.param("q")
    if not text or not text.strip():
        raise SalesforceError(
            400,
            "MALFORMED_SEARCH",
            "No search term found. The search term must be enclosed in braces.",
        )
    spec = parse_sosl(text)
    records = run_search(call.state, spec, text, call.version)
    return ApiResult(200, search_body(records, call.version))


def _parse_where(text: str) -> Any:
    parser = Parser(text, tokenize(text))
    condition = parser.condition()
    if parser.current.kind != "EOF":
        raise parser.unexpected()
    return condition


def _field_list(value: Any) -> list[FieldPath] | None:
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    return [FieldPath(str(name).strip().split("."), 0) for name in names if str(name).strip()]


def _parameterized_search(call: RestCall) -> ApiResult:
    """``parameterizedSearch``: the same search, described by parameters instead of SOSL."""
    if call.method == "POST":
        body = call.json_body()
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        params: dict[str, Any] = body
        objects = [
            (str(o.get("name", "")), o.get("fields"), o.get("where"), o.get("limit"))
            for o in body.get("sobjects") or []
            if isinstance(o, dict)
        ]
    else:
        params = {key: values[0] for key, values in call.query.items()}
        objects = [
            (
                name,
                params.get(f"{name}.fields"),
                params.get(f"{name}.where"),
                params.get(f"{name}.limit"),
            )
            for name in call.query.get("sobject", [])
        ]
    term_text = params.get("q")
    if not term_text:
        raise SalesforceError(400, "MALFORMED_SEARCH", "Missing search term: q")
    scope = str(params.get("in") or "ALL").upper()
    if scope not in SEARCH_SCOPES:
        raise SalesforceError(400, "INVALID_SEARCH_SCOPE", f"Invalid search scope: {scope}")
    default_fields = params.get("fields")
    spec = SearchSpec(parse_search_term(str(term_text)), "ALL" if scope == "SIDEBAR" else scope)
    if objects:
        spec.returning = []
        for name, fields, where, limit in objects:
            item = ReturningSpec(name, 0, _field_list(fields or default_fields))
            if where:
                item.where = _parse_where(str(where))
                item.where_text = str(where)
            if limit is not None:
                item.limit = int(limit)
            spec.returning.append(item)
    overall = params.get("overallLimit")
    if overall is not None:
        spec.limit = int(overall)
    records = run_search(call.state, spec, str(term_text), call.version)
    return ApiResult(200, {"searchRecords": records})


# --- sObject resources --------------------------------------------------------------------


def _created(sobject: SObjectType, record_id: str, version: str, **extra: Any) -> ApiResult:
    location = f"/services/data/v{version}/sobjects/{sobject.name}/{record_id}"
    body = {"id": record_id, "success": True, "errors": [], **extra}
    return ApiResult(201, body, {"Location": location})


def _sobjects(call: RestCall) -> ApiResult:
    segments = call.segments
    method = call.method
    state = call.state
    if len(segments) == 1:
        if method != "GET":
            raise _method_not_allowed(method, "HEAD,GET")
        return ApiResult(200, state.schema.describe_global(call.version))
    sobject = _sobject(call, segments[1])
    if len(segments) == 2:
        if method == "GET":
            recent = [
                {
                    "attributes": {
                        "type": sobject.name,
                        "url": record_url(sobject, r, call.version),
                    },
                    "Id": r["Id"],
                }
                for r in state.live_records(sobject)[-5:]
            ]
            return ApiResult(
                200, {"objectDescribe": sobject.summary(call.version), "recentItems": recent}
            )
        if method == "POST":
            body = call.json_body()
            record_id = create_record(
                state, sobject, body, user_id=call.user.user_id, raw=call.raw_text
            )
            return _created(sobject, record_id, call.version)
        raise _method_not_allowed(method, "HEAD,GET,POST")
    if len(segments) == 3 and segments[2] == "describe":
        if method != "GET":
            raise _method_not_allowed(method, "HEAD,GET")
        return ApiResult(200, sobject.describe(call.version))
    if len(segments) == 3:
        return _record(call, sobject, segments[2])
    if len(segments) == 4:
        return _by_external_id(call, sobject, segments[2], segments[3])
    raise not_found()


def _selected_fields(call: RestCall, sobject: SObjectType) -> list[FieldDef] | None:
    names = call.param("fields")
    if names is None:
        return None
    selected = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        definition = sobject.field(name)
        if definition is None:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{sobject.name}'. If you are attempting "
                "to use a custom field, be sure to append the '__c' after the custom field "
                "name. Please reference your WSDL or the describe call for the appropriate "
                "names.",
            )
        selected.append(definition)
    return selected


def _record(call: RestCall, sobject: SObjectType, raw_id: str) -> ApiResult:
    method = call.method
    if method not in ("GET", "PATCH", "DELETE"):
        raise _method_not_allowed(method, "HEAD,GET,PATCH,DELETE")
    state = call.state
    with state.lock:
        record = locate_record(state, sobject, raw_id)
        if method == "GET":
            fields = _selected_fields(call, sobject)
            return ApiResult(200, render_record(sobject, record, call.version, fields))
        if method == "PATCH":
            update_record(
                state,
                sobject,
                record,
                call.json_body(),
                user_id=call.user.user_id,
                raw=call.raw_text,
            )
            return ApiResult.empty()
        delete_record(state, record)
        return ApiResult.empty()


def _several(sobject: SObjectType, records: list[dict[str, Any]], version: str) -> ApiResult:
    return ApiResult(300, [record_url(sobject, r, version) for r in records])


def _by_external_id(call: RestCall, sobject: SObjectType, field_name: str, value: str) -> ApiResult:
    method = call.method
    if method not in ("GET", "PATCH", "DELETE", "POST"):
        raise _method_not_allowed(method, "HEAD,GET,PATCH,DELETE,POST")
    state = call.state
    definition = external_id_field(sobject, field_name)
    with state.lock:
        matches = find_by_external_id(state, sobject, definition, value)
        if method == "GET":
            if len(matches) > 1:
                return _several(sobject, matches, call.version)
            if not matches:
                raise not_found()
            return ApiResult(200, render_record(sobject, matches[0], call.version))
        if method == "DELETE":
            if len(matches) > 1:
                return _several(sobject, matches, call.version)
            if not matches:
                raise not_found()
            delete_record(state, matches[0])
            return ApiResult.empty()
        body = call.json_body()
        return upsert(call, sobject, definition, value, body, matches)


def upsert(
    call: RestCall,
    sobject: SObjectType,
    definition: FieldDef,
    value: str,
    body: Any,
    matches: list[dict[str, Any]],
) -> ApiResult:
    """Create or update by external ID; the update's answer depends on the API version."""
    state = call.state
    if not isinstance(body, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    if len(matches) > 1:
        return _several(sobject, matches, call.version)
    fields = {k: v for k, v in body.items() if k.lower() != definition.name.lower()}
    if not matches:
        if definition.type == "id":
            raise not_found()
        record_id = create_record(
            state,
            sobject,
            {**fields, definition.name: value},
            user_id=call.user.user_id,
            raw=call.raw_text,
        )
        return _created(sobject, record_id, call.version, created=True)
    record = matches[0]
    update_record(state, sobject, record, fields, user_id=call.user.user_id, raw=call.raw_text)
    if _version_tuple(call.version) >= UPSERT_UPDATED_BODY_SINCE:
        return ApiResult(200, {"id": record["Id"], "success": True, "errors": [], "created": False})
    return ApiResult.empty()


# --- composite ----------------------------------------------------------------------------

_ROLLED_BACK = (
    "The transaction was rolled back since another operation in the same transaction failed."
)


def _halted(message: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
    }


class _MissingReference(Exception):
    def __init__(self, expression: str, reference_id: str) -> None:
        super().__init__(expression)
        self.expression = expression
        self.reference_id = reference_id


def _lookup_reference(results: dict[str, Any], match: re.Match[str]) -> Any:
    reference_id, path = match.group(1), match.group(2)
    expression = match.group(0)[2:-1]
    if reference_id not in results:
        raise _MissingReference(expression, reference_id)
    value = results[reference_id]
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        key, index = step
        try:
            value = value[key] if key else value[int(index)]
        except (KeyError, IndexError, TypeError):
            raise _MissingReference(expression, reference_id) from None
    if value is None:
        raise _MissingReference(expression, reference_id)
    return value


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _REFERENCE_RE.fullmatch(value)
        if whole:
            return _lookup_reference(results, whole)
        return _REFERENCE_RE.sub(lambda m: str(_lookup_reference(results, m)), value)
    if isinstance(value, list):
        return [_substitute(item, results) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, results) for key, item in value.items()}
    return value


def _composite(call: RestCall) -> ApiResult:
    body = call.json_body()
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", "compositeRequest: the composite request is missing"
        )
    requests = body["compositeRequest"]
    if len(requests) > MAX_COMPOSITE_SUBREQUESTS:
        raise SalesforceError(
            400,
            "LIMIT_EXCEEDED",
            f"Limit Exceeded: you can only have {MAX_COMPOSITE_SUBREQUESTS} subrequests",
        )
    all_or_none = bool(body.get("allOrNone", False))
    state = call.state
    responses: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    with state.lock:
        snapshot = state.snapshot() if all_or_none else None
        failed_at: int | None = None
        for index, sub in enumerate(requests):
            reference_id = str(sub.get("referenceId", "")) if isinstance(sub, dict) else ""
            if not isinstance(sub, dict) or not sub.get("url") or not sub.get("method"):
                raise SalesforceError(
                    400, "JSON_PARSER_ERROR", "Each subrequest needs method, url and referenceId"
                )
            try:
                url = _substitute(str(sub["url"]), results)
                sub_body = _substitute(sub.get("body"), results)
            except _MissingReference as missing:
                entry = _halted(
                    f"Invalid reference specified. No value for {missing.expression} found in "
                    f"{missing.reference_id}."
                )
                responses.append({**entry, "referenceId": reference_id})
                if all_or_none:
                    failed_at = index
                    break
                continue
            result = _subrequest(call, str(sub["method"]).upper(), url, sub_body)
            entry = {
                "body": result.body if result.has_body else None,
                "httpHeaders": result.headers,
                "httpStatusCode": result.status,
                "referenceId": reference_id,
            }
            responses.append(entry)
            if result.status < 400:
                results[reference_id] = result.body
            elif all_or_none:
                failed_at = index
                break
        if failed_at is not None and snapshot is not None:
            state.restore(snapshot)
            for index, sub in enumerate(requests):
                if index == failed_at:
                    continue
                halted = {**_halted(_ROLLED_BACK), "referenceId": str(sub.get("referenceId"))}
                if index < len(responses):
                    responses[index] = halted
                else:
                    responses.append(halted)
    return ApiResult(200, {"compositeResponse": responses})


def _subrequest(call: RestCall, method: str, url: str, body: Any) -> ApiResult:
    path, _, query_string = url.partition("?")
    parts = [unquote(p) for p in path.split("/") if p]
    if len(parts) < 3 or parts[:2] != ["services", "data"]:
        return ApiResult.from_error(not_found())
    version = parse_version(parts[2])
    if version is None:
        return ApiResult.from_error(not_found())
    sub = RestCall(
        state=call.state,
        user=call.user,
        version=version,
        method="GET" if method == "HEAD" else method,
        segments=parts[3:],
        query=parse_qs(query_string, keep_blank_values=True),
        body=compact_json(body) if body is not None else b"",
        headers={"content-type": "application/json"},
        in_composite=True,
    )
    return dispatch(sub)


def _save_error(error: SalesforceError) -> dict[str, Any]:
    return {"success": False, "errors": [error.save_error()]}


_ROLLED_BACK_RECORD = SalesforceError(
    400,
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
    [],
)


def _collections(call: RestCall) -> ApiResult:
    """sObject Collections: ``/composite/sobjects`` create, update, delete, retrieve, upsert."""
    method = call.method
    state = call.state
    segments = call.segments
    if len(segments) == 3 and method == "GET":
        return _collection_get(call, _sobject(call, segments[2]))
    if method == "DELETE" and len(segments) == 2:
        ids = [i for i in (call.param("ids") or "").split(",") if i]
        all_or_none = (call.param("allOrNone") or "false").lower() == "true"
        operations = [_delete_operation(call, i) for i in ids]
        return _run_collection(state, operations, all_or_none)
    if method not in ("POST", "PATCH") or len(segments) not in (2, 4):
        raise _method_not_allowed(method, "GET,POST,PATCH,DELETE")
    body = call.json_body()
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "records: a list of records is required")
    records = body["records"]
    if len(records) > MAX_COLLECTION_RECORDS:
        raise SalesforceError(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    all_or_none = bool(body.get("allOrNone", False))
    if len(segments) == 4:
        sobject = _sobject(call, segments[2])
        definition = external_id_field(sobject, segments[3])
        operations = [_upsert_operation(call, sobject, definition, r) for r in records]
    elif method == "POST":
        operations = [_create_operation(call, r) for r in records]
    else:
        operations = [_update_operation(call, r) for r in records]
    return _run_collection(state, operations, all_or_none)


Operation = Callable[[], dict[str, Any]]


def _run_collection(
    state: SandboxState, operations: list[Operation], all_or_none: bool
) -> ApiResult:
    with state.lock:
        snapshot = state.snapshot() if all_or_none else None
        results: list[dict[str, Any]] = []
        failed = False
        for operation in operations:
            try:
                results.append(operation())
            except SalesforceError as error:
                failed = True
                results.append(_save_error(error))
        if failed and snapshot is not None:
            state.restore(snapshot)
            results = [r if not r["success"] else _save_error(_ROLLED_BACK_RECORD) for r in results]
    return ApiResult(200, results)


def _record_type(call: RestCall, record: Any) -> tuple[SObjectType, dict[str, Any]]:
    if not isinstance(record, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    attributes = record.get("attributes")
    type_name = attributes.get("type") if isinstance(attributes, dict) else None
    if not type_name:
        raise SalesforceError(400, "INVALID_TYPE", "Must specify a type in the attributes")
    sobject = call.state.schema.get(str(type_name))
    if sobject is None:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
    return sobject, {k: v for k, v in record.items() if k != "attributes"}


def _create_operation(call: RestCall, record: Any) -> Operation:
    def run() -> dict[str, Any]:
        sobject, fields = _record_type(call, record)
        if any(key.lower() == "id" for key in fields):
            raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call", [])
        record_id = create_record(call.state, sobject, fields, user_id=call.user.user_id)
        return {"id": record_id, "success": True, "errors": []}

    return run


def _update_operation(call: RestCall, record: Any) -> Operation:
    def run() -> dict[str, Any]:
        sobject, fields = _record_type(call, record)
        raw_id = next((str(v) for k, v in fields.items() if k.lower() == "id"), "")
        if not raw_id:
            raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in an update call")
        target = locate_record(call.state, sobject, raw_id)
        changes = {k: v for k, v in fields.items() if k.lower() != "id"}
        update_record(call.state, sobject, target, changes, user_id=call.user.user_id)
        return {"id": target["Id"], "success": True, "errors": []}

    return run


def _delete_operation(call: RestCall, raw_id: str) -> Operation:
    def run() -> dict[str, Any]:
        found = call.state.find(raw_id)
        if found is None:
            raise SalesforceError(
                400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []
            )
        delete_record(call.state, found[1])
        return {"id": found[1]["Id"], "success": True, "errors": []}

    return run


def _upsert_operation(
    call: RestCall, sobject: SObjectType, definition: FieldDef, record: Any
) -> Operation:
    def run() -> dict[str, Any]:
        _, fields = _record_type(call, record)
        value = next((v for k, v in fields.items() if k.lower() == definition.name.lower()), None)
        if value is None:
            raise SalesforceError(
                400,
                "MISSING_ARGUMENT",
                f"{definition.name} not specified",
                [definition.name],
            )
        matches = find_by_external_id(call.state, sobject, definition, str(value))
        if len(matches) > 1:
            raise SalesforceError(
                300,
                "DUPLICATE_EXTERNAL_ID",
                f"{definition.name}: more than one record found for external id field: "
                f"{[m['Id'] for m in matches]}",
                [definition.name],
            )
        result = upsert(call, sobject, definition, str(value), fields, matches)
        created = result.status == 201
        record_id = result.body["id"] if created else matches[0]["Id"]
        return {"id": record_id, "success": True, "errors": [], "created": created}

    return run


def _collection_get(call: RestCall, sobject: SObjectType) -> ApiResult:
    ids = [i for i in (call.param("ids") or "").split(",") if i]
    fields = _selected_fields(call, sobject)
    if fields is None:
        raise SalesforceError(400, "MISSING_ARGUMENT", "fields: the fields to return are required")
    rendered: list[dict[str, Any] | None] = []
    for raw_id in ids:
        found = call.state.find_live(raw_id)
        if found is None or found[0] is not sobject:
            rendered.append(None)
        else:
            rendered.append(render_record(sobject, found[1], call.version, fields))
    return ApiResult(200, rendered)


# --- the HTTP endpoint --------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


def api_kind(segments: list[str]) -> str:
    """The kind of API call a request is, for the sandbox's counter per kind."""
    head = segments[0] if segments else ""
    if head in ("query", "queryAll"):
        return "query"
    if head in ("search", "parameterizedSearch"):
        return "search"
    if head == "composite":
        return "collections" if segments[1:2] == ["sobjects"] else "composite"
    if head == "sobjects":
        return "describe" if len(segments) == 1 or segments[-1] == "describe" else "sobject"
    if head == "limits":
        return "limits"
    return "other"


def json_response(result: ApiResult, extra_headers: dict[str, str] | None = None) -> Response:
    headers = {**result.headers, **(extra_headers or {})}
    if not result.has_body:
        return Response(status_code=result.status, headers=headers)
    return Response(
        content=compact_json(result.body),
        status_code=result.status,
        headers=headers,
        media_type=JSON_CONTENT_TYPE,
    )


async def versions_endpoint(request: Request) -> Response:
    return json_response(ApiResult(200, api_versions()))


async def rest_endpoint(request: Request) -> Response:
    """Every ``/services/data/vXX.X/…`` request: version, session, API usage, then routing."""
    state: SandboxState = request.app.state.sandbox
    raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    parts = [unquote(p) for p in raw_path.split("?")[0].split("/") if p]
    version = parse_version(parts[2]) if len(parts) > 2 else None
    usage = {"Sforce-Limit-Info": state.limit_info}
    if version is None:
        return json_response(ApiResult.from_error(not_found()), usage)
    unauthorized = usage | {"WWW-Authenticate": "Token"}
    token_value = _bearer(request)
    token = state.valid_access_token(token_value) if token_value else None
    if token is None:
        return json_response(ApiResult.from_error(invalid_session()), unauthorized)
    if not {"api", "full"} & set(token.scope.split()):
        error = SalesforceError(
            401, "INVALID_SESSION_ID", "This session is not valid for use with the REST API"
        )
        return json_response(ApiResult.from_error(error), unauthorized)
    user = state.user(token.username)
    assert user is not None  # valid_access_token checked it
    if not state.count_api_request(api_kind(parts[3:])):
        error = SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return json_response(ApiResult.from_error(error), {"Sforce-Limit-Info": state.limit_info})
    method = request.method.upper()
    call = RestCall(
        state=state,
        user=user,
        version=version,
        method="GET" if method == "HEAD" else method,
        segments=parts[3:],
        query=parse_qs(request.url.query, keep_blank_values=True),
        body=await request.body(),
        headers={key.lower(): value for key, value in request.headers.items()},
    )
    result = dispatch(call)
    response = json_response(result, {"Sforce-Limit-Info": state.limit_info})
    if method == "HEAD":
        return Response(status_code=result.status, headers=dict(response.headers))
    return response
