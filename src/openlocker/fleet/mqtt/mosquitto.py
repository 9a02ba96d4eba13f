"""The Mosquitto configuration ``docs/fleet.md`` documents, as the tests run it, and a
private Mosquitto with it for ``openlocker demo``."""

from __future__ import annotations

import getpass
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from openlocker.core.mqtt import Topics

#: What the server reads and writes; each kiosk writes its own site's topics only.
SERVER_USER = "openlocker-server"


def acl(root: str = "openlocker/v1", server_user: str = SERVER_USER) -> str:
    """A Mosquitto ACL file: the server reads every site's kiosk topics and writes every
    site's commands; a kiosk, whose user name is its site id (``%u``), reads its own
    commands and writes its own answers, presence, heartbeat and state, and nothing else."""
    topics = Topics(root)
    server = [f"user {server_user}"]
    server += [
        f"topic read {topics.every(c)}" for c in ("answers", "presence", "heartbeat", "state")
    ]
    server.append(f"topic write {topics.every('commands')}")
    kiosk = [f"pattern read {topics.of('%u', 'commands')}"]
    kiosk += [
        f"pattern write {topics.of('%u', c)}" for c in ("answers", "presence", "heartbeat", "state")
    ]
    return "\n".join(
        [
            "# The OpenLocker server: every kiosk's messages, every kiosk's commands.",
            *server,
            "",
            "# Each kiosk (user name = its site id): its own site's topics, nothing else.",
            *kiosk,
            "",
        ]
    )


def listener(port: int, password_file: str, acl_file: str, host: str | None = None) -> str:
    """The listener settings that go with ``acl``: no anonymous clients, and the client id
    forced to the user name, so no kiosk can take over another's session. On every address
    unless ``host`` is given."""
    return "\n".join(
        [
            f"listener {port}" + (f" {host}" if host else ""),
            "allow_anonymous false",
            f"password_file {password_file}",
            f"acl_file {acl_file}",
            "use_username_as_clientid true",
            "persistence true",
            "",
        ]
    )


def mosquitto_binary() -> str | None:
    """The ``mosquitto`` program, if installed (Debian puts it in ``/usr/sbin``)."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@dataclass(frozen=True)
class PrivateBroker:
    """A running ``private_broker``: its port, and each user's password (none when
    anonymous)."""

    port: int
    passwords: dict[str, str] = field(repr=False)

    def url(self, user: str | None = None) -> str:
        """``mqtt://`` for ``user`` (anonymous when the broker has no users)."""
        password = self.passwords.get(user or "")
        if user is None or password is None:
            return f"mqtt://127.0.0.1:{self.port}"
        return f"mqtt://{user}:{password}@127.0.0.1:{self.port}"


@contextmanager
def private_broker(
    folder: Path, users: Sequence[str], *, root: str = "openlocker/v1"
) -> Iterator[PrivateBroker]:
    """A Mosquitto on a free port of 127.0.0.1 while the block runs, configured in
    ``folder``: ``users`` (the server's ``SERVER_USER``, each kiosk's site id) with random
    passwords and the access rules of ``acl``; anonymous on loopback when
    ``mosquitto_passwd`` is missing. Raises ``FileNotFoundError`` without ``mosquitto``."""
    binary = mosquitto_binary()
    if binary is None:
        raise FileNotFoundError("mosquitto is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    # Run as whoever runs it: as root Mosquitto would switch to a user that cannot read here.
    lines = [
        f"user {getpass.getuser()}",
        f"persistence_location {folder}/",
        "log_dest stderr",
        "log_type error",
    ]
    passwords: dict[str, str] = {}
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        lines += [f"listener {port} 127.0.0.1", "allow_anonymous true"]
    else:
        password_file = folder / "passwd"
        password_file.write_text("")
        password_file.chmod(0o600)
        for user in users:
            passwords[user] = secrets.token_urlsafe(18)
            subprocess.run(
                [passwd, "-b", str(password_file), user, passwords[user]],
                check=True,
                capture_output=True,
            )
        (folder / "acl").write_text(acl(root))
        lines.append(
            listener(port, str(password_file), str(folder / "acl"), host="127.0.0.1").strip()
        )
    config = folder / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    # A session of its own: Ctrl-C must not stop it before the kiosks have said offline.
    process = subprocess.Popen(
        [binary, "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start (configuration in {folder})")
            time.sleep(0.05)
        yield PrivateBroker(port, passwords)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
