"""The operator's directory API: entries written, validated, unique per site, audited."""

from __future__ import annotations

from sqlalchemy import text

from openlocker.core.context import Context
from tests.directory.helpers import add_entry, building, events
from tests.factories import Factory


def _entries(where: str) -> str:
    return f"/v1/sites/{where}/directory/entries"


def test_an_entry_is_written_read_changed_and_deleted(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    created = add_entry(
        factory,
        here,
        display_name="  Anna Nowak ",
        unit="12A",
        email="Anna.Nowak@Example.COM",
        phone="600 100 200",
        language="pl",
        external_id="R-17",
    )
    assert created["display_name"] == "Anna Nowak"
    assert created["email"] == "anna.nowak@example.com" and created["phone"] == "+48600100200"
    assert created["source"] == "api" and created["active"] is True and created["version"] == 1
    url = f"{_entries(here.site_id)}/{created['id']}"
    headers = here.keeper.headers
    assert factory.client.get(url, headers=headers).json() == created

    changed = factory.client.patch(url, json={"unit": None, "active": False}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert "unit" not in changed.json() and changed.json()["active"] is False
    assert changed.json()["version"] == 2 and changed.json()["email"] == created["email"]

    listed = factory.client.get(_entries(here.site_id), params={"active": False}, headers=headers)
    assert [e["id"] for e in listed.json()["items"]] == [created["id"]]

    assert factory.client.delete(url, headers=headers).status_code == 204
    gone = factory.client.get(url, headers=headers)
    assert gone.status_code == 404 and gone.json()["code"] == "entry_not_found"
    assert [name for name, _ in events(ctx, "directory.")] == [
        "directory.entry_created",
        "directory.entry_deactivated",
        "directory.entry_deleted",
    ]
    # The audit trail names the entry and the fields, never the person.
    with ctx.db.engine.connect() as conn:
        dump = " ".join(
            str(row) for row in conn.execute(text("SELECT data FROM audit_events")).all()
        )
    assert created["id"] in dump and "unit" in dump
    for personal in ("Nowak", "anna.nowak", "600100200", "R-17"):
        assert personal not in dump
    with ctx.db.engine.connect() as conn:
        left = conn.execute(text("SELECT COUNT(*) FROM directory_entries")).scalar_one()
    assert left == 0


def test_bad_entries_are_refused_naming_the_field(factory: Factory) -> None:
    here = building(factory)
    url, headers = _entries(here.site_id), here.keeper.headers
    cases = [
        ({"display_name": "A", "phone": "12"}, "phone"),
        ({"display_name": "A", "email": "not-an-address"}, "email"),
        ({"display_name": "A"}, "email or a phone"),
        ({"display_name": "   ", "email": "a@example.com"}, "display_name"),
        ({"display_name": "A", "email": "a@example.com", "unit": "x" * 41}, "unit"),
        ({"display_name": "A", "email": "a@example.com", "language": "polish"}, "language"),
        ({"display_name": "A", "email": "a@example.com", "pin": "1234"}, "pin"),
    ]
    for body, named in cases:
        refused = factory.client.post(url, json=body, headers=headers)
        assert refused.status_code == 422, (body, refused.text)
        assert named in refused.json()["detail"], (body, refused.json())
    entry = add_entry(factory, here, email="a@example.com")
    emptied = factory.client.patch(f"{url}/{entry['id']}", json={"email": None}, headers=headers)
    assert emptied.status_code == 422 and "email or a phone" in emptied.json()["detail"]
    nulled = factory.client.patch(f"{url}/{entry['id']}", json={"active": None}, headers=headers)
    assert nulled.status_code == 422
    assert factory.client.get(url, headers=headers).json()["items"][0]["version"] == 1


def test_email_and_external_id_are_unique_per_site(factory: Factory) -> None:
    here, there = building(factory), building(factory)
    first = add_entry(factory, here, email="anna@example.com", external_id="R-1")
    for body, code in (
        ({"display_name": "B", "email": "ANNA@example.com"}, "duplicate_email"),
        (
            {"display_name": "B", "email": "b@example.com", "external_id": "R-1"},
            "duplicate_external_id",
        ),
    ):
        refused = factory.client.post(
            _entries(here.site_id), json=body, headers=here.keeper.headers
        )
        assert refused.status_code == 409 and refused.json()["code"] == code
        assert refused.json()["entry_id"] == first["id"]
    # Another site's directory is another directory.
    add_entry(factory, there, email="anna@example.com", external_id="R-1")
    second = add_entry(factory, here, email="b@example.com")
    moved = factory.client.patch(
        f"{_entries(here.site_id)}/{second['id']}",
        json={"email": "anna@example.com"},
        headers=here.keeper.headers,
    )
    assert moved.status_code == 409 and moved.json()["code"] == "duplicate_email"


def test_only_keepers_of_the_sites_directory_may_touch_it(factory: Factory) -> None:
    here, there = building(factory), building(factory)
    entry = add_entry(factory, here)
    carrier = factory.org()
    for headers in (there.keeper.headers, here.kiosk.headers, carrier.headers):
        for method, url in (
            ("GET", _entries(here.site_id)),
            ("GET", f"{_entries(here.site_id)}/{entry['id']}"),
            ("DELETE", f"{_entries(here.site_id)}/{entry['id']}"),
        ):
            answer = factory.client.request(method, url, headers=headers)
            assert answer.status_code == 403, (method, url, answer.text)
            assert answer.json()["code"] == "not_site_directory"
    # An operator (admin) keeps every directory; another site's entry is not this site's.
    admin = factory.operator().headers
    assert (
        factory.client.get(f"{_entries(here.site_id)}/{entry['id']}", headers=admin).status_code
        == 200
    )
    assert (
        factory.client.get(f"{_entries(there.site_id)}/{entry['id']}", headers=admin).status_code
        == 404
    )
    missing = factory.client.get(_entries("sit_missing"), headers=admin)
    assert missing.status_code == 404 and missing.json()["code"] == "site_not_found"


def test_lists_page_newest_first_and_filter(factory: Factory) -> None:
    here = building(factory)
    made = [add_entry(factory, here, display_name=f"Resident {n}", unit=f"{n}") for n in range(5)]
    headers = here.keeper.headers
    first = factory.client.get(_entries(here.site_id), params={"limit": 3}, headers=headers).json()
    assert [e["id"] for e in first["items"]] == [e["id"] for e in made[::-1][:3]]
    rest = factory.client.get(
        _entries(here.site_id), params={"limit": 3, "cursor": first["next_cursor"]}, headers=headers
    ).json()
    assert [e["id"] for e in rest["items"]] == [made[1]["id"], made[0]["id"]]
    assert rest["next_cursor"] is None
    by_q = factory.client.get(_entries(here.site_id), params={"q": "resid 3"}, headers=headers)
    assert [e["id"] for e in by_q.json()["items"]] == [made[3]["id"]]
    by_unit = factory.client.get(_entries(here.site_id), params={"unit": "4"}, headers=headers)
    assert [e["id"] for e in by_unit.json()["items"]] == [made[4]["id"]]
    by_email = factory.client.get(
        _entries(here.site_id), params={"email": made[2]["email"].upper()}, headers=headers
    )
    assert [e["id"] for e in by_email.json()["items"]] == [made[2]["id"]]
