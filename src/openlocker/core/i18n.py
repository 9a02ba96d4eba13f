"""Gettext catalogs of one package: English message ids in the code and templates, each
translation in ``<package>/locale/<lang>/LC_MESSAGES/messages.po``.

The server's pages (``web``) and the kiosk's touchscreen (``kiosk.screen``) each keep their
own catalogs; this loader is the one piece they share, so the kiosk needs nothing of
``web``. A language is supported when its folder exists.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from babel.messages.pofile import read_po

DEFAULT = "en"

Gettext = Callable[..., str]


class Catalogs:
    """The catalogs under ``package``'s ``locale`` folder; English is the message ids."""

    def __init__(self, package: str) -> None:
        self._folder = resources.files(package) / "locale"
        found = {entry.name for entry in self._folder.iterdir() if entry.is_dir()}
        #: The languages there are messages in, English included.
        self.supported = frozenset({DEFAULT} | found)
        self._load = cache(self._read)

    def _read(self, language: str) -> dict[str, str]:
        if language == DEFAULT:
            return {}
        with (self._folder / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=language)
        return {
            str(message.id): str(message.string)
            for message in catalog
            if message.id and message.string and not message.fuzzy
        }

    def language(self, tag: str | None) -> str | None:
        """``pl`` for ``pl-PL`` (or ``PL``), if there are messages in it; else None."""
        if not tag:
            return None
        primary = tag.strip().split("-", 1)[0].lower()
        return primary if primary in self.supported else None

    def gettext(self, language: str) -> Gettext:
        """``_(message, **values)`` for ``language``: the translation (else the English id)
        with ``%(name)s`` placeholders filled in."""
        catalog = self._load(language)

        def translate(message: str, **values: Any) -> str:
            text = catalog.get(message, message)
            return text % values if values else text

        return translate
