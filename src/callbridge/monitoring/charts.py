"""Charts drawn on the server as inline SVG: no script, no external service, the same
picture in every browser and in the page's language (labels come translated)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 26, 28
COLORS = ("#2563eb", "#f59e0b", "#dc2626", "#059669", "#7c3aed")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: no data in that slot


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _legend(series: Sequence[Series]) -> str:
    parts, x = [], LEFT
    for number, item in enumerate(series):
        color = COLORS[number % len(COLORS)]
        parts.append(
            f'<rect x="{x}" y="4" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="13" class="legend">{escape(item.name)}</text>'
        )
        x += 24 + sum(7 if ord(c) < 0x2E80 else 12 for c in item.name)
    return "".join(parts)


def _frame(chart: str, title: str, top: float, labels: Sequence[str], body: str) -> Markup:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" data-chart="{escape(chart)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{_number(top * fraction)}</text>"
        )
    if labels:
        step = max(len(labels) // 6, 1)
        for index in range(0, len(labels), step):
            x = LEFT + plot_w * (index + 0.5) / len(labels)
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" class="axis">'
                f"{escape(labels[index])}</text>"
            )
    parts.append(body)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped)


def line_chart(chart: str, title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = _nice_max(peak)
    body = []
    for number, line in enumerate(series):
        points = []
        for index, value in enumerate(line.values):
            if value is None:
                continue
            x = LEFT + plot_w * (index + 0.5) / max(len(line.values), 1)
            y = TOP + plot_h * (1 - value / top)
            points.append(f"{x:.1f},{y:.1f}")
        color = COLORS[number % len(COLORS)]
        body.append(
            f'<polyline class="series" data-series="{escape(line.name)}" fill="none" '
            f'stroke="{color}" stroke-width="1.5" points="{" ".join(points)}"/>'
        )
        if len(points) <= 48:  # few points: each is drawn too (one alone makes no line)
            for point in points:
                cx, cy = point.split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
    return _frame(chart, title, top, labels, _legend(series) + "".join(body))


def bar_chart(chart: str, title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """Stacked bars, one per slot."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum((s.values[i] or 0) for s in series) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0.0))
    width = plot_w / max(len(labels), 1)
    body = []
    for index in range(len(labels)):
        base = 0.0
        for number, bars in enumerate(series):
            value = bars.values[index] or 0
            if value <= 0:
                continue
            height = plot_h * value / top
            y = TOP + plot_h * (1 - (base + value) / top)
            body.append(
                f'<rect class="bar" data-series="{escape(bars.name)}" '
                f'x="{LEFT + width * index + 0.5:.1f}" y="{y:.1f}" '
                f'width="{max(width - 1, 0.5):.1f}" height="{height:.1f}" '
                f'fill="{COLORS[number % len(COLORS)]}"><title>{escape(labels[index])} '
                f"{escape(bars.name)}: {_number(value)}</title></rect>"
            )
            base += value
    return _frame(chart, title, top, labels, _legend(series) + "".join(body))


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    total: float | None = None  # drawn as the bar's full length (e.g. a daily limit)
    href: str | None = None
    note: str = ""


def hbar_chart(chart: str, title: str, bars: Sequence[Bar]) -> Markup:
    """One horizontal bar a row, each a link to the list behind it."""
    row, label_w, width = 26, 220, WIDTH - 12
    height = max(row * len(bars) + 8, 34)
    peak = max((b.total or b.value for b in bars), default=0.0) or 1.0
    parts = [
        f'<svg class="chart" data-chart="{escape(chart)}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    span = width - label_w - 90
    for index, bar in enumerate(bars):
        y = 6 + row * index
        scale = bar.total or peak
        filled = span * min(bar.value / scale, 1.0) if scale else 0.0
        shape = (
            f'<text x="0" y="{y + 15}" class="label">{escape(bar.label[:40])}</text>'
            + (
                f'<rect x="{label_w}" y="{y + 3}" width="{span}" height="16" class="track"/>'
                if bar.total
                else ""
            )
            + f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{filled:.1f}" height="16" '
            f'fill="{COLORS[2 if bar.total is None else 0]}"/>'
            f'<text x="{label_w + span + 6}" y="{y + 15}" class="value">'
            f"{escape(bar.note or _number(bar.value))}</text>"
        )
        if bar.href:
            shape = f'<a href="{escape(bar.href)}">{shape}</a>'
        parts.append(shape)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped)
