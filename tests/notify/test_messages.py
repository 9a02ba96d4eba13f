"""Messages in the recipient's language: complete catalogs, local deadlines."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from openlocker.access.qr_image import qr_png
from openlocker.notify.messages import (
    HERE,
    LOCALES,
    QR_CID,
    ascii_address,
    format_moment,
    mime_message,
)


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
    assert format_moment(moment, "pl", "Europe/Warsaw") == "8 stycznia 2026, 10:00"
    assert format_moment(moment, "en", "UTC") == "January 8, 2026, 9:00\u202fAM"


def _parsed(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_an_email_reads_back_exactly_as_composed() -> None:
    # What quoted-printable and headers must survive: Polish letters, "=", a long line,
    # trailing spaces and tabs, a line of one dot, "From " at a line start, CRLF endings.
    text = (
        "Dzień dobry, Zażółć gęślą jaźń =3D = \n" + "x" * 200 + "\t\n.\nFrom here on\n\nKoniec.\n"
    )
    html = '<p style="margin:0">Paczka czeka — ąę</p>\n' + "<b>" + "y" * 300 + "</b>\n"
    png = qr_png("token-" * 20)
    subject = "Twoja paczka TRK-1 czeka w automacie Łódź Manufaktura, ul. Karskiego 5 " * 2
    raw = mime_message(
        {
            "Subject": subject + "\r\nBcc: someone@example.com",
            "From": "=?utf-8?b?UGFjemtvbWF0eSDFgcOzZMW6?= <no-reply@lockers.test>",
            "To": "anna@example.com",
            "Message-ID": "<obx_1@lockers.test>",
            "Content-Language": "pl",
        },
        text,
        html,
        png,
        boundary="obx_1",
    )
    assert raw.isascii() and all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    email = _parsed(raw)
    # A newline in a value is no new header: the value stays on its own line.
    assert email["Bcc"] is None
    assert email["Subject"] == " ".join((subject + " Bcc: someone@example.com").split())
    assert email["From"].addresses[0].display_name == "Paczkomaty Łódź"
    assert email["Content-Language"] == "pl"
    assert email.get_content_type() == "multipart/alternative"
    plain, related = email.iter_parts()
    # Text travels in canonical form, CRLF line ends (RFC 2046), as a mail client reads it.
    assert plain.get_content() == text.replace("\n", "\r\n")
    assert related.get_content_type() == "multipart/related"
    assert related.get_param("type") == "text/html"
    body, image = related.iter_parts()
    assert body.get_content() == html.replace("\n", "\r\n")
    assert image["Content-ID"] == f"<{QR_CID}>" and image.get_content() == png
    assert not email.defects and not any(part.defects for part in email.walk())


def test_an_email_without_codes_has_no_image() -> None:
    raw = mime_message(
        {"Subject": "Parcel TRK-1 was not collected in time"},
        "text\n",
        "<p>html</p>\n",
        None,
        boundary="obx_2",
    )
    email = _parsed(raw)
    assert [part.get_content_type() for part in email.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]


def test_an_international_domain_travels_in_idna_and_a_local_part_must_be_ascii() -> None:
    assert ascii_address("anna@żółw.pl") == "anna@xn--w-uga1v8h.pl"
    assert ascii_address("Anna.Nowak+paczki@example.com") == "Anna.Nowak+paczki@example.com"
    with pytest.raises(ValueError, match="SMTPUTF8"):
        ascii_address("żółw@example.com")
