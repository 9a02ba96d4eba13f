"""Every string the touchscreen shows has its translation in every catalog."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from openlocker.core.i18n import DEFAULT
from openlocker.kiosk.screen import screen

_METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]


def test_every_message_is_translated_in_every_catalog() -> None:
    folder = Path(screen.__file__).parent
    messages = {message for _, _, message, _, _ in extract_from_dir(folder, _METHODS)}
    assert len(messages) > 60 and "Collect your parcel" in messages
    assert set(screen.MESSAGES.values()) <= messages
    assert {"en", "pl"} <= screen.CATALOGS.supported
    for language in screen.CATALOGS.supported - {DEFAULT}:
        translate = screen.CATALOGS.gettext(language)
        missing = sorted(m for m in messages if translate(m) == m)
        assert missing == [], f"{language} lacks {missing}"
