"""Secrets of a request (basic password, bearer token): write-only in the API, stored
encrypted, read back as ``basic_password_set``/``bearer_token_set``.

In a create or update, a secret left out or null keeps what is stored, "" clears it and
any other value replaces it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from callbridge.kit.crypto import SecretBox
from callbridge.requests.fields import SECRET_FIELDS


class HasSecrets(Protocol):
    basic_password_encrypted: str | None
    bearer_token_encrypted: str | None


def secret_flags(row: HasSecrets) -> dict[str, bool]:
    """``basic_password_set`` and ``bearer_token_set``, as read."""
    return {f"{name}_set": _stored(row, name) for name in SECRET_FIELDS}


def secrets_set_after(changes: Mapping[str, Any], row: HasSecrets | None = None) -> dict[str, bool]:
    """Whether each secret is set once ``changes`` are applied to ``row`` (None: a new one)."""
    found = {}
    for name in SECRET_FIELDS:
        value = changes.get(name)
        found[name] = (row is not None and _stored(row, name)) if value is None else bool(value)
    return found


def store_secret(row: HasSecrets, name: str, value: str | None, box: SecretBox) -> None:
    """Apply one secret of a create or update to ``row``."""
    if value is None:
        return
    setattr(row, f"{name}_encrypted", box.encrypt(value) if value else None)


def decrypted_secrets(row: HasSecrets, box: SecretBox) -> dict[str, str | None]:
    """The secrets in clear, for the request that is about to be sent."""
    found: dict[str, str | None] = {}
    for name in SECRET_FIELDS:
        encrypted = getattr(row, f"{name}_encrypted")
        found[name] = box.decrypt(encrypted) if encrypted else None
    return found


def _stored(row: HasSecrets, name: str) -> bool:
    return getattr(row, f"{name}_encrypted") is not None
