"""The storage implementations: the local directory fully, and the S3 one against a local
S3-compatible server (moto's server from PyPI, with signature checking switched on), so
the Signature Version 4 code is verified by an independent implementation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from callbridge.app import create_app
from callbridge.recordings.s3 import (
    EMPTY_SHA256,
    S3Credentials,
    S3Storage,
    StorageError,
    sigv4_headers,
)
from callbridge.recordings.storage import LocalStorage, ObjectMissing, new_storage_key
from callbridge.settings import Settings
from tests.conftest import TEST_SECRET
from tests.helpers import make_token, make_user, sign_in
from tests.recordings.support import upload, wav_bytes


def _staged(directory: Path, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "upload.part"
    path.write_bytes(data)
    return path


async def _read(stream) -> bytes:
    try:
        return b"".join([chunk async for chunk in stream])
    finally:
        await stream.aclose()


def test_storage_keys() -> None:
    when = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    key = new_storage_key("../../etc/passwd", "wav", when)
    assert key.startswith("2026/11/25/etc_passwd-")
    assert ".." not in key and key.endswith(".wav")
    assert new_storage_key("", "mp3", when).startswith("2026/11/25/call-")


async def test_local_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "recordings")
    data = bytes(range(256)) * 1000
    staged = _staged(storage.staging_dir, data)
    await storage.store(staged, "2026/11/25/a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
    assert not staged.exists()
    assert await storage.exists("2026/11/25/a.wav")
    assert await _read(await storage.open("2026/11/25/a.wav", 0, len(data))) == data
    assert await _read(await storage.open("2026/11/25/a.wav", 1000, 70000)) == data[1000:71000]
    await storage.delete("2026/11/25/a.wav")
    assert not await storage.exists("2026/11/25/a.wav")
    assert not (tmp_path / "recordings" / "2026").exists()  # empty day folders removed
    await storage.delete("2026/11/25/a.wav")  # deleting twice is fine
    with pytest.raises(ObjectMissing):
        await storage.open("2026/11/25/a.wav", 0, 1)
    with pytest.raises(ValueError):
        storage.path_for("../outside")


def test_signature_v4_matches_the_documented_example() -> None:
    """The GET-object example of the S3 Signature Version 4 documentation."""
    headers = sigv4_headers(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        {},
        {"Range": "bytes=0-9"},
        EMPTY_SHA256,
        S3Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        "us-east-1",
        datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


# ---- against a local S3-compatible server --------------------------------------------

BUCKET = "callbridge-recordings"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    moto_server = pytest.importorskip(
        "moto.server", reason="moto[server] (test extra) is not installed: S3 tests skipped"
    )
    boto3 = pytest.importorskip("boto3")
    from tests.servers import free_port

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # Set up while the server still accepts anonymous requests...
        options = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        iam = boto3.client("iam", **options)
        iam.create_user(UserName="callbridge")
        iam.put_user_policy(
            UserName="callbridge",
            PolicyName="recordings",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="callbridge")["AccessKey"]
        boto3.client("s3", **options).create_bucket(Bucket=BUCKET)
        # ...then every request must carry a valid signature of that IAM user.
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
        yield {"endpoint": endpoint, "key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf")
        server.stop()


def _s3(server: dict[str, str], tmp_path: Path, secret: str | None = None, **options) -> S3Storage:
    return S3Storage(
        endpoint_url=server["endpoint"],
        bucket=BUCKET,
        credentials=S3Credentials(server["key_id"], secret or server["secret"]),
        region="us-east-1",
        staging_dir=tmp_path / "staging",
        **options,
    )


async def test_s3_storage_round_trip(s3_server, tmp_path: Path) -> None:
    storage = _s3(s3_server, tmp_path)
    try:
        data = wav_bytes(1.0)
        staged = _staged(storage.staging_dir, data)
        key = "2026/11/25/1700000000.42-abc.wav"
        await storage.store(staged, key, "audio/wav", hashlib.sha256(data).hexdigest())
        assert not staged.exists()
        assert await storage.exists(key)
        assert await _read(await storage.open(key, 0, len(data))) == data
        assert await _read(await storage.open(key, 100, 50)) == data[100:150]
        await storage.delete(key)
        assert not await storage.exists(key)
        with pytest.raises(ObjectMissing):
            await storage.open(key, 0, 10)
    finally:
        await storage.close()


async def test_s3_multipart_upload(s3_server, tmp_path: Path) -> None:
    storage = _s3(s3_server, tmp_path, multipart_threshold=1024, part_size=5 * 1024 * 1024)
    try:
        data = bytes(range(256)) * (11 * 4096)  # 11 MiB: three parts
        staged = _staged(storage.staging_dir, data)
        await storage.store(staged, "big/object.wav", "audio/wav", "unused-for-multipart")
        assert await _read(await storage.open("big/object.wav", 0, len(data))) == data
        tail = await _read(await storage.open("big/object.wav", len(data) - 10, 10))
        assert tail == data[-10:]
        await storage.delete("big/object.wav")
    finally:
        await storage.close()


async def test_s3_refuses_a_wrong_secret(s3_server, tmp_path: Path) -> None:
    storage = _s3(s3_server, tmp_path, secret="not-the-secret")
    try:
        with pytest.raises(StorageError, match="403"):
            await storage.exists("anything")
    finally:
        await storage.close()


@pytest.fixture
async def s3_app(s3_server, tmp_path: Path, database_url: str) -> AsyncIterator[object]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key=TEST_SECRET,
        recording_storage="s3",
        s3_endpoint_url=s3_server["endpoint"],
        s3_bucket=BUCKET,
        s3_access_key_id=s3_server["key_id"],
        s3_secret_access_key=s3_server["secret"],
        s3_prefix="test-recordings/",
        _env_file=None,  # type: ignore[call-arg]
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_upload_and_playback_through_s3(s3_app) -> None:
    app = s3_app
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",  # type: ignore[arg-type]
    ) as client:
        token = await make_token(app, scope="pbx")  # type: ignore[arg-type]
        first, second = wav_bytes(1.0), wav_bytes(1.5)
        assert (await upload(client, token, "s3-call", first)).status_code == 201
        assert (await upload(client, token, "s3-call", second)).status_code == 200
        await make_user(app)  # type: ignore[arg-type]
        await sign_in(client)
        ranged = await client.get("/monitor_link/s3-call/audio", headers={"Range": "bytes=44-"})
        assert ranged.status_code == 206
        assert ranged.content == second[44:]
        page = await client.get("/monitor_link/s3-call")
        assert page.status_code == 200
    # Nothing in the local recordings directory: the objects are in the bucket.
    assert not (app.state.runtime.settings.data_dir / "recordings").exists()  # type: ignore[attr-defined]


def test_half_configured_s3_fails_at_start(tmp_path: Path) -> None:
    from callbridge.recordings.service import create_storage

    settings = Settings(data_dir=tmp_path, recording_storage="s3", s3_bucket="b", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(RuntimeError, match="CALLBRIDGE_S3_ENDPOINT_URL"):
        create_storage(settings)
