"""The admin pages' side of a request: the form macros (``requests/_macros.html``) every
feature's page imports."""

from __future__ import annotations

from pathlib import Path

from callbridge.admin.rendering import add_template_dir

TEMPLATES = Path(__file__).resolve().parent / "templates"


def register_templates() -> None:
    add_template_dir(TEMPLATES)
