"""Reading a call event off the wire: size limit, content type, JSON or form fields,
and every validation problem at once (DESIGN.md §3.2)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request

from callbridge.calls.schemas import MAX_BODY_BYTES, CallEventIn
from callbridge.errors import CallbridgeError, FieldErrors, PayloadTooLarge
from callbridge.kit.text import TOO_DEEP_MESSAGE, depth_exceeds

JSON_TYPES = ("application/json", "text/json")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Events are flat (variables one level down): anything deeper than this is not a PBX's.
MAX_JSON_DEPTH = 16


class UnsupportedMediaType(CallbridgeError):
    status_code = 415


class InvalidEvent(FieldErrors):
    """422 with FastAPI's ``detail`` list: every bad field, each with its ``loc``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        CallbridgeError.__init__(
            self, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        )
        self.items = errors

    def detail(self) -> list[dict[str, Any]]:
        return self.items


async def read_limited_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refusing anything over ``limit`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit // 1024} KiB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit // 1024} KiB")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def parse_fields(request: Request, body: bytes) -> dict[str, Any]:
    """The submitted fields as a dict, whatever the encoding (``variables[NAME]`` in forms)."""
    media = media_type_of(request)
    if media in JSON_TYPES or media.endswith("+json"):
        return _parse_json(body)
    if media in FORM_TYPES:
        return await _parse_form(request, body)
    supported = ", ".join((*JSON_TYPES[:1], *FORM_TYPES))
    shown = media or "no Content-Type"
    raise UnsupportedMediaType(f"{shown} is not accepted; send {supported}")


def _parse_json(body: bytes) -> dict[str, Any]:
    data: Any = None
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent(
            [{"loc": ["body"], "msg": f"the body is not valid JSON: {exc}", "type": "json_invalid"}]
        ) from None
    except RecursionError:  # nested deeper than the parser goes
        too_deep = True
    else:
        too_deep = depth_exceeds(data, MAX_JSON_DEPTH)
    if too_deep:
        message = TOO_DEEP_MESSAGE.format(depth=MAX_JSON_DEPTH)
        raise InvalidEvent([{"loc": ["body"], "msg": message, "type": "json_invalid"}])
    if not isinstance(data, dict):
        raise InvalidEvent(
            [{"loc": ["body"], "msg": "the body must be a JSON object", "type": "model_type"}]
        )
    return data


async def _parse_form(request: Request, body: bytes) -> dict[str, Any]:
    replayed = False

    async def receive() -> dict[str, Any]:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form: FormData = await Request(request.scope, receive).form(
            max_files=0, max_fields=400, max_part_size=MAX_BODY_BYTES
        )
    except Exception as exc:  # the multipart parser's own errors: a malformed body
        raise InvalidEvent(
            [{"loc": ["body"], "msg": f"the form cannot be read: {exc}", "type": "form_invalid"}]
        ) from None
    fields: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for key, value in form.multi_items():
        if not isinstance(value, str):
            errors.append(
                {"loc": ["body", key], "msg": "files are not accepted", "type": "value_error"}
            )
            continue
        if key.startswith("variables[") and key.endswith("]"):
            name = key[len("variables[") : -1]
            target, loc = variables, ["body", "variables", name]
        else:
            name, target, loc = key, fields, ["body", key]
        if name in target:
            errors.append({"loc": loc, "msg": "given more than once", "type": "value_error"})
            continue
        target[name] = value
    if errors:
        raise InvalidEvent(errors)
    if variables:
        fields["variables"] = variables
    return fields


def validate_event(fields: dict[str, Any], timezone: str) -> CallEventIn:
    """The event, or :class:`InvalidEvent` listing every bad field."""
    try:
        return CallEventIn.model_validate(fields, context={"timezone": timezone})
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            msg = str(error["msg"]).removeprefix("Value error, ")
            errors.append({"loc": ["body", *error["loc"]], "msg": msg, "type": error["type"]})
        raise InvalidEvent(errors) from None
