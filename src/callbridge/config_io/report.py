"""An import's difference as text (the command line's output)."""

from __future__ import annotations

import json
from typing import Any

from callbridge.config_io.service import ImportReport

MAX_VALUE = 200


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def format_report(report: ImportReport) -> str:
    lines: list[str] = []
    for entry in report.added:
        lines.append(f"+ {entry.section}: {entry.name}")
    for entry in report.changed:
        lines.append(f"~ {entry.section}: {entry.name}")
        lines += [f"    {c.field}: {_value(c.before)} → {_value(c.after)}" for c in entry.fields]
    for entry in report.removed:
        lines.append(f"- {entry.section}: {entry.name}")
    for entry in report.kept:
        lines.append(
            f"  {entry.section}: {entry.name} (not in the document: kept; --prune removes it)"
        )
    lines += [f"  secret set from the document: {path}" for path in report.secrets_set]
    lines += [f"! {note.path}: {note.message}" for note in report.warnings]
    counts = (
        f"{len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed, {report.unchanged} unchanged"
    )
    lines.append(f"{counts}: dry run, nothing was changed" if report.dry_run else counts)
    return "\n".join(lines) + "\n"
