"""The pages' languages: English message ids in the templates, translations in gettext
catalogs (``locale/<lang>/LC_MESSAGES/messages.po``), dates in the site's time zone.

Add a language by adding its catalog (``pybabel extract -F babel.cfg`` finds every ``_()``
of the templates); ``SUPPORTED`` is read from the folders.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.pofile import read_po

DEFAULT = "en"
_LOCALE = resources.files("openlocker.web") / "locale"
SUPPORTED = frozenset({DEFAULT} | {entry.name for entry in _LOCALE.iterdir() if entry.is_dir()})
#: How long the ``Accept-Language`` header may be before the rest is ignored.
_MAX_ACCEPT = 512

Gettext = Callable[..., str]


@cache
def _catalog(language: str) -> dict[str, str]:
    if language == DEFAULT:
        return {}
    with (_LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=language)
    return {
        str(message.id): str(message.string)
        for message in catalog
        if message.id and message.string and not message.fuzzy
    }


def gettext(language: str) -> Gettext:
    """``_(message, **values)`` for ``language``: the translation (else the English id) with
    ``%(name)s`` placeholders filled in."""
    catalog = _catalog(language)

    def translate(message: str, **values: Any) -> str:
        text = catalog.get(message, message)
        return text % values if values else text

    return translate


def _primary(tag: str | None) -> str | None:
    """``pl`` of ``pl-PL``, if the pages speak it."""
    if not tag:
        return None
    primary = tag.strip().split("-", 1)[0].lower()
    return primary if primary in SUPPORTED else None


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
        language = _primary(tag)
        if language is not None:
            return language
    return DEFAULT


def format_moment(moment: datetime, timezone: str, language: str) -> str:
    """A deadline as a recipient reads it: weekday, day, month and time in the site's zone."""
    return format_datetime(
        moment, "EEEE, d MMMM, HH:mm zzz", tzinfo=ZoneInfo(timezone), locale=language
    )
