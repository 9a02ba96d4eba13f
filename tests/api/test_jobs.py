"""Background jobs: a job that keeps failing is logged once in full, then briefly, and backs off."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from openlocker.api.app import _every


def test_a_failing_job_logs_its_traceback_once_backs_off_and_logs_its_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []

    def job() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 4:
            raise RuntimeError("chain tampered")

    async def main() -> None:
        task = asyncio.create_task(_every(0.01, job, "audit seal"))
        while len(runs) < 6:
            await asyncio.sleep(0.01)
        task.cancel()

    with caplog.at_level(logging.WARNING, logger="openlocker.jobs"):
        asyncio.run(main())
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert len(with_traceback) == 1
    assert [r.getMessage() for r in caplog.records if not r.exc_info] == [
        "audit seal failed again (2 in a row): RuntimeError: chain tampered",
        "audit seal failed again (3 in a row): RuntimeError: chain tampered",
        "audit seal failed again (4 in a row): RuntimeError: chain tampered",
        "audit seal works again after 4 failures",
    ]
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    # 0.02, 0.04, 0.08, 0.16 s after the four failures; 0.01 s once it works again.
    assert gaps[3] > 2 * gaps[0] and gaps[3] >= 0.15
