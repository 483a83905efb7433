"""Small helpers shared by the calls and call-actions pages."""

from __future__ import annotations

from pathlib import Path

import jinja2
from fastapi import Request

from callbridge.admin import rendering


def register_templates(path: Path) -> None:
    """``add_template_dir``, and the loader's own copy of the search path too (the loader
    copied the list when it was built)."""
    rendering.add_template_dir(path)
    loader = rendering._environment.loader
    if isinstance(loader, jinja2.FileSystemLoader) and str(path) not in loader.searchpath:
        loader.searchpath.append(str(path))


async def form_values(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
