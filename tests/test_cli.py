"""The `openlocker` command: seed, audit verify, db upgrade."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from openlocker.audit.models import AuditEvent
from openlocker.cli import app, metrics_folder
from openlocker.core.config import get_settings
from openlocker.core.context import Context

runner = CliRunner()


@pytest.fixture
def env(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENLOCKER_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("OPENLOCKER_SECRET_KEY", ctx.settings.secret_key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_seed_demo_json_then_audit_verify(env: None, ctx: Context) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    seeded = runner.invoke(app, ["seed", "demo", "--json"])
    assert seeded.exit_code == 0, seeded.output
    keys = json.loads(seeded.stdout)
    assert keys["carrier_key"].startswith("olk_") and keys["operator_key"].startswith("olk_")
    assert len(keys["kiosk_keys"]) == 3
    again = json.loads(runner.invoke(app, ["seed", "demo", "--json"]).stdout)
    assert again["kiosk_keys"].keys() == keys["kiosk_keys"].keys()  # same network, new keys
    assert again["carrier_key"] != keys["carrier_key"]

    intact = runner.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0 and "intact" in intact.output

    with ctx.db.transaction() as session:
        session.execute(
            update(AuditEvent).where(AuditEvent.chain_index == 3).values(name="site.deleted")
        )
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "broken" in broken.output and "altered" in broken.output


def test_serve_removes_metrics_folders_of_stopped_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stopped = subprocess.Popen([sys.executable, "-c", "pass"])
    stopped.wait()
    gone = tmp_path / f"openlocker-metrics-{stopped.pid}-abc"
    running = tmp_path / f"openlocker-metrics-{os.getpid()}-def"
    other = tmp_path / "unrelated"
    for folder in (gone, running, other):
        folder.mkdir()
    fresh = Path(metrics_folder())
    assert not gone.exists() and running.exists() and other.exists()
    assert fresh.is_dir() and fresh.name.startswith(f"openlocker-metrics-{os.getpid()}-")
