"""Reading a directory CSV file: its columns, its values, what is wrong on which line.

Plain functions over the file's bytes; ``service.import_entries`` matches the rows to the
site's entries. The format (docs/directory.md): UTF-8 (a byte-order mark is fine), a header
line, comma-, semicolon- or tab-separated (the header's most frequent of the three), one entry
per line. A column the file does not have leaves that field of existing entries alone; an
empty cell clears it (``external_id`` excepted: an import never takes one away).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from pydantic import ValidationError

from openlocker.core.errors import InvalidInput
from openlocker.directory.schemas import EntryChange, describe

#: The columns a file may have; ``display_name`` is required.
COLUMNS = (
    "display_name",
    "unit",
    "email",
    "phone",
    "external_id",
    "active",
    "language",
    "given_name",
    "family_name",
)
#: Other spellings of a column's name.
ALIASES = {"name": "display_name", "e_mail": "email"}
MAX_ROWS = 100_000
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
_DELIMITERS = (",", ";", "\t")


class CsvFileError(InvalidInput):
    """The file as a whole cannot be read (``invalid_csv``): nothing of it is imported."""

    code = "invalid_csv"

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}", extra={"line": line})
        self.line = line


@dataclass(frozen=True)
class CsvRow:
    """One line's entry; ``change.model_fields_set`` are the file's columns."""

    line: int
    change: EntryChange


@dataclass
class ParsedCsv:
    rows: list[CsvRow] = field(default_factory=list)
    #: Lines whose values are wrong in themselves: (line, reason).
    rejected: list[tuple[int, str]] = field(default_factory=list)


def _column(name: str) -> str:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(key, key)


def _header(line: int, names: list[str]) -> list[str]:
    columns = [_column(n) for n in names]
    unknown = [n for n, c in zip(names, columns, strict=True) if c not in COLUMNS]
    if unknown:
        raise CsvFileError(
            line, f"unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}"
        )
    repeated = {c for c in columns if columns.count(c) > 1}
    if repeated:
        raise CsvFileError(line, f"column {sorted(repeated)[0]!r} appears twice")
    if "display_name" not in columns:
        raise CsvFileError(line, "the file needs a display_name column")
    if "email" not in columns and "phone" not in columns:
        raise CsvFileError(line, "the file needs an email or a phone column")
    if "email" not in columns and "external_id" not in columns:
        raise CsvFileError(
            line, "the file needs an external_id or an email column, to find its entries again"
        )
    return columns


def _active(value: str) -> bool:
    folded = value.lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(f"active: {value!r} is neither true nor false")


def _row(line: int, columns: list[str], cells: list[str]) -> CsvRow:
    """One line's entry, or ``ValueError`` saying what is wrong with it."""
    if len(cells) != len(columns):
        raise ValueError(f"has {len(cells)} values where the header has {len(columns)}")
    if any("\x00" in cell for cell in cells):
        raise ValueError("holds a NUL character")
    values: dict[str, object] = {
        c: cell.strip() or None for c, cell in zip(columns, cells, strict=True)
    }
    if values["display_name"] is None:
        raise ValueError("display_name is empty")
    active = values.get("active")
    if "active" in values:
        values["active"] = True if active is None else _active(str(active))
    try:
        return CsvRow(line, EntryChange.model_validate(values))
    except ValidationError as error:
        raise ValueError(describe(error)) from None


def parse_csv(data: bytes) -> ParsedCsv:
    """The file's rows, and the lines whose values are wrong; ``CsvFileError`` when the
    file itself is (not UTF-8, no or a bad header, malformed CSV, over ``MAX_ROWS`` rows)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvFileError(data[: error.start].count(b"\n") + 1, "the file is not UTF-8") from None
    first = text.lstrip("\r\n").split("\n", 1)[0]
    if not first.strip():
        raise CsvFileError(1, "the file is empty")
    delimiter = max(_DELIMITERS, key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    parsed = ParsedCsv()
    try:
        header = next(row for row in reader if any(cell.strip() for cell in row))
        columns = _header(reader.line_num, header)
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(cell.strip() for cell in cells):
                continue
            if len(parsed.rows) + len(parsed.rejected) >= MAX_ROWS:
                raise CsvFileError(line, f"the file has more than {MAX_ROWS} rows")
            try:
                parsed.rows.append(_row(line, columns, cells))
            except ValueError as problem:
                parsed.rejected.append((line, str(problem)))
    except csv.Error as error:
        raise CsvFileError(reader.line_num, f"not valid CSV ({error})") from None
    return parsed
