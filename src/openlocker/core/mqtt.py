"""The MQTT fleet channel's contract, shared by the server's consumer and the kiosk's client.

``docs/asyncapi.yaml`` is the contract as integrators read it; these models are the same
rules as the code enforces them (``tests/fleet/mqtt/test_contract.py`` holds the two
together). Topics, per site, under a root (``openlocker/v1`` unless configured):

    {root}/sites/{site_id}/commands   server → kiosk   open a door, sync now
    {root}/sites/{site_id}/answers    kiosk → server   what became of a command
    {root}/sites/{site_id}/presence   kiosk → server   retained; ``offline`` is the last will
    {root}/sites/{site_id}/heartbeat  kiosk → server   every few seconds
    {root}/sites/{site_id}/state      kiosk → server   retained snapshot of every compartment

Every message is a JSON object with ``message_id``, ``site_id`` and ``sent_at``; members a
receiver does not know are ignored, so either end may add some. All at QoS 1.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

#: The MQTT protocol level both ends speak (3.1.1: every broker and cluster has it).
PROTOCOL = "3.1.1"
QOS = 1
#: Larger payloads are refused before they are parsed.
MAX_PAYLOAD_BYTES = 64 * 1024
CHANNELS = ("commands", "answers", "presence", "heartbeat", "state")

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    message_id: Ident
    site_id: Ident
    sent_at: AwareDatetime


class OpenCommand(_Message):
    """Open one compartment's door. ``message_id`` is the command's id (the outbox row's):
    the same on every delivery, so a kiosk runs it once."""

    type: Literal["open"]
    transaction_id: Ident
    expires_at: AwareDatetime
    compartment_id: Ident
    label: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    reason: Text
    parcel_id: Ident | None = None


class SyncCommand(_Message):
    """Pull the HTTP sync now (``docs/kiosk-sync.md``): new credentials or configuration."""

    type: Literal["sync"]
    transaction_id: Ident
    expires_at: AwareDatetime
    reason: Text


Command = Annotated[OpenCommand | SyncCommand, Field(discriminator="type")]
Result = Literal["opened", "done", "failed", "expired", "declined", "refused"]


class Answer(_Message):
    """What became of command ``command_id``: ``opened`` (the lock reads open), ``done`` (a
    sync ran), ``failed`` (``reason`` says why), ``expired`` (arrived past ``expires_at``, not
    run), ``declined`` (the agent would not: its parcel left the locker already) or
    ``refused`` (not this kiosk's)."""

    command_id: Ident
    transaction_id: Ident
    result: Result
    reason: Code | None = None
    detail: Text | None = None
    compartment_id: Ident | None = None
    door: Literal["open", "closed"] | None = None
    locked: bool | None = None


class Presence(_Message):
    """``online`` when the kiosk connects; ``offline`` when it stops (``shutdown``) or, as the
    broker's last will, when the connection is lost (``connection_lost``; its ``sent_at`` is
    when that connection began)."""

    status: Literal["online", "offline"]
    reason: Literal["connected", "shutdown", "connection_lost"]
    version: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None


class Heartbeat(_Message):
    version: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    uptime_seconds: Annotated[float, Field(ge=0)]
    #: Events waiting in the kiosk's queue for the HTTP push (a backlog shows here).
    queued_events: Annotated[int, Field(ge=0)] | None = None


class CompartmentState(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    compartment_id: Ident
    board: Annotated[int, Field(ge=0, le=255)]
    lock: Annotated[int, Field(ge=0, le=255)]
    locked: bool
    door: Literal["open", "closed"]
    item: bool | None = None
    #: The board's fault code when it does not answer (``board_timeout`` …).
    fault: Code | None = None


class StateSnapshot(_Message):
    compartments: Annotated[list[CompartmentState], Field(max_length=1000)]


#: What each channel carries.
MODELS: dict[str, TypeAdapter[Any]] = {
    "commands": TypeAdapter(Command),
    "answers": TypeAdapter(Answer),
    "presence": TypeAdapter(Presence),
    "heartbeat": TypeAdapter(Heartbeat),
    "state": TypeAdapter(StateSnapshot),
}
KioskMessage = Answer | Presence | Heartbeat | StateSnapshot


class Refused(Exception):
    """A message that breaks the contract; ``reason`` is a stable code for the log."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse(channel: str, site_id: str, payload: bytes) -> Any:
    """The message ``payload`` on ``channel`` of ``site_id``'s topics, or ``Refused``
    (``too_large``, ``not_json``, ``invalid``, ``site_mismatch``)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Refused("too_large", f"{len(payload)} bytes, at most {MAX_PAYLOAD_BYTES}")
    try:
        # Strict JSON mode: times are RFC 3339 strings with an offset, never bare numbers.
        message = MODELS[channel].validate_json(payload)
    except ValidationError as error:
        errors = error.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise Refused("not_json", str(errors[0]["msg"])[:200]) from None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in errors[:5]
        )
        raise Refused("invalid", problems[:500]) from None
    if message.site_id != site_id:
        raise Refused("site_mismatch", f"sent on {site_id}'s topic for site {message.site_id}")
    return message


def encode(message: BaseModel) -> bytes:
    """A message as it goes on the wire (members without a value left out)."""
    return orjson.dumps(message.model_dump(mode="json", exclude_none=True))


@dataclass(frozen=True)
class Topics:
    """The fleet's topic names under ``root``."""

    root: str = "openlocker/v1"

    def of(self, site_id: str, channel: str) -> str:
        return f"{self.root}/sites/{site_id}/{channel}"

    def every(self, channel: str) -> str:
        """The subscription to ``channel`` of every site."""
        return f"{self.root}/sites/+/{channel}"

    def site_and_channel(self, topic: str) -> tuple[str, str] | None:
        """``(site_id, channel)`` of a fleet topic; None for any other topic."""
        prefix = f"{self.root}/sites/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 2 or parts[1] not in CHANNELS or not parts[0]:
            return None
        return parts[0], parts[1]


@dataclass(frozen=True)
class Broker:
    """Where and how to connect, from ``OPENLOCKER_MQTT_URL`` (or a kiosk's ``--mqtt``)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    keepalive: int = 30

    @classmethod
    def from_url(cls, url: str) -> Broker:
        """``mqtt://[user[:pass]@]host[:port]``, ``mqtts://…`` (TLS, port 8883 unless given);
        query options ``ca`` (a CA file for a private CA) and ``keepalive`` (seconds).
        Raises ``ValueError`` for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("an MQTT URL starts with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("an MQTT URL names a host: mqtt://host:1883")
        options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(options) - {"ca", "keepalive"}
        if unknown:
            raise ValueError(f"unknown MQTT URL option(s): {', '.join(sorted(unknown))}")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=options.get("ca"),
            keepalive=int(options.get("keepalive", 30)),
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``aiomqtt.Client`` (host, credentials, TLS, keepalive)."""
        options: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "keepalive": self.keepalive,
        }
        if self.tls:
            options["tls_context"] = ssl.create_default_context(cafile=self.ca_file)
        return options
