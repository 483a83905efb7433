"""UI languages: gettext catalogs (Babel) for Japanese and English.

The catalogs are the ``.po`` files beside this module, one file per feature
(``locale/ja/LC_MESSAGES/*.po``, merged into one catalog); they are compiled in memory at
start-up, so no build step is needed and a checkout runs as it is.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from starlette.requests import HTTPConnection

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "cb_lang"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def load_catalog(language: str) -> Catalog | None:
    """Every ``.po`` file of the language merged (later files win on a repeated msgid)."""
    paths = sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po"))
    if not paths:
        return None
    merged = Catalog(locale=language)
    for path in paths:
        with path.open("rb") as handle:
            for message in read_po(handle, locale=language):
                if message.id and message.string:
                    merged.add(message.id, message.string)
    return merged


def N_(message: str) -> str:
    """Marks a msgid for extraction; it is translated later, where the language is known."""
    return message


@cache
def translations(language: str) -> gettext.NullTranslations:
    catalog = load_catalog(language)
    if catalog is None:
        return gettext.NullTranslations()
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


def language_for(
    conn: HTTPConnection, user_language: str | None = None, default: str = DEFAULT_LANGUAGE
) -> str:
    """The user's choice, else the language cookie, else Accept-Language, else ``default``."""
    if user_language in LANGUAGES:
        return str(user_language)
    cookie = conn.cookies.get(LANGUAGE_COOKIE)
    if cookie in LANGUAGES:
        return str(cookie)
    return parse_accept_language(conn.headers.get("accept-language")) or default
