"""What a recipient reads: emails (HTML, text, the QR code as an inline PNG) and SMS texts.

Pure functions of a ``Notice`` (the message's facts and, unsealed, its credentials): no
database, no network. Texts come from Jinja2 templates in ``templates/`` translated by
gettext catalogs in ``locale/`` (loaded from the ``.po`` files, so a fresh checkout needs no
build step); times are formatted by Babel for the language and the site's time zone.
"""

from __future__ import annotations

from base64 import b64encode
from binascii import b2a_qp
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime, formataddr, formatdate, parseaddr
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from openlocker.access.qr_image import qr_png

HERE = Path(__file__).resolve().parent
LOCALES = HERE / "locale"
#: Languages with a catalog; English is the templates' own.
LANGUAGES = ("en", "pl")
QR_CID = "qr@openlocker"
TEMPLATES = ("email.txt", "email.html", "sms.txt")


@dataclass(frozen=True)
class SiteFacts:
    """What a message says about the site."""

    id: str
    name: str
    address: str
    lat: float
    lon: float
    opening_hours: dict[str, Any]
    language: str
    timezone: str


@dataclass(frozen=True)
class Credentials:
    """The parcel's pickup codes, unsealed only to compose its message."""

    pin: str
    qr: str
    link: str

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every string that must not reach a log or an attempt's error text."""
        return self.pin, self.qr, self.link, self.link.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Notice:
    """One outbox message to a recipient, ready to be written in their language."""

    outbox_id: str
    #: ``recipient.pickup_ready``, ``recipient.reminder``, ``recipient.expired`` or
    #: ``recipient.return_receipt``.
    topic: str
    #: The parcel's tracking number; a return's reference.
    tracking_number: str
    recipient: dict[str, Any]
    site: SiteFacts
    deadline: datetime | None
    credentials: Credentials | None = None
    #: Used in the email's ``Message-ID``, which is stable per outbox message.
    message_domain: str = "openlocker.invalid"
    #: A return receipt's facts: the return's id, when and into which compartment it went.
    return_id: str | None = None
    dropped_off_at: datetime | None = None
    compartment: str | None = None

    @property
    def language(self) -> str:
        """The recipient's language if there is a catalog for it, else the site's."""
        wanted = (self.recipient.get("language") or "").split("-")[0]
        return wanted if wanted in LANGUAGES else self.site.language

    @property
    def message_id(self) -> str:
        """The same for every attempt, so a receiver can tell a duplicate (RFC 5322)."""
        return f"<{self.outbox_id}@{self.message_domain}>"


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    message: bytes = field(repr=False)


@lru_cache(maxsize=len(LANGUAGES) + 1)
def _catalog(language: str) -> NullTranslations:
    po = LOCALES / language / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


@lru_cache(maxsize=len(LANGUAGES) + 1)
def _environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # The templates ship with the package: compiled once, never checked for changes.
        auto_reload=False,
    )
    env.install_gettext_translations(_catalog(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def warm_up() -> None:
    """Load every catalog and compile every template, and encode one QR code, so that the
    first messages after a start cost what later ones do (about 10 ms more each otherwise)."""
    for language in LANGUAGES:
        env = _environment(language)
        for name in TEMPLATES:
            env.get_template(name)
    qr_png("warm-up")


def translate(language: str, message: str, **values: Any) -> str:
    """``message`` in ``language``, with ``%(name)s`` values filled in."""
    translated: str = _catalog(language).gettext(message)
    return translated % values if values else translated


def format_moment(moment: datetime, language: str, timezone: str) -> str:
    """A deadline or a drop-off as the recipient reads it: their language, the site's time."""
    local = moment.astimezone(ZoneInfo(timezone))
    day = format_date(local, "long", locale=language)
    return f"{day}, {format_time(local, 'short', locale=language)}"


def _context(notice: Notice) -> dict[str, Any]:
    language = notice.language
    site = notice.site
    hours = site.opening_hours
    return {
        "topic": notice.topic,
        "tracking_number": notice.tracking_number,
        "name": notice.recipient.get("name"),
        "site": site,
        "always_open": bool(hours.get("always")),
        "hours": [(day, spans) for day, spans in hours.items() if day != "always"],
        "map_url": f"https://www.openstreetmap.org/?mlat={site.lat}&mlon={site.lon}#map=18/{site.lat}/{site.lon}",
        "deadline": (
            format_moment(notice.deadline, language, site.timezone) if notice.deadline else None
        ),
        "return_id": notice.return_id,
        "compartment": notice.compartment,
        "dropped_off_at": (
            format_moment(notice.dropped_off_at, language, site.timezone)
            if notice.dropped_off_at
            else None
        ),
        "credentials": notice.credentials,
        "qr_cid": QR_CID,
        "language": language,
    }


def subject(notice: Notice) -> str:
    language = notice.language
    values = {"number": notice.tracking_number, "site": notice.site.name}
    if notice.topic == "recipient.reminder":
        return translate(language, "Reminder: parcel %(number)s is waiting at %(site)s", **values)
    if notice.topic == "recipient.expired":
        return translate(language, "Parcel %(number)s was not collected in time", **values)
    if notice.topic == "recipient.return_receipt":
        return translate(language, "Receipt: return %(number)s dropped off at %(site)s", **values)
    return translate(language, "Your parcel %(number)s is waiting at %(site)s", **values)


def compose_email(notice: Notice, sender: str, *, at: datetime | None = None) -> Email | None:
    """The email for ``notice`` (``None`` when the recipient gave no address), dated ``at``
    (now by default).

    ``multipart/alternative``: a text part with the PIN and the link, and an HTML part
    related to the QR code, an ``image/png`` part the HTML shows by its Content-ID.
    """
    address = notice.recipient.get("email")
    if not address:
        return None
    to = ascii_address(address)
    env = _environment(notice.language)
    context = _context(notice)
    title = subject(notice)
    text = env.get_template("email.txt").render(context)
    html = env.get_template("email.html").render(context)
    qr = qr_png(notice.credentials.qr) if notice.credentials is not None else None
    headers = {
        "Subject": title,
        "From": _sender(sender),
        "To": to,
        "Date": format_datetime(at, usegmt=True) if at else formatdate(usegmt=True),
        "Message-ID": notice.message_id,
        "Content-Language": notice.language,
    }
    return Email(to, title, mime_message(headers, text, html, qr, boundary=notice.outbox_id))


def ascii_address(address: str) -> str:
    """``address`` with its domain in IDNA (``anna@xn--w-uga1v8h.pl``), as SMTP without the
    SMTPUTF8 extension carries it; ``ValueError`` for a local part that is not ASCII, which
    only SMTPUTF8 could (this sender does not speak it)."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise ValueError("the address's local part is not ASCII: SMTPUTF8 is not supported")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def mime_message(
    headers: dict[str, str], text: str, html: str, qr: bytes | None, *, boundary: str
) -> bytes:
    """An email's bytes as it goes over SMTP (CRLF lines, 7-bit): ``headers``, then
    ``multipart/alternative`` of ``text`` and ``html``, the HTML ``multipart/related`` to the
    ``qr`` PNG (Content-ID ``QR_CID``) when there is one.

    Written out directly rather than through ``email.message``, whose header objects and
    generator cost 2 ms an email (as much as everything else in sending it). ASCII header
    values are folded at their spaces, others become RFC 2047 encoded words; the bodies are
    quoted-printable and base64, whose output never holds ``=_``, so boundaries of ``=_``
    and a unique ``boundary`` cannot occur in them.
    """
    alternative, related = f"=_{boundary}.a", f"=_{boundary}.r"
    lines = [_header(name, value) for name, value in headers.items()]
    lines += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{alternative}"',
        "",
        f"--{alternative}",
        *_text_part("plain", text),
        f"--{alternative}",
    ]
    if qr is None:
        lines += _text_part("html", html)
    else:
        lines += [
            f'Content-Type: multipart/related; type="text/html"; boundary="{related}"',
            "",
            f"--{related}",
            *_text_part("html", html),
            f"--{related}",
            "Content-Type: image/png",
            "Content-Transfer-Encoding: base64",
            f"Content-ID: <{QR_CID}>",
            'Content-Disposition: inline; filename="qr.png"',
            "",
            *_base64_lines(qr),
            f"--{related}--",
        ]
    lines += [f"--{alternative}--", ""]
    return "\r\n".join(lines).encode("ascii")


def _header(name: str, value: str) -> str:
    """A header field of at most 78 characters a line where it can be: ASCII folded at its
    spaces, anything else as RFC 2047 encoded words (UTF-8, base64, whole characters)."""
    words = value.split()  # a value is one line: no CR or LF makes a header of its own
    if " ".join(words).isascii():
        lines = [f"{name}:"]
        for word in words:
            if len(lines[-1]) + 1 + len(word) > 78 and lines[-1] != f"{name}:":
                lines.append("")
            lines[-1] += f" {word}"
        return "\r\n".join(lines)
    chunks: list[bytes] = [b""]
    for char in " ".join(words):
        encoded = char.encode()
        if len(chunks[-1]) + len(encoded) > 39:  # 52 base64 characters: a 66-character line
            chunks.append(b"")
        chunks[-1] += encoded
    encoded_words = (f"=?utf-8?b?{b64encode(chunk).decode()}?=" for chunk in chunks)
    return f"{name}: " + "\r\n ".join(encoded_words)


def _text_part(subtype: str, body: str) -> list[str]:
    encoded = b2a_qp(body.replace("\r\n", "\n").replace("\n", "\r\n").encode(), istext=True)
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        encoded.decode("ascii"),
    ]


def _base64_lines(data: bytes) -> list[str]:
    encoded = b64encode(data).decode("ascii")
    return [encoded[i : i + 76] for i in range(0, len(encoded), 76)]


@lru_cache(maxsize=8)
def _sender(sender: str) -> str:
    """The ``From`` value with a display name that is not ASCII encoded (RFC 2047)."""
    name, address = parseaddr(sender)
    return formataddr((name, address), charset="utf-8") if address else sender


def compose_sms(notice: Notice) -> str | None:
    """The SMS text for ``notice`` (``None`` when the recipient gave no phone number)."""
    if not notice.recipient.get("phone"):
        return None
    env = _environment(notice.language)
    return env.get_template("sms.txt").render(_context(notice)).strip()


def sender_domain(sender: str) -> str:
    """The domain of a ``From`` address, for Message-IDs."""
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "openlocker.invalid"
