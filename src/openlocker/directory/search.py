"""How a courier's search finds directory entries: plain functions, no database.

Names and units are folded (``fold``): case and accents go, and so do the letters Unicode
does not decompose (``ł``, ``ø``, ``æ`` …), so ``lodz`` finds ``Łódź``. Each word of the query
must begin a word of the entry's name or unit; the unit typed whole comes first, then entries
whose name begins with the query, then the rest, each kind by folded name
(``rank_patterns``). The database does the matching and the order, in one statement.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

#: Letters without a decomposition into a base letter and marks, and what they fold to.
_LETTERS = str.maketrans(
    {
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "ø": "o",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "\u0131": "i",  # dotless i
        "ħ": "h",
        "ŧ": "t",
    }
)
_SEPARATORS = re.compile(r"[\W_]+")
#: Words of a query that count (the rest are ignored), so a pasted paragraph is cheap.
MAX_QUERY_WORDS = 5


def fold(text: str) -> str:
    """``text`` for comparison: case-folded, without accents, words separated by one space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_SEPARATORS.sub(" ", stripped.translate(_LETTERS)).split())


def search_key(display_name: str, unit: str | None) -> str:
    """What an entry is searched by: its folded name and unit, each word after a space."""
    return " " + fold(f"{display_name} {unit or ''}")


def query_words(query: str) -> list[str]:
    """The query's folded words (at most ``MAX_QUERY_WORDS``); empty when nothing is left."""
    return fold(query).split()[:MAX_QUERY_WORDS]


def like_patterns(words: Sequence[str]) -> list[str]:
    """A ``LIKE`` pattern per word: it begins a word of the search key. Folded words hold
    letters and digits only, so none has a wildcard to escape."""
    return [f"% {word}%" for word in words]


def rank_patterns(words: Sequence[str]) -> tuple[str, str]:
    """``LIKE`` patterns of the two best kinds of match: the key ends with the words (the
    unit typed whole: ``12a`` for unit 12A), and it begins with them (the name typed from
    its start). The rest come after, by folded name."""
    typed = " ".join(words)
    return f"% {typed}", f" {typed}%"


def matches(key: str, words: Sequence[str]) -> bool:
    """Whether every word begins a word of ``key`` (what ``like_patterns`` ask)."""
    return all(f" {word}" in key for word in words)
