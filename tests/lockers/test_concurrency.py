"""Racing claims for the last compartments: exactly as many win as there are compartments."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from openlocker.core.context import Context
from openlocker.core.errors import DomainError
from openlocker.orgs.service import access_principal
from openlocker.parcels import service
from openlocker.parcels.schemas import AnnounceIn
from tests.factories import Factory

RACERS = 24
COMPARTMENTS = 6


def _race(calls: list[Callable[[], str]]) -> tuple[Counter[str], list[str]]:
    """Run every call at once; count the outcomes and collect the winners' compartments."""
    barrier = threading.Barrier(len(calls))
    outcomes: Counter[str] = Counter()
    won: list[str] = []
    lock = threading.Lock()

    def run(call: Callable[[], str]) -> None:
        barrier.wait()
        try:
            result = call()
            with lock:
                outcomes["ok"] += 1
                won.append(result)
        except DomainError as error:
            with lock:
                outcomes[error.code] += 1

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes, won


def _announce(ctx: Context, key: str, site: str, n: int, reserve: bool) -> Callable[[], str]:
    principal = access_principal(ctx, f"Bearer {key}")
    request = AnnounceIn(
        tracking_number=f"RACE-{n}", site_id=site, size="S", notify="sender", reserve=reserve
    )

    def call() -> str:
        answer = service.announce(ctx, principal, request)
        return answer.parcel.compartment.id if answer.parcel.compartment else answer.parcel.id

    return call


def test_racing_reservations(factory: Factory, ctx: Context) -> None:
    carrier = factory.org()
    site = factory.site("S" * COMPARTMENTS)
    outcomes, won = _race([_announce(ctx, carrier.key, site, n, True) for n in range(RACERS)])
    assert outcomes == {"ok": COMPARTMENTS, "site_full": RACERS - COMPARTMENTS}
    assert len(set(won)) == COMPARTMENTS


def test_racing_deposits(factory: Factory, ctx: Context) -> None:
    carrier = factory.org()
    site = factory.site("S" * COMPARTMENTS)
    parcel_ids = [factory.announce(carrier, site).json()["id"] for _ in range(RACERS)]
    principal = access_principal(ctx, f"Bearer {carrier.key}")

    def deposit(parcel_id: str) -> Callable[[], str]:
        def call() -> str:
            parcel = service.deposit(ctx, principal, parcel_id).parcel
            assert parcel.compartment is not None
            return parcel.compartment.id

        return call

    outcomes, won = _race([deposit(p) for p in parcel_ids])
    assert outcomes == {"ok": COMPARTMENTS, "site_full": RACERS - COMPARTMENTS}
    assert len(set(won)) == COMPARTMENTS
