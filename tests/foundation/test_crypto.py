from __future__ import annotations

import stat

import pytest

from callbridge.kit.crypto import SecretBox, SecretDecryptionError
from callbridge.settings import Settings


def test_round_trip_and_no_plaintext() -> None:
    box = SecretBox("key-one")
    token = box.encrypt("client-secret-ひみつ")
    assert "client-secret" not in token
    assert box.decrypt(token) == "client-secret-ひみつ"


def test_rotation_keeps_old_secrets_readable() -> None:
    old = SecretBox("key-one")
    stored = old.encrypt("s3cret")
    new = SecretBox("key-two", previous_keys=["key-one"])
    assert new.decrypt(stored) == "s3cret"
    rotated = new.rotate(stored)
    assert SecretBox("key-two").decrypt(rotated) == "s3cret"
    with pytest.raises(SecretDecryptionError, match="CALLBRIDGE_PREVIOUS_SECRET_KEYS"):
        SecretBox("key-two").decrypt(stored)


def test_signatures() -> None:
    box = SecretBox("key-one")
    signature = box.sign("call:1700000000.42")
    assert box.verify("call:1700000000.42", signature)
    assert not box.verify("call:1700000000.43", signature)
    assert not SecretBox("key-two").verify("call:1700000000.42", signature)


def test_generated_secret_key_file_is_private_and_stable(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    key = settings.load_secret_key()
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.load_secret_key() == key
    assert len(key) > 40
