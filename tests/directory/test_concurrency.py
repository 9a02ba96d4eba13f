"""Racing open deposits and directory writes: no compartment twice, no entry twice."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from openlocker.core.context import Context
from openlocker.core.errors import Conflict
from openlocker.directory import service
from openlocker.directory.schemas import EntryIn, OpenDepositIn
from openlocker.directory.service import OPEN_DEPOSIT_ORG
from openlocker.orgs.service import access_principal
from tests.directory.helpers import add_entry, building, events
from tests.factories import Factory
from tests.lockers.test_concurrency import _race

RACERS = 16


def test_racing_open_deposits_fill_each_compartment_once(factory: Factory, ctx: Context) -> None:
    here = building(factory, sizes="SSSSS")
    entries = [add_entry(factory, here, display_name=f"Resident {n}") for n in range(4)]
    kiosk = access_principal(ctx, f"Bearer {here.kiosk.key}")

    def drop(n: int) -> Callable[[], str]:
        request = OpenDepositIn(entry_id=entries[n % 4]["id"], size="S")
        return lambda: (
            service.open_deposit(ctx, kiosk, here.site_id, request).deposit.compartment.id
        )

    outcomes, won = _race([drop(n) for n in range(RACERS)])
    assert outcomes == {"ok": 5, "site_full": RACERS - 5}
    assert len(set(won)) == 5
    with ctx.db.engine.connect() as conn:
        held = conn.execute(
            text("SELECT COUNT(DISTINCT compartment_id) FROM parcels WHERE status = 'deposited'")
        ).scalar_one()
        messages = conn.execute(
            text("SELECT COUNT(*) FROM outbox WHERE topic = 'recipient.pickup_ready'")
        ).scalar_one()
    assert held == 5 and messages == 5  # the losers wrote nothing
    # The open-deposit carrier, made by whichever racer came first, exists once.
    assert sum(d["org_id"] == OPEN_DEPOSIT_ORG for _, d in events(ctx, "org.created")) == 1


def test_racing_deposits_into_one_chosen_compartment(factory: Factory, ctx: Context) -> None:
    here = building(factory, sizes="SS")
    entry = add_entry(factory, here)
    kiosk = access_principal(ctx, f"Bearer {here.kiosk.key}")
    with ctx.db.engine.connect() as conn:
        chosen = conn.execute(
            text("SELECT id FROM compartments WHERE site_id = :s ORDER BY label LIMIT 1"),
            {"s": here.site_id},
        ).scalar_one()
    request = OpenDepositIn(entry_id=entry["id"], size="S", compartment_id=chosen)
    outcomes, won = _race(
        [
            lambda: service.open_deposit(ctx, kiosk, here.site_id, request).deposit.compartment.id
            for _ in range(8)
        ]
    )
    assert outcomes == {"ok": 1, "compartment_unavailable": 7} and won == [chosen]


def test_racing_identity_providers_create_one_entry(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    keeper = access_principal(ctx, f"Bearer {here.keeper.key}")
    user = EntryIn(display_name="Anna", email="anna@example.com", user_name="anna@example.com")

    def create() -> str:
        try:
            return service.create_entry(ctx, keeper, here.site_id, user, source="scim").id
        except IntegrityError as error:  # the API answers it 409 concurrent_conflict
            raise Conflict("lost the race", code="integrity") from error

    outcomes, won = _race([create for _ in range(8)])
    assert outcomes["ok"] == 1 and len(won) == 1
    assert set(outcomes) <= {"ok", "duplicate_email", "duplicate_user_name", "integrity"}
    with ctx.db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM directory_entries")).scalar_one() == 1
