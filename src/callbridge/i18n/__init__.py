"""UI languages: gettext catalogs (Babel) for Japanese and English.

The catalogs are the ``.po`` files beside this module; they are compiled in memory at
start-up, so no build step is needed and a checkout runs as it is.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from starlette.requests import HTTPConnection

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "cb_lang"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


@lru_cache(maxsize=None)
def translations(language: str) -> gettext.NullTranslations:
    po_path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return gettext.NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def parse_accept_language(header: str | None) -> str | None:
    """The best of our languages in an Accept-Language header, by q-value."""
    if not header:
        return None
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else None


def language_for(conn: HTTPConnection, user_language: str | None = None) -> str:
    """The user's choice, else the language cookie, else Accept-Language."""
    if user_language in LANGUAGES:
        return str(user_language)
    cookie = conn.cookies.get(LANGUAGE_COOKIE)
    if cookie in LANGUAGES:
        return str(cookie)
    return parse_accept_language(conn.headers.get("accept-language")) or DEFAULT_LANGUAGE
