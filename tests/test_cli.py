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
from sqlalchemy import delete, update
from typer.testing import CliRunner

from openlocker.audit import checkpoints
from openlocker.audit.checkpoints import FILE_NAME
from openlocker.audit.models import AuditCheckpoint, AuditEvent
from openlocker.audit.service import seal_pending
from openlocker.cli import app, metrics_folder
from openlocker.core.config import get_settings
from openlocker.core.context import Context
from tests.audit.tampering import erase_failed_pickups, record_events
from tests.factories import Factory

runner = CliRunner()


@pytest.fixture
def env(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENLOCKER_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("OPENLOCKER_SECRET_KEY", ctx.settings.secret_key)
    monkeypatch.setenv("OPENLOCKER_DATA_DIR", str(ctx.settings.data_folder))
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
    # A courier code per organization that deposits (the carrier, the grocer), by org id.
    names = {keys["orgs"][org]: code for org, code in keys["courier_codes"].items()}
    assert sorted(names) == ["Demo Grocer", "Demo Parcel Express"]
    assert all(len(code) == 10 and code.isdigit() for code in names.values())
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


def test_audit_verify_finds_erased_failed_pickups(env: None, ctx: Context) -> None:
    record_events(ctx)
    intact = runner.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "Audit chain intact: 12 events verified, 1 checkpoint matched (newest: 12" in (
        intact.output
    )

    erase_failed_pickups(ctx)
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "Refusing to seal: the chain has 6 events but a checkpoint signed at" in broken.output
    assert "covers 12: events were removed" in broken.output
    assert "3 events not sealed" in broken.output


def test_audit_verify_holds_the_chain_against_checkpoints_kept_from_the_api(
    env: None,
    ctx: Context,
    factory: Factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = factory.operator()
    record_events(ctx)
    seal_pending(ctx)
    kept = tmp_path / "kept.json"
    kept.write_text(factory.client.get("/v1/audit/checkpoints", headers=operator.headers).text)
    with_kept = runner.invoke(app, ["audit", "verify", "--checkpoints", str(kept)])
    assert with_kept.exit_code == 0, with_kept.output
    assert f"{kept} (1)" in with_kept.output

    erase_failed_pickups(ctx)
    with ctx.db.transaction() as session:
        session.execute(delete(AuditCheckpoint))
    (ctx.settings.data_folder / FILE_NAME).unlink()
    monkeypatch.setattr(checkpoints, "_witnesses", {})  # and the server restarted
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0  # nothing here knows better
    broken = runner.invoke(app, ["audit", "verify", "--checkpoints", str(kept)])
    assert broken.exit_code == 1
    assert f"the checkpoint at 14 in {kept} (line 1, item 1) is missing" in broken.output
    assert "the chain has 11 events but a checkpoint signed at" in broken.output

    wrong_key = runner.invoke(app, ["audit", "verify", "--public-key", "not-a-key"])
    assert wrong_key.exit_code == 2 and "--public-key" in wrong_key.output


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
