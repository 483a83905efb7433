"""Record writes and reads with Salesforce's validation rules and error messages."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from callbridge.sandbox.ids import looks_like_id, normalize_id
from callbridge.sandbox.schema import ID_TYPES, NUMBER_TYPES, TEXT_TYPES, FieldDef, SObjectType
from callbridge.sandbox.wire import SalesforceError, not_found

if TYPE_CHECKING:
    from callbridge.sandbox.state import SandboxState, SandboxUser

WAV_IMAGE_LABEL = "/resource/1700000000000/speaker"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(Z|[+-]\d{2}:?\d{2})?$"
)
_SOAP_NAMES = {
    "boolean": "boolean",
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "date": "date",
    "datetime": "datetime",
}


def _json_token(value: Any) -> str:
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, list):
        return "START_ARRAY"
    return "START_OBJECT"


def _column_of(raw: str | None, key: str) -> tuple[int, int]:
    """Line and column of a key's value in the raw body (for JSON_PARSER_ERROR messages)."""
    if not raw:
        return 1, 1
    index = raw.find(f'"{key}"')
    if index == -1:
        return 1, 1
    colon = raw.find(":", index)
    position = colon + 1 if colon != -1 else index
    while position < len(raw) and raw[position] in " \t\r\n":
        position += 1
    line = raw.count("\n", 0, position) + 1
    column = position - (raw.rfind("\n", 0, position) + 1) + 1
    return line, column


def deserialize_error(type_name: str, value: Any, raw: str | None, key: str) -> SalesforceError:
    line, column = _column_of(raw, key)
    shown: Any = value
    if isinstance(value, (list, dict)):
        shown = "[" if isinstance(value, list) else "{"
    if isinstance(shown, bool):
        shown = "true" if shown else "false"
    return SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {type_name} from {_json_token(value)} value {shown} "
        f"or request may be missing a required field at [line:{line}, column:{column}]",
    )


def parse_json_body(raw: bytes) -> Any:
    """The request's JSON, or the JSON_PARSER_ERROR Salesforce answers for a bad body."""
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise SalesforceError(
            400,
            "JSON_PARSER_ERROR",
            "The HTTP entity body is required, but this request has no entity body.",
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if error.pos >= len(text):
            detail = "Unexpected end-of-input"
        else:
            char = text[error.pos]
            detail = (
                f"Unexpected character ('{char}' (code {ord(char)})): expected a valid value "
                "(number, String, array, object, 'true', 'false' or 'null')"
            )
        raise SalesforceError(
            400,
            "JSON_PARSER_ERROR",
            f"{detail} at [line:{error.lineno}, column:{error.colno}]",
        ) from None


def _normalize_datetime(value: str) -> str | None:
    match = _DATETIME_RE.match(value)
    if not match:
        return None
    date_part, time_part, zone = match.groups()
    if len(time_part) == 5:
        time_part += ":00"
    zone = zone or "Z"
    if zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        moment = datetime.fromisoformat(f"{date_part}T{time_part}{zone}")
    except ValueError:
        return None
    from callbridge.sandbox.state import sf_datetime

    return sf_datetime(moment.timestamp())


def coerce_value(
    state: SandboxState,
    sobject: SObjectType,
    definition: FieldDef,
    value: Any,
    raw: str | None,
) -> Any:
    """The stored form of a value written to a field, or the error Salesforce gives."""
    kind = definition.type
    if value is None:
        return False if kind == "boolean" else None
    if kind in TEXT_TYPES:
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            raise deserialize_error("String", value, raw, definition.name)
        if value == "":
            return None
        if definition.length and len(value) > definition.length:
            raise SalesforceError(
                400,
                "STRING_TOO_LONG",
                f"{definition.label}: data value too large: {value} "
                f"(max length={definition.length})",
                [definition.name],
            )
        return value
    if kind in ID_TYPES:
        if not isinstance(value, str):
            raise deserialize_error("ID", value, raw, definition.name)
        if value == "":
            return None
        id15 = normalize_id(value)
        message = f"{definition.label}: id value of incorrect type: {value}"
        if id15 is None:
            raise SalesforceError(400, "MALFORMED_ID", message, [definition.name])
        target = state.schema.by_prefix(id15[:3])
        if target is None or target.name not in definition.reference_to:
            raise SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", message, [definition.name])
        found = state.find(id15)
        if found is None:
            raise SalesforceError(
                400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []
            )
        if found[1].get("IsDeleted"):
            raise SalesforceError(400, "ENTITY_IS_DELETED", "entity is deleted", [])
        return found[1]["Id"]
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise deserialize_error("boolean", value, raw, definition.name)
    if kind in NUMBER_TYPES:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None:
            raise deserialize_error(_SOAP_NAMES[kind], value, raw, definition.name)
        if kind == "int":
            if not number.is_integer():
                raise deserialize_error("int", value, raw, definition.name)
            return int(number)
        return number
    if kind == "date":
        if isinstance(value, str) and _DATE_RE.match(value):
            try:
                datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                pass
            else:
                return value
        raise deserialize_error("date", value, raw, definition.name)
    if kind == "datetime":
        normalized = _normalize_datetime(value) if isinstance(value, str) else None
        if normalized is None:
            raise deserialize_error("datetime", value, raw, definition.name)
        return normalized
    raise deserialize_error("String", value, raw, definition.name)  # pragma: no cover


def person_name(state: SandboxState, first: Any, last: Any) -> str | None:
    """The compound Name; in a Japanese-locale org the family name comes first."""
    parts = [p for p in ((last, first) if state.locale.startswith("ja") else (first, last)) if p]
    return " ".join(str(p) for p in parts) or None


def derive(state: SandboxState, sobject: SObjectType, record: dict[str, Any]) -> None:
    """Recompute what Salesforce computes on save: names, closed flags, formulas."""
    name = sobject.name
    if name in ("Contact", "Lead", "User"):
        record["Name"] = person_name(state, record.get("FirstName"), record.get("LastName"))
    if name == "Case":
        closed = record.get("Status") == "Closed"
        if closed and not record.get("IsClosed"):
            record["ClosedDate"] = state.now_iso()
        if not closed:
            record["ClosedDate"] = None
        record["IsClosed"] = closed
        if record.get("ContactId") and not record.get("AccountId"):
            contact = state.find_live(record["ContactId"])
            if contact is not None:
                record["AccountId"] = contact[1].get("AccountId")
    if name in ("Task", "Event"):
        if name == "Task":
            record["IsClosed"] = record.get("Status") == "Completed"
            record["IsHighPriority"] = record.get("Priority") == "High"
            server = record.get("B_ServerIP__c") or ""
            unique = record.get("B_UniqueId__c") or ""
            link = html.escape(f"{server}/monitor_link/{unique}", quote=True)
            record["WavUrlImg__c"] = (
                f'<a href="{link}" target="_blank"><img src="{WAV_IMAGE_LABEL}" '
                'alt="Image" border="0"/></a>'
            )
        account_id = None
        what = state.find_live(record["WhatId"]) if record.get("WhatId") else None
        if what is not None:
            account_id = what[1]["Id"] if what[0].name == "Account" else what[1].get("AccountId")
        if account_id is None and record.get("WhoId"):
            who = state.find_live(record["WhoId"])
            if who is not None and who[0].name == "Contact":
                account_id = who[1].get("AccountId")
        if "AccountId" in {f.name for f in sobject.fields}:
            record["AccountId"] = account_id
    if name == "Opportunity":
        stage = record.get("StageName") or ""
        record["IsClosed"] = stage.startswith("Closed")
        record["IsWon"] = stage == "Closed Won"


def _check_fields(
    sobject: SObjectType, body: dict[str, Any], *, creating: bool
) -> list[tuple[FieldDef, Any]]:
    pairs: list[tuple[FieldDef, Any]] = []
    locked: list[str] = []
    for key, value in body.items():
        if key == "attributes":
            continue
        definition = sobject.field(key)
        if definition is None:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"No such column '{key}' on sobject of type {sobject.name}",
            )
        allowed = definition.createable if creating else definition.updateable
        if not allowed:
            locked.append(definition.name)
            continue
        pairs.append((definition, value))
    if locked:
        names = ", ".join(locked)
        raise SalesforceError(
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {names}. Please check the security settings of "
            "this field and verify that it is read/write for your profile or permission set.",
            locked,
        )
    return pairs


def _check_unique(
    state: SandboxState, sobject: SObjectType, record: dict[str, Any], own_id: str | None
) -> None:
    for definition in sobject.fields:
        if not definition.unique:
            continue
        value = record.get(definition.name)
        if value is None:
            continue
        for other in state.live_records(sobject):
            if (
                other["Id"] != own_id
                and str(other.get(definition.name, "")).lower() == str(value).lower()
            ):
                raise SalesforceError(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {definition.name} duplicates value on record "
                    f"with id: {other['Id']}",
                    [],
                )


def _check_validation_rules(
    state: SandboxState, sobject: SObjectType, record: dict[str, Any]
) -> None:
    rule = state.knobs.failed_validation(sobject.name, record)
    if rule is not None:
        raise SalesforceError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, [rule.field])


def create_record(
    state: SandboxState,
    sobject: SObjectType,
    body: Any,
    *,
    user_id: str,
    raw: str | None = None,
) -> str:
    """Insert a record from a request body; returns its 18-character ID."""
    if not isinstance(body, dict):
        raise deserialize_error(sobject.name, body, None, "")
    if not sobject.createable:
        raise SalesforceError(
            400,
            "INVALID_TYPE",
            f"The requested operation is not allowed for sObject type {sobject.name}",
        )
    with state.lock:
        pairs = _check_fields(sobject, body, creating=True)
        record: dict[str, Any] = {}
        for definition, value in pairs:
            record[definition.name] = coerce_value(state, sobject, definition, value, raw)
        for definition in sobject.fields:
            if record.get(definition.name) is None and definition.default is not None:
                default = definition.default
                record[definition.name] = user_id if default == "$user" else default
        missing = [
            f.name for f in sobject.fields if f.required_on_create and record.get(f.name) is None
        ]
        if missing:
            raise SalesforceError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        _check_unique(state, sobject, record, None)
        _check_validation_rules(state, sobject, record)
        record_id = state.new_id(sobject)
        now = state.now_iso()
        stored: dict[str, Any] = {}
        for definition in sobject.fields:
            stored[definition.name] = record.get(definition.name)
            if definition.type == "boolean" and stored[definition.name] is None:
                stored[definition.name] = False
        stored.update(
            {
                "Id": record_id,
                "IsDeleted": False,
                "CreatedDate": now,
                "CreatedById": user_id,
                "LastModifiedDate": now,
                "LastModifiedById": user_id,
                "SystemModstamp": now,
            }
        )
        if sobject.field("CaseNumber") is not None:
            stored["CaseNumber"] = state.next_case_number()
        derive(state, sobject, stored)
        state.table(sobject)[record_id[:15]] = stored
        state.dirty = True
        return record_id


def update_record(
    state: SandboxState,
    sobject: SObjectType,
    record: dict[str, Any],
    body: Any,
    *,
    user_id: str,
    raw: str | None = None,
) -> None:
    if not isinstance(body, dict):
        raise deserialize_error(sobject.name, body, None, "")
    with state.lock:
        if record.get("IsDeleted"):
            raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        pairs = _check_fields(sobject, body, creating=False)
        changes: dict[str, Any] = {}
        for definition, value in pairs:
            changes[definition.name] = coerce_value(state, sobject, definition, value, raw)
        missing = [
            d.name
            for d, _ in pairs
            if not d.nillable and changes.get(d.name) is None and d.type != "boolean"
        ]
        if missing:
            raise SalesforceError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        candidate = {**record, **changes}
        _check_unique(state, sobject, candidate, record["Id"])
        now = state.now_iso()
        candidate.update(
            {"LastModifiedDate": now, "LastModifiedById": user_id, "SystemModstamp": now}
        )
        derive(state, sobject, candidate)
        record.clear()
        record.update(candidate)
        state.dirty = True


def delete_record(state: SandboxState, record: dict[str, Any]) -> None:
    with state.lock:
        if record.get("IsDeleted"):
            raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        record["IsDeleted"] = True
        record["SystemModstamp"] = state.now_iso()
        state.dirty = True


def locate_record(state: SandboxState, sobject: SObjectType, raw_id: str) -> dict[str, Any]:
    """The record a ``/sobjects/{Type}/{id}`` URL names, or the error Salesforce gives."""
    if not looks_like_id(raw_id):
        raise SalesforceError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {raw_id}",
        )
    id15 = normalize_id(raw_id)
    if id15 is None:
        raise SalesforceError(400, "MALFORMED_ID", f"malformed id {raw_id}")
    record = state.records.get(sobject.name, {}).get(id15)
    if record is None:
        raise not_found()
    if record.get("IsDeleted"):
        raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
    return record


def external_id_field(sobject: SObjectType, name: str) -> FieldDef:
    definition = sobject.field(name)
    if definition is None or not (definition.external_id or definition.type == "id"):
        raise SalesforceError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {name}",
        )
    return definition


def find_by_external_id(
    state: SandboxState, sobject: SObjectType, definition: FieldDef, value: str
) -> list[dict[str, Any]]:
    if definition.type == "id":
        id15 = normalize_id(value)
        record = state.records.get(sobject.name, {}).get(id15 or "")
        return [record] if record is not None and not record.get("IsDeleted") else []
    wanted = value.casefold()
    return [
        record
        for record in state.live_records(sobject)
        if record.get(definition.name) is not None
        and str(record[definition.name]).casefold() == wanted
    ]


def record_url(sobject: SObjectType, record: dict[str, Any], version: str) -> str:
    return f"/services/data/v{version}/sobjects/{sobject.name}/{record['Id']}"


def render_record(
    sobject: SObjectType,
    record: dict[str, Any],
    version: str,
    fields: list[FieldDef] | None = None,
) -> dict[str, Any]:
    """A record as GET returns it: attributes first, then fields in describe order."""
    body: dict[str, Any] = {
        "attributes": {"type": sobject.name, "url": record_url(sobject, record, version)}
    }
    if fields is None:
        for definition in sobject.fields:
            body[definition.name] = record.get(definition.name)
        return body
    for definition in fields:
        body[definition.name] = record.get(definition.name)
    if "Id" not in body:
        body["Id"] = record["Id"]
    return body


def upsert_user_record(state: SandboxState, user: SandboxUser) -> str:
    """Keep the User sObject in step with a sign-in identity; returns the User ID."""
    sobject = state.schema.get("User")
    assert sobject is not None
    with state.lock:
        existing = state.find(user.user_id) if user.user_id else None
        now = state.now_iso()
        values = {
            "Username": user.username,
            "LastName": user.last_name,
            "FirstName": user.first_name,
            "Email": user.email or user.username,
            "Alias": (user.username.split("@")[0] or "user")[:8],
            "IsActive": user.active,
            "TimeZoneSidKey": "Asia/Tokyo",
            "LocaleSidKey": state.locale,
            "LanguageLocaleKey": "en_US",
            "LastModifiedDate": now,
            "SystemModstamp": now,
        }
        if existing is not None:
            record = existing[1]
            record.update(values)
        else:
            user_id = state.new_id(sobject)
            record = {definition.name: None for definition in sobject.fields}
            record.update(values)
            record.update(
                {
                    "Id": user_id,
                    "IsDeleted": False,
                    "CreatedDate": now,
                    "CreatedById": user_id,
                    "LastModifiedById": user_id,
                    "CompanyName": "callbridge sandbox",
                }
            )
            state.table(sobject)[user_id[:15]] = record
        derive(state, sobject, record)
        state.dirty = True
        return str(record["Id"])
