"""Fixtures for the sandbox Salesforce's own tests: an org on a fake clock, driven in-process."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

from callbridge.sandbox import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_SECURITY_TOKEN,
    DEMO_USERNAME,
    SandboxState,
    create_sandbox_app,
)
from tests.helpers import FakeClock

BASE_URL = "https://acme.my.salesforce.test"


@dataclass
class SleepRecorder:
    """Stands in for asyncio.sleep: remembers each delay instead of waiting."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    return SandboxState(clock=clock)


@pytest.fixture
def app(state: SandboxState, sleeps: SleepRecorder) -> FastAPI:
    return create_sandbox_app(state, sleep=sleeps)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
def token(state: SandboxState) -> str:
    return state.issue_token()


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def password_form() -> dict[str, str]:
    return {
        "grant_type": "password",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "username": DEMO_USERNAME,
        "password": DEMO_PASSWORD + DEMO_SECURITY_TOKEN,
    }


@dataclass
class SigningKey:
    private_key: rsa.RSAPrivateKey
    certificate_pem: str

    def assertion(self, claims: dict[str, object], alg: str = "RS256") -> str:
        def encode(part: dict[str, object]) -> str:
            raw = json.dumps(part, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        signing_input = f"{encode({'alg': alg})}.{encode(claims)}"
        signature = self.private_key.sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def make_signing_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callbridge test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return SigningKey(key, pem)


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return make_signing_key()


@pytest.fixture(scope="session")
def other_signing_key() -> SigningKey:
    return make_signing_key()
