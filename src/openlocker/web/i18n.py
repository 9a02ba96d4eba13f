"""The pages' languages: English message ids in the templates, translations in gettext
catalogs (``locale/<lang>/LC_MESSAGES/messages.po``, read by ``core.i18n``), dates in the
site's time zone.

Add a language by adding its catalog (``pybabel extract -F babel.cfg`` finds every ``_()``
of the templates); ``SUPPORTED`` is read from the folders.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from openlocker.core.i18n import DEFAULT, Catalogs, Gettext

_CATALOGS = Catalogs("openlocker.web")
SUPPORTED = _CATALOGS.supported
#: How long the ``Accept-Language`` header may be before the rest is ignored.
_MAX_ACCEPT = 512


def gettext(language: str) -> Gettext:
    """``_(message, **values)`` for ``language`` (``core.i18n.Catalogs.gettext``)."""
    return _CATALOGS.gettext(language)


def accepted(header: str | None) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (q=0 left out)."""
    weighted = []
    for position, part in enumerate((header or "")[:_MAX_ACCEPT].split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag.strip() and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def choose_language(recipient: str | None, site: str | None, accept_language: str | None) -> str:
    """The recipient's language (given at announce), else the site's, else the browser's."""
    for tag in (recipient, site, *accepted(accept_language)):
        language = _CATALOGS.language(tag)
        if language is not None:
            return language
    return DEFAULT


def format_moment(moment: datetime, timezone: str, language: str) -> str:
    """A deadline as a recipient reads it: weekday, day, month and time in the site's zone."""
    return format_datetime(
        moment, "EEEE, d MMMM, HH:mm zzz", tzinfo=ZoneInfo(timezone), locale=language
    )
