"""The request an admin writes — authentication, URL, method, headers, body, condition,
extraction — defined once for every feature that sends one (call-action rules, the IVR's
own request and its steps, and whatever comes next).

- ``fields``: names, literals and the pasted-text normalisation (「なし」).
- ``schemas``: pydantic pieces for create, update and read models.
- ``columns``: ORM column mixins.
- ``secrets``: write-only, encrypted secrets read back as ``*_set``.
- ``compiler``: compile once, every finding tied to its field and position, the names
  available given by the caller's :class:`Scope`.
- ``execute``: expansion, the outbound request, the execution record's parts.
- ``service``: OAuth accounts that must exist; names other features produce.
- the form macro: ``requests/fields.html`` (``request_fields``) for the admin pages.
"""

from callbridge.requests.compiler import (
    CompiledRequest,
    Extractor,
    Finding,
    RequestCompiler,
    RequestInvalid,
    Scope,
    bare,
    compile_request,
    content_type_of,
    produced_names,
    secret_errors,
)

__all__ = [
    "CompiledRequest",
    "Extractor",
    "Finding",
    "RequestCompiler",
    "RequestInvalid",
    "Scope",
    "bare",
    "compile_request",
    "content_type_of",
    "produced_names",
    "secret_errors",
]
