"""The kiosk agent: pickups, courier deposits and door commands, decided from the local store,
doors driven and watched, events queued and synced with the server.

Every use case that opens a door writes, in one transaction, what it decided, the event that
reports it and the pulse it is about to make (the journal), and only then pulses. So a kiosk
killed at any moment has lost no event, and a restarted kiosk never pulses a door again on
its own: an unlock journalled but not settled is marked ``interrupted`` at start, not redone.
Events that report doors being pulsed are held back from the push until the pulses settle,
since a door that did not open changes what the event says.

Everything runs on one asyncio loop; the store is used from that loop alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openlocker.access.credentials import kiosk_digest, phone_suffix
from openlocker.core.clock import Clock, as_utc, system_clock
from openlocker.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    TooManyAttempts,
    Unauthorized,
)
from openlocker.core.keys import load_public_key, unb64url
from openlocker.kiosk import decisions
from openlocker.kiosk.boards import (
    Address,
    BoardEvent,
    BoardFault,
    BoardFaulted,
    BoardRecovered,
    LockState,
    LockStuck,
    StateChanged,
)
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.doors import Doors
from openlocker.kiosk.link import CursorRefused, ServerLink, ServerRefusal, Unreachable
from openlocker.kiosk.store import (
    FAILED,
    INTENDED,
    INTERRUPTED,
    OPENED,
    STUCK,
    Command,
    Compartment,
    Courier,
    Credential,
    DoorTask,
    Expected,
    KioskStore,
    Pulse,
    Tx,
)

log = logging.getLogger("openlocker.kiosk")

#: Why a door was opened, kept until it closes (``door_tasks.purpose``).
PICKUP, DEPOSIT, COMMAND = "pickup", "deposit", "command"
#: Command reasons (``parcels.service.open_door``) after which the compartment should be
#: empty: an item still inside at the close raises ``item_left``, as after a pickup here.
PICKUP_REASONS = frozenset({"pickup", "retrieval"})
_BUCKET_NAMES = {decisions.PIN_ALONE: "PINs typed alone", decisions.COURIER_BUCKET: "courier codes"}
#: Doors tried for one deposit before the kiosk gives up (each stuck one goes out of service).
DEPOSIT_TRIES = 3


class DoorNotOpened(DomainError):
    status = 409
    code = "door_not_opened"
    title = "Door did not open"


class BoardUnavailable(DomainError):
    status = 503
    code = "board_fault"
    title = "Lock board unavailable"


@dataclass(slots=True)
class CourierSession:
    courier: Courier
    since: datetime
    last_seen: float


@dataclass(frozen=True, slots=True)
class Opened:
    """The outcome of pulsing doors: the pulses by state, and the board faults met."""

    states: dict[str, str]
    faults: list[BoardFault]

    def ok(self, compartments: Iterable[Compartment]) -> list[Compartment]:
        return [c for c in compartments if self.states.get(c.id) == OPENED]


class Agent:
    """One locker's agent. ``start()``, then ``run()`` until cancelled, then ``close()``."""

    def __init__(
        self,
        settings: KioskSettings,
        store: KioskStore,
        doors: Doors,
        link: ServerLink,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.site_id = settings.site_id
        self.store = store
        self.doors = doors
        self.link = link
        self.clock = clock
        self.online = False
        self.last_error: str | None = None
        self.courier: CourierSession | None = None
        self.presence: dict[str, Any] | None = None
        self._presence_rotates: datetime | None = None
        #: Doors that read open now, and since when.
        self._open: dict[str, datetime] = {}
        self._left_open: dict[str, asyncio.Task[None]] = {}
        self._faulted: set[int] = set()
        self._wake = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._by_address: dict[Address, Compartment] = {}
        self._digest_key: bytes | None = None
        self._public_keys: dict[int, Ed25519PublicKey] = {}
        self._unmapped: list[str] = []
        #: Called after a door the kiosk watches shut and its task was finished (the
        #: fulfilment flows follow their doors so).
        self.door_closed_hooks: list[Callable[[Compartment], None]] = []
        #: Called with each deposit's task when its door shuts, and whether that confirmed it.
        self.deposit_closed: list[Callable[[DoorTask, bool], None]] = []
        #: Every lock as last read (at start, by the boards' polls, after a pulse).
        self.locks: dict[Address, LockState] = {}
        #: Called when a lock reads otherwise or the compartment map was reloaded (the fleet
        #: channel's state snapshot follows them); each must return at once.
        self.state_listeners: list[Callable[[], None]] = []
        self._load()

    # --- life cycle --------------------------------------------------------------------------

    def _load(self) -> None:
        """Refresh what is derived from the store: keys and the board map."""
        encoded = self.store.meta("digest_key")
        self._digest_key = unb64url(encoded) if encoded else None
        self._public_keys = {
            version: load_public_key(key) for version, key in self.store.public_keys().items()
        }
        self._by_address = {
            c.address: c
            for c in self.store.compartments()
            if c.address is not None and self.doors.has(c.address)
        }
        unmapped = sorted(
            c.label for c in self.store.compartments() if c.address not in self._by_address
        )
        if unmapped and unmapped != self._unmapped:
            log.warning(
                "compartments not on this kiosk's boards: never opened",
                extra={"count": len(unmapped), "labels": unmapped[:20]},
            )
        self._unmapped = unmapped
        self._state_changed(())

    def _state_changed(self, states: Iterable[LockState]) -> None:
        for state in states:
            self.locks[state.address] = state
        for listener in self.state_listeners:
            listener()

    def wake_sync(self) -> None:
        """Sync now rather than at the next interval (the fleet channel's ``sync`` command)."""
        self._wake.set()

    @property
    def faulted_boards(self) -> frozenset[int]:
        """The boards that do not answer now."""
        return frozenset(self._faulted)

    async def start(self) -> None:
        """Read every lock (pulsing nothing) and settle what a previous run left unfinished."""
        reading = await self.doors.start()
        self._state_changed(reading.states.values())
        now = self.clock()
        with self.store.write() as tx:
            for pulse in self.store.pulses(INTENDED):
                # The kiosk stopped between journalling this unlock and settling it: it may
                # or may not have pulsed. It is not pulsed again unasked.
                log.warning(
                    "unlock interrupted by a restart, not repeated",
                    extra={"compartment_id": pulse.compartment_id, "pulse_id": pulse.id},
                )
                tx.settle_pulse(pulse.id, INTERRUPTED, now)
                if pulse.event_id is not None:
                    tx.release(pulse.event_id)
            for fault in reading.faults.values():
                self._board_faulted(tx, fault, now)
            for board in set(range(self.doors.boards)) - set(reading.faults):
                if tx.clear_alarm("board_fault", f"board:{board}"):
                    self._alarm(tx, now, "board_fault", "cleared", detail=f"board {board}")
        tasks = self.store.tasks()
        for address, state in reading.states.items():
            compartment = self._by_address.get(address)
            if compartment is None:
                continue
            if state.door_open:
                self._door_opened(compartment, commanded=compartment.id in tasks, forced=False)
            elif compartment.id in tasks:
                # Its door closed while the kiosk was not running.
                self._door_closed(compartment, state, was_open=False)
        self._wake.set()

    async def run(self) -> None:
        """Watch the doors and sync, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch())
            group.create_task(self._sync_loop())

    async def close(self) -> None:
        for task in self._left_open.values():
            task.cancel()
        await self.doors.close()
        await self.link.close()

    # --- pickups -----------------------------------------------------------------------------

    async def pickup(
        self, *, pin: str | None = None, qr: str | None = None, phone: str | None = None
    ) -> dict[str, Any]:
        """Open the compartments of the credential ``pin`` (with ``phone``) or ``qr`` names.

        Decided from the store, online or not; a code the store does not know goes to the
        server while online. Answers ``{"parcel_id", "compartment", "compartments", …}``;
        raises the server's codes (``invalid_code``, ``code_used``, ``code_expired``,
        ``wrong_site``, ``too_many_attempts``) and ``door_not_opened`` or ``board_fault``.
        Every refusal is queued as a ``refused`` event.
        """
        if (pin is None) == (qr is None):
            raise InvalidInput("Give a PIN or a QR code.", code="invalid_input")
        if phone is not None and pin is None:
            raise InvalidInput("A phone number goes only with a PIN.", code="invalid_input")
        now = self.clock()
        key = self._digest_key
        bucket: str | None = None
        phone_digest: str | None = None
        if pin is not None:
            method = "pin"
            if not pin.isascii() or not pin.isdigit() or len(pin) > 32:
                self._refused(now, method, "invalid_code", decisions.PIN_ALONE)
                raise decisions.invalid_code()
            bucket = decisions.PIN_ALONE
            if phone is not None:
                suffix = phone_suffix(phone)
                if suffix is None:
                    raise InvalidInput("Type at least the last 4 digits of your phone number.")
                phone_digest = kiosk_digest(key, "phone", suffix) if key else "phone"
                bucket = phone_digest
            try:
                decisions.check_allowed(self.store.attempts(bucket), now, bucket=bucket)
            except TooManyAttempts:
                self._refused(now, method, "too_many_attempts", None)
                raise
            found = self.store.credential_by("pin", kiosk_digest(key, "pin", pin)) if key else None
            ask = {"pin": pin} | ({"phone": phone} if phone is not None else {})
        else:
            assert qr is not None
            method = "qr"
            ask = {"qr": qr}
            if not self._public_keys and self.online:
                # Never synced yet: the server has every key.
                return await self._server_pickup(ask, method, None, now)
            try:
                decisions.check_qr(qr, self._public_keys, site_id=self.site_id, now=now)
            except Forbidden as refused:
                log.info(
                    "pickup refused",
                    extra={"method": method, "code": refused.code, **refused.extra},
                )
                self._refused(now, method, refused.code, None)
                raise
            found = self.store.credential_by("qr", kiosk_digest(key, "qr", qr)) if key else None
        if found is None and self.online:
            return await self._server_pickup(ask, method, bucket, now)
        try:
            credential = decisions.check_credential(found, now, phone=phone_digest)
        except Forbidden as refused:
            log.info("pickup refused", extra={"method": method, "code": refused.code})
            self._refused(now, method, refused.code, bucket)
            raise
        return await self._hand_over(credential, method, now)

    async def _server_pickup(
        self, ask: Mapping[str, str], method: str, bucket: str | None, now: datetime
    ) -> dict[str, Any]:
        """Let the server decide a code the store does not know, then open what it names.

        Offline after all (the call failed): refused here as ``invalid_code``."""
        try:
            answer = await self.link.pickup(ask, timeout_s=self.settings.fallback_timeout_s)
        except Unreachable as down:
            self.went_offline(down.reason)
            self._refused(now, method, "invalid_code", bucket)
            raise decisions.invalid_code() from None
        except ServerRefusal as refused:
            # The server audited the refusal; the kiosk counts wrong PINs for its own lockout.
            if bucket is not None and refused.code != "too_many_attempts":
                with self.store.write() as tx:
                    self._count_failure(tx, bucket, now)
                self._wake.set()
            raise
        refs = [answer["compartment"], *answer.get("compartments", ())]
        wanted = list({ref["id"]: ref for ref in refs}.values())
        compartments = [self.store.compartment(ref["id"]) for ref in wanted]
        usable = self.openable(c for c in compartments if c is not None)
        if not usable:
            log.error("the server opened a compartment this kiosk cannot", extra={"refs": wanted})
            raise BoardUnavailable("This compartment cannot be opened from this kiosk.")
        opened = await self.open_doors(usable, PICKUP, now, parcel_id=answer.get("parcel_id"))
        return self._pickup_answer(
            answer["parcel_id"],
            answer.get("order_id"),
            usable,
            opened,
            age_restricted=bool(answer.get("age_restricted")),
        )

    async def open_doors(
        self,
        compartments: list[Compartment],
        purpose: str,
        now: datetime,
        *,
        parcel_id: str | None = None,
    ) -> Opened:
        """Open doors for something the server decided (and recorded): each unlock is
        journalled with its task (``purpose``) before the pulse and settled after it; no
        event but the doors' own is queued. A stuck lock's compartment goes out of service."""
        with self.store.write() as tx:
            pulses = [tx.intend_pulse(c, now) for c in compartments]
            for c in compartments:
                tx.set_task(c.id, purpose, now, parcel_id=parcel_id)
        opened = await self._pulse(pulses)
        self._settle(opened, pulses, now, reported=None)
        return opened

    async def _hand_over(
        self, credential: Credential, method: str, now: datetime
    ) -> dict[str, Any]:
        compartments = [self.store.compartment(ref.id) for ref in credential.compartments]
        usable = self.openable(c for c in compartments if c is not None)
        if not usable:
            log.error(
                "credential names no compartment on this kiosk's boards",
                extra={"credential_id": credential.id},
            )
            raise BoardUnavailable("This parcel's compartment cannot be opened from this kiosk.")
        with self.store.write() as tx:
            event = tx.queue(
                "pickup",
                now,
                {
                    "credential_id": credential.id,
                    "method": method,
                    "compartments": [c.id for c in usable],
                    "offline": not self.online,
                },
                held=True,
            )
            tx.use_credential(credential.id, now, event)
            pulses = [tx.intend_pulse(c, now, event) for c in usable]
            for c in usable:
                tx.set_task(c.id, PICKUP, now, parcel_id=credential.parcel_id)
                tx.set_local_state(c.id, "free", event)
        opened = await self._pulse(pulses)
        ok = opened.ok(usable)

        def amend(tx: Tx) -> None:
            if ok:
                tx.update_event(event, {"compartments": [c.id for c in ok]})
            else:
                # Nothing opened: nothing was picked up, and the code still works.
                tx.drop_event(event)
                tx.unuse_credential(credential.id)

        self._settle(opened, pulses, now, reported=event, amend=amend)
        return self._pickup_answer(
            credential.parcel_id,
            credential.order_id,
            usable,
            opened,
            age_restricted=credential.age_restricted,
        )

    def _pickup_answer(
        self,
        parcel_id: str,
        order_id: str | None,
        wanted: list[Compartment],
        opened: Opened,
        *,
        age_restricted: bool = False,
    ) -> dict[str, Any]:
        ok = opened.ok(wanted)
        if not ok:
            if any(state == STUCK for state in opened.states.values()):
                raise DoorNotOpened(
                    "The compartment's door did not open; it is out of service now."
                    " Please ask the locker's operator."
                )
            raise BoardUnavailable("The lock board does not answer; please try again.")
        answer: dict[str, Any] = {
            "parcel_id": parcel_id,
            "compartment": ok[0].ref(),
            "compartments": [c.ref() for c in ok],
            "offline": not self.online,
        }
        if order_id is not None:
            answer["order_id"] = order_id
            answer["age_restricted"] = age_restricted
        failed = [c.ref() for c in wanted if c not in ok]
        if failed:
            answer["failed"] = failed
        return answer

    def openable(self, compartments: Iterable[Compartment]) -> list[Compartment]:
        """Those of ``compartments`` on this kiosk's boards (the others are never opened)."""
        return [c for c in compartments if c.address is not None and c.address in self._by_address]

    # --- couriers ----------------------------------------------------------------------------

    def courier_login(self, code: str) -> dict[str, Any]:
        """Sign a courier in by their courier code (one courier at a time at a kiosk)."""
        now = self.clock()
        bucket = decisions.COURIER_BUCKET
        try:
            decisions.check_allowed(self.store.attempts(bucket), now, bucket=bucket)
        except TooManyAttempts:
            self._refused(now, "courier", "too_many_attempts", None)
            raise
        key = self._digest_key
        courier = self.store.courier_by_code(kiosk_digest(key, "courier", code)) if key else None
        if courier is None:
            log.info("courier code refused")
            self._refused(now, "courier", "invalid_code", bucket)
            raise Forbidden("This courier code is not valid here.", code="invalid_code")
        self.courier = CourierSession(courier, now, time.monotonic())
        log.info("courier signed in", extra={"courier_id": courier.id})
        return {"courier": self._courier_json()}

    def courier_logout(self) -> None:
        self.courier = None

    def check_courier(self) -> CourierSession:
        """The courier signed in and not idle too long (which counts as activity), else
        ``courier_required``."""
        session = self.courier
        if session is None or time.monotonic() - session.last_seen > self.settings.courier_idle_s:
            self.courier = None
            raise Unauthorized("Sign in with your courier code first.", code="courier_required")
        session.last_seen = time.monotonic()
        return session

    def _courier_json(self) -> dict[str, Any] | None:
        if self.courier is None:
            return None
        c = self.courier.courier
        return {"id": c.id, "name": c.name, "org_id": c.org_id}

    async def courier_deposit(self, tracking_number: str) -> dict[str, Any]:
        """Open a compartment for the announced parcel ``tracking_number``: its reserved one,
        else the best free one; a stuck door goes out of service and the next one opens.
        Closing the door confirms the deposit (the ``deposit`` event). Scanning a parcel
        again while its door is open opens that door again."""
        session = self.check_courier()
        tracking_number = tracking_number.strip()
        if not 1 <= len(tracking_number) <= 64:
            raise InvalidInput("A tracking number has 1 to 64 characters.")
        try:
            parcel = decisions.check_expected(
                self.store.expected_by_tracking(tracking_number), org_id=session.courier.org_id
            )
        except DomainError as refused:
            log.info("deposit refused", extra={"code": refused.code})
            self._refused(self.clock(), "tracking_number", refused.code, None)
            raise
        tasks = self.store.tasks()
        again = next(
            (t for t in tasks.values() if t.purpose == DEPOSIT and t.parcel_id == parcel.parcel_id),
            None,
        )
        tried: set[str] = set()
        for _ in range(DEPOSIT_TRIES):
            compartment = self.store.compartment(again.compartment_id) if again else None
            if compartment is None:
                compartment = self.deposit_compartment(parcel, tried=tried)
            if compartment is None:
                raise Conflict("No free compartment here takes this parcel.", code="site_full")
            state = await self.open_for_deposit(compartment, parcel.parcel_id, session.courier.id)
            if state == OPENED:
                return {
                    "parcel_id": parcel.parcel_id,
                    "tracking_number": parcel.tracking_number,
                    "compartment": compartment.ref(),
                }
            if state != STUCK:
                raise BoardUnavailable("The lock board does not answer; please try again.")
            tried.add(compartment.id)
            again = None
        raise DoorNotOpened(
            "No door opened for this parcel; the compartments tried are out of service."
        )

    def deposit_compartment(self, parcel: Expected, *, tried: set[str]) -> Compartment | None:
        """The best compartment of this kiosk's boards for ``parcel``
        (``decisions.choose_compartment``), passing over doors open or opening for something
        else and those ``tried`` already."""
        return decisions.choose_compartment(
            parcel,
            (c for c in self.store.compartments() if c.address in self._by_address),
            busy=set(self.store.tasks()) | set(self._open) | tried,
            sizes=self.store.sizes(),
        )

    async def open_for_deposit(
        self, compartment: Compartment, parcel_id: str, courier_id: str
    ) -> str:
        """Journal and pulse ``compartment``'s door for a courier's deposit of ``parcel_id``;
        its closing on the parcel confirms the deposit (the ``deposit`` event). Returns the
        pulse's state: ``OPENED``, ``STUCK`` (out of service now) or ``FAILED`` (the board)."""
        now = self.clock()
        with self.store.write() as tx:
            pulse = tx.intend_pulse(compartment, now)
            tx.set_task(compartment.id, DEPOSIT, now, parcel_id=parcel_id, courier_id=courier_id)
        opened = await self._pulse([pulse])
        self._settle(opened, [pulse], now, reported=None)
        return opened.states[compartment.id]

    # --- commands ----------------------------------------------------------------------------

    async def run_command(self, command: Mapping[str, Any]) -> str:
        """Run a door command from the server once, by its id, and acknowledge it with a
        ``command`` event: ``opened``, ``expired`` (past ``expires_at``: not run late) or
        ``failed``; ``declined`` for a pickup's command whose parcel was picked up here
        already. A command already run answers its first result and does nothing.

        The one entry for commands, whether they came with a sync or over MQTT.
        """
        cmd = _command(command)
        done = self.store.command_result(cmd.id)
        if done is not None:
            return done
        now = self.clock()
        compartment = self.store.compartment(cmd.compartment_id) if cmd.compartment_id else None
        refused = None
        if cmd.type != "open" or compartment is None or not self.openable([compartment]):
            log.warning("command refused", extra={"command_id": cmd.id, "type": cmd.type})
            refused = FAILED
        elif cmd.expires_at is not None and now >= cmd.expires_at:
            log.info("command expired before it came", extra={"command_id": cmd.id})
            refused = "expired"
        elif cmd.reason == "pickup" and cmd.parcel_id and self.store.handed_over(cmd.parcel_id):
            # Picked up here already (offline, say): the emptied door is not opened again.
            log.info("command declined: parcel picked up here", extra={"command_id": cmd.id})
            refused = "declined"
        if refused is not None or compartment is None:
            refused = refused or FAILED
            with self.store.write() as tx:
                if tx.remember_command(cmd.id, refused, now):
                    tx.queue("command", now, {"command_id": cmd.id, "result": refused})
            self._wake.set()
            return self.store.command_result(cmd.id) or refused
        purpose = PICKUP if cmd.reason in PICKUP_REASONS else COMMAND
        with self.store.write() as tx:
            if not tx.remember_command(cmd.id, OPENED, now):
                return self.store.command_result(cmd.id) or OPENED
            event = tx.queue("command", now, {"command_id": cmd.id, "result": OPENED}, held=True)
            pulse = tx.intend_pulse(compartment, now, event)
            tx.set_task(compartment.id, purpose, now, parcel_id=cmd.parcel_id)
        opened = await self._pulse([pulse])
        result = OPENED if opened.states[compartment.id] == OPENED else FAILED

        def amend(tx: Tx) -> None:
            if result == FAILED:
                tx.update_event(event, {"result": FAILED})
                tx.remember_command(cmd.id, FAILED, now, replace=True)

        self._settle(opened, [pulse], now, reported=event, amend=amend)
        return result

    # --- doors -------------------------------------------------------------------------------

    async def _pulse(self, pulses: list[Pulse]) -> Opened:
        """Pulse each journalled lock in turn (the bus takes one at a time)."""
        states: dict[str, str] = {}
        faults: list[BoardFault] = []
        for pulse in pulses:
            try:
                state = await self.doors.open(pulse.address)
            except LockStuck:
                states[pulse.compartment_id] = STUCK
            except BoardFault as fault:
                log.error("unlock failed", extra={"code": fault.code, "detail": fault.detail})
                states[pulse.compartment_id] = FAILED
                faults.append(fault)
            else:
                states[pulse.compartment_id] = OPENED
                self._state_changed([state])
                compartment = self._by_address.get(pulse.address)
                if compartment is not None:
                    self._door_opened(compartment, commanded=True)
        return Opened(states, faults)

    def _settle(
        self,
        opened: Opened,
        pulses: list[Pulse],
        now: datetime,
        *,
        reported: str | None,
        amend: Callable[[Tx], None] | None = None,
    ) -> None:
        """Write down what the pulses did, in one transaction: each pulse's state, a stuck
        lock's compartment out of service, tasks of doors that stayed shut dropped, the
        caller's ``amend`` to the event ``reported``, which is then released to the push."""
        with self.store.write() as tx:
            if amend is not None:
                amend(tx)
            for pulse in pulses:
                state = opened.states[pulse.compartment_id]
                tx.settle_pulse(pulse.id, state, now)
                if state == OPENED:
                    if tx.clear_alarm("door_jammed", pulse.compartment_id):
                        # It opened after all: back in service (what it holds says how).
                        self._alarm(
                            tx, now, "door_jammed", "cleared", compartment_id=pulse.compartment_id
                        )
                        tx.queue("in_service", now, {"compartment_id": pulse.compartment_id})
                        tx.execute(
                            "UPDATE compartments SET local_state = NULL, local_event = NULL"
                            " WHERE id = ? AND local_state = 'out_of_service'",
                            (pulse.compartment_id,),
                        )
                    continue
                tx.drop_task(pulse.compartment_id)
                if state == STUCK:
                    log.warning(
                        "lock stuck: compartment out of service",
                        extra={"compartment_id": pulse.compartment_id},
                    )
                    event = tx.queue(
                        "out_of_service",
                        now,
                        {"compartment_id": pulse.compartment_id, "reason": "lock_stuck"},
                    )
                    tx.set_local_state(pulse.compartment_id, "out_of_service", event)
                    if tx.raise_alarm("door_jammed", pulse.compartment_id, now):
                        self._alarm(
                            tx,
                            now,
                            "door_jammed",
                            "raised",
                            compartment_id=pulse.compartment_id,
                            detail="the door did not open after an unlock and a second pulse",
                        )
                else:
                    tx.execute(
                        "UPDATE compartments SET local_state = NULL, local_event = NULL"
                        " WHERE id = ? AND local_event = ?",
                        (pulse.compartment_id, reported),
                    )
            for fault in opened.faults:
                self._board_faulted(tx, fault, now)
            if reported is not None:
                tx.release(reported)
        self._wake.set()

    async def _watch(self) -> None:
        async for event in self.doors.changes():
            try:
                self._on_board(event)
            except Exception:
                log.exception("board event not handled", extra={"event": repr(event)})
            self._state_changed([event.after] if isinstance(event, StateChanged) else ())

    def _on_board(self, event: BoardEvent) -> None:
        now = self.clock()
        if isinstance(event, BoardFaulted):
            with self.store.write() as tx:
                self._board_faulted(tx, event.fault, now)
        elif isinstance(event, BoardRecovered):
            self._faulted.discard(event.board)
            with self.store.write() as tx:
                if tx.clear_alarm("board_fault", f"board:{event.board}"):
                    self._alarm(tx, now, "board_fault", "cleared", detail=f"board {event.board}")
        elif isinstance(event, StateChanged):
            compartment = self._by_address.get(event.after.address)
            if compartment is None:
                return
            if event.after.door_open and compartment.id not in self._open:
                commanded = compartment.id in self.store.tasks()
                self._door_opened(compartment, commanded=commanded)
            elif not event.after.door_open and compartment.id in self._open:
                self._door_closed(compartment, event.after)
        self._wake.set()

    def _door_opened(
        self, compartment: Compartment, *, commanded: bool, forced: bool | None = None
    ) -> None:
        """Report a door that now reads open; one that opened without a command raises
        ``door_forced`` (unless ``forced`` is False: a door found open at start is only
        reported, since the kiosk cannot tell why); its ``door_left_open`` timer starts."""
        if forced is None:
            forced = not commanded
        if compartment.id in self._open:
            return
        now = self.clock()
        self._open[compartment.id] = now
        with self.store.write() as tx:
            tx.queue(
                "door",
                now,
                {"compartment_id": compartment.id, "door": "open", "commanded": commanded},
            )
            if forced:
                log.warning("door forced", extra={"compartment_id": compartment.id})
                self._alarm(
                    tx,
                    now,
                    "door_forced",
                    "raised",
                    compartment_id=compartment.id,
                    detail=f"door {compartment.label} opened without a command",
                )
        self._left_open[compartment.id] = asyncio.get_running_loop().create_task(
            self._door_left_open(compartment)
        )

    async def _door_left_open(self, compartment: Compartment) -> None:
        after = self.settings.door_left_open_s
        await asyncio.sleep(after)
        if compartment.id not in self._open:
            return
        now = self.clock()
        with self.store.write() as tx:
            if tx.raise_alarm("door_left_open", compartment.id, now):
                self._alarm(
                    tx,
                    now,
                    "door_left_open",
                    "raised",
                    compartment_id=compartment.id,
                    detail=f"door {compartment.label} open for {after:g} s",
                )
        self._wake.set()

    def _door_closed(
        self, compartment: Compartment, state: LockState, *, was_open: bool = True
    ) -> None:
        """A door shut: report it, clear its left-open alarm, and finish what it was open for
        (a deposit is confirmed, a pickup checked for an item left behind)."""
        now = self.clock()
        self._open.pop(compartment.id, None)
        timer = self._left_open.pop(compartment.id, None)
        if timer is not None:
            timer.cancel()
        task = self.store.tasks().get(compartment.id)
        with self.store.write() as tx:
            if was_open:
                tx.queue(
                    "door",
                    now,
                    {"compartment_id": compartment.id, "door": "closed", "commanded": False},
                )
            if tx.clear_alarm("door_left_open", compartment.id):
                self._alarm(tx, now, "door_left_open", "cleared", compartment_id=compartment.id)
            if task is not None:
                self._finish(tx, task, compartment, state, now)
        for hook in self.door_closed_hooks:
            hook(compartment)

    def _finish(
        self, tx: Tx, task: DoorTask, compartment: Compartment, state: LockState, now: datetime
    ) -> None:
        tx.drop_task(compartment.id)
        if task.purpose == PICKUP and state.item:
            log.warning("item left after pickup", extra={"compartment_id": compartment.id})
            self._alarm(
                tx,
                now,
                "item_left",
                "raised",
                compartment_id=compartment.id,
                detail=f"an item is still in {compartment.label} after its pickup",
            )
        elif task.purpose == DEPOSIT and task.parcel_id is not None:
            if state.item is False:
                # The item sensor sees nothing: the courier closed the door without the parcel.
                log.warning(
                    "deposit not confirmed: compartment empty",
                    extra={"compartment_id": compartment.id, "parcel_id": task.parcel_id},
                )
                self._deposit_closed(task, confirmed=False)
                return
            event = tx.queue(
                "deposit",
                now,
                {
                    "parcel_id": task.parcel_id,
                    "compartment_id": compartment.id,
                    "courier_id": task.courier_id,
                    "offline": not self.online,
                },
            )
            tx.mark_deposited(task.parcel_id, event)
            tx.set_local_state(compartment.id, "occupied", event)
            self._deposit_closed(task, confirmed=True)

    def _deposit_closed(self, task: DoorTask, *, confirmed: bool) -> None:
        for listener in self.deposit_closed:
            try:
                listener(task, confirmed)
            except Exception:
                log.exception("deposit listener failed", extra={"parcel_id": task.parcel_id})

    def _board_faulted(self, tx: Tx, fault: BoardFault, now: datetime) -> None:
        self._faulted.add(fault.board)
        if tx.raise_alarm("board_fault", f"board:{fault.board}", now):
            log.error("board fault", extra={"board": fault.board, "code": fault.code})
            self._alarm(
                tx,
                now,
                "board_fault",
                "raised",
                detail=f"board {fault.board}: {fault.code}: {fault.detail}",
            )

    # --- refusals and alarms ------------------------------------------------------------------

    def _refused(self, now: datetime, method: str, reason: str, bucket: str | None) -> None:
        """Queue the refusal; count it against ``bucket`` (typed codes) for the lockout."""
        with self.store.write() as tx:
            tx.queue_refusal(now, method, reason)
            if bucket is not None:
                self._count_failure(tx, bucket, now)
        self._wake.set()

    def _count_failure(self, tx: Tx, bucket: str, now: datetime) -> None:
        counted = decisions.count_failure(self.store.attempts(bucket), now)
        tx.save_attempts(bucket, counted.attempts)
        if counted.lockout_began:
            which = {
                decisions.PIN_ALONE: "PINs typed alone",
                decisions.COURIER_BUCKET: "courier codes",
            }
            log.warning(
                "brute force: codes locked out", extra={"failures": counted.attempts.failures}
            )
            self._alarm(
                tx,
                now,
                "brute_force",
                "raised",
                detail=f"{counted.attempts.failures} wrong {which}",
            )

    def _alarm(
        self,
        tx: Tx,
        now: datetime,
        kind: str,
        state: str,
        *,
        compartment_id: str | None = None,
        detail: str = "",
    ) -> None:
        body: dict[str, Any] = {"kind": kind, "state": state, "detail": detail}
        if compartment_id is not None:
            body["compartment_id"] = compartment_id
        tx.queue("alarm", now, body)

    # --- sync --------------------------------------------------------------------------------

    async def sync_now(self) -> None:
        """Push the queue, pull changes (running their commands), push again. Raises
        ``Unreachable`` when the server cannot be used; the kiosk is offline then."""
        async with self._sync_lock:
            try:
                await self._push()
                commands = await self._pull()
                for command in commands:
                    await self.run_command(command)
                await self._push()
                await self._refresh_presence()
            except Unreachable as down:
                self.went_offline(down.reason)
                raise
            if not self.online:
                log.info("online")
            self.online = True
            self.last_error = None

    def went_offline(self, reason: str) -> None:
        """The server could not be used (``reason``): the kiosk is offline until a sync."""
        if self.online:
            log.warning("offline", extra={"reason": reason})
        self.online = False
        self.last_error = reason

    async def _push(self) -> None:
        while batch := self.store.pushable(self.settings.push_limit):
            results = await self.link.push([event.wire() for event in batch])
            named = {result["id"]: result for result in results}
            with self.store.write() as tx:
                for event in batch:
                    result = named.get(event.id)
                    if result is None:
                        continue
                    if result.get("status") in ("conflict", "rejected"):
                        log.warning(
                            "event not applied as sent",
                            extra={
                                "event_id": event.id,
                                "type": event.type,
                                "status": result.get("status"),
                                "code": result.get("code"),
                            },
                        )
                    tx.drop_event(event.id)
            if not named.keys() & {event.id for event in batch}:
                raise Unreachable("the server's answer to the push names none of its events")

    async def _pull(self) -> list[dict[str, Any]]:
        commands: list[dict[str, Any]] = []
        while True:
            cursor = self.store.meta("cursor")
            try:
                page = await self.link.pull(cursor, self.settings.pull_limit)
            except CursorRefused as refused:
                if cursor is None:
                    raise Unreachable(
                        f"the server refused a sync without a cursor: {refused}"
                    ) from None
                log.warning("sync cursor refused: syncing afresh", extra={"code": str(refused)})
                self.store.forget_synced()
                continue
            self.store.apply_pull(page, self.clock())
            commands.extend(page.get("commands", ()))
            if not page.get("more"):
                break
        self._load()
        return commands

    async def _refresh_presence(self) -> None:
        now = self.clock()
        if self._presence_rotates is not None and now < self._presence_rotates:
            return
        try:
            self.presence = await self.link.presence_code()
        except Unreachable:
            self.presence = None
            raise
        rotates = self.presence.get("rotates_at")
        self._presence_rotates = as_utc(datetime.fromisoformat(rotates)) if rotates else None

    async def _sync_loop(self) -> None:
        while True:
            try:
                await self.sync_now()
            except Unreachable:
                pass
            except Exception:
                log.exception("sync failed")
                self.went_offline("sync failed")
            if not self.online:
                await asyncio.sleep(self.settings.offline_retry_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.sync_interval_s)
            self._wake.clear()

    # --- what the screen shows ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "queued": self.store.queued(),
            "last_sync": self.store.meta("last_sync"),
            "last_error": self.last_error,
            "site_id": self.site_id,
            "credentials": self.store.count_credentials(),
            "boards": self.doors.boards,
            "faulted_boards": sorted(self._faulted),
            "open_doors": len(self._open),
        }

    def state(self) -> dict[str, Any]:
        tasks = self.store.tasks()
        doors = []
        for compartment_id, since in sorted(self._open.items(), key=lambda item: item[1]):
            compartment = self.store.compartment(compartment_id)
            if compartment is None:
                continue
            task = tasks.get(compartment_id)
            doors.append(
                {
                    "compartment": compartment.ref(),
                    "since": since.isoformat(),
                    "purpose": task.purpose if task else "unexpected",
                }
            )
        now = self.clock()
        presence = self.presence
        until = presence.get("accepted_until") if presence is not None else None
        if until and now >= as_utc(datetime.fromisoformat(until)):
            presence = None
        return {
            "site": self.store.meta("site"),
            "online": self.online,
            "open_doors": doors,
            "courier": self._courier_json(),
            "presence_code": (
                None
                if presence is None or not self.online
                else {"code": presence["code"], "rotates_at": presence.get("rotates_at")}
            ),
        }


def _command(raw: Mapping[str, Any]) -> Command:
    try:
        expires = raw.get("expires_at")
        return Command(
            id=str(raw["id"]),
            type=str(raw.get("type", "open")),
            compartment_id=raw.get("compartment_id"),
            parcel_id=raw.get("parcel_id"),
            reason=raw.get("reason"),
            expires_at=as_utc(datetime.fromisoformat(expires)) if expires else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidInput(f"not a door command: {error}", code="invalid_command") from None
