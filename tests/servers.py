"""A real ``openlocker serve`` in a child process, for tests that need several workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from openlocker.core.context import Context

_OPENLOCKER = Path(sys.executable).parent / "openlocker"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    ctx: Context,
    *,
    workers: int = 2,
    startup_s: float = 60.0,
    log_level: str = "WARNING",
    port: int | None = None,
) -> Iterator[str]:
    """Serve ``ctx``'s database with its secret and data folder; yields the base URL.

    ``port`` serves again where an earlier server was (a kiosk that lost its server finds
    it back). The server's log is ``serve-<port>.log`` in the data folder."""
    port = port or _free_port()
    env = {
        **os.environ,
        "OPENLOCKER_DATABASE_URL": ctx.settings.database_url,
        "OPENLOCKER_SECRET_KEY": ctx.settings.secret_key or "",
        "OPENLOCKER_DATA_DIR": str(ctx.settings.data_folder),
        "OPENLOCKER_LOG_LEVEL": log_level,
    }
    ctx.settings.data_folder.mkdir(parents=True, exist_ok=True)
    log = ctx.settings.data_folder / f"serve-{port}.log"
    with log.open("ab") as stderr:
        server = subprocess.Popen(
            [str(_OPENLOCKER), "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /healthz in time")
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
