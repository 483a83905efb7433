"""The OpenAPI document says how to authenticate and what each operation can answer:
the bearer token and the admin's session cookie as security schemes (so /docs and
generated clients can authenticate), each operation's own scheme(s), and the error
answers 401, 403, 404, 409 and 422 where an operation gives them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from callbridge.auth.deps import admin_access, pbx_access
from callbridge.auth.sessions import SESSION_COOKIE
from callbridge.calls.pbx_auth import pbx_token

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (Tokens page or POST /api/v1/tokens): scope admin for "
        "the configuration API, pbx for call events, IVR invocations and recordings.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "A signed-in administrator's browser session; a call that changes "
        "something also needs the X-CSRF-Token header (the cb_csrf cookie's value).",
    },
}
ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail"],
}
_ANSWERS = {
    "401": "No credentials, or a token that does not exist (any more)",
    "403": "A token of the other scope, a user who is not an administrator, or a session "
    "call without its X-CSRF-Token",
    "404": "Nothing with this id or key",
    "409": "Conflicts with what is stored (a name or key already taken, a state that "
    "does not allow it)",
}
_WRITES = frozenset({"post", "put", "patch", "delete"})


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _routes(app: FastAPI) -> Iterator[Any]:
    for route in app.routes:
        candidates = getattr(route, "effective_candidates", None)
        items = candidates() if callable(candidates) else None
        for item in items or [route]:
            yield getattr(item, "route", item)


def _security(app: FastAPI) -> dict[tuple[str, str], list[dict[str, list[str]]]]:
    found: dict[tuple[str, str], list[dict[str, list[str]]]] = {}
    for route in _routes(app):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        calls = set(_calls(dependant))
        schemes: list[dict[str, list[str]]]
        if admin_access in calls:
            schemes = [{"bearer": []}, {"session": []}]
        elif pbx_access in calls or pbx_token in calls:
            schemes = [{"bearer": []}]
        else:
            continue
        for method in getattr(route, "methods", ()) or ():
            found[(route.path, method.lower())] = schemes
    return found


def document_security_and_errors(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that adds schemes, security and error answers."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = plain()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        components.setdefault("schemas", {})["Error"] = ERROR
        security = _security(app)
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                schemes = security.get((path, method))
                answers = operation.setdefault("responses", {})
                wanted = []
                if schemes is not None:
                    operation["security"] = schemes
                    wanted += ["401", "403"]
                if "{" in path:
                    wanted.append("404")
                if schemes is not None and {"session": []} in schemes and method in _WRITES:
                    wanted.append("409")
                for status in wanted:
                    answers.setdefault(
                        status,
                        {
                            "description": _ANSWERS[status],
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                    )
                if schemes is not None or operation.get("parameters"):
                    answers.setdefault(
                        "422",
                        {
                            "description": "A field, parameter or body is invalid; each "
                            "problem names its location (loc)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/HTTPValidationError"}
                                }
                            },
                        },
                    )
        components["schemas"].setdefault(
            "HTTPValidationError",
            {"type": "object", "properties": {"detail": {"type": "array", "items": {}}}},
        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
