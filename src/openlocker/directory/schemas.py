"""Request and response models of the directory: entries, search, open deposit, imports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    EmailStr,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from openlocker.core.config import get_settings
from openlocker.parcels.schemas import (
    CompartmentRef,
    Language,
    Strict,
    TrackingNumber,
    normalise_phone,
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Part = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Unit = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Source = Literal["csv", "scim", "api"]


def describe(error: ValidationError) -> str:
    """A validation error in one line: ``field: problem; …``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()
    )


class EntryChange(Strict):
    """Fields of an entry to change (``null`` clears an optional one); the entry must stay
    reachable. ``EntryIn`` is the same with a name required."""

    display_name: Name | None = None
    unit: Unit | None = None
    email: EmailStr | None = None
    #: Stored in E.164; a number without a country code is read in ``OPENLOCKER_PHONE_REGION``
    #: (validated as a parcel recipient's is).
    phone: str | None = Field(default=None, max_length=32)
    #: The recipient's language for their messages (else their site's).
    language: Language | None = None
    #: The id the directory's source knows the entry by (a CSV's, an identity provider's).
    external_id: Identifier | None = None
    given_name: Part | None = None
    family_name: Part | None = None
    active: bool | None = None

    @field_validator("phone")
    @classmethod
    def _e164(cls, phone: str | None) -> str | None:
        return None if phone is None else normalise_phone(phone, get_settings().phone_region)

    @field_validator("email")
    @classmethod
    def _lower(cls, email: str | None) -> str | None:
        # One spelling per address, so an import or an identity provider finds the entry again.
        return None if email is None else email.lower()

    @model_validator(mode="after")
    def _required_stay(self) -> EntryChange:
        for name in ("display_name", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class EntryIn(EntryChange):
    """A directory entry as written: a name to be found by, and a way to reach them."""

    display_name: Name
    #: The SCIM ``userName`` (set by an identity provider).
    user_name: Identifier | None = None
    active: bool = True

    @model_validator(mode="after")
    def _reachable(self) -> EntryIn:
        return self.check_reachable()

    def check_reachable(self) -> EntryIn:
        """The entry, if its recipient can be messaged (``ValueError`` otherwise)."""
        if not (self.email or self.phone):
            raise ValueError("an entry needs an email or a phone: its recipients are messaged")
        return self

    @classmethod
    def of_valid(cls, values: dict[str, Any]) -> EntryIn:
        """An entry of values each valid already (a stored entry's, a validated change's):
        only the rules across fields are checked again (``ValueError``). An import of
        thousands of rows validates each email and phone once, not twice."""
        return cls.model_construct(**values).check_reachable()


class _WithoutNulls(BaseModel):
    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


class EntryOut(_WithoutNulls):
    id: str
    site_id: str
    display_name: str
    unit: str | None = None
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    external_id: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    user_name: str | None = None
    active: bool
    source: Source
    version: int
    created_at: datetime
    updated_at: datetime


class EntryList(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None = None


class DirectoryMatch(_WithoutNulls):
    """What a courier sees of an entry: enough to choose, nothing to reach them by."""

    id: str
    display_name: str
    unit: str | None = None


class DirectorySearch(BaseModel):
    items: list[DirectoryMatch]
    #: More entries match than were returned: the courier should type more.
    more: bool


class OpenDepositIn(Strict):
    entry_id: str = Field(min_length=1, max_length=40)
    size: str = Field(min_length=1, max_length=8)
    #: The courier signed in at the kiosk (``courier_codes``); their carrier owns the parcel.
    courier_id: str | None = Field(default=None, min_length=1, max_length=40)
    #: A compartment the kiosk chose; else the best free one of the size.
    compartment_id: str | None = Field(default=None, min_length=1, max_length=40)
    #: The label's tracking number, when the kiosk scanned it; else one is made up.
    tracking_number: TrackingNumber | None = None
    #: ``kiosk``: the calling kiosk opens the door itself on the answer, so no door command
    #: is queued; ``command`` (default): the server sends one, as for a pickup.
    door: Literal["command", "kiosk"] = "command"
    #: ``now`` (default): deposited at once, the recipient told at once. ``door_closed``: the
    #: parcel is announced with its compartment held, no door command is queued, and the
    #: kiosk's ``deposit`` event (sent when the door shuts on the parcel) deposits it and
    #: tells the recipient; ``DELETE …/open-deposits/{parcel_id}`` calls it off.
    confirm: Literal["now", "door_closed"] = "now"


class OpenDepositOut(_WithoutNulls):
    parcel_id: str
    tracking_number: str
    #: ``announced`` for ``confirm: door_closed`` until the kiosk's deposit event comes.
    status: Literal["deposited", "announced"]
    compartment: CompartmentRef
    recipient: DirectoryMatch
    carrier_org_id: str
    courier_id: str | None = None
    #: When it is deposited: the end of its dwell time.
    dwell_deadline: datetime | None = None
    #: When it is only announced: until when its compartment is held.
    reserved_until: datetime | None = None


Outcome = Literal["created", "updated", "deactivated", "unchanged", "rejected"]


class ImportRow(_WithoutNulls):
    """What became of one line of an import (``line`` None: an entry no line listed)."""

    line: int | None = None
    outcome: Outcome
    entry_id: str | None = None
    reason: str | None = None


class ImportReport(BaseModel):
    """An import's outcome. ``applied`` is false when any row was rejected (nothing was
    written) or for a dry run."""

    site_id: str
    applied: bool
    dry_run: bool
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rows: list[ImportRow] = Field(default_factory=list)
