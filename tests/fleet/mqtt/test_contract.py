"""The contract in docs/asyncapi.yaml holds for every message the code puts on the wire,
and the parser both ends use refuses what the schemas refuse."""

from __future__ import annotations

import copy
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from openlocker.core.context import Context
from openlocker.core.mqtt import CHANNELS, Refused, Topics, parse
from tests.factories import Factory
from tests.fleet.mqtt.conftest import LiveClock
from tests.fleet.mqtt.contract import CHANNEL_SCHEMAS, document, problems
from tests.fleet.mqtt.harness import Listener, kiosk, wait_for
from tests.fleet.mqtt.test_remote_open import _compartments

EXAMPLE = {
    "commands": {
        "message_id": "obx_1",
        "transaction_id": "txn_1",
        "site_id": "sit_1",
        "sent_at": "2026-05-04T10:15:00.120Z",
        "type": "open",
        "expires_at": "2026-05-04T10:16:00+00:00",
        "compartment_id": "cmp_1",
        "label": "A2",
        "reason": "customer locked keys in",
    },
    "answers": {
        "message_id": "msg_1",
        "site_id": "sit_1",
        "sent_at": "2026-05-04T10:15:00Z",
        "command_id": "obx_1",
        "transaction_id": "txn_1",
        "result": "failed",
        "reason": "lock_stuck",
        "door": "closed",
        "locked": True,
    },
    "presence": {
        "message_id": "msg_2",
        "site_id": "sit_1",
        "sent_at": "2026-05-04T10:15:00Z",
        "status": "offline",
        "reason": "connection_lost",
        "version": "1.0",
    },
    "heartbeat": {
        "message_id": "msg_3",
        "site_id": "sit_1",
        "sent_at": "2026-05-04T10:15:00Z",
        "version": "1.0",
        "uptime_seconds": 12.5,
        "queued_events": 0,
    },
    "state": {
        "message_id": "msg_4",
        "site_id": "sit_1",
        "sent_at": "2026-05-04T10:15:00Z",
        "compartments": [
            {"compartment_id": "cmp_1", "board": 0, "lock": 1, "locked": True, "door": "closed"}
        ],
    },
}


def _broken(channel: str, change: dict[str, Any], drop: str | None = None) -> bytes:
    message = copy.deepcopy(EXAMPLE[channel])
    message.update(change)
    if drop:
        del message[drop]
    return orjson.dumps(message)


#: Messages each schema refuses: the parser must refuse every one as well.
BROKEN = [
    ("commands", _broken("commands", {"type": "explode"})),
    ("commands", _broken("commands", {}, drop="expires_at")),
    ("commands", _broken("commands", {}, drop="compartment_id")),
    ("commands", _broken("commands", {"expires_at": "2026-05-04T10:16:00"})),
    ("commands", _broken("commands", {"expires_at": 1777889760})),
    ("commands", _broken("commands", {"message_id": "a/b"})),
    ("commands", _broken("commands", {"label": "X" * 17})),
    ("commands", _broken("commands", {"reason": ""})),
    ("commands", _broken("commands", {"type": "sync", "reason": ""})),
    ("answers", _broken("answers", {"result": "maybe"})),
    ("answers", _broken("answers", {}, drop="command_id")),
    ("answers", _broken("answers", {"reason": "Lock Stuck"})),
    ("answers", _broken("answers", {"locked": "yes"})),
    ("answers", _broken("answers", {"door": "ajar"})),
    ("presence", _broken("presence", {"status": "away"})),
    ("presence", _broken("presence", {"reason": "bored"})),
    ("presence", _broken("presence", {}, drop="message_id")),
    ("heartbeat", _broken("heartbeat", {"uptime_seconds": -1})),
    ("heartbeat", _broken("heartbeat", {"queued_events": "3"})),
    ("heartbeat", _broken("heartbeat", {"version": ""})),
    ("heartbeat", _broken("heartbeat", {}, drop="sent_at")),
    ("state", _broken("state", {"compartments": [{"compartment_id": "cmp_1"}]})),
    ("state", _broken("state", {"compartments": "all closed"})),
    ("heartbeat", b"[1, 2, 3]"),
    ("heartbeat", b'"online"'),
]


def test_the_document_is_asyncapi_3_with_a_schema_for_every_channel() -> None:
    doc = document()
    assert doc["asyncapi"].startswith("3.")
    topics = Topics()
    for channel in CHANNELS:
        assert doc["channels"][channel]["address"] == topics.of("{site_id}", channel)
        assert CHANNEL_SCHEMAS[channel] in doc["components"]["schemas"]
    for operation in doc["operations"].values():
        assert operation["bindings"]["mqtt"]["qos"] == 1


@pytest.mark.parametrize("channel", CHANNELS)
def test_the_examples_keep_the_contract_and_parse(channel: str) -> None:
    payload = orjson.dumps(EXAMPLE[channel])
    assert problems(channel, payload) == []
    assert parse(channel, "sit_1", payload).message_id == EXAMPLE[channel]["message_id"]


@pytest.mark.parametrize(("channel", "payload"), BROKEN)
def test_what_the_schema_refuses_the_parser_refuses(channel: str, payload: bytes) -> None:
    assert problems(channel, payload), "the broken sample keeps the schema: fix the sample"
    with pytest.raises(Refused) as refused:
        parse(channel, "sit_1", payload)
    assert refused.value.reason == "invalid"


def test_the_parser_refuses_what_is_not_json_or_not_for_its_site() -> None:
    for payload, reason in (
        (b"\xff\xfe open", "not_json"),
        (b"{", "not_json"),
        (b"x" * 70_000, "too_large"),
        (orjson.dumps(EXAMPLE["heartbeat"]), "site_mismatch"),
    ):
        with pytest.raises(Refused) as refused:
            parse("heartbeat", "sit_2", payload)
        assert refused.value.reason == reason


def test_every_message_on_the_wire_keeps_the_contract(
    fleet_factory: Factory,
    fleet_client: TestClient,
    fleet_ctx: Context,
    root: str,
    clock: LiveClock,
    data: Path,
) -> None:
    """What the real server and the real kiosk send during a remote open, a failed one, a
    lost connection and a shutdown, all of it checked against the schemas."""
    site = fleet_factory.site("SM")
    operator = fleet_factory.operator()
    ids = _compartments(fleet_ctx, site)
    with Listener(topics=(f"{root}/sites/+/+",)) as ear:
        with kiosk(site, {ids["A1"]: (0, 0)}, data, root=root, clock=clock) as locker:
            locker.wait_connected()
            for compartment in (ids["A1"], ids["A2"]):  # A2 is not in the kiosk's map: failed
                answer = fleet_client.post(
                    f"/v1/compartments/{compartment}/open",
                    json={"reason": "contract check"},
                    headers=operator.headers,
                )
                assert answer.status_code == 200, answer.text
            assert answer.json()["result"] == "failed"
            # The connection dies without a DISCONNECT: the broker publishes the last will.
            client = locker.client
            assert client is not None and client.connections == 1
            connection = client._client._client.socket()  # type: ignore[union-attr]
            connection.shutdown(socket.SHUT_RDWR)
            wait_for(
                lambda: any(
                    b"connection_lost" in p for p in ear.on(f"{root}/sites/{site}/presence")
                )
            )
            wait_for(lambda: client.connections == 2 and client.connected.is_set())
        # Stopping says so (its wait for the broker is up to 5 s, on a loop a busy machine
        # may starve): what the ear heard is in the failure.
        presence = f"{root}/sites/{site}/presence"
        try:
            wait_for(lambda: any(b"shutdown" in p for p in ear.on(presence)), timeout=30)
        except AssertionError:
            raise AssertionError(f"no shutdown presence; heard {ear.on(presence)!r}") from None
    seen: dict[str, int] = {}
    for message in ear.received:
        channel = message.topic.value.rsplit("/", 1)[1]
        payload = message.payload
        assert isinstance(payload, bytes)
        if not payload:
            continue  # a retained message cleared
        assert problems(channel, payload) == [], (channel, payload)
        seen[channel] = seen.get(channel, 0) + 1
    assert set(seen) == set(CHANNELS), seen
