"""The Mosquitto configuration ``docs/fleet.md`` documents, as the tests run it."""

from __future__ import annotations

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


def listener(port: int, password_file: str, acl_file: str) -> str:
    """The listener settings that go with ``acl``: no anonymous clients, and the client id
    forced to the user name, so no kiosk can take over another's session."""
    return "\n".join(
        [
            f"listener {port}",
            "allow_anonymous false",
            f"password_file {password_file}",
            f"acl_file {acl_file}",
            "use_username_as_clientid true",
            "persistence true",
            "",
        ]
    )
