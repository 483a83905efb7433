"""Who may play a recording: the ``playback_auth`` modes of DESIGN.md §3.4 (pure).

- ``url``: any signed-in user (seed 001, mode ①);
- ``admin``: signed in and allowed for that call — admins and supervisors always, an
  agent only when their ``agent_id`` is on one of the call's events (mode ②);
- ``signed``: a link with a valid signature plays without an account; without one the
  ``admin`` rules apply, so staff can still play from callbridge itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callbridge.i18n import N_
from callbridge.models import User
from callbridge.recordings.links import LinkStatus

_LINK_REASONS = {
    LinkStatus.EXPIRED: N_("This playback link has expired."),
    LinkStatus.REVOKED: N_(
        "This playback link was revoked: the key that signed it has been rotated since."
    ),
    LinkStatus.INVALID: N_("This playback link is not valid: its signature does not match."),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    login_required: bool = False
    reason: str | None = None  # a msgid, formatted with ``args`` once translated
    args: dict[str, str] = field(default_factory=dict)
    via_link: bool = False


ALLOW = Decision(True)
LOGIN = Decision(False, login_required=True)


def _call_permission(user: User, handled: bool) -> Decision:
    if user.role in ("admin", "supervisor"):
        return ALLOW
    if not user.agent_id:
        return Decision(
            False,
            reason=N_(
                "Your account has no agent ID, so it cannot be matched to the agents who "
                "handled this call. Ask an administrator to set your agent ID."
            ),
        )
    if handled:
        return ALLOW
    return Decision(
        False,
        reason=N_(
            "Playback is limited to the agents who handled the call, and agent ID "
            "{agent_id} is not among them."
        ),
        args={"agent_id": user.agent_id},
    )


def decide_playback(
    mode: str, user: User | None, *, handled: bool, link: LinkStatus = LinkStatus.ABSENT
) -> Decision:
    if mode == "signed":
        if link is LinkStatus.VALID:
            return Decision(True, via_link=True)
        if user is not None:
            decision = _call_permission(user, handled)
            if decision.allowed or link is LinkStatus.ABSENT:
                return decision
        if link is LinkStatus.ABSENT:
            return LOGIN
        return Decision(False, reason=_LINK_REASONS[link])
    if user is None:
        return LOGIN
    if mode == "url":
        return ALLOW
    return _call_permission(user, handled)
