"""Fulfilment on the touchscreen in headless Chromium, on a kiosk that syncs with a real
``openlocker serve`` and drives sim boards: store staff load an order door after door, a
customer drops a return by its code, a courier collects with the manifest; each at the
kiosk's portrait size and on the 800x480 panel."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.core.ids import new_id
from openlocker.parcels.service import expire_due
from tests.factories import Factory, Org
from tests.kiosk.e2e import clock  # noqa: F401 (the real clock, for the server and the kiosk)
from tests.kiosk.screen.rig import KIOSK, PANEL, Locker, locker, needs_chromium, wait_for
from tests.orders.helpers import place, retailer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = needs_chromium


def _sign_in(rig: Locker, viewport: dict[str, int], code: str, lang: str = "") -> Page:
    from playwright.sync_api import expect

    screen = rig.page(viewport)
    if lang:
        screen.goto(f"{rig.kiosk.url}/?lang={lang}")
    screen.locator("#home [data-go='courier-login']").click()
    keypad = screen.locator("#courier-login .keypad")
    for digit in code:
        keypad.locator(f"[data-key='{digit}']").click()
    screen.locator("#courier-login-form button[type=submit]").click()
    expect(screen.locator("#courier")).to_be_visible()
    return screen


def _open_doors(rig: Locker) -> list[str]:
    return [label for label in rig.addresses if rig.door(label)]


def _staff(rig: Locker, factory: Factory) -> tuple[Org, str]:
    shop = retailer(factory)
    with httpx.Client(base_url=rig.base, headers=shop.headers, timeout=30) as api:
        made = api.post("/v1/couriers", json={"name": "Store Sam"})
    assert made.status_code == 201, made.text
    return shop, str(made.json()["code"])


def _order(rig: Locker, factory: Factory, shop: Org, items: int) -> dict[str, Any]:
    placed = place(
        factory,
        shop,
        rig.site_id,
        [{"size": "S"}] * items,
        notify="openlocker",
        recipient={"name": "Ana", "email": "ana@example.com"},
    )
    assert placed.status_code == 201, placed.text
    order: dict[str, Any] = placed.json()
    wait_for(
        lambda: (
            len(
                [
                    i
                    for i in rig.kiosk.call(lambda agent: agent.store.order_items(shop.id))  # type: ignore[attr-defined]
                    if i.order_id == order["id"]
                ]
            )
            == items
        ),
        "the kiosk to expect the order's items",
    )
    return order


def test_store_staff_load_an_order_door_after_door(
    ctx: Context, factory: Factory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with locker(ctx, factory, tmp_path) as rig:
        shop, code = _staff(rig, factory)
        first, second = _order(rig, factory, shop, 2), _order(rig, factory, shop, 2)

        # Portrait: picked from the list; a door shut empty opens again.
        screen = _sign_in(rig, KIOSK, code)
        load = screen.get_by_role("button", name="Load an order")
        expect(load).to_be_visible()
        expect(screen.get_by_role("button", name="Nothing to collect")).to_be_disabled()
        rig.shot(screen, "kiosk-staff-tasks")
        load.click()
        expect(screen.get_by_role("heading", name="Load an order")).to_be_visible()
        orders = screen.get_by_role("list", name="Orders to load").get_by_role("button")
        expect(orders).to_have_count(2)
        expect(orders.first).to_have_text(f"{first['reference']} 0 of 2 loaded")
        rig.shot(screen, "kiosk-load-orders")
        orders.first.click()
        items = screen.get_by_role("list", name="Items of the order").get_by_role("listitem")
        expect(items).to_have_count(2)
        (label,) = wait_for(lambda: _open_doors(rig) or None, "the first door")
        message = screen.locator("#load-message")
        expect(message).to_have_text(f"Put the item in compartment {label} and close the door.")
        expect(items.first).to_contain_text(f"{label} {first['reference']}#1 door open")
        expect(screen.locator("#load-wall .cell.open")).to_have_text(label)
        rig.shot(screen, "kiosk-load-open")

        rig.bank.close_door(rig.addresses[label])  # on an empty compartment
        again = screen.get_by_role("button", name="Open the door again")
        expect(again).to_be_visible()
        expect(message).to_contain_text("The door was closed on an empty compartment")
        expect(items.first).to_contain_text("closed empty")
        rig.shot(screen, "kiosk-load-empty")
        again.click()
        wait_for(lambda: _open_doors(rig) == [label], "the same door again")
        expect(again).to_be_hidden()
        for n in range(2):
            rig.bank.load(rig.addresses[label])
            rig.bank.close_door(rig.addresses[label])
            if n == 0:
                (label,) = wait_for(lambda: _open_doors(rig) or None, "the second door")
                expect(items.first).to_contain_text("loaded")
        expect(message).to_have_text(
            f"Order {first['reference']} is loaded. The customer gets their code now."
        )
        rig.shot(screen, "kiosk-load-done")
        screen.get_by_role("button", name="Back").click()
        screen.get_by_role("button", name="Sign out").click()
        screen.close()

        # The panel: the order's label scanned.
        screen = _sign_in(rig, PANEL, code)
        rig.shot(screen, "panel-staff-tasks")
        screen.get_by_role("button", name="Load an order").click()
        listed = screen.get_by_role("list", name="Orders to load").get_by_role("button")
        expect(listed).to_have_count(1)
        rig.shot(screen, "panel-load-orders")
        screen.keyboard.type(f"{second['reference']}#1")
        screen.keyboard.press("Enter")
        (label,) = wait_for(lambda: _open_doors(rig) or None, "the first door")
        expect(screen.locator("#load-wall .cell.open")).to_have_text(label)
        rig.shot(screen, "panel-load-open")
        for n in range(2):
            rig.bank.load(rig.addresses[label])
            rig.bank.close_door(rig.addresses[label])
            if n == 0:
                (label,) = wait_for(lambda: _open_doors(rig) or None, "the second door")
        expect(screen.locator("#load-message")).to_contain_text(
            f"Order {second['reference']} is loaded."
        )
        rig.shot(screen, "panel-load-done")
        with httpx.Client(base_url=rig.base, headers=shop.headers, timeout=30) as api:
            wait_for(
                lambda: all(
                    api.get(f"/v1/orders/{o['id']}").json()["status"] == "ready"
                    for o in (first, second)
                ),
                "both orders ready on the server",
            )


def _issue_return(rig: Locker) -> str:
    with rig.api() as api:
        issued = api.post(
            "/v1/returns",
            json={
                "reference": new_id("RMA"),
                "size": "S",
                "customer": {"email": "ana@example.com"},
            },
        )
    assert issued.status_code == 201, issued.text
    return str(issued.json()["code"])


def test_a_customer_drops_a_return_by_its_code_and_offline_is_told_it_needs_the_network(
    ctx: Context, factory: Factory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with locker(ctx, factory, tmp_path) as rig:
        typed, scanned, late = _issue_return(rig), _issue_return(rig), _issue_return(rig)

        screen = rig.page(KIOSK)
        screen.get_by_role("button", name="Return a parcel").click()
        expect(screen.get_by_role("heading", name="Return a parcel")).to_be_visible()
        keyboard = screen.get_by_role("group", name="Keyboard for the return code")
        for key in typed.replace("-", "")[:8]:
            keyboard.get_by_role("button", name=key, exact=True).click()
        screen.get_by_role("button", name="Open a door").click()
        expect(screen.locator("#return-message")).to_have_text(
            "Type the whole return code (16 characters)."
        )
        rig.shot(screen, "kiosk-return-short")
        for key in typed.replace("-", "")[8:]:
            keyboard.get_by_role("button", name=key, exact=True).click()
        screen.get_by_role("button", name="Open a door").click()
        (label,) = wait_for(lambda: _open_doors(rig) or None, "the return's door")
        expect(screen.get_by_role("heading", name=f"Compartment {label} is open")).to_be_visible()
        expect(screen.locator("#opened-take")).to_have_text(
            "Put your parcel in and close the door. Your receipt is on its way."
        )
        rig.shot(screen, "kiosk-return-opened")
        rig.bank.load(rig.addresses[label])
        rig.bank.close_door(rig.addresses[label])
        expect(screen.locator("#opened-take")).to_have_text("Thank you! The door is closed.")
        screen.close()

        screen = rig.page(PANEL)
        screen.get_by_role("button", name="Return a parcel").click()
        rig.shot(screen, "panel-return")
        screen.keyboard.type(typed)  # scanned again: used
        screen.keyboard.press("Enter")
        expect(screen.locator("#return-message")).to_have_text(
            "This return code has been used already."
        )
        rig.shot(screen, "panel-return-used")
        screen.keyboard.type(scanned.lower())
        screen.keyboard.press("Enter")
        (label,) = wait_for(lambda: _open_doors(rig) or None, "the second return's door")
        expect(screen.get_by_role("heading", name=f"Compartment {label} is open")).to_be_visible()
        rig.shot(screen, "panel-return-opened")
        screen.get_by_role("button", name="Done").click()

        rig.stop_server()
        wait_for(lambda: not rig.health()["online"], "the kiosk to notice it is offline")
        screen.get_by_role("button", name="Return a parcel").click()
        screen.keyboard.type(late)
        screen.keyboard.press("Enter")
        expect(screen.locator("#return-message")).to_have_text(
            "This needs the network, and the locker is offline. Please try again later."
        )
        rig.shot(screen, "panel-return-offline")


def _expire(ctx: Context, parcel: dict[str, Any]) -> None:
    """``parcel``'s dwell deadline passed an hour ago, and the expiry job ran."""
    with ctx.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE parcels SET dwell_deadline = :then WHERE id = :id"),
            {"then": ctx.clock() - timedelta(hours=1), "id": parcel["id"]},
        )
    assert expire_due(ctx)[0] == 1


def test_a_courier_sees_what_to_collect_and_collects_door_by_door(
    ctx: Context, factory: Factory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with locker(ctx, factory, tmp_path) as rig:
        code = rig.courier_code("Rita")
        expired = rig.deposit()
        _expire(ctx, expired)
        dropped = httpx.post(f"{rig.kiosk.url}/api/returns", json={"code": _issue_return(rig)})
        assert dropped.status_code == 200, dropped.text
        rig.bank.load(rig.addresses[dropped.json()["compartment"]["label"]])
        rig.bank.close_door(rig.addresses[dropped.json()["compartment"]["label"]])

        # Portrait: the count before the visit; one parcel taken, the other reported missing.
        screen = _sign_in(rig, KIOSK, code)
        collect = screen.get_by_role("button", name="Collect 2 parcels")
        expect(collect).to_be_enabled()
        expect(screen.get_by_role("button", name="Load an order")).to_be_hidden()
        rig.shot(screen, "kiosk-courier-tasks")
        collect.click()
        expect(screen.get_by_role("heading", name="Collect 2 parcels")).to_be_visible()
        rows = screen.get_by_role("list", name="Parcels to collect").get_by_role("listitem")
        expect(rows).to_have_count(2)
        visit = httpx.get(f"{rig.kiosk.url}/api/collection").json()["collection"]
        first = next(i for i in visit["items"] if i["state"] == "open")
        label = first["compartment"]["label"]
        assert _open_doors(rig) == [label]
        expect(screen.locator("#collect-wall .cell.open")).to_have_text(label)
        shown = first["reference"] or first["tracking_number"]
        expect(screen.locator("#collect-message")).to_have_text(
            f"Take {shown} from compartment {label} and scan it."
        )
        rig.shot(screen, "kiosk-collect-open")
        screen.keyboard.type(first["tracking_number"])
        screen.keyboard.press("Enter")
        rig.take_out(label)
        expect(rows.filter(has_text="collected")).to_have_count(1)
        missing = screen.get_by_role("button", name="Missing")
        expect(missing).to_be_visible()
        missing.click()
        expect(screen.locator("#collect-message")).to_have_text(
            "Visit done: 1 collected, 1 missing."
        )
        expect(missing).to_be_hidden()
        rig.shot(screen, "kiosk-collect-done")
        screen.get_by_role("button", name="Finish").click()
        expect(screen.get_by_role("button", name="Collect 1 parcel")).to_be_visible()
        screen.get_by_role("button", name="Sign out").click()
        screen.close()
        for label in _open_doors(rig):
            rig.bank.close_door(rig.addresses[label])

        # The panel, in Polish: the parcel reported missing is still to collect.
        screen = _sign_in(rig, PANEL, code, lang="pl")
        collect = screen.get_by_role("button", name="Odbierz 1 paczkę")
        expect(collect).to_be_visible()
        rig.shot(screen, "panel-courier-tasks-pl")
        collect.click()
        expect(screen.get_by_role("heading", name="Odbierz 1 paczkę")).to_be_visible()
        (left,) = httpx.get(f"{rig.kiosk.url}/api/collection").json()["collection"]["items"]
        assert left["parcel_id"] != first["parcel_id"] and left["state"] == "open"
        rig.shot(screen, "panel-collect-open-pl")
        screen.keyboard.type(left["tracking_number"])
        screen.keyboard.press("Enter")
        expect(screen.locator("#collect-message")).to_have_text("Gotowe: odebrano 1, brakuje 0.")
        rig.shot(screen, "panel-collect-done-pl")
        screen.get_by_role("button", name="Zakończ").click()
        expect(screen.get_by_role("button", name="Nic do odbioru")).to_be_disabled()
        rig.shot(screen, "panel-courier-nothing-pl")
        returned = {"id": dropped.json()["parcel_id"]}
        assert rig.statuses(expired, returned) == ["returned", "collected"]
