"""Open deposit at the kiosk: a signed-in courier with no announced parcel finds the recipient
in the site's directory, picks a size, and a door opens (``docs/kiosk.md``).

The server announces the parcel for the directory entry and holds the compartment this kiosk
chose (``POST /v1/sites/{id}/open-deposits`` with ``confirm: door_closed``); the door is then
opened and watched as for any courier deposit (``Agent.open_for_deposit``), so its closing on
the parcel queues the ``deposit`` event that deposits the parcel on the server, which issues
the recipient's credentials and messages them. A door that does not open, or that shuts on an
empty compartment, calls the announcement off on the server.

Open deposit needs the server: the directory is searched there, and only the server can tell
the recipient. Offline, it is refused (``open_deposit_offline``); announced deposits go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from openlocker.core.errors import Conflict, DomainError, InvalidInput
from openlocker.core.ids import new_id
from openlocker.kiosk.agent import (
    DEPOSIT_TRIES,
    Agent,
    BoardUnavailable,
    CourierSession,
    DoorNotOpened,
)
from openlocker.kiosk.link import ServerRefusal, Unreachable
from openlocker.kiosk.store import OPENED, STUCK, Compartment, DoorTask, Expected

log = logging.getLogger("openlocker.kiosk")

#: Entries a search shows at most (the server says whether there were more).
SEARCH_LIMIT = 8
#: An open deposit is for an ambient parcel: a directory recipient's parcel is not chilled.
TEMPERATURE = "ambient"
#: Answers kept for a repeated request id (a double tap, a retry after a timeout).
_REMEMBERED = 32
#: Open deposits whose calling off the server has not heard yet (``KioskStore.meta``).
_UNCANCELLED = "open_deposits_to_cancel"


class OpenDepositOffline(DomainError):
    status = 503
    code = "open_deposit_offline"
    title = "Open deposit needs the network"


@dataclass(frozen=True, slots=True)
class _Asked:
    """An open deposit asked for, by what identifies it for a repeated request id."""

    entry_id: str
    size: str


class OpenDeposits:
    """The kiosk's open deposits, over ``agent`` (one courier at a time, one deposit at a
    time: the requests take turns)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._turn = asyncio.Lock()
        self._answers: OrderedDict[str, tuple[_Asked, dict[str, Any]]] = OrderedDict()
        #: Open deposits whose doors are open now: parcel id -> compartment id.
        self._waiting: dict[str, str] = {}
        self._cancelling: set[asyncio.Task[None]] = set()
        agent.deposit_closed.append(self._door_shut)

    # --- search --------------------------------------------------------------------------

    async def search(self, query: str) -> dict[str, Any]:
        """The directory entries whose name or unit begins with ``query``'s words, as the
        server allows a kiosk to see them (id, name, unit: never an email or a phone):
        ``{"items": [...], "more": bool}``. Raises ``courier_required``,
        ``open_deposit_offline``, and the server's ``too_many_searches`` (with
        ``retry_after``) and ``invalid_query``."""
        self.agent.check_courier()
        query = query.strip()
        if not query:
            raise InvalidInput("Type part of a name or a unit.", code="invalid_query")
        self._check_online()
        try:
            found = await self.agent.link.search_directory(query, SEARCH_LIMIT)
        except Unreachable as down:
            raise self._offline(down) from None
        items = [
            {"id": str(item["id"]), "display_name": str(item["display_name"])}
            | ({"unit": str(item["unit"])} if item.get("unit") else {})
            for item in found.get("items", ())
        ]
        return {"items": items, "more": bool(found.get("more"))}

    # --- sizes ---------------------------------------------------------------------------

    def sizes(self) -> dict[str, Any]:
        """The sizes a courier may pick here: each size class that a free compartment on this
        kiosk's boards takes (its own size or the next one up), smallest first, with its
        inside measures. Raises ``courier_required``."""
        self.agent.check_courier()
        offered = []
        classes = self.agent.store.sizes()
        for size in sorted(classes, key=lambda s: s.width_mm * s.height_mm * s.depth_mm):
            if self.agent.deposit_compartment(_need(size.code, ""), tried=set()) is not None:
                offered.append(
                    {
                        "code": size.code,
                        "width_mm": size.width_mm,
                        "height_mm": size.height_mm,
                        "depth_mm": size.depth_mm,
                    }
                )
        return {"sizes": offered, "online": self.agent.online}

    # --- the deposit ---------------------------------------------------------------------

    async def deposit(
        self, entry_id: str, size: str, request_id: str | None = None
    ) -> dict[str, Any]:
        """Open a door for a parcel for directory entry ``entry_id`` of ``size``.

        The best free compartment that takes the size is held for it on the server and its
        door opens; a stuck door goes out of service and the next one opens. Closing the door
        on the parcel deposits it (the ``deposit`` event) and the server messages the
        recipient their PIN, QR code and link. ``request_id`` makes a repeat (a double tap) answer
        as the first time and open nothing more. Answers ``{"parcel_id", "tracking_number",
        "compartment", "recipient", "size"}``.

        Raises ``courier_required``, ``open_deposit_offline``, ``site_full`` (no free
        compartment takes the size), ``door_not_opened``, ``board_fault``,
        ``request_reused``, and the server's ``entry_not_found``, ``entry_inactive``,
        ``open_deposit_not_allowed``, ``courier_inactive``, ``courier_not_at_site``,
        ``unknown_size``.
        """
        asked = _Asked(entry_id, size)
        async with self._turn:
            session = self.agent.check_courier()
            if request_id is not None and request_id in self._answers:
                first, answer = self._answers[request_id]
                if first != asked:
                    raise Conflict(
                        "This request id was used for another deposit.", code="request_reused"
                    )
                return answer
            self._check_online()
            await self._cancel_left_over()
            answer = await self._open(session, asked, request_id or new_id("odr"))
            if request_id is not None:
                self._answers[request_id] = (asked, answer)
                while len(self._answers) > _REMEMBERED:
                    self._answers.popitem(last=False)
            return answer

    async def _open(self, session: CourierSession, asked: _Asked, key: str) -> dict[str, Any]:
        tried: set[str] = set()
        need = _need(asked.size, session.courier.org_id)
        compartment = self.agent.deposit_compartment(need, tried=tried)
        if compartment is None:
            raise Conflict("No free compartment here takes this size.", code="site_full")
        held = await self._announce(session, asked, compartment, key)
        parcel_id = str(held["parcel_id"])
        chosen = self.agent.store.compartment(str(held["compartment"]["id"]))
        for _ in range(DEPOSIT_TRIES):
            if chosen is None or chosen.address is None:
                break
            state = await self.agent.open_for_deposit(chosen, parcel_id, session.courier.id)
            if state == OPENED:
                self._waiting[parcel_id] = chosen.id
                log.info(
                    "open deposit: door open",
                    extra={"parcel_id": parcel_id, "compartment_id": chosen.id},
                )
                return {
                    "parcel_id": parcel_id,
                    "tracking_number": held["tracking_number"],
                    "compartment": chosen.ref(),
                    "recipient": held["recipient"],
                    "size": asked.size,
                }
            if state != STUCK:
                await self._call_off(parcel_id)
                raise BoardUnavailable("The lock board does not answer; please try again.")
            # The next best door; the deposit event names it, and the server moves the hold.
            tried.add(chosen.id)
            chosen = self.agent.deposit_compartment(need, tried=tried)
        await self._call_off(parcel_id)
        raise DoorNotOpened(
            "No door opened for this parcel; the compartments tried are out of service."
        )

    async def _announce(
        self, session: CourierSession, asked: _Asked, compartment: Compartment, key: str
    ) -> dict[str, Any]:
        """The server's announcement of the parcel, holding ``compartment`` (or, when the
        server knows it taken, the best free one it has)."""
        body: dict[str, Any] = {
            "entry_id": asked.entry_id,
            "size": asked.size,
            "courier_id": session.courier.id,
            "compartment_id": compartment.id,
        }
        try:
            try:
                return await self.agent.link.open_deposit(body, idempotency_key=key)
            except ServerRefusal as refused:
                if refused.code != "compartment_unavailable":
                    raise
                # The server knows of a parcel there the kiosk has not synced yet.
                del body["compartment_id"]
                return await self.agent.link.open_deposit(body, idempotency_key=key + "-any")
        except Unreachable as down:
            raise self._offline(down) from None
        except ServerRefusal as refused:
            log.info("open deposit refused", extra={"code": refused.code})
            raise

    # --- calling off ---------------------------------------------------------------------

    def _door_shut(self, task: DoorTask, confirmed: bool) -> None:
        """A deposit's door shut: an open deposit shut on an empty compartment is called off
        (the recipient is told nothing), one shut on its parcel is done."""
        parcel_id = task.parcel_id
        if parcel_id is None or self._waiting.pop(parcel_id, None) is None or confirmed:
            return
        log.info("open deposit shut empty: calling it off", extra={"parcel_id": parcel_id})
        cancelling = asyncio.get_running_loop().create_task(self._call_off(parcel_id))
        self._cancelling.add(cancelling)
        cancelling.add_done_callback(self._cancelling.discard)

    async def _call_off(self, parcel_id: str) -> None:
        """Cancel the open deposit on the server, then sync at once so the compartment it
        held is free here for the next one; offline, it is kept and tried again before the
        next open deposit."""
        try:
            await self.agent.link.cancel_open_deposit(parcel_id)
        except (Unreachable, ServerRefusal) as failed:
            log.warning(
                "open deposit not called off yet",
                extra={"parcel_id": parcel_id, "reason": str(failed)},
            )
            left = self.agent.store.meta(_UNCANCELLED, [])
            with self.agent.store.write() as tx:
                tx.set_meta(_UNCANCELLED, sorted({*left, parcel_id}))
            return
        self.agent.wake_sync()

    async def _cancel_left_over(self) -> None:
        left: list[str] = self.agent.store.meta(_UNCANCELLED, [])
        done = []
        for parcel_id in left:
            try:
                await self.agent.link.cancel_open_deposit(parcel_id)
            except Unreachable as down:
                raise self._offline(down) from None
            except ServerRefusal as refused:
                # Deposited after all (its door event came first): nothing to call off.
                log.info("open deposit not called off", extra={"code": refused.code})
            done.append(parcel_id)
        if done:
            with self.agent.store.write() as tx:
                tx.set_meta(_UNCANCELLED, [p for p in left if p not in done])

    # --- the network ---------------------------------------------------------------------

    def _check_online(self) -> None:
        if not self.agent.online:
            raise OpenDepositOffline(
                "Delivering to a resident needs the network; announced parcels can still be"
                " deposited."
            )

    def _offline(self, down: Unreachable) -> OpenDepositOffline:
        self.agent.went_offline(down.reason)
        return OpenDepositOffline(
            "The server cannot be reached; announced parcels can still be deposited."
        )


def _need(size: str, org_id: str) -> Expected:
    """An open deposit's parcel as the kiosk's compartment choice sees a parcel: a size, no
    reservation."""
    return Expected("", "", org_id, size, TEMPERATURE, None, False)
