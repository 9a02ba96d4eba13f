"""The locker's touchscreen in headless Chromium, on a kiosk that syncs with a real
``openlocker serve`` and drives sim boards: recipients at the keypad and the scanner,
couriers depositing, a locker that lost its network; at kiosk, panel and phone sizes."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx

from openlocker.core.context import Context
from tests.factories import Factory
from tests.kiosk.e2e import clock  # noqa: F401 (the real clock, for the server and the kiosk)
from tests.kiosk.screen.rig import KIOSK, PANEL, PHONE, locker, needs_chromium, wait_for
from tests.web.helpers import link_token

pytestmark = needs_chromium


def test_a_recipient_opens_at_the_keypad_and_with_a_scanned_qr_code(
    ctx: Context, factory: Factory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with locker(ctx, factory, tmp_path) as rig:
        by_pin, by_qr = rig.deposit(), rig.deposit()
        screen = rig.page(KIOSK)
        expect(screen.get_by_role("heading", name="Collect your parcel")).to_be_visible()
        expect(screen.locator(".site-name")).to_have_text("Mokotów Galeria")
        shown = httpx.get(f"{rig.kiosk.url}/api/state").json()["presence_code"]["code"]
        expect(screen.locator("#presence-code")).to_have_text(f"{shown[:3]} {shown[3:]}")
        expect(screen.locator("#network")).to_have_text("")  # online: no warning
        rig.shot(screen, "kiosk-home")

        keypad = screen.get_by_role("group", name="Keypad for the PIN")
        for digit in "99999999" if by_pin["pickup"]["pin"] != "99999999" else "11111111":
            keypad.get_by_role("button", name=digit, exact=True).click()
        screen.get_by_role("button", name="Open", exact=True).click()
        expect(screen.get_by_role("alert").first).to_have_text(
            "This code does not open any compartment here. Check it and try again."
        )
        expect(screen.get_by_label("PIN (8 digits)")).to_have_value("")  # never left showing
        rig.shot(screen, "kiosk-wrong-pin")

        pin = by_pin["pickup"]["pin"]
        for digit in pin[:-1]:
            keypad.get_by_role("button", name=digit, exact=True).click()
        keypad.get_by_role("button", name="Delete the last character").click()
        for digit in pin[-2:]:
            keypad.get_by_role("button", name=digit, exact=True).click()
        expect(screen.get_by_label("PIN (8 digits)")).to_have_value(pin)
        screen.get_by_role("button", name="Open", exact=True).click()
        label = by_pin["compartment"]["label"]
        expect(screen.get_by_role("heading", name=f"Compartment {label} is open")).to_be_focused()
        expect(screen.locator("#opened-take")).to_have_text("Take your parcel and close the door.")
        expect(screen.locator("#opened-wall .cell.open")).to_have_text(label)
        expect(screen.locator("#opened-wall .position")).to_have_text(
            f"Column {label[0]}, row {label[1:]} from the top"
        )
        assert rig.door(label)
        rig.shot(screen, "kiosk-opened")

        rig.take_out(label)
        expect(screen.locator("#opened-take")).to_have_text("Thank you! The door is closed.")
        expect(screen.get_by_role("heading", name="Collect your parcel")).to_be_visible(
            timeout=10_000
        )

        # A scanner types the QR token as a burst ending in Enter, wherever the focus is.
        screen.get_by_role("heading", name="Collect your parcel").click()
        screen.evaluate("document.activeElement.blur()")
        screen.keyboard.type(by_qr["pickup"]["qr"])
        screen.keyboard.press("Enter")
        label = by_qr["compartment"]["label"]
        expect(screen.get_by_role("heading", name=f"Compartment {label} is open")).to_be_visible()
        assert rig.door(label)
        screen.get_by_role("button", name="Done").click()
        expect(screen.get_by_label("PIN (8 digits)")).to_have_value("")  # the burst left nothing

        # Someone types the same PIN again on a keyboard, slowly.
        screen.keyboard.type(pin, delay=120)
        screen.keyboard.press("Enter")
        expect(screen.get_by_role("alert").first).to_have_text("This code has already been used.")

        wait_for(lambda: rig.health()["queued"] == 0, "the kiosk to push the pickups")
        assert rig.statuses(by_pin, by_qr) == ["picked_up", "picked_up"]


def test_after_wrong_pins_the_phone_digits_open_in_polish_on_a_small_panel(
    ctx: Context, factory: Factory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with locker(ctx, factory, tmp_path, language="pl") as rig:
        parcel = rig.deposit(recipient={"phone": "+48 601 234 567"})
        pin = parcel["pickup"]["pin"]
        screen = rig.page(PANEL, clock=True)
        expect(screen.get_by_role("heading", name="Odbierz paczkę")).to_be_visible()
        rig.shot(screen, "panel-home-pl")
        wrong = [f"{(int(pin) + n) % 10**8:08d}" for n in range(1, 6)]
        for typed in wrong:
            screen.keyboard.type(typed)
            screen.keyboard.press("Enter")
            expect(screen.get_by_role("alert").first).to_contain_text("Ten kod nie otwiera")
        screen.keyboard.type(pin)
        screen.keyboard.press("Enter")
        expect(screen.get_by_role("heading", name="Jeszcze jeden krok")).to_be_visible()
        expect(screen.get_by_label("Ostatnie cyfry numeru telefonu (4)")).to_be_focused()
        rig.shot(screen, "panel-phone-step-pl")
        for digit in "4567":
            screen.get_by_role("group", name="Klawiatura do numeru telefonu").get_by_role(
                "button", name=digit, exact=True
            ).click()
        screen.get_by_role("button", name="Otwórz", exact=True).click()
        label = parcel["compartment"]["label"]
        expect(screen.get_by_role("heading", name=f"Skrytka {label} jest otwarta")).to_be_visible()
        expect(screen.locator("#opened-wall .position")).to_have_text(
            f"Kolumna {label[0]}, rząd {label[1:]} od góry"
        )
        assert rig.door(label)
        rig.shot(screen, "panel-opened-pl")

        # Still locked out, a PIN typed alone asks for the phone digits again.
        screen.get_by_role("button", name="Gotowe").click()
        screen.keyboard.type(wrong[0])
        screen.keyboard.press("Enter")
        expect(screen.get_by_role("heading", name="Jeszcze jeden krok")).to_be_visible()
        screen.get_by_role("button", name="Anuluj").click()

        # A PIN half typed and left is cleared after a minute.
        screen.get_by_role("group", name="Klawiatura do kodu PIN").get_by_role(
            "button", name="4", exact=True
        ).click()
        expect(screen.get_by_label("Kod PIN (8 cyfr)")).to_have_value("4")
        screen.clock.fast_forward(61_000)
        expect(screen.get_by_label("Kod PIN (8 cyfr)")).to_have_value("")

        # A visitor switches to English; left alone, the screen goes back to Polish.
        screen.get_by_role("link", name="English").click()
        expect(screen.get_by_role("heading", name="Collect your parcel")).to_be_visible()
        # The idle timer starts with the page's script: time runs on only once it has run.
        screen.wait_for_load_state("domcontentloaded")
        screen.clock.fast_forward(61_000)
        expect(screen.get_by_role("heading", name="Odbierz paczkę")).to_be_visible()


def test_a_courier_deposits_parcel_after_parcel_and_is_signed_out_when_idle(
    ctx: Context, factory: Factory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with locker(ctx, factory, tmp_path) as rig:
        code = rig.courier_code("Jan Kowalski")
        first = rig.announce()
        second = rig.announce(tracking_number=f"PX-{secrets.randbelow(10**9):09d}")
        screen = rig.page(PANEL, clock=True)
        screen.get_by_role("button", name="Courier").click()
        keypad = screen.get_by_role("group", name="Keypad for the courier code")
        for digit in "0000000000" if code != "0000000000" else "1111111111":
            keypad.get_by_role("button", name=digit, exact=True).click()
        screen.get_by_role("button", name="Sign in").click()
        expect(screen.get_by_role("alert").first).to_have_text(
            "This courier code is not valid here."
        )
        for digit in code:
            keypad.get_by_role("button", name=digit, exact=True).click()
        screen.get_by_role("button", name="Sign in").click()
        expect(screen.get_by_text("Signed in as Jan Kowalski")).to_be_attached()
        expect(screen.get_by_label("Tracking number", exact=True)).to_be_focused()

        # The first parcel is scanned (a burst ending in Enter), put in and its door shut.
        screen.keyboard.type(first["tracking_number"])
        screen.keyboard.press("Enter")
        done = screen.get_by_role("list", name="Doors opened on this visit").get_by_role("listitem")
        expect(done).to_have_count(1)
        label = wait_for(
            lambda: next((lbl for lbl in rig.addresses if rig.door(lbl)), None), "a door"
        )
        expect(screen.get_by_role("alert").first).to_have_text(
            f"Put parcel {first['tracking_number']} in compartment {label} and close the door."
        )
        expect(done.first).to_contain_text(f"{label} {first['tracking_number']} door open")
        expect(screen.locator("#courier-wall .cell.open")).to_have_text(label)
        rig.shot(screen, "panel-courier-first")
        rig.bank.load(rig.addresses[label])
        rig.bank.close_door(rig.addresses[label])
        expect(done.first).to_contain_text("deposited")

        # The second one's label is torn: typed on the screen's keyboard, shut empty.
        screen.get_by_role("button", name="Type a number").click()
        keyboard = screen.get_by_role("group", name="Keyboard for the tracking number")
        for key in second["tracking_number"]:
            keyboard.get_by_role("button", name=key, exact=True).click()
        rig.shot(screen, "panel-courier-typing")
        screen.get_by_role("button", name="Open a door").click()
        expect(done).to_have_count(2)
        opened = wait_for(
            lambda: next((lbl for lbl in rig.addresses if rig.door(lbl)), None), "a second door"
        )
        assert opened != label
        rig.bank.close_door(rig.addresses[opened])
        expect(done.first).to_contain_text(f"{opened} {second['tracking_number']}")
        expect(done.first).to_contain_text("closed empty: scan the parcel again")

        screen.keyboard.type("NOT-ANNOUNCED-1")
        screen.keyboard.press("Enter")
        expect(screen.get_by_role("alert").first).to_have_text(
            "No parcel with this tracking number is announced for this locker."
        )
        rig.shot(screen, "panel-courier-done")

        # Left alone, the screen warns, then signs the courier out.
        screen.clock.fast_forward(101_000)
        expect(screen.get_by_text("Still there? You will be signed out soon.")).to_be_visible()
        rig.shot(screen, "panel-courier-warning")
        screen.clock.fast_forward(20_000)
        expect(screen.get_by_role("alert").first).to_have_text("You have been signed out.")
        wait_for(
            lambda: httpx.get(f"{rig.kiosk.url}/api/state").json()["courier"] is None,
            "the kiosk to sign the courier out",
        )

        wait_for(lambda: rig.health()["queued"] == 0, "the kiosk to push the deposit")
        assert rig.statuses(first, second) == ["deposited", "announced"]


def test_the_link_pickup_shows_its_door_and_offline_the_pin_still_opens(
    ctx: Context, factory: Factory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with locker(ctx, factory, tmp_path) as rig:
        by_link, by_pin = rig.deposit(), rig.deposit()
        screen = rig.page(PHONE)
        presence = screen.locator("#presence-code")
        expect(presence).to_have_text(re.compile(r"^\d{3} \d{3}$"))
        rig.shot(screen, "phone-home")

        # The recipient types the code the screen shows on the link page on their phone.
        phone = rig.browser.new_context(viewport=PHONE, is_mobile=True).new_page()
        phone.goto(f"{rig.base}/p/{link_token(by_link)}")
        phone.get_by_label("Code shown on the locker's screen").fill(
            presence.inner_text().replace(" ", "")
        )
        phone.get_by_role("button", name="Open my compartment").click()
        expect(phone.get_by_role("status")).to_contain_text("is open")
        label = by_link["compartment"]["label"]
        expect(screen.get_by_role("heading", name=f"Compartment {label} is open")).to_be_visible()
        expect(screen.locator("#opened-wall .cell.open")).to_have_text(label)
        rig.shot(screen, "phone-link-opened")
        rig.take_out(label)
        expect(screen.get_by_role("heading", name="Collect your parcel")).to_be_visible(
            timeout=10_000
        )

        rig.stop_server()
        expect(screen.locator("#network")).to_have_text("Offline: PINs and QR codes still work")
        expect(presence).to_be_hidden()
        rig.shot(screen, "phone-offline")
        screen.keyboard.type(by_pin["pickup"]["pin"])
        screen.keyboard.press("Enter")
        label = by_pin["compartment"]["label"]
        expect(screen.get_by_role("heading", name=f"Compartment {label} is open")).to_be_visible()
        assert rig.door(label)
        rig.shot(screen, "phone-offline-opened")
