"""Fixtures for OAuth account tests: the sandbox Salesforce and a signed-in admin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from callbridge.sandbox import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_SECURITY_TOKEN,
    DEMO_USERNAME,
    SandboxHandle,
    running_sandbox,
)
from tests.helpers import make_user, sign_in


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox() as handle:
        yield handle


@dataclass
class Admin:
    client: httpx.AsyncClient

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.client.cookies.get("cb_csrf") or ""}

    async def create_account(self, **fields: object) -> dict:
        response = await self.client.post(
            "/api/v1/oauth-accounts", json=fields, headers=self.headers
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def get_account(self, account_id: int) -> dict:
        response = await self.client.get(f"/api/v1/oauth-accounts/{account_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def connect(self, account_id: int) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/oauth-accounts/{account_id}/connect", headers=self.headers
        )

    async def test(self, account_id: int) -> dict:
        response = await self.client.post(
            f"/api/v1/oauth-accounts/{account_id}/test", headers=self.headers
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def admin(app, client: httpx.AsyncClient) -> Admin:
    await make_user(app)
    response = await sign_in(client)
    assert response.status_code == 303
    return Admin(client)


def sandbox_account(sandbox: SandboxHandle, grant_type: str, **fields: object) -> dict:
    base: dict[str, object] = {
        "name": f"Sandbox {grant_type}",
        "provider": "salesforce",
        "grant_type": grant_type,
        "login_url": sandbox.login_url,
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "scope": "api refresh_token",
    }
    if grant_type == "password":
        base.update(username=DEMO_USERNAME, password=DEMO_PASSWORD + DEMO_SECURITY_TOKEN)
    base.update(fields)
    return base


def consent(authorize_url: str, *, action: str = "allow", password: str = DEMO_PASSWORD) -> str:
    """Play the admin at the sandbox's consent page; returns where it redirects."""
    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
        assert request_id, page.text
        answer = browser.post(
            page.url.copy_with(query=None),
            data={
                "request_id": request_id.group(1),
                "username": DEMO_USERNAME,
                "password": password,
                "action": action,
            },
        )
        assert answer.status_code in (302, 303), answer.text
        return answer.headers["location"]


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/oauth_client/callback", location
    return f"{parts.path}?{parts.query}"


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def rsa_key_and_certificate() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callbridge test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return private_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()
