"""A dispatcher killed between sending and recording never makes a message go twice;
dispatchers claiming at the same time never share a message."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from openlocker.core.context import Context
from openlocker.notify.dispatcher import EXIT_AFTER_SEND
from openlocker.notify.service import claim_due
from tests.factories import Factory
from tests.notify.conftest import Inbox, deposit_for_recipient, outbox_row

_OPENLOCKER = Path(sys.executable).parent / "openlocker"


def _worker(ctx: Context, port: int, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "OPENLOCKER_DATABASE_URL": ctx.settings.database_url,
        "OPENLOCKER_SECRET_KEY": ctx.settings.secret_key,
        "OPENLOCKER_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "OPENLOCKER_NOTIFY_LEASE_SECONDS": "1",
        "OPENLOCKER_LOG_LEVEL": "WARNING",
        **extra,
    }
    return subprocess.Popen(
        [str(_OPENLOCKER), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_a_worker_killed_after_the_smtp_server_took_the_message_never_sends_it_again(
    factory: Factory, ctx: Context, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    parcel = deposit_for_recipient(factory, factory.org(), factory.site("S"), phone=None)

    crashing = _worker(ctx, port, **{EXIT_AFTER_SEND: "1"})
    assert crashing.wait(60) == 3, crashing.stderr.read() if crashing.stderr else ""
    assert len(inbox.received) == 1
    outbox_id, state = outbox_row(ctx, parcel["id"])[:2]
    assert state == "sending"  # accepted by the server, not recorded

    restarted = _worker(ctx, port)
    try:
        deadline = time.monotonic() + 30
        while outbox_row(ctx, parcel["id"])[1] == "sending" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        restarted.terminate()
        restarted.wait(30)
    assert len(inbox.received) == 1
    assert inbox.received[0]["Message-ID"].startswith(f"<{outbox_id}@")
    row = outbox_row(ctx, parcel["id"])
    assert row[1] == "dead" and "never gets it twice" in row[3]
    with ctx.db.sql.transaction(write=False) as tx:
        outcomes = [o for (o,) in tx.all("SELECT outcome FROM delivery_attempts")]
    assert outcomes == ["unknown"]


def test_concurrent_claims_never_share_a_message(factory: Factory, ctx: Context) -> None:
    carrier = factory.org()
    site = factory.site("S" * 30)
    for _ in range(30):
        deposit_for_recipient(factory, carrier, site)

    def claim_until_empty() -> list[str]:
        taken: list[str] = []
        while batch := claim_due(ctx, batch=3):
            taken += [claim.id for claim in batch]
        return taken

    with ThreadPoolExecutor(4) as pool:
        shares = list(pool.map(lambda _: claim_until_empty(), range(4)))
    every = [outbox_id for share in shares for outbox_id in share]
    assert len(every) == len(set(every)) == 30
