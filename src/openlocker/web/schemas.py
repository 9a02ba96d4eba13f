"""Response models of the web feature's JSON route."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class PresenceCodeOut(BaseModel):
    """What a site's kiosk screen shows for pickups by link (``access.presence``)."""

    code: str
    #: When the kiosk should fetch and show the next code.
    rotates_at: datetime
    #: Until when a pickup page still accepts this code.
    accepted_until: datetime
