"""OAuth accounts (credentials for a CRM's API) and the pending browser authorisations
of the authorization-code flow. Every secret column holds ``SecretBox`` ciphertext."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import NEVER_REUSED_IDS, Base
from callbridge.kit.time import utcnow

PROVIDERS = ("salesforce", "generic")
GRANT_TYPES = ("authorization_code", "client_credentials", "password", "jwt_bearer")
STATUSES = ("not_connected", "connected", "needs_reauthorization", "error")


class OAuthAccount(Base):
    __tablename__ = "oauth_account"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    provider: Mapped[str] = mapped_column(String(20))
    grant_type: Mapped[str] = mapped_column(String(30))
    login_url: Mapped[str | None] = mapped_column(String(500))
    authorize_url: Mapped[str | None] = mapped_column(String(1000))
    token_url: Mapped[str | None] = mapped_column(String(1000))
    revoke_url: Mapped[str | None] = mapped_column(String(1000))
    base_url: Mapped[str | None] = mapped_column(String(1000))
    client_id: Mapped[str] = mapped_column(String(500))
    client_secret_enc: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(1000), default="")
    username: Mapped[str | None] = mapped_column(String(300))
    password_enc: Mapped[str | None] = mapped_column(Text)
    private_key_enc: Mapped[str | None] = mapped_column(Text)
    use_pkce: Mapped[bool] = mapped_column(Boolean, default=False)

    status: Mapped[str] = mapped_column(String(30), default="not_connected")
    status_detail: Mapped[str] = mapped_column(Text, default="")
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    token_type: Mapped[str] = mapped_column(String(40), default="Bearer")
    instance_url: Mapped[str | None] = mapped_column(String(1000))
    identity_url: Mapped[str | None] = mapped_column(String(1000))
    issued_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    connected_at: Mapped[datetime | None]
    # Increases with every new access token (refresh single-flight across processes).
    token_version: Mapped[int] = mapped_column(Integer, default=0)

    # Admission of this account's requests, per process (outbound/limits.py).
    max_in_flight: Mapped[int] = mapped_column(Integer, default=1000, server_default="1000")
    long_request_limit: Mapped[int] = mapped_column(Integer, default=25, server_default="25")

    api_usage_used: Mapped[int | None]
    api_usage_allowed: Mapped[int | None]
    api_usage_at: Mapped[datetime | None]

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OAuthAuthorization(Base):
    """A "Connect" in progress: the ``state`` sent to the provider (stored hashed), the
    browser session it is bound to, and the PKCE verifier. Used once; kept a while after
    use so a replayed callback is recognised as such."""

    __tablename__ = "oauth_authorization"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_account.id", ondelete="CASCADE"), index=True
    )
    # sha256 of the admin's session cookie; None when started with an API token.
    session_hash: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(1000))
    code_verifier_enc: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
