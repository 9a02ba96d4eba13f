"""The server secret: SQLite makes one on its first start and keeps it; PostgreSQL needs
``OPENLOCKER_SECRET_KEY`` and says how to make one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from openlocker.cli import app
from openlocker.core.config import Settings, get_settings
from openlocker.core.context import Context
from openlocker.core.secret import SecretKeyMissing, resolve_secret_key
from openlocker.lockers.models import Site

OPENLOCKER = Path(sys.executable).parent / "openlocker"
NOWHERE = "postgresql://openlocker@127.0.0.1:1/nowhere"
HOW_TO_MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def _run(*command: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """``command`` with no OpenLocker setting in its environment but the database."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OPENLOCKER_")}
    env["OPENLOCKER_DATABASE_URL"] = database_url
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_sqlite_makes_a_private_secret_on_first_start_and_keeps_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/openlocker.db"
    first = _run(str(OPENLOCKER), "seed", "demo", "--json", database_url=url)
    assert first.returncode == 0, first.stderr
    kept = tmp_path / "secret.key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first.stderr.count("Back this up") == 1 and str(kept) in first.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if "secret" in p.name) == ["secret.key"]

    second = _run(str(OPENLOCKER), "db", "upgrade", database_url=url)
    assert second.returncode == 0, second.stderr
    assert "Back this up" not in second.stderr

    ctx = Context.from_settings(Settings(database_url=url))
    with ctx.db.read() as session:
        published = session.execute(select(Site.id, Site.public_key)).all()
    ctx.db.dispose()
    assert len(published) == 3
    assert all(ctx.keyring.site_public_key(site) == key for site, key in published)


def test_of_two_first_starts_at_once_both_use_the_secret_of_the_one_that_won(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/openlocker.db")
    link = os.link
    winner: list[str] = []

    def another_start_links_first(draft: str, target: str) -> None:
        monkeypatch.setattr(os, "link", link)
        winner.append(resolve_secret_key(settings))
        link(draft, target)

    monkeypatch.setattr(os, "link", another_start_links_first)
    assert resolve_secret_key(settings) == winner[0]
    assert (tmp_path / "secret.key").read_text().strip() == winner[0]
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
    assert capsys.readouterr().err.count("Back this up") == 1


def test_a_set_secret_key_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/openlocker.db", secret_key="given")
    assert resolve_secret_key(settings) == "given"
    assert list(tmp_path.iterdir()) == []


def test_an_emptied_secret_file_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("\n")
    with pytest.raises(SecretKeyMissing, match="restore it from your backup"):
        resolve_secret_key(Settings(database_url=f"sqlite:///{tmp_path}/openlocker.db"))


def test_serve_on_postgresql_without_a_secret_refuses_and_says_how_to_make_one() -> None:
    refused = _run(str(OPENLOCKER), "serve", database_url=NOWHERE)
    assert refused.returncode == 2
    assert "OPENLOCKER_SECRET_KEY is not set" in refused.stderr
    assert HOW_TO_MAKE_ONE in refused.stderr and "Traceback" not in refused.stderr


def test_uvicorn_workers_on_postgresql_without_a_secret_refuse_cleanly() -> None:
    refused = _run(sys.executable, "-c", "import openlocker.api.asgi", database_url=NOWHERE)
    assert refused.returncode == 1
    assert HOW_TO_MAKE_ONE in refused.stderr and "Traceback" not in refused.stderr


@pytest.fixture
def postgresql_without_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENLOCKER_DATABASE_URL", NOWHERE)
    monkeypatch.delenv("OPENLOCKER_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "command", [["serve"], ["db", "upgrade"], ["seed", "demo"], ["audit", "verify"]]
)
def test_every_command_on_postgresql_without_a_secret_refuses(
    postgresql_without_secret: None, command: list[str]
) -> None:
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 2
    assert "OPENLOCKER_SECRET_KEY is not set" in refused.output
    assert HOW_TO_MAKE_ONE in refused.output
