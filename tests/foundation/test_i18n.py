"""Every UI text in the source has a Japanese translation, placeholders intact."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import callbridge
import callbridge.app  # imports every feature, so the catalogue is complete
from callbridge.i18n import load_catalog, parse_accept_language, translations
from callbridge.messages import CATALOGUE, Message

SOURCE = Path(callbridge.__file__).resolve().parent
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
KEYWORDS = {"_": None, "N_": None, "gettext": None}
PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_-]*\}|%\([a-z_]+\)s")


def _source_messages() -> dict[str, str]:
    found: dict[str, str] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        str(SOURCE), METHODS, KEYWORDS
    ):
        if isinstance(message, str) and message:
            found.setdefault(message, filename)
    return found


def test_japanese_catalog_is_complete() -> None:
    catalog = load_catalog("ja")
    assert catalog is not None
    messages = _source_messages()
    assert len(messages) > 50
    missing = sorted(
        f"{where}: {msgid!r}"
        for msgid, where in messages.items()
        if not (catalog.get(msgid) and catalog.get(msgid).string)
    )
    assert not missing, "untranslated:\n" + "\n".join(missing)


def test_no_message_is_translated_twice_differently() -> None:
    """The feature catalogs are merged into one, where the later file wins: a message
    translated one way in one file and another way in another would show the other
    file's words on every page (the re-run page's "From" read as a phone number)."""
    translated: dict[str, dict[str, str]] = {}
    for path in sorted((SOURCE / "i18n" / "locale" / "ja" / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle, locale="ja"):
                if isinstance(message.id, str) and message.id and message.string:
                    translated.setdefault(message.id, {})[path.name] = str(message.string)
    differing = {
        msgid: files for msgid, files in translated.items() if len(set(files.values())) > 1
    }
    assert not differing, differing


def test_placeholders_survive_translation() -> None:
    catalog = load_catalog("ja")
    assert catalog is not None
    for message in catalog:
        if message.id and message.string:
            assert set(PLACEHOLDER.findall(str(message.id))) == set(
                PLACEHOLDER.findall(str(message.string))
            ), message.id


def test_translations_and_accept_language() -> None:
    assert translations("ja").gettext("Sign in") == "サインイン"
    assert translations("en").gettext("Sign in") == "Sign in"
    assert parse_accept_language("en-US,en;q=0.9,ja;q=0.8") == "en"
    assert parse_accept_language("ja-JP,ja;q=0.9,en;q=0.8") == "ja"
    assert parse_accept_language("fr-FR, ja;q=0.5") == "ja"
    assert parse_accept_language("de") is None
    assert parse_accept_language("ja;q=0, en;q=0.1") == "en"


def test_every_catalogue_message_is_translated() -> None:
    """The message catalogue (errors, warnings and reasons of the compilers, services and
    engines) is held to the same rule as the UI texts."""
    catalog = load_catalog("ja")
    assert catalog is not None
    assert len(CATALOGUE) > 150
    missing = sorted(
        f"{code}: {text!r}"
        for code, text in CATALOGUE.items()
        if not (catalog.get(text) and catalog.get(text).string)
    )
    assert not missing, "untranslated catalogue messages:\n" + "\n".join(missing)


def test_catalogue_messages_render_in_both_languages() -> None:
    message = Message("unknown_variable", variable="{TELNAM}").then(
        Message("did_you_mean", suggestion="{TELNAME}")
    )
    assert message.code == "unknown_variable"
    assert message.text == "Unknown variable {TELNAM}. Did you mean {TELNAME}?"
    assert message.render(translations("ja").gettext) == (
        "不明な変数 {TELNAM} です。{TELNAME} のことですか？"
    )
    assert Message.from_json(message.to_json()) == message
    # a parameter is a value, never read as a placeholder; {TEL} in a text stays as it is
    odd = Message("url_host_char", char="'{name}'")
    assert odd.text == "'{name}' cannot appear in a URL's host or port."
    assert Message("url_not_absolute").text.startswith("A URL must start with {OAUTH_INSTANCE_URL}")
    assert Message("url_variable_host.start").code == "url_variable_host"
