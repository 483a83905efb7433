"""Everything the sandbox org holds: records, connected apps, users, tokens, the request log.

One ``SandboxState`` is shared by the app and the test that started it; every mutation
takes its lock, so a test thread may read or change it while the server thread serves.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import string
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from callbridge.sandbox.ids import make_id15, normalize_id, to_18
from callbridge.sandbox.knobs import Knobs
from callbridge.sandbox.schema import Schema, SObjectType, default_schema

STATE_FORMAT_VERSION = 1
_TOKEN_ALPHABET = string.ascii_letters + string.digits


def _random_text(length: int, alphabet: str = _TOKEN_ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def sf_datetime(timestamp: float) -> str:
    """A dateTime as the REST API writes it: ``2024-05-01T09:30:00.000+0000``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


@dataclass
class ConnectedApp:
    """A connected app: its consumer key and secret, callbacks, policies and certificate."""

    client_id: str
    client_secret: str
    callback_urls: list[str] = field(default_factory=list)
    name: str = "Connected App"
    scopes: list[str] = field(default_factory=lambda: ["api", "refresh_token", "offline_access"])
    certificate_pem: str | None = None
    require_secret: bool = True
    require_pkce: bool = False
    allow_password_grant: bool = True
    client_credentials_username: str | None = None
    rotate_refresh_tokens: bool = False
    refresh_token_ttl_seconds: float | None = None
    preauthorized_usernames: list[str] | None = None
    loopback_any_port: bool = False


@dataclass
class SandboxUser:
    """A user who can sign in: the password grant wants ``password + security_token``."""

    username: str
    password: str
    security_token: str = ""
    last_name: str = "User"
    first_name: str | None = None
    email: str | None = None
    user_id: str = ""
    active: bool = True


@dataclass
class AccessToken:
    token: str
    client_id: str
    username: str
    scope: str
    issued_at: float
    refresh_token: str | None = None
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    client_id: str
    username: str
    scope: str
    issued_at: float
    family: str
    revoked: bool = False


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    username: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    issued_at: float
    used: bool = False


@dataclass
class PendingAuthorization:
    """An authorize request waiting on the consent page's Allow or Deny."""

    request_id: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str | None
    created_at: float


@dataclass
class RecordedRequest:
    """One request as the sandbox received it, for tests that assert what was sent."""

    seq: int
    kind: str  # "rest", "oauth" or "other"
    method: str
    path: str
    raw_path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float
    status: int | None = None

    @property
    def url(self) -> str:
        """The request target exactly as sent: raw path and query."""
        return self.raw_path + ("?" + self.query_string if self.query_string else "")

    @property
    def query_params(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def query_param(self, name: str) -> str | None:
        values = self.query_params.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.text).items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "raw_path": self.raw_path,
            "query_string": self.query_string,
            "url": self.url,
            "headers": [[key, value] for key, value in self.headers],
            "body": self.body.decode("utf-8", errors="replace"),
            "received_at": self.received_at,
            "status": self.status,
        }


@dataclass
class QueryCursor:
    """The rest of a query result beyond its first batch (``nextRecordsUrl``)."""

    records: list[dict[str, Any]]
    total: int
    position: int
    batch_size: int
    resource: str  # "query" or "queryAll"


class SandboxState:
    """The org: schema, records, identities and the knobs and log tests steer and read."""

    def __init__(
        self,
        *,
        demo: bool = True,
        clock: Callable[[], float] = time.time,
        knobs: Knobs | None = None,
        persist_path: Path | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.knobs = knobs or Knobs()
        self.persist_path = persist_path
        self.schema: Schema = default_schema()
        self.org_id = to_18("00D5g00000CbXq1")
        self.pod = "5g"
        self.locale = "ja_JP"
        self.default_country_code = "81"
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.sequence = 1_000_000
        self.case_number = 1000
        self.api_usage = 0
        # API calls by kind (query, search, composite, collections, describe, sobject,
        # limits, other), counted as Salesforce bills them: a Composite is one call.
        self.api_calls: dict[str, int] = {}
        self.connected_apps: dict[str, ConnectedApp] = {}
        self.users: dict[str, SandboxUser] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.pending: dict[str, PendingAuthorization] = {}
        self.cursors: dict[str, QueryCursor] = {}
        self.requests: list[RecordedRequest] = []
        self._request_seq = 0
        self.dirty = False
        if demo:
            from callbridge.sandbox.demo import load_demo_data

            load_demo_data(self)
            self.dirty = False

    # --- time and ids ---------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def now_iso(self) -> str:
        return sf_datetime(self.now())

    def new_id(self, sobject: SObjectType) -> str:
        with self.lock:
            self.sequence += 1
            return to_18(make_id15(sobject.key_prefix, self.pod, self.sequence))

    def next_case_number(self) -> str:
        with self.lock:
            self.case_number += 1
            return f"{self.case_number:08d}"

    # --- records --------------------------------------------------------------------------

    def table(self, sobject: SObjectType) -> dict[str, dict[str, Any]]:
        return self.records.setdefault(sobject.name, {})

    def find(self, any_id: str) -> tuple[SObjectType, dict[str, Any]] | None:
        """The record with this ID (15 or 18 characters), deleted or not."""
        id15 = normalize_id(any_id)
        if id15 is None:
            return None
        sobject = self.schema.by_prefix(id15[:3])
        if sobject is None:
            return None
        record = self.records.get(sobject.name, {}).get(id15)
        return (sobject, record) if record is not None else None

    def find_live(self, any_id: str) -> tuple[SObjectType, dict[str, Any]] | None:
        found = self.find(any_id)
        if found is None or found[1].get("IsDeleted"):
            return None
        return found

    def live_records(self, sobject: SObjectType) -> list[dict[str, Any]]:
        return [r for r in self.records.get(sobject.name, {}).values() if not r.get("IsDeleted")]

    def all_records(self, sobject: SObjectType) -> list[dict[str, Any]]:
        return list(self.records.get(sobject.name, {}).values())

    def snapshot(self) -> dict[str, Any]:
        """What a composite all-or-none request restores when one of its parts fails."""
        with self.lock:
            return {
                "records": copy.deepcopy(self.records),
                "sequence": self.sequence,
                "case_number": self.case_number,
            }

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            self.records = snapshot["records"]
            self.sequence = snapshot["sequence"]
            self.case_number = snapshot["case_number"]

    # --- identities -----------------------------------------------------------------------

    def register_connected_app(
        self, client_id: str, client_secret: str, **options: Any
    ) -> ConnectedApp:
        """Add (or replace) a connected app; options are the fields of ``ConnectedApp``."""
        app = ConnectedApp(client_id=client_id, client_secret=client_secret, **options)
        with self.lock:
            self.connected_apps[client_id] = app
            self.dirty = True
        return app

    def register_user(
        self,
        username: str,
        password: str,
        security_token: str = "",
        *,
        last_name: str = "User",
        first_name: str | None = None,
        email: str | None = None,
    ) -> SandboxUser:
        """Add (or update) a user who can sign in; also creates its User record."""
        from callbridge.sandbox.records import upsert_user_record

        with self.lock:
            existing = self.users.get(username.lower())
            user = SandboxUser(
                username=username,
                password=password,
                security_token=security_token,
                last_name=last_name,
                first_name=first_name,
                email=email or username,
                user_id=existing.user_id if existing else "",
            )
            user.user_id = upsert_user_record(self, user)
            self.users[username.lower()] = user
            self.dirty = True
        return user

    def user(self, username: str) -> SandboxUser | None:
        return self.users.get(username.lower())

    def user_by_id(self, user_id: str) -> SandboxUser | None:
        id15 = normalize_id(user_id)
        return next((u for u in self.users.values() if u.user_id[:15] == id15), None)

    def identity_url(self, base_url: str, user: SandboxUser) -> str:
        return f"{base_url}/id/{self.org_id}/{user.user_id}"

    # --- tokens ---------------------------------------------------------------------------

    def _new_access_token(self) -> str:
        return self.org_id[:15] + "!" + _random_text(92, _TOKEN_ALPHABET + "._")

    def issue_access_token(
        self, client_id: str, username: str, scope: str, refresh_token: str | None = None
    ) -> AccessToken:
        token = AccessToken(
            token=self._new_access_token(),
            client_id=client_id,
            username=username,
            scope=scope,
            issued_at=self.now(),
            refresh_token=refresh_token,
        )
        with self.lock:
            self.access_tokens[token.token] = token
            self.dirty = True
        return token

    def issue_refresh_token(
        self, client_id: str, username: str, scope: str, family: str | None = None
    ) -> RefreshToken:
        value = "5Aep861" + _random_text(80, _TOKEN_ALPHABET + "._")
        token = RefreshToken(
            token=value,
            client_id=client_id,
            username=username,
            scope=scope,
            issued_at=self.now(),
            family=family or value,
        )
        with self.lock:
            self.refresh_tokens[value] = token
            self.dirty = True
        return token

    def issue_token(
        self,
        client_id: str | None = None,
        username: str | None = None,
        scope: str = "api refresh_token",
    ) -> str:
        """An access token without going through OAuth (tests of the REST side)."""
        from callbridge.sandbox.demo import DEMO_CLIENT_ID, DEMO_USERNAME

        return self.issue_access_token(
            client_id or DEMO_CLIENT_ID, username or DEMO_USERNAME, scope
        ).token

    def valid_access_token(self, value: str) -> AccessToken | None:
        """The live access token, or None when unknown, revoked or past the session timeout."""
        with self.lock:
            token = self.access_tokens.get(value)
            if token is None or token.revoked:
                return None
            if self.now() - token.issued_at >= self.knobs.session_timeout_seconds:
                return None
            user = self.user(token.username)
            if user is None or not user.active:
                return None
            return token

    def expire_access_tokens(self) -> int:
        """End every session now, as if the org's session timeout had passed."""
        with self.lock:
            live = [t for t in self.access_tokens.values() if not t.revoked]
            for token in live:
                token.revoked = True
            self.dirty = True
            return len(live)

    def revoke_refresh_family(self, family: str) -> None:
        with self.lock:
            revoked = {t.token for t in self.refresh_tokens.values() if t.family == family}
            for value in revoked:
                self.refresh_tokens[value].revoked = True
            for access in self.access_tokens.values():
                if access.refresh_token in revoked:
                    access.revoked = True
            self.dirty = True

    # --- API usage ------------------------------------------------------------------------

    def count_api_request(self, kind: str = "other") -> bool:
        """Count one API call; False when the daily limit is already used up."""
        with self.lock:
            if self.api_usage >= self.knobs.api_request_limit:
                return False
            self.api_usage += 1  # saved with the next change, not on every read
            self.api_calls[kind] = self.api_calls.get(kind, 0) + 1
            return True

    @property
    def limit_info(self) -> str:
        return f"api-usage={self.api_usage}/{self.knobs.api_request_limit}"

    # --- request log ----------------------------------------------------------------------

    def record_request(self, **values: Any) -> RecordedRequest:
        with self.lock:
            self._request_seq += 1
            entry = RecordedRequest(seq=self._request_seq, **values)
            if self.knobs.log_requests:
                self.requests.append(entry)
                overflow = len(self.requests) - self.knobs.max_logged_requests
                if overflow > 0:
                    del self.requests[:overflow]
            return entry

    def request_log(self, kind: str | None = None) -> list[RecordedRequest]:
        """Requests received so far, oldest first; ``kind`` filters ("rest", "oauth")."""
        with self.lock:
            return [r for r in self.requests if kind is None or r.kind == kind]

    def last_request(self, kind: str | None = "rest") -> RecordedRequest:
        log = self.request_log(kind)
        if not log:
            raise LookupError("no request received yet")
        return log[-1]

    def clear_request_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # --- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "format": STATE_FORMAT_VERSION,
                "org_id": self.org_id,
                "sequence": self.sequence,
                "case_number": self.case_number,
                "api_usage": self.api_usage,
                "records": self.records,
                "connected_apps": [asdict(app) for app in self.connected_apps.values()],
                "users": [asdict(user) for user in self.users.values()],
                "access_tokens": [asdict(t) for t in self.access_tokens.values()],
                "refresh_tokens": [asdict(t) for t in self.refresh_tokens.values()],
            }

    def load_json(self, data: dict[str, Any]) -> None:
        if data.get("format") != STATE_FORMAT_VERSION:
            raise ValueError("unsupported sandbox state file format")
        with self.lock:
            self.org_id = data["org_id"]
            self.sequence = data["sequence"]
            self.case_number = data["case_number"]
            self.api_usage = data["api_usage"]
            self.records = data["records"]
            self.connected_apps = {
                a["client_id"]: ConnectedApp(**a) for a in data["connected_apps"]
            }
            self.users = {u["username"].lower(): SandboxUser(**u) for u in data["users"]}
            self.access_tokens = {t["token"]: AccessToken(**t) for t in data["access_tokens"]}
            self.refresh_tokens = {t["token"]: RefreshToken(**t) for t in data["refresh_tokens"]}
            self.dirty = False

    def save(self, path: Path | None = None) -> None:
        """Write the org to its state file atomically (a crash never leaves half a file)."""
        target = path or self.persist_path
        if target is None:
            raise ValueError("no state file configured")
        with self.lock:
            payload = json.dumps(self.to_json(), ensure_ascii=False, indent=1)
            self.dirty = False
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=target.name, dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(payload)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def save_if_dirty(self) -> None:
        if self.persist_path is not None and self.dirty:
            self.save()

    @classmethod
    def open(
        cls, path: Path, *, clock: Callable[[], float] = time.time, knobs: Knobs | None = None
    ) -> SandboxState:
        """The org saved at ``path``, or a fresh demo org that will be saved there."""
        if path.exists():
            state = cls(demo=False, clock=clock, knobs=knobs, persist_path=path)
            state.load_json(json.loads(path.read_text(encoding="utf-8")))
            return state
        state = cls(demo=True, clock=clock, knobs=knobs, persist_path=path)
        state.save()
        return state
