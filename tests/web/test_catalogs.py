"""Every string the pages show has its translation in every catalog."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from openlocker import web
from openlocker.web import i18n

_METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]


def test_every_message_is_translated_in_every_catalog() -> None:
    folder = Path(web.__file__).parent
    messages = {message for _, _, message, _, _ in extract_from_dir(folder, _METHODS)}
    assert len(messages) > 30 and "Open my compartment" in messages
    assert {"en", "pl"} <= i18n.SUPPORTED
    for language in i18n.SUPPORTED - {i18n.DEFAULT}:
        translate = i18n.gettext(language)
        missing = sorted(m for m in messages if translate(m) == m)
        assert missing == [], f"{language} lacks {missing}"
