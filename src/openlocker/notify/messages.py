"""What a recipient reads: emails (HTML, text, the QR code as an inline PNG) and SMS texts.

Pure functions of a ``Notice`` (the message's facts and, unsealed, its credentials): no
database, no network. Texts come from Jinja2 templates in ``templates/`` translated by
gettext catalogs in ``locale/`` (loaded from the ``.po`` files, so a fresh checkout needs no
build step); times are formatted by Babel for the language and the site's time zone.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import numpy as np
import segno
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from openlocker.access.credentials import QR_MASK

HERE = Path(__file__).resolve().parent
LOCALES = HERE / "locale"
#: Languages with a catalog; English is the templates' own.
LANGUAGES = ("en", "pl")
QR_CID = "qr@openlocker"


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
    #: ``recipient.pickup_ready``, ``recipient.reminder`` or ``recipient.expired``.
    topic: str
    tracking_number: str
    recipient: dict[str, Any]
    site: SiteFacts
    deadline: datetime | None
    credentials: Credentials | None = None
    #: Used in the email's ``Message-ID``, which is stable per outbox message.
    message_domain: str = "openlocker.invalid"

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
    )
    env.install_gettext_translations(_catalog(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def translate(language: str, message: str, **values: Any) -> str:
    """``message`` in ``language``, with ``%(name)s`` values filled in."""
    translated: str = _catalog(language).gettext(message)
    return translated % values if values else translated


def format_deadline(moment: datetime, language: str, timezone: str) -> str:
    """The deadline as the recipient reads it: their language, the site's local time."""
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
            format_deadline(notice.deadline, language, site.timezone) if notice.deadline else None
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
    return translate(language, "Your parcel %(number)s is waiting at %(site)s", **values)


def compose_email(notice: Notice, sender: str) -> Email | None:
    """The email for ``notice`` (``None`` when the recipient gave no address).

    ``multipart/alternative``: a text part with the PIN and the link, and an HTML part
    related to the QR code, an ``image/png`` part the HTML shows by its Content-ID.
    """
    to = notice.recipient.get("email")
    if not to:
        return None
    env = _environment(notice.language)
    context = _context(notice)
    message = EmailMessage(policy=SMTP)
    message["Subject"] = subject(notice)
    message["From"] = sender
    message["To"] = str(Address(addr_spec=to))
    message["Message-ID"] = notice.message_id
    message["Content-Language"] = notice.language
    message.set_content(env.get_template("email.txt").render(context))
    message.add_alternative(env.get_template("email.html").render(context), subtype="html")
    if notice.credentials is not None:
        html = message.get_payload()[1]  # type: ignore[index]
        assert isinstance(html, EmailMessage)
        html.add_related(
            qr_png(notice.credentials.qr),
            maintype="image",
            subtype="png",
            cid=f"<{QR_CID}>",
            filename="qr.png",
        )
    return Email(to, message["Subject"], message.as_bytes())


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


def qr_png(token: str, *, scale: int = 5, border: int = 4) -> bytes:
    """The QR code of ``token`` as a 1-bit PNG (the code by segno, the PNG written here:
    segno's own writer costs several times the encoding's time in pure Python)."""
    modules = np.array(segno.make(token, error="m", mask=QR_MASK).matrix, dtype=np.uint8)
    image = np.pad(modules, border).repeat(scale, 0).repeat(scale, 1)
    rows = np.packbits(image ^ 1, axis=1)  # 1 is a dark module, a black (0) pixel
    raw = np.pad(rows, ((0, 0), (1, 0))).tobytes()  # filter type 0 before each row
    height, width = image.shape
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
