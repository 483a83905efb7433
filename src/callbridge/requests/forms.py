"""The admin pages' side of a request: the form macros (``requests/_macros.html``) every
feature's page imports, and the conversions between its form and its API values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from callbridge.admin.rendering import add_template_dir
from callbridge.requests.fields import SECRET_FIELDS

TEMPLATES = Path(__file__).resolve().parent / "templates"


def register_templates() -> None:
    add_template_dir(TEMPLATES)


def request_payload(values: Mapping[str, str], text_fields: Iterable[str]) -> dict[str, Any]:
    """A submitted form → API fields: the texts as typed, the OAuth account (empty: none)
    and the secrets only when typed (left empty, the stored one is kept)."""
    data: dict[str, Any] = {name: values.get(name, "") for name in text_fields}
    data["oauth_account_id"] = values.get("oauth_account_id", "").strip() or None
    for name in SECRET_FIELDS:
        if values.get(name):
            data[name] = values[name]
    return data


def request_form(values: Mapping[str, Any]) -> dict[str, Any]:
    """A request's API values → its form: secrets are never shown (``*_set`` says whether
    one is stored), no OAuth account is the empty choice."""
    return {
        **values,
        "basic_password": "",
        "bearer_token": "",
        "oauth_account_id": values.get("oauth_account_id") or "",
    }
