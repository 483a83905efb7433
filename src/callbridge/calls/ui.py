"""Small helpers shared by the calls and call-actions pages."""

from __future__ import annotations

from fastapi import Request


async def form_values(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
