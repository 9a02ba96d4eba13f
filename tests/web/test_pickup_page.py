"""The recipient's pickup page: what the link shows, extending once, opening at the locker."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from openlocker.access.attempts import FREE_FAILURES
from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.parcels.service import expire_due
from openlocker.web import service
from tests.factories import Factory
from tests.web.helpers import kiosk_code, link_token, wrong_code


def _events(ctx: Context, name: str) -> list[dict[str, Any]]:
    with ctx.db.sql.transaction(write=False) as tx:
        rows = tx.all("SELECT data FROM audit_events WHERE name = :n ORDER BY seq", {"n": name})
        return [tx.json(row[0]) for row in rows]


def _outbox(ctx: Context, topic: str) -> list[dict[str, Any]]:
    with ctx.db.sql.transaction(write=False) as tx:
        rows = tx.all("SELECT payload FROM outbox WHERE topic = :t ORDER BY id", {"t": topic})
        return [tx.json(row[0]) for row in rows]


def test_the_page_shows_the_pin_qr_site_and_deadline(factory: Factory, client: TestClient) -> None:
    site = factory.site("M", name="Praga Koneser")
    parcel = factory.deposited(factory.org(), site, size="M")
    token = link_token(parcel)

    page = service.pickup_page(factory.ctx, token, "198.51.100.7")
    assert (page.state, page.pin, page.qr) == (
        "waiting",
        parcel["pickup"]["pin"],
        parcel["pickup"]["qr"],
    )

    answer = client.get(f"/p/{token}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    html = answer.text
    pin = parcel["pickup"]["pin"]
    assert f"{pin[:4]} {pin[4:]}" in html
    assert '<svg role="img" viewBox=' in html
    assert "Praga Koneser" in html and "Test street 1" in html
    assert "openstreetmap.org/?mlat=52.22970&amp;mlon=21.01220" in html
    assert "Compartment size M, number A1" in html
    assert "Pick up by Thursday, 8 January, 09:00 UTC" in html  # deposited Monday 09:00, +72 h
    assert f'action="/p/{token}/extend"' in html and f'action="/p/{token}/open"' in html


def test_the_page_speaks_the_recipients_language_else_the_browsers(
    factory: Factory, client: TestClient
) -> None:
    site = factory.site("SS")
    carrier = factory.org()
    polish = factory.deposited(carrier, site, recipient={"language": "pl"})
    anyone = factory.deposited(carrier, site)

    html = client.get(f"/p/{link_token(polish)}", headers={"Accept-Language": "en"}).text
    assert '<html lang="pl">' in html and "Twoja paczka czeka" in html
    assert "Odbierz do: czwartek, 8 stycznia, 09:00 UTC" in html
    html = client.get(f"/p/{link_token(anyone)}", headers={"Accept-Language": "de, pl;q=0.8"}).text
    assert "Twoja paczka czeka" in html
    html = client.get(f"/p/{link_token(anyone)}", headers={"Accept-Language": "pl;q=0, fr"}).text
    assert "Your parcel is waiting" in html


def test_extending_once_moves_the_deadline_and_the_credentials(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    site = factory.site("SS", dwell_hours=72)
    carrier = factory.org()
    parcel = factory.deposited(carrier, site)
    token = link_token(parcel)

    answer = client.post(f"/p/{token}/extend", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/p/{token}?done=extended"
    shown = client.get(answer.headers["location"]).text
    assert "Done: you have more time." in shown and "Give me" not in shown
    assert "Pick up by Friday, 9 January, 09:00 UTC" in shown

    again = client.post(f"/p/{token}/extend", follow_redirects=False)
    assert again.status_code == 409
    assert "The deadline has already been extended once." in again.text

    moved = client.get(f"/v1/parcels/{parcel['id']}", headers=carrier.headers).json()
    assert moved["dwell_deadline"] == "2026-01-09T09:00:00Z"
    assert moved["deadline_extended_at"] == "2026-01-05T09:00:00Z"
    assert _events(ctx, "parcel.deadline_extended") == [
        {"from": "2026-01-08T09:00:00+00:00", "to": "2026-01-09T09:00:00+00:00"}
    ]
    assert [w["event"] for w in _outbox(ctx, "webhook.carrier")][-1] == "parcel.deadline_extended"

    # Past the first deadline: the expiry job leaves it, the PIN and the page's new QR open it.
    clock.advance(hours=80)
    assert expire_due(ctx) == (0, 0)
    page = service.pickup_page(ctx, token, "198.51.100.7")
    assert page.pin == parcel["pickup"]["pin"] and page.qr != parcel["pickup"]["qr"]
    old_qr = factory.pick_up(site, parcel, by="qr")
    assert (old_qr.status_code, old_qr.json()["code"]) == (403, "code_expired")
    new_qr = factory.pick_up(site, {"pickup": {"qr": page.qr}}, by="qr")
    assert new_qr.status_code == 200, new_qr.text


def test_a_site_may_refuse_extensions(factory: Factory, client: TestClient, ctx: Context) -> None:
    site = factory.site("S")
    with ctx.db.sql.transaction() as tx:
        tx.execute("UPDATE sites SET extension_hours = 0 WHERE id = :id", {"id": site})
    token = link_token(factory.deposited(factory.org(), site))
    assert "Give me" not in client.get(f"/p/{token}").text
    answer = client.post(f"/p/{token}/extend")
    assert answer.status_code == 409 and "does not extend deadlines" in answer.text


def test_the_right_presence_code_opens_and_the_page_then_shows_nothing_reusable(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    site = factory.site("SS")
    parcel = factory.deposited(factory.org(), site)
    token = link_token(parcel)

    wrong = client.post(f"/p/{token}/open", data={"code": wrong_code(ctx, site)})
    assert wrong.status_code == 403 and "not the code on the locker" in wrong.text
    typo = client.post(f"/p/{token}/open", data={"code": "12a"})
    assert typo.status_code == 422 and "Type the 6 digits" in typo.text

    code = kiosk_code(ctx, site)
    opened = client.post(f"/p/{token}/open", data={"code": f"{code[:3]} {code[3:]}"})
    assert opened.status_code == 200  # followed the redirect to the page
    assert "Compartment A1 is open." in opened.text
    assert parcel["pickup"]["pin"][:4] not in opened.text and "<svg" not in opened.text

    assert _events(ctx, "parcel.picked_up")[-1] == {"method": "link"}
    assert _events(ctx, "pickup.failed") == [
        {"method": "link", "reason": "invalid_presence_code", "lockout_s": 0}
    ]
    assert _outbox(ctx, "kiosk.open_compartment")[-1]["label"] == "A1"
    with ctx.db.sql.transaction(write=False) as tx:
        assert tx.one(
            "SELECT active, used_kind, sealed FROM credential_sets WHERE parcel_id = :p",
            {"p": parcel["id"]},
        ) in [(False, "link", None), (0, "link", None)]
    again = client.get(f"/p/{token}").text
    assert "This parcel was picked up on Monday, 5 January, 09:00 UTC." in again
    assert factory.pick_up(site, parcel, by="pin").json()["code"] == "invalid_code"
    replay = client.post(f"/p/{token}/open", data={"code": kiosk_code(ctx, site)})
    assert replay.status_code == 403 and "picked up" in replay.text


def test_wrong_presence_codes_lock_the_link_out(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    site = factory.site("SS")
    parcel = factory.deposited(factory.org(), site)
    token = link_token(parcel)
    for _ in range(FREE_FAILURES):
        assert (
            client.post(f"/p/{token}/open", data={"code": wrong_code(ctx, site)}).status_code == 403
        )
    locked = client.post(f"/p/{token}/open", data={"code": kiosk_code(ctx, site)})
    assert locked.status_code == 429 and locked.headers["retry-after"] == "30"
    assert "Too many wrong codes. Try again in 30 seconds" in locked.text
    assert _events(ctx, "pickup.failed")[-1]["lockout_s"] == 30
    # The lockout is the link's: the PIN still works, and so does the link once it ends.
    clock.advance(seconds=30)
    assert client.post(f"/p/{token}/open", data={"code": kiosk_code(ctx, site)}).status_code == 200
    assert "Compartment A1 is open." in client.get(f"/p/{token}?done=opened").text


def test_a_presence_code_works_for_its_minute_and_the_next(
    ctx: Context, clock: FrozenClock
) -> None:
    from openlocker.access import presence

    site = "sit_X"
    clock.advance(seconds=59)
    shown = presence.current_code(ctx.keyring, site, clock())
    assert presence.is_present(ctx.keyring, site, shown.code, clock())
    clock.advance(seconds=1)
    assert presence.is_present(ctx.keyring, site, shown.code, clock())
    clock.advance(seconds=59)
    assert presence.is_present(ctx.keyring, site, shown.code, clock())
    clock.advance(seconds=1)
    assert not presence.is_present(ctx.keyring, site, shown.code, clock())


def test_the_kiosk_key_reads_its_sites_presence_code(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    site, other = factory.site("S"), factory.site("S")
    answer = client.get(f"/v1/sites/{site}/presence-code", headers=factory.kiosk(site).headers)
    assert answer.status_code == 200
    assert answer.json() == {
        "code": kiosk_code(ctx, site),
        "rotates_at": "2026-01-05T09:01:00Z",
        "accepted_until": "2026-01-05T09:02:00Z",
    }
    for key in (factory.kiosk(other), factory.org()):
        refused = client.get(f"/v1/sites/{site}/presence-code", headers=key.headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"


def test_a_replaced_or_expired_link_shows_nothing_reusable(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    site = factory.site("SS")
    carrier = factory.org()
    parcel = factory.deposited(carrier, site)
    reissued = client.post(f"/v1/parcels/{parcel['id']}/credentials", headers=carrier.headers)
    html = client.get(f"/p/{link_token(parcel)}").text
    assert "This link has been replaced" in html and "<svg" not in html
    assert parcel["pickup"]["pin"][:4] not in html
    fresh = link_token(reissued.json())
    assert service.pickup_page(ctx, fresh, "x").pin == reissued.json()["pickup"]["pin"]
    refused = client.post(f"/p/{link_token(parcel)}/open", data={"code": kiosk_code(ctx, site)})
    assert refused.status_code == 403 and "This link has been replaced" in refused.text

    clock.advance(hours=72)
    assert "The pickup time is over" in client.get(f"/p/{fresh}").text  # before the job runs
    expire_due(ctx)
    html = client.get(f"/p/{fresh}").text
    assert "The pickup time is over" in html and "<svg" not in html
    with ctx.db.sql.transaction(write=False) as tx:
        assert tx.scalar("SELECT COUNT(*) FROM credential_sets WHERE sealed IS NOT NULL") == 0


def test_unknown_links_get_a_page_and_a_flood_of_them_is_limited(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    site = factory.site("S")
    token = link_token(factory.deposited(factory.org(), site))
    for guess in range(service.MISSES_PER_MINUTE - 2):
        answer = client.get(f"/p/{guess:022d}")
        assert answer.status_code == 404 and "does not lead to a parcel" in answer.text
    # Tokens of any shape count, and so do unknown tokens sent to the page's forms.
    assert client.get("/p/short").status_code == 404
    assert client.post("/p/x/extend").status_code == 404
    limited = client.get("/p/" + "A" * 22)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    assert "Too many unknown links" in limited.text
    assert client.post(f"/p/{'B' * 22}/open", data={"code": "123456"}).status_code == 429
    # A known link is never refused for its network's misses.
    assert client.get(f"/p/{token}").status_code == 200
    clock.advance(seconds=60)
    assert client.get("/p/" + "A" * 22).status_code == 404
    # The JSON API answers its own 404s as it always did.
    assert client.get("/v1/nothing").headers["content-type"] == "application/problem+json"


def test_misses_stay_in_a_bounded_table(ctx: Context, monkeypatch: Any) -> None:
    monkeypatch.setattr(service, "SLOTS", 8)
    for client_number in range(100):
        service.count_miss(ctx, f"203.0.113.{client_number}")
    with ctx.db.sql.transaction(write=False) as tx:
        slots = tx.all("SELECT slot, misses FROM link_misses")
    assert sorted(slot for slot, _ in slots) == list(range(8))
    # Past the limit a slot's count stops growing: a flood writes nothing more.
    assert max(misses for _, misses in slots) == service.MISSES_PER_MINUTE + 1
