"""Signed playback links and the permission rules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from callbridge.models import User
from callbridge.recordings.links import (
    LinkStatus,
    check_signed_link,
    derive_link_key,
    monitor_link,
    sign_monitor_link,
)
from callbridge.recordings.permissions import decide_playback

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KEY = derive_link_key("a secret key", 3)


def _params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_unsigned_link() -> None:
    assert monitor_link("https://cti.example.co.jp/", "1700000000.42") == (
        "https://cti.example.co.jp/monitor_link/1700000000.42"
    )
    assert monitor_link("https://cti.example.co.jp", "a/b c") == (
        "https://cti.example.co.jp/monitor_link/a%2Fb%20c"
    )


def test_signed_link_round_trip() -> None:
    url = sign_monitor_link("https://cti.example.co.jp/", "u-1", KEY, NOW + timedelta(days=90))
    assert url.startswith("https://cti.example.co.jp/monitor_link/u-1?exp=")
    params = _params(url)
    assert params["kid"] == "3"
    assert check_signed_link("u-1", params, KEY, NOW) is LinkStatus.VALID
    assert check_signed_link("u-1", params, KEY, NOW + timedelta(days=91)) is LinkStatus.EXPIRED
    assert check_signed_link("u-2", params, KEY, NOW) is LinkStatus.INVALID
    later = {**params, "exp": str(int(params["exp"]) + 1)}
    assert check_signed_link("u-1", later, KEY, NOW) is LinkStatus.INVALID
    assert check_signed_link("u-1", {}, KEY, NOW) is LinkStatus.ABSENT
    assert check_signed_link("u-1", {"sig": "x"}, KEY, NOW) is LinkStatus.INVALID


def test_rotation_revokes() -> None:
    url = sign_monitor_link("http://h/", "u-1", KEY, NOW + timedelta(days=1))
    newer = derive_link_key("a secret key", 4)
    assert check_signed_link("u-1", _params(url), newer, NOW) is LinkStatus.REVOKED
    # A generation from the future is not ours.
    older = derive_link_key("a secret key", 2)
    assert check_signed_link("u-1", _params(url), older, NOW) is LinkStatus.INVALID
    # Another server's secret signs differently.
    other = derive_link_key("another secret", 3)
    assert check_signed_link("u-1", _params(url), other, NOW) is LinkStatus.INVALID


def _user(role: str, agent_id: str | None = None) -> User:
    return User(username=role, role=role, agent_id=agent_id, password_hash="x")


@pytest.mark.parametrize("mode", ["url", "admin", "signed"])
def test_anonymous_must_sign_in(mode: str) -> None:
    assert decide_playback(mode, None, handled=False).login_required


def test_admin_mode_rules() -> None:
    assert decide_playback("admin", _user("admin"), handled=False).allowed
    assert decide_playback("admin", _user("supervisor"), handled=False).allowed
    assert decide_playback("admin", _user("agent", "1001"), handled=True).allowed
    denied = decide_playback("admin", _user("agent", "2002"), handled=False)
    assert not denied.allowed and denied.args == {"agent_id": "2002"}
    assert not decide_playback("admin", _user("agent"), handled=False).allowed
    assert decide_playback("url", _user("agent", "2002"), handled=False).allowed


def test_signed_mode_rules() -> None:
    valid = decide_playback("signed", None, handled=False, link=LinkStatus.VALID)
    assert valid.allowed and valid.via_link
    expired = decide_playback("signed", None, handled=False, link=LinkStatus.EXPIRED)
    assert not expired.allowed and not expired.login_required
    assert "expired" in (expired.reason or "")
    staff = decide_playback("signed", _user("supervisor"), handled=False, link=LinkStatus.REVOKED)
    assert staff.allowed
    other = decide_playback("signed", _user("agent", "2"), handled=False, link=LinkStatus.REVOKED)
    assert not other.allowed and "revoked" in (other.reason or "")


def test_monitor_link_maker() -> None:
    from callbridge.recordings.links import MonitorLinkMaker

    plain = MonitorLinkMaker("https://cti.example.co.jp/", "admin", None, timedelta(days=90))
    assert plain("u-1", NOW) == "https://cti.example.co.jp/monitor_link/u-1"
    assert plain.expires_at(NOW) is None
    signed = MonitorLinkMaker("https://cti.example.co.jp/", "signed", KEY, timedelta(days=90))
    url = signed("u-1", NOW)
    assert check_signed_link("u-1", _params(url), KEY, NOW + timedelta(days=89)) is (
        LinkStatus.VALID
    )
    assert check_signed_link("u-1", _params(url), KEY, NOW + timedelta(days=90)) is (
        LinkStatus.EXPIRED
    )
    assert signed.expires_at(NOW) == NOW + timedelta(days=90)
