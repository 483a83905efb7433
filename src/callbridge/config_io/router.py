"""``/api/v1/config``: the configuration as one YAML document, out and in (DESIGN.md §13)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response

from callbridge.auth.deps import AdminAccess
from callbridge.calls.ingest import read_limited_body
from callbridge.config_io import service
from callbridge.config_io.document import MAX_DOCUMENT_BYTES
from callbridge.config_io.service import ImportReport
from callbridge.db.session import SessionDep
from callbridge.errors import CallbridgeError, PayloadTooLarge
from callbridge.runtime import get_runtime

router = APIRouter(prefix="/api/v1/config", tags=["config"])

YAML_MEDIA_TYPE = "application/yaml"
# JSON is YAML too.
ACCEPTED_TYPES = (
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "text/plain",
    "application/json",
)
_YAML_BODY = {
    "required": True,
    "content": {media: {"schema": {"type": "string"}} for media in ACCEPTED_TYPES},
}
EXPORT_FILENAME = "callbridge-config.yaml"


@router.get(
    "/export",
    operation_id="export_config",
    response_class=Response,
    responses={200: {"content": {YAML_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
)
async def export_config(session: SessionDep, principal: AdminAccess) -> Response:
    """Every configuration as one YAML document: OAuth accounts (no secrets or tokens),
    call-action rules, IVRs with their responses and steps, saved settings."""
    text = await service.export_document(session)
    return Response(
        text,
        media_type=f"{YAML_MEDIA_TYPE}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{EXPORT_FILENAME}"'},
    )


@router.post(
    "/import",
    operation_id="import_config",
    openapi_extra={"requestBody": _YAML_BODY},
    responses={
        413: {"description": f"Larger than {MAX_DOCUMENT_BYTES} bytes"},
        415: {"description": "Not sent as application/yaml (or text/yaml, application/json)"},
        422: {"description": "The document's problems, each with its path; nothing changed"},
    },
)
async def import_config(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    background: BackgroundTasks,
    dry_run: Annotated[
        bool, Query(description="Only show the difference; nothing is changed")
    ] = False,
    prune: Annotated[
        bool, Query(description="Also remove what callbridge has and the document has not")
    ] = False,
) -> ImportReport:
    """Apply a document in one transaction (all or nothing): added, changed (field by
    field) and removed objects. Stored secrets of existing accounts and rules are kept."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        raise CallbridgeError(
            f"Send the document with Content-Type: {YAML_MEDIA_TYPE} (got '{media or 'none'}').",
            status_code=415,
        )
    try:  # counted as it arrives: a body sent in chunks has no length to check first
        body = await read_limited_body(request, MAX_DOCUMENT_BYTES)
    except PayloadTooLarge:
        raise CallbridgeError(
            f"The document is larger than {MAX_DOCUMENT_BYTES} bytes.", status_code=413
        ) from None
    report, after_commit = await service.import_document(
        session,
        get_runtime(request),
        body,
        principal.label,
        dry_run=dry_run,
        prune=prune,
    )
    for job in after_commit:
        background.add_task(job)
    return report
