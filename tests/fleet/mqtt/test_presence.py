"""How the server folds what a kiosk says into its standing: plain functions, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from openlocker.core.mqtt import Heartbeat, Presence
from openlocker.fleet.mqtt.service import Heard, Kiosk, apply

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def presence(status: str, reason: str, at: datetime) -> Presence:
    return Presence.model_validate(
        {
            "message_id": "m",
            "site_id": "s",
            "sent_at": at,
            "status": status,
            "reason": reason,
            "version": "1.0",
        }
    )


def beat(at: datetime, version: str = "1.0") -> Heartbeat:
    return Heartbeat(message_id="m", site_id="s", sent_at=at, version=version, uptime_seconds=1)


def test_a_first_heartbeat_brings_a_kiosk_online() -> None:
    kiosk, notes = apply(Kiosk("s"), Heard("s", beat(T0), T0))
    assert (kiosk.status, kiosk.status_reason, kiosk.last_seen_at) == ("online", "heartbeat", T0)
    assert [n.name for n in notes] == ["kiosk.online"]
    assert kiosk.version == "1.0" and kiosk.clock_offset_ms == 0


def test_a_last_will_that_arrives_after_the_reconnect_changes_nothing() -> None:
    online, _ = apply(Kiosk("s"), Heard("s", presence("online", "connected", T0), T0))
    online.stored = True
    reconnected, _ = apply(
        online, Heard("s", presence("online", "connected", T0 + timedelta(seconds=30)), T0)
    )
    # The old connection's will: sent_at is when that connection began.
    late, notes = apply(
        reconnected,
        Heard("s", presence("offline", "connection_lost", T0), T0 + timedelta(seconds=31)),
    )
    assert late.status == "online" and notes == []
    assert late.last_seen_at == T0 + timedelta(seconds=31)


def test_a_retained_online_replayed_to_the_consumer_proves_nothing() -> None:
    """A silent kiosk stays silent when a restarted consumer gets its old retained
    ``online``: only a live message clears the silence."""
    silent = Kiosk(
        "s",
        status="offline",
        status_reason="silent",
        status_since=T0,
        last_seen_at=T0,
        last_message_at=T0,
        silent=True,
        stored=True,
    )
    replayed, notes = apply(
        silent,
        Heard("s", presence("online", "connected", T0), T0 + timedelta(hours=1), retained=True),
    )
    assert replayed.silent is True and replayed.status == "offline" and notes == []
    assert replayed.last_seen_at == T0


def test_a_heartbeat_after_silence_is_heard_again_and_a_new_version_is_noted() -> None:
    silent = Kiosk(
        "s",
        status="offline",
        status_reason="silent",
        status_since=T0,
        last_seen_at=T0,
        version="1.0",
        last_message_at=T0,
        silent=True,
        stored=True,
    )
    back = T0 + timedelta(minutes=5)
    kiosk, notes = apply(silent, Heard("s", beat(back - timedelta(seconds=2), "1.1"), back))
    assert [n.name for n in notes] == ["kiosk.heard_again", "kiosk.version_changed", "kiosk.online"]
    assert kiosk.silent is False and kiosk.status == "online"
    assert kiosk.clock_offset_ms == -2000
    assert notes[1].data == {"from": "1.0", "to": "1.1"}
