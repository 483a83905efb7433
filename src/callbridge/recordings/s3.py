"""Recordings in any S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), so several
callbridge servers share one set of recordings.

A small client of its own over httpx2 (the outbound path's HTTP client: one such library
per process) with AWS Signature Version 4: it needs five calls (PUT, GET with Range,
HEAD, DELETE, multipart upload for large files), streams both ways and stays async,
which the SDKs do not offer without a large dependency.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote
from xml.sax.saxutils import escape

import anyio
import anyio.to_thread
import httpx2 as httpx

from callbridge.recordings.storage import READ_CHUNK, ObjectMissing, ObjectStream

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UPLOAD_CHUNK = 1024 * 1024
_UPLOAD_ID = re.compile(r"<UploadId>([^<]+)</UploadId>")


class StorageError(Exception):
    """The object store refused or failed a request."""


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)


def _uri_encode(value: str, *, keep_slash: bool = False) -> str:
    return quote(value, safe="-_.~/" if keep_slash else "-_.~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sigv4_headers(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    credentials: S3Credentials,
    region: str,
    now: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """The headers that sign a request with AWS Signature Version 4: ``headers`` plus
    ``x-amz-date``, ``x-amz-content-sha256`` and ``Authorization``. ``path`` is already
    URI-encoded, as sent; every header given is signed."""
    amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed: dict[str, str] = {
        name.lower(): " ".join(str(value).split()) for name, value in headers.items()
    }
    signed["host"] = host
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = payload_sha256
    names = sorted(signed)
    canonical_query = "&".join(
        f"{_uri_encode(key)}={_uri_encode(value)}" for key, value in sorted(query.items())
    )
    canonical_request = "\n".join(
        [
            method,
            path,
            canonical_query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + credentials.secret_access_key).encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    result = {name: value for name, value in headers.items()}
    result["x-amz-date"] = amz_date
    result["x-amz-content-sha256"] = payload_sha256
    result["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return result


async def _file_chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    handle: BinaryIO = await anyio.to_thread.run_sync(path.open, "rb")
    try:
        await anyio.to_thread.run_sync(handle.seek, start)
        remaining = length
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(handle.read, min(UPLOAD_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _sha256_of_part(path: Path, start: int, length: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(UPLOAD_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            digest.update(chunk)
    return digest.hexdigest()


class S3Storage:
    """Objects ``<prefix>YYYY/MM/DD/…`` in one bucket, path-style or virtual-host URLs."""

    kind = "s3"

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        credentials: S3Credentials,
        region: str,
        staging_dir: Path,
        prefix: str = "recordings/",
        addressing_style: str = "path",
        multipart_threshold: int = 256 * 1024 * 1024,
        part_size: int = 64 * 1024 * 1024,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        endpoint = httpx.URL(endpoint_url)
        self._scheme = endpoint.scheme
        self._bucket = bucket
        self._credentials = credentials
        self._region = region
        self._prefix = prefix.lstrip("/")
        self._staging = staging_dir
        self._multipart_threshold = multipart_threshold
        self._part_size = max(part_size, 5 * 1024 * 1024)
        port = f":{endpoint.port}" if endpoint.port else ""
        if addressing_style == "virtual":
            self._host = f"{bucket}.{endpoint.host}{port}"
            self._base_path = endpoint.path.rstrip("/")
        else:
            self._host = f"{endpoint.host}{port}"
            self._base_path = f"{endpoint.path.rstrip('/')}/{_uri_encode(bucket)}"
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    @property
    def staging_dir(self) -> Path:
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging

    def _path(self, key: str) -> str:
        return f"{self._base_path}/{_uri_encode(self._prefix + key, keep_slash=True)}"

    def _request(
        self,
        method: str,
        key: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        payload_sha256: str = EMPTY_SHA256,
        content: AsyncIterator[bytes] | bytes | None = None,
    ) -> httpx.Request:
        path = self._path(key)
        query = dict(query or {})
        signed = sigv4_headers(
            method,
            self._host,
            path,
            query,
            dict(headers or {}),
            payload_sha256,
            self._credentials,
            self._region,
            datetime.now(UTC),
        )
        query_string = "&".join(
            f"{_uri_encode(k)}={_uri_encode(v)}" if v else _uri_encode(k)
            for k, v in sorted(query.items())
        )
        url = f"{self._scheme}://{self._host}{path}" + (f"?{query_string}" if query else "")
        return self._client.build_request(method, url, headers=signed, content=content)

    async def _send(self, request: httpx.Request, expected: tuple[int, ...]) -> httpx.Response:
        try:
            response = await self._client.send(request)
        except httpx.HTTPError as exc:
            raise StorageError(f"object store unreachable: {type(exc).__name__}") from exc
        if response.status_code not in expected:
            raise StorageError(
                f"object store answered {response.status_code} to {request.method}: "
                f"{response.text[:300]}"
            )
        return response

    async def store(self, staged: Path, key: str, content_type: str, sha256: str) -> None:
        try:
            size = (await anyio.to_thread.run_sync(staged.stat)).st_size
            if size > self._multipart_threshold:
                await self._multipart_upload(staged, key, content_type, size)
            else:
                request = self._request(
                    "PUT",
                    key,
                    headers={"Content-Type": content_type, "Content-Length": str(size)},
                    payload_sha256=sha256,
                    content=_file_chunks(staged, 0, size),
                )
                await self._send(request, (200,))
        finally:
            await anyio.to_thread.run_sync(lambda: staged.unlink(missing_ok=True))

    async def _multipart_upload(self, staged: Path, key: str, content_type: str, size: int) -> None:
        created = await self._send(
            self._request(
                "POST", key, query={"uploads": ""}, headers={"Content-Type": content_type}
            ),
            (200,),
        )
        match = _UPLOAD_ID.search(created.text)
        if match is None:
            raise StorageError("object store gave no UploadId for a multipart upload")
        upload_id = match.group(1)
        parts: list[tuple[int, str]] = []
        try:
            for number, start in enumerate(range(0, size, self._part_size), start=1):
                length = min(self._part_size, size - start)
                part_sha = await anyio.to_thread.run_sync(_sha256_of_part, staged, start, length)
                response = await self._send(
                    self._request(
                        "PUT",
                        key,
                        query={"partNumber": str(number), "uploadId": upload_id},
                        headers={"Content-Length": str(length)},
                        payload_sha256=part_sha,
                        content=_file_chunks(staged, start, length),
                    ),
                    (200,),
                )
                parts.append((number, response.headers.get("etag", "")))
            body = (
                "<CompleteMultipartUpload>"
                + "".join(
                    f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
                    for n, etag in parts
                )
                + "</CompleteMultipartUpload>"
            ).encode()
            completed = await self._send(
                self._request(
                    "POST",
                    key,
                    query={"uploadId": upload_id},
                    headers={"Content-Type": "application/xml"},
                    payload_sha256=hashlib.sha256(body).hexdigest(),
                    content=body,
                ),
                (200,),
            )
            if b"<Error>" in completed.content:  # S3 may report failure inside a 200
                raise StorageError(f"multipart upload failed: {completed.text[:300]}")
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(StorageError):
                await self._send(
                    self._request("DELETE", key, query={"uploadId": upload_id}), (204, 200)
                )
            raise

    async def open(self, key: str, start: int, length: int) -> ObjectStream:
        request = self._request(
            "GET", key, headers={"Range": f"bytes={start}-{start + max(length, 1) - 1}"}
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise StorageError(f"object store unreachable: {type(exc).__name__}") from exc
        if response.status_code not in (200, 206):
            await response.aclose()
            if response.status_code == 404:
                raise ObjectMissing(key)
            raise StorageError(f"object store answered {response.status_code} to GET")
        # A server that ignores Range sends the whole object: skip to ``start``.
        skip = start if response.status_code == 200 else 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal skip
            remaining = length
            async for chunk in response.aiter_raw(READ_CHUNK):
                if remaining <= 0:
                    break
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk, skip = chunk[skip:], 0
                chunk = chunk[:remaining]
                remaining -= len(chunk)
                yield chunk

        return ObjectStream(chunks(), response.aclose)

    async def exists(self, key: str) -> bool:
        response = await self._send(self._request("HEAD", key), (200, 404))
        return response.status_code == 200

    async def delete(self, key: str) -> None:
        await self._send(self._request("DELETE", key), (200, 204, 404))

    async def close(self) -> None:
        await self._client.aclose()
