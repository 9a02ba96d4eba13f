"""The event types an endpoint subscribes to, and the body a delivery of one carries.

Producers queue ``webhook.*`` outbox messages whose payload holds ``event`` (a type below),
``org_id`` (whose endpoints hear it), ``at`` (when it happened) and the event's data. A new
kind of event (``alarm.*``, ``order.*``) is one more name in ``EventType``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import orjson

EventType = Literal[
    "parcel.announced",
    "parcel.deposited",
    "parcel.picked_up",
    "parcel.expired",
    "parcel.returned",
    "parcel.cancelled",
    "parcel.deadline_extended",
    "parcel.deadline_moved",
    "parcel.collected",
    "order.created",
    "order.loading",
    "order.ready",
    "order.partially_collected",
    "order.collected",
    "order.expired",
    "order.cancelled",
    "order.zone_fault",
    "return.dropped_off",
    "return.collected",
    "collection.discrepancy",
    "alarm.raised",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
#: Payload members that route a message rather than describe the event.
_ROUTING = ("event", "org_id", "at")


def delivery_body(payload: dict[str, Any]) -> str:
    """The JSON a delivery sends for an outbox payload: ``{"type", "timestamp", "data"}``."""
    data = {name: value for name, value in payload.items() if name not in _ROUTING}
    return orjson.dumps(
        {"type": payload["event"], "timestamp": payload["at"], "data": data}
    ).decode()
