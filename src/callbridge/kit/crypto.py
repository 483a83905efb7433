"""Encryption of secrets at rest (OAuth client secrets, tokens, passwords for basic auth).

Keys are derived from the process secret key with HKDF, so one configured secret serves
sessions, signatures and encryption without reusing the same bytes for each. Rotation:
the current key encrypts, the current and every previous key decrypt (MultiFernet).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


def derive_key(secret_key: str, purpose: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=b"callbridge",
        info=purpose.encode(),
    ).derive(secret_key.encode())


class SecretBox:
    def __init__(self, secret_key: str, previous_keys: list[str] | None = None) -> None:
        keys = [secret_key, *(previous_keys or [])]
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(derive_key(k, "secrets-at-rest"))) for k in keys]
        )
        self._signing_key = derive_key(secret_key, "signatures")

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretDecryptionError(
                "stored secret cannot be decrypted: was the secret key changed "
                "without listing the old one in CALLBRIDGE_PREVIOUS_SECRET_KEYS?"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a stored secret with the current key."""
        return self._fernet.rotate(token.encode()).decode()

    def sign(self, message: str) -> str:
        digest = hmac.new(self._signing_key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
