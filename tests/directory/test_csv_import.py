"""CSV imports: the format, matching by external id or email, whole files or nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from openlocker.cli import app
from openlocker.core.config import get_settings
from openlocker.core.context import Context
from openlocker.directory.csvimport import CsvFileError, parse_csv
from openlocker.directory.schemas import ImportReport
from openlocker.directory.service import SYSTEM_IMPORT, import_entries
from tests.directory.helpers import add_entry, building, events
from tests.factories import Factory

runner = CliRunner()

RESIDENTS = """display_name,unit,email,phone,external_id
Anna Nowak,12A,anna@example.com,+48 600 100 200,R-1
Jan Nowak,12A,jan@example.com,,R-2
"Kowalska, Zofia",3,,600100300,R-3
"""


def _import(ctx: Context, site_id: str, csv: str, **options: bool) -> ImportReport:
    return import_entries(ctx, SYSTEM_IMPORT, site_id, parse_csv(csv.encode()), **options)


def _rows(ctx: Context, site_id: str) -> dict[str, tuple[object, ...]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT external_id, display_name, unit, email, phone, active, source"
                " FROM directory_entries WHERE site_id = :s"
            ),
            {"s": site_id},
        ).all()
    return {row[0]: (*row[1:5], bool(row[5]), row[6]) for row in rows}


def test_parse_reads_the_format(tmp_path: Path) -> None:
    excel = "\ufeffName;Unit;E-mail;Active\r\nAnna;1;a@example.com;no\r\n\r\n;2;b@example.com;\r\n"
    parsed = parse_csv(excel.encode())
    assert [r.line for r in parsed.rows] == [2]
    assert parsed.rows[0].change.model_dump(exclude_unset=True) == {
        "display_name": "Anna",
        "unit": "1",
        "email": "a@example.com",
        "active": False,
    }
    assert parsed.rejected == [(4, "display_name is empty")]
    multiline = 'display_name,email,unit\n"Anna\nNowak",a@example.com,1\nJan,x,2\n'
    parsed = parse_csv(multiline.encode())
    assert parsed.rows[0].line == 2 and parsed.rejected[0][0] == 4
    assert "email" in parsed.rejected[0][1]


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        (b"", 1, "empty"),
        (b"display_name,email,pin\nA,a@example.com,1\n", 1, "unknown column 'pin'"),
        (b"unit,email\n1,a@example.com\n", 1, "display_name"),
        (b"display_name,unit\nA,1\n", 1, "email or a phone"),
        (b"display_name,phone\nA,600100200\n", 1, "external_id or an email"),
        (b"display_name,email,Email\nA,a@x.com,b@x.com\n", 1, "twice"),
        (b"display_name,email\nA,a@example.com\nB,\xff@example.com\n", 3, "UTF-8"),
        (b'display_name,email\n"A,a@example.com\n', 2, "not valid CSV"),
    ],
)
def test_files_that_cannot_be_read_are_refused_whole(
    content: bytes, line: int, problem: str
) -> None:
    with pytest.raises(CsvFileError) as refused:
        parse_csv(content)
    assert refused.value.line == line and problem in refused.value.detail


def test_import_creates_then_updates_by_external_id_or_email(
    factory: Factory, ctx: Context
) -> None:
    here = building(factory)
    report = _import(ctx, here.site_id, RESIDENTS)
    assert report.applied and (report.created, report.updated, report.rejected) == (3, 0, 0)
    assert [r.line for r in report.rows] == [2, 3, 4]
    assert _rows(ctx, here.site_id)["R-3"] == (
        "Kowalska, Zofia",
        "3",
        None,
        "+48600100300",
        True,
        "csv",
    )

    again = _import(ctx, here.site_id, RESIDENTS)
    assert again.applied and (again.created, again.updated, again.unchanged) == (0, 0, 3)

    changed = (
        "email,display_name,unit,active\n"
        "anna@example.com,Anna Nowak-Kowal,12B,\n"  # matched by email; phone column absent: kept
        "JAN@example.com,Jan Nowak,12A,false\n"
        "new@example.com,Nowy Lokator,7,\n"
    )
    report = _import(ctx, here.site_id, changed)
    assert report.applied, report
    assert (report.created, report.updated, report.deactivated, report.unchanged) == (1, 1, 1, 0)
    rows = _rows(ctx, here.site_id)
    assert rows["R-1"] == (
        "Anna Nowak-Kowal",
        "12B",
        "anna@example.com",
        "+48600100200",
        True,
        "csv",
    )
    assert rows["R-2"][4] is False
    assert rows[None][0] == "Nowy Lokator"  # no external id: it is found by its email next time
    names = [name for name, _ in events(ctx, "directory.")]
    assert names.count("directory.imported") == 3 and names.count("directory.entry_created") == 4


def test_one_bad_row_and_nothing_is_imported(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    _import(ctx, here.site_id, RESIDENTS)
    before = _rows(ctx, here.site_id)
    bad = (
        "display_name,unit,email,phone,external_id\n"
        "Anna Nowak,99,anna@example.com,,R-1\n"  # fine on its own
        "Bad Phone,1,bad@example.com,12,R-9\n"
        "Stolen Email,2,jan@example.com,,R-8\n"
        "Twice,3,twice@example.com,,R-1\n"
        "Nobody,4,,,R-7\n"
    )
    report = _import(ctx, here.site_id, bad, deactivate_missing=True)
    assert not report.applied and report.rejected == 4
    reasons = {r.line: r.reason for r in report.rows if r.outcome == "rejected"}
    assert "phone" in reasons[3]
    assert "external_id 'R-2'" in reasons[4]
    assert "repeats the external_id of line 2" in reasons[5]
    assert "email or a phone" in reasons[6]
    assert _rows(ctx, here.site_id) == before
    assert [name for name, _ in events(ctx, "directory.imported")] == ["directory.imported"]


def test_deactivate_missing_and_dry_run(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    _import(ctx, here.site_id, RESIDENTS)
    by_scim = factory.client.post(
        "/scim/v2/Users",
        json={"userName": "it@example.com", "displayName": "From the IdP"},
        headers=here.keeper.headers,
    )
    assert by_scim.status_code == 201
    only_anna = "display_name,email,external_id\nAnna Nowak,anna@example.com,R-1\n"
    dry = _import(ctx, here.site_id, only_anna, deactivate_missing=True, dry_run=True)
    assert not dry.applied and dry.deactivated == 2 and dry.unchanged == 1
    assert [r.line for r in dry.rows] == [2, None, None]
    assert all(row[4] for row in _rows(ctx, here.site_id).values())
    before = _rows(ctx, here.site_id)
    newcomer = _import(ctx, here.site_id, "display_name,email\nNew,new@example.com\n", dry_run=True)
    assert [(r.outcome, r.entry_id) for r in newcomer.rows] == [("created", None)]
    assert _rows(ctx, here.site_id) == before

    done = _import(ctx, here.site_id, only_anna, deactivate_missing=True)
    assert done.applied and done.deactivated == 2
    active = {key: row[4] for key, row in _rows(ctx, here.site_id).items()}
    assert active == {"R-1": True, "R-2": False, "R-3": False, None: True}  # SCIM's stays


def test_an_api_entry_is_matched_by_email_and_taken_over(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    entry = add_entry(factory, here, email="anna@example.com", display_name="Anna")
    report = _import(
        ctx, here.site_id, "display_name,email,external_id\nAnna Nowak,anna@example.com,R-1\n"
    )
    assert report.rows[0].entry_id == entry["id"] and report.rows[0].outcome == "updated"
    assert _rows(ctx, here.site_id)["R-1"][0] == "Anna Nowak"
    assert _rows(ctx, here.site_id)["R-1"][5] == "csv"


@pytest.fixture
def env(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENLOCKER_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("OPENLOCKER_SECRET_KEY", ctx.settings.secret_key or "")
    monkeypatch.setenv("OPENLOCKER_DATA_DIR", str(ctx.settings.data_folder))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_cli_imports_and_reports(
    env: None, factory: Factory, ctx: Context, tmp_path: Path
) -> None:
    here = building(factory)
    good = tmp_path / "residents.csv"
    good.write_text(RESIDENTS)
    done = runner.invoke(app, ["directory", "import", here.site_id, str(good)])
    assert done.exit_code == 0, done.output
    assert "Imported" in done.output and "3 created" in done.output

    bad = tmp_path / "bad.csv"
    bad.write_text(RESIDENTS + "Bad,1,bad@example.com,12,R-9\n")
    refused = runner.invoke(app, ["directory", "import", here.site_id, str(bad), "--json"])
    assert refused.exit_code == 1
    report = json.loads(refused.stdout)
    assert report["applied"] is False and report["rejected"] == 1
    assert [r["line"] for r in report["rows"] if r["outcome"] == "rejected"] == [5]
    listed = runner.invoke(app, ["directory", "import", here.site_id, str(bad)])
    assert "line 5: rejected phone" in listed.output and "Nothing imported" in listed.output

    unreadable = tmp_path / "notes.csv"
    unreadable.write_text("name;pin\nA;1\n")
    assert runner.invoke(app, ["directory", "import", here.site_id, str(unreadable)]).exit_code == 2
    nowhere = runner.invoke(app, ["directory", "import", "sit_missing", str(good)])
    assert nowhere.exit_code == 2 and "No site" in nowhere.output
