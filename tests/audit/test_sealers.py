"""Two worker processes of a real server seal and sign checkpoints in turns, into one table
and one file, without ever mistaking each other's work for tampering."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from openlocker.audit.checkpoints import FILE_NAME
from openlocker.audit.service import check_chain
from openlocker.core.context import Context
from tests.factories import Factory
from tests.servers import serving


async def _announce(base: str, key: str, site: str, seconds: float) -> int:
    """Announce parcels from 8 clients for ``seconds``; returns how many were announced."""
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {key}"}

    async def client(number: int) -> int:
        done = 0
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
            while time.monotonic() < deadline:
                answer = await api.post(
                    "/v1/parcels",
                    json={
                        "tracking_number": f"SEAL-{number}-{done}",
                        "site_id": site,
                        "size": "S",
                        "notify": "sender",
                    },
                )
                assert answer.status_code == 201, answer.text
                done += 1
        return done

    return sum(await asyncio.gather(*(client(n) for n in range(8))))


def test_two_workers_checkpoint_one_chain(
    factory: Factory, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLOCKER_AUDIT_CHECKPOINT_INTERVAL_SECONDS", "0.2")
    carrier = factory.org()
    site = factory.site("S" * 4)
    with serving(ctx, workers=2) as base:
        announced = asyncio.run(_announce(base, carrier.key, site, 3.0))
        time.sleep(1.5)  # the last events sealed, and a checkpoint of them signed
    logs = "".join(path.read_text() for path in ctx.settings.data_folder.glob("serve-*.log"))
    assert "audit seal failed" not in logs
    report = check_chain(ctx)
    assert report.intact, report.problems
    assert report.unsealed == 0
    assert report.checked == announced + 3  # and the carrier, its key and the site
    lines = (ctx.settings.data_folder / FILE_NAME).read_text().splitlines()
    assert report.checkpoints == len(lines) >= 3  # each in the table and the file
    assert report.newest is not None and report.newest.count == report.checked
