"""Messages in the recipient's language: complete catalogs, local deadlines."""

from __future__ import annotations

from datetime import UTC, datetime

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from openlocker.notify.messages import HERE, LOCALES, format_deadline


def test_every_message_of_the_templates_and_code_has_a_polish_translation() -> None:
    found = {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(
            HERE,
            method_map=[("templates/**", "jinja2"), ("**.py", "python")],
            options_map={"templates/**": {"extensions": "jinja2.ext.i18n"}},
            keywords={"_": None, "translate": (2,)},
        )
    }
    with (LOCALES / "pl" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    translated = {m.id for m in catalog if m.id and m.string}
    assert len(found) > 20
    assert found <= translated, found - translated


def test_deadlines_read_in_the_sites_time_and_language() -> None:
    moment = datetime(2026, 1, 8, 9, 0, tzinfo=UTC)
    assert format_deadline(moment, "pl", "Europe/Warsaw") == "8 stycznia 2026, 10:00"
    assert format_deadline(moment, "en", "UTC") == "January 8, 2026, 9:00\u202fAM"
