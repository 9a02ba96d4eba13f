"""Background jobs: a job that keeps failing is logged once in full, then briefly, and backs off."""

from __future__ import annotations

import asyncio
import logging

import pytest

from openlocker.api.app import _every


def test_a_failing_job_logs_its_traceback_once_backs_off_and_logs_its_recovery(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = 0
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        # The waits the job asks for, not the machine's timing of them.
        waits.append(seconds)
        await real_sleep(0)

    def job() -> None:
        nonlocal runs
        runs += 1
        if runs <= 4:
            raise RuntimeError("chain tampered")

    async def main() -> None:
        task = asyncio.create_task(_every(0.01, job, "audit seal"))
        while runs < 6:
            await real_sleep(0.001)
        task.cancel()

    monkeypatch.setattr(asyncio, "sleep", sleep)

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
    # Doubling after each of the four failures; the plain interval once it works again.
    assert waits[:5] == [0.02, 0.04, 0.08, 0.16, 0.01]
