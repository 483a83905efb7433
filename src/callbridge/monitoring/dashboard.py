"""The dashboard's charts: totals read from ``ops_rollup`` (a few thousand rows for 7
days, whatever the number of executions), grouped in SQL, drawn as SVG."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.agent_desktop import service as screen_pop_service
from callbridge.call_actions import repository as call_action_repository
from callbridge.call_actions.service import rule_label
from callbridge.ivr import repository as ivr_repository
from callbridge.ivr.pages import OUTCOME_LABELS
from callbridge.kit.time import utcnow
from callbridge.models import HistoryRow, OAuthAccount
from callbridge.models.history_link import DUE_STATES
from callbridge.models.rollup import LATENCY_BOUNDS_MS, OpsRollup, OpsRollupHour
from callbridge.monitoring import rollup
from callbridge.monitoring.charts import Bar, Series, bar_chart, hbar_chart, line_chart

# range → (minutes shown, minutes a point stands for)
RANGES = {"24h": (1440, 10), "7d": (10080, 60)}


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    svg: Markup
    link: str
    link_label: str
    note: str = ""


def percentile(histogram: list[int], fraction: float) -> float | None:
    """The upper bound (ms) of the bucket holding that fraction of the requests."""
    total = sum(histogram)
    if total == 0:
        return None
    wanted, seen = fraction * total, 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= wanted:
            return float(LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)])
    return float(LATENCY_BOUNDS_MS[-1])


@dataclass
class Totals:
    """What the rollup holds for the range, summed by slot in one SQL statement."""

    # (kind, slot) → [count, errors, h0…h11]
    slots: dict[tuple[str, int], list[int]]
    # (kind, key) → [count, errors, h0…h11]
    keys: dict[tuple[str, str], list[int]]
    # (slot, key) → calls
    calls: dict[tuple[int, str], int]


async def read_totals(session: AsyncSession, start: int, slot: int) -> Totals:
    """One pass over the range's totals, grouped by slot, kind and key in SQL: the
    minutes for slots under an hour, else the hours (168 rows a key for 7 days)."""
    table: type[OpsRollup] | type[OpsRollupHour] = OpsRollup
    unit, first, size = OpsRollup.minute, start, slot
    if slot % 60 == 0:
        table, unit, first, size = OpsRollupHour, OpsRollupHour.hour, start // 60, slot // 60
    histogram = [func.sum(getattr(table, name)) for name in rollup.HISTOGRAM]
    position = (unit - first) // size
    rows = await session.execute(
        select(
            position,
            table.kind,
            table.key,
            func.sum(table.count),
            func.sum(table.errors),
            *histogram,
        )
        .where(unit >= first)
        .group_by(position, table.kind, table.key)
    )
    totals = Totals({}, {}, {})
    for row in rows:
        index, kind, key = int(row[0]), str(row[1]), str(row[2])
        values = [int(v or 0) for v in row[3:]]
        if kind == "call":
            totals.calls[index, key] = totals.calls.get((index, key), 0) + values[0]
            continue
        summed = totals.slots.setdefault((kind, index), [0] * len(values))
        for column, value in enumerate(values):
            summed[column] += value
        by_key = totals.keys.setdefault((kind, key), [0] * len(values))
        for column, value in enumerate(values):
            by_key[column] += value
    return totals


def _answer_note(values: list[int]) -> str:
    """``count · p50 / p99 ms`` of one outcome's answers."""
    p50, p99 = percentile(values[2:], 0.5), percentile(values[2:], 0.99)
    if p50 is None or p99 is None:
        return f"{values[0]:,}"
    return f"{values[0]:,} · {p50:.0f} / {p99:.0f} ms"


def _slot_labels(start: int, count: int, slot: int, tz: str) -> list[str]:
    zone = ZoneInfo(tz)
    shape = "%H:%M" if slot < 60 else "%m/%d %H:00"
    return [
        datetime.fromtimestamp((start + i * slot) * 60, UTC).astimezone(zone).strftime(shape)
        for i in range(count)
    ]


def _executions_link(tz: str, start: int, **query: str) -> str:
    day = datetime.fromtimestamp(start * 60, UTC).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d")
    return "/executions?" + urlencode({**query, "from": day})


async def build_charts(
    session: AsyncSession, range_key: str, tz: str, _: Callable[[str], str]
) -> list[Chart]:
    span, slot = RANGES[range_key]
    now = rollup.now_minute()
    # From a whole hour (calls are counted per hour), ``count`` slots.
    start = (now - span) // 60 * 60 + 60
    count = span // slot
    labels = _slot_labels(start, count, slot, tz)
    per_minute = float(slot)
    totals = await read_totals(session, start, slot)
    crm = {i: v for (kind, i), v in totals.slots.items() if kind == "call_action"}
    ivr = {i: v for (kind, i), v in totals.slots.items() if kind == "ivr"}
    pops = {i: v for (kind, i), v in totals.slots.items() if kind == "screen_pop"}
    answers = sorted(
        ((key, values) for (kind, key), values in totals.keys.items() if kind == "ivr_outcome"),
        key=lambda item: (-item[1][0], item[0]),
    )

    def rate(data: dict[int, list[int]], column: int) -> list[float | None]:
        return [data[i][column] / per_minute if i in data else 0.0 for i in range(count)]

    def latency(data: dict[int, list[int]], fraction: float) -> list[float | None]:
        return [percentile(data[i][2:], fraction) if i in data else None for i in range(count)]

    hours = span // 60
    hour_start = start
    hour_labels = _slot_labels(hour_start, hours, 60, tz)
    calls: dict[tuple[int, str], int] = {}
    for (index, key), number in totals.calls.items():
        hour = index * slot // 60
        calls[hour, key] = calls.get((hour, key), 0) + number
    # Errors by what sent the requests: call-action rules, IVRs, screen-pop profiles.
    names = {
        ("call_action", str(r.id)): rule_label(r)
        for r in await call_action_repository.all_rules(session)
    }
    names |= {("ivr", str(i.id)): f"IVR · {i.key}" for i in await ivr_repository.all_ivrs(session)}
    names |= {
        ("screen_pop", str(p.id)): f"{_('Screen pop')} · {p.name}"
        for p in await screen_pop_service.list_profiles(session)
    }
    # Deleted since: by kind and id.
    unnamed = {
        "call_action": "#{key}",
        "ivr": "IVR #{key}",
        "screen_pop": _("Screen pop") + " #{key}",
    }
    errors = sorted(
        (
            (kind, key, values[1], values[0])
            for (kind, key), values in totals.keys.items()
            if kind in rollup.SOURCES and values[1]
        ),
        key=lambda item: (-item[2], item[0], item[1]),
    )[:10]
    accounts = list(
        await session.scalars(
            select(OAuthAccount)
            .where(OAuthAccount.api_usage_allowed.is_not(None))
            .order_by(OAuthAccount.name)
        )
    )
    backlog, oldest = (
        await session.execute(
            select(func.count(), func.min(HistoryRow.created_at)).where(
                HistoryRow.state.in_(DUE_STATES)
            )
        )
    ).one()
    calls_day = datetime.fromtimestamp(hour_start * 60, UTC).astimezone(ZoneInfo(tz))
    charts = [
        Chart(
            "calls",
            _("Calls per hour"),
            bar_chart(
                "calls",
                _("Calls per hour"),
                hour_labels,
                [
                    Series(_("Inbound"), [calls.get((h, "inbound"), 0) for h in range(hours)]),
                    Series(_("Outbound"), [calls.get((h, "outbound"), 0) for h in range(hours)]),
                    Series(_("Unknown"), [calls.get((h, ""), 0) for h in range(hours)]),
                ],
            ),
            "/calls?" + urlencode({"from": calls_day.strftime("%Y-%m-%d")}),
            _("Calls"),
        ),
        Chart(
            "crm_requests",
            _("CRM requests per minute"),
            line_chart(
                "crm_requests",
                _("CRM requests per minute"),
                labels,
                [Series(_("Requests"), rate(crm, 0)), Series(_("Errors"), rate(crm, 1))],
            ),
            _executions_link(tz, start, rule="call_action"),
            _("Executions"),
        ),
        Chart(
            "crm_latency",
            _("CRM latency (ms, p50 / p99)"),
            line_chart(
                "crm_latency",
                _("CRM latency (ms, p50 / p99)"),
                labels,
                [Series("p50", latency(crm, 0.5)), Series("p99", latency(crm, 0.99))],
            ),
            _executions_link(tz, start, rule="call_action"),
            _("Executions"),
        ),
        Chart(
            "rule_errors",
            _("Errors by rule, IVR and screen pop"),
            hbar_chart(
                "rule_errors",
                _("Errors by rule, IVR and screen pop"),
                [
                    Bar(
                        names.get((kind, key)) or unnamed[kind].format(key=key),
                        failed,
                        href=_executions_link(tz, start, rule=f"{kind}:{key}", error_kind="any"),
                        note=f"{failed} / {total}",
                    )
                    for kind, key, failed, total in errors
                ],
            ),
            _executions_link(tz, start, error_kind="any"),
            _("Executions with errors"),
            "" if errors else _("No rule, IVR or screen pop failed in this period."),
        ),
        Chart(
            "ivr",
            _("IVR requests per minute and answer time (ms, p99)"),
            line_chart(
                "ivr",
                _("IVR requests per minute and answer time (ms, p99)"),
                labels,
                [Series(_("Requests"), rate(ivr, 0)), Series("p99", latency(ivr, 0.99))],
            ),
            _executions_link(tz, start, rule="ivr"),
            _("Executions"),
        ),
        Chart(
            "ivr_outcomes",
            _("IVR answers by outcome, with answer time (ms, p50 / p99)"),
            hbar_chart(
                "ivr_outcomes",
                _("IVR answers by outcome, with answer time (ms, p50 / p99)"),
                [
                    Bar(
                        _(OUTCOME_LABELS.get(outcome, outcome)),
                        values[0],
                        href=_executions_link(tz, start, outcome=outcome),
                        note=_answer_note(values),
                    )
                    for outcome, values in answers
                ],
            ),
            _executions_link(tz, start, rule="ivr"),
            _("Executions"),
            "" if answers else _("No IVR answered in this period."),
        ),
        Chart(
            "screen_pops",
            _("Screen-pop requests per minute and time (ms, p99)"),
            line_chart(
                "screen_pops",
                _("Screen-pop requests per minute and time (ms, p99)"),
                labels,
                [
                    Series(_("Requests"), rate(pops, 0)),
                    Series(_("Errors"), rate(pops, 1)),
                    Series("p99", latency(pops, 0.99)),
                ],
            ),
            _executions_link(tz, start, rule="screen_pop"),
            _("Executions"),
            "" if pops else _("No screen-pop request in this period."),
        ),
        Chart(
            "api_usage",
            _("Salesforce API usage against the daily limit"),
            hbar_chart(
                "api_usage",
                _("Salesforce API usage against the daily limit"),
                [
                    Bar(
                        account.name,
                        float(account.api_usage_used or 0),
                        float(account.api_usage_allowed or 0),
                        href=f"/oauth-accounts/{account.id}",
                        note=f"{account.api_usage_used:,} / {account.api_usage_allowed:,}",
                    )
                    for account in accounts
                ],
            ),
            "/oauth-accounts",
            _("OAuth accounts"),
            "" if accounts else _("No account has reported its usage yet."),
        ),
    ]
    lag = (
        _("{n} history rows waiting; the oldest for {minutes} minutes.").format(
            n=backlog, minutes=int((utcnow() - oldest).total_seconds() // 60)
        )
        if backlog and oldest is not None
        else _("No history rows waiting.")
    )
    charts.append(
        Chart(
            "history",
            _("History sync backlog"),
            hbar_chart("history", _("History sync backlog"), [Bar(_("Waiting"), backlog)]),
            "/calls",
            _("Calls"),
            lag,
        )
    )
    return charts


def range_of(value: str | None) -> str:
    return value if value in RANGES else "24h"
