"""How a courier's search finds directory entries: plain functions, no database.

Names and units are folded (``fold``): case and accents go, and so do the letters Unicode
does not decompose (``ł``, ``ø``, ``æ`` …), so ``lodz`` finds ``Łódź``. Each word of the query
must begin a word of the entry's name or unit; an exact unit comes first, then entries whose
name begins with the query, then the rest, each by name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

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
    r"""A ``LIKE … ESCAPE '\'`` pattern per word: it begins a word of the search key."""
    return ["% " + re.sub(r"([\\%_])", r"\\\1", word) + "%" for word in words]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entry that matched every word, as the ranking sees it."""

    id: str
    display_name: str
    unit: str | None


def matches(key: str, words: Sequence[str]) -> bool:
    """Whether every word begins a word of ``key`` (what the SQL patterns ask)."""
    return all(f" {word}" in key for word in words)


def rank(candidates: Sequence[Candidate], words: Sequence[str]) -> list[Candidate]:
    """Best first: the unit typed exactly, then names that begin with the query, then the
    rest; ties by folded name, then unit, then id (stable across calls)."""
    typed = " ".join(words)

    def order(candidate: Candidate) -> tuple[int, str, str, str]:
        name = fold(candidate.display_name)
        if candidate.unit is not None and fold(candidate.unit) == typed:
            group = 0
        elif name.startswith(typed):
            group = 1
        else:
            group = 2
        return group, name, fold(candidate.unit or ""), candidate.id

    return sorted(candidates, key=order)
