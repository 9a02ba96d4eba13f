"""SCIM 2.0 as Okta and Microsoft Entra ID speak it: the requests they send, in order.

The request bodies follow the providers' published examples (Okta's SCIM 2.0 reference,
Microsoft's "Develop a SCIM endpoint" tutorial and its list of SCIM compliance fixes,
with and without the ``aadOptscim062020`` flag)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx import Response
from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.directory.scim import ENTERPRISE, ERROR, EXTENSION, LIST, PATCH_OP, USER
from tests.directory.helpers import Building, add_entry, building, events
from tests.factories import Factory

SCIM = "application/scim+json"


class Idp:
    """An identity provider's client for one site's SCIM base URL."""

    def __init__(self, factory: Factory, headers: dict[str, str], base: str = "/scim/v2") -> None:
        self.client, self.headers, self.base = factory.client, headers, base

    def __call__(self, method: str, path: str, body: Any = None, **options: Any) -> Response:
        headers = {**self.headers, "Content-Type": SCIM, **options.pop("headers", {})}
        content = None if body is None else json.dumps(body)
        answer = self.client.request(
            method, self.base + path, content=content, headers=headers, **options
        )
        if answer.status_code != 204:
            assert answer.headers["content-type"] == SCIM, answer.text
        return answer


def _error(answer: Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    return body


def _search(factory: Factory, here: Building, q: str) -> list[str]:
    answer = factory.client.get(
        f"/v1/sites/{here.site_id}/directory", params={"q": q}, headers=here.kiosk.headers
    )
    return [item["display_name"] for item in answer.json()["items"]]


OKTA_USER = {
    "schemas": [USER],
    "userName": "test.user@example.com",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "test.user@example.com", "type": "work"}],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": True,
}


def test_okta_provisions_updates_and_deactivates_a_user(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    okta = Idp(factory, here.keeper.headers)
    query = {"filter": 'userName eq "test.user@example.com"', "startIndex": "1", "count": "100"}
    none = okta("GET", "/Users", params=query)
    assert none.status_code == 200
    assert none.json() == {
        "schemas": [LIST],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }

    created = okta("POST", "/Users", OKTA_USER)
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["schemas"] == [USER] and user["id"].startswith("dir_")
    assert (
        user["userName"] == "test.user@example.com"
        and user["externalId"] == OKTA_USER["externalId"]
    )
    assert user["displayName"] == "Test User" and user["active"] is True
    assert user["preferredLanguage"] == "en-US"
    assert user["emails"] == [{"value": "test.user@example.com", "type": "work", "primary": True}]
    assert "password" not in user and "groups" not in user
    assert created.headers["Location"] == user["meta"]["location"]
    assert user["meta"]["location"].endswith(f"/scim/v2/Users/{user['id']}")
    assert created.headers["ETag"] == user["meta"]["version"] == 'W/"1"'

    assert okta("GET", f"/Users/{user['id']}").json() == user
    found = okta("GET", "/Users", params=query).json()
    assert found["totalResults"] == 1 and found["Resources"] == [user]

    okta_put = {
        **OKTA_USER,
        "id": user["id"],
        "name": {"givenName": "Tess", "familyName": "User"},
        "displayName": "Tess User",
        "phoneNumbers": [{"value": "+48 600 100 200", "type": "mobile"}],
    }
    replaced = okta("PUT", f"/Users/{user['id']}", okta_put)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["phoneNumbers"][0]["value"] == "+48600100200"
    assert replaced.json()["meta"]["version"] == 'W/"2"'
    assert _search(factory, here, "tess") == ["Tess User"]

    deactivate = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }
    off = okta("PATCH", f"/Users/{user['id']}", deactivate)
    assert off.status_code == 200 and off.json()["active"] is False
    assert _search(factory, here, "tess") == []
    deactivate["Operations"][0]["value"] = {"active": True}
    assert okta("PATCH", f"/Users/{user['id']}", deactivate).json()["active"] is True

    with ctx.db.engine.connect() as conn:
        dump = str(conn.execute(text("SELECT * FROM directory_entries")).all())
    assert "1mz050nq" not in dump  # a password sent is never kept
    assert [n for n, _ in events(ctx, "directory.")] == [
        "directory.entry_created",
        "directory.entry_updated",
        "directory.entry_deactivated",
        "directory.entry_updated",
    ]


def test_okta_pages_through_every_user(factory: Factory) -> None:
    here = building(factory)
    okta = Idp(factory, here.keeper.headers)
    ids = [okta("POST", "/Users", {"userName": f"u{n}@example.com"}).json()["id"] for n in range(5)]
    pages = [
        okta("GET", "/Users", params={"startIndex": str(start), "count": "2"}).json()
        for start in (1, 3, 5)
    ]
    assert [p["totalResults"] for p in pages] == [5, 5, 5]
    assert [p["startIndex"] for p in pages] == [1, 3, 5]
    assert [r["id"] for p in pages for r in p["Resources"]] == ids
    counted = okta("GET", "/Users", params={"count": "0"}).json()
    assert counted["totalResults"] == 5 and counted["Resources"] == []


ENTRA_USER = {
    "schemas": [USER, ENTERPRISE],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
    "active": True,
    "emails": [
        {
            "primary": True,
            "type": "work",
            "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com",
        }
    ],
    "meta": {"resourceType": "User"},
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName",
    },
    "roles": [],
    ENTERPRISE: {"department": "Finance 4th floor", "employeeNumber": "701984"},
}


def test_entra_id_provisions_and_patches_a_user(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    entra = Idp(factory, here.keeper.headers)
    created = entra("POST", "/Users", ENTRA_USER)
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["displayName"] == "givenName familyName"
    assert user["schemas"] == [USER, EXTENSION] and user[EXTENSION] == {"unit": "Finance 4th floor"}
    uid = user["id"]

    by_name = entra("GET", "/Users", params={"filter": f'userName eq "{ENTRA_USER["userName"]}"'})
    assert [r["id"] for r in by_name.json()["Resources"]] == [uid]
    by_external = entra(
        "GET", "/Users", params={"filter": f'externalId eq "{ENTRA_USER["externalId"]}"'}
    )
    assert [r["id"] for r in by_external.json()["Resources"]] == [uid]
    address = ENTRA_USER["emails"][0]["value"].upper()
    by_email = entra(
        "GET", "/Users", params={"filter": f'emails[type eq "work"].value eq "{address}"'}
    )
    assert [r["id"] for r in by_email.json()["Resources"]] == [uid]
    both = entra(
        "GET",
        "/Users",
        params={"filter": f'userName eq "{ENTRA_USER["userName"]}" and active eq true'},
    )
    assert both.json()["totalResults"] == 1

    # "Update User [Multi-valued properties]", as the tutorial sends it.
    multi = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "updatedEmail@microsoft.com",
            },
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ],
    }
    patched = entra("PATCH", f"/Users/{uid}", multi).json()
    assert patched["emails"] == [
        {"value": "updatedemail@microsoft.com", "type": "work", "primary": True}
    ]
    assert patched["name"]["familyName"] == "updatedFamilyName"

    # "Update User [Single-valued properties]".
    single = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "userName", "value": "5b50642d@testuser.com"}],
    }
    assert entra("PATCH", f"/Users/{uid}", single).json()["userName"] == "5b50642d@testuser.com"

    # Several attributes at once, in the form sent with aadOptscim062020.
    flagged = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "replace",
                "value": {
                    "displayName": "Bjfe Unua",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    f"{ENTERPRISE}:employeeNumber": "Aklq",
                    f"{ENTERPRISE}:department": "Legal",
                },
            },
            {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "600 100 200"},
            {"op": "Add", "path": "nickName", "value": "Babs"},
        ],
    }
    patched = entra("PATCH", f"/Users/{uid}", flagged).json()
    assert patched["displayName"] == "Bjfe Unua" and patched["name"] == {
        "givenName": "Kkom",
        "familyName": "Unua",
    }
    assert patched["phoneNumbers"] == [{"value": "+48600100200", "type": "mobile", "primary": True}]
    assert patched[EXTENSION] == {"unit": "Legal"}  # a department changed moves the unit
    assert "nickName" not in patched
    assert _search(factory, here, "legal") == ["Bjfe Unua"]

    ours = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": f"{EXTENSION}:unit", "value": "B-12"}],
    }
    assert entra("PATCH", f"/Users/{uid}", ours).json()[EXTENSION] == {"unit": "B-12"}
    removed = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Remove", "path": f"{EXTENSION}:unit"},
            {"op": "remove", "path": 'phoneNumbers[type eq "mobile"]'},
        ],
    }
    stripped = entra("PATCH", f"/Users/{uid}", removed).json()
    assert EXTENSION not in stripped and "phoneNumbers" not in stripped

    # "Disable User", without the flag: op capitalised and false as a string.
    disable = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    assert entra("PATCH", f"/Users/{uid}", disable).json()["active"] is False
    disabled = entra("GET", "/Users", params={"filter": 'userName eq "5b50642d@testuser.com"'})
    assert disabled.json()["Resources"][0]["active"] is False

    assert entra("DELETE", f"/Users/{uid}").status_code == 204
    _error(entra("GET", f"/Users/{uid}"), 404)
    _error(entra("DELETE", f"/Users/{uid}"), 404)
    assert events(ctx, "directory.entry_deleted")[0][1]["source"] == "scim"


def test_a_put_without_units_keeps_the_one_set(factory: Factory) -> None:
    here = building(factory)
    idp = Idp(factory, here.keeper.headers)
    user = idp("POST", "/Users", {"userName": "a@example.com", EXTENSION: {"unit": "7"}}).json()
    again = idp("PUT", f"/Users/{user['id']}", {"userName": "a@example.com", "displayName": "A"})
    assert again.json()[EXTENSION] == {"unit": "7"}
    cleared = idp("PUT", f"/Users/{user['id']}", {"userName": "a@example.com", EXTENSION: {}})
    assert EXTENSION not in cleared.json()


def test_a_csv_entry_answers_to_its_email_and_the_idp_adopts_it(factory: Factory) -> None:
    here = building(factory)
    entry = add_entry(factory, here, email="anna@example.com", display_name="Anna", unit="3")
    idp = Idp(factory, here.keeper.headers)
    found = idp("GET", "/Users", params={"filter": 'userName eq "Anna@Example.com"'}).json()
    assert [r["id"] for r in found["Resources"]] == [entry["id"]]
    assert found["Resources"][0]["userName"] == "anna@example.com"
    taken = idp("POST", "/Users", {"userName": "anna@example.com"})
    _error(taken, 409, "uniqueness")
    patch = {"Operations": [{"op": "replace", "value": {"externalId": "aad-1"}}]}
    adopted = idp("PATCH", f"/Users/{entry['id']}", patch).json()
    assert adopted["externalId"] == "aad-1" and adopted[EXTENSION] == {"unit": "3"}
    listed = factory.client.get(
        f"/v1/sites/{here.site_id}/directory/entries/{entry['id']}", headers=here.keeper.headers
    ).json()
    assert listed["source"] == "scim" and listed["user_name"] == "anna@example.com"


def test_scim_errors(factory: Factory) -> None:
    here, there = building(factory), building(factory)
    idp = Idp(factory, here.keeper.headers)
    user = idp("POST", "/Users", {"userName": "a@example.com"}).json()

    missing = Idp(factory, {})("GET", "/Users")
    _error(missing, 401)
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    _error(Idp(factory, {"Authorization": "Bearer nope"})("GET", "/Users"), 401)
    _error(Idp(factory, here.kiosk.headers)("GET", "/Users"), 403)
    _error(Idp(factory, factory.operator().headers)("GET", "/Users"), 403)
    _error(
        Idp(factory, there.keeper.headers, f"/scim/v2/sites/{here.site_id}")("GET", "/Users"), 403
    )

    _error(idp("POST", "/Users", {"userName": "A@EXAMPLE.COM"}), 409, "uniqueness")
    _error(idp("POST", "/Users", {"displayName": "no userName"}), 400, "invalidValue")
    bad_phone = idp(
        "POST", "/Users", {"userName": "b@example.com", "phoneNumbers": [{"value": "12"}]}
    )
    assert "phoneNumbers" in _error(bad_phone, 400, "invalidValue")["detail"]
    _error(
        idp("POST", "/Users", {"userName": "nobody"}), 400, "invalidValue"
    )  # no way to reach them
    _error(idp("POST", "/Users", {"userName": 5}), 400, "invalidValue")
    _error(idp("POST", "/Users", ["not", "an", "object"]), 400, "invalidSyntax")
    raw = factory.client.post(
        "/scim/v2/Users", content=b"{nope", headers={**here.keeper.headers, "Content-Type": SCIM}
    )
    _error(raw, 400, "invalidSyntax")

    for bad_filter in (
        'userName co "a"',
        'name.givenName eq "a"',
        "userName eq",
        'active eq "yes"',
        "userName eq 5",
        '(userName eq "a")',
    ):
        _error(idp("GET", "/Users", params={"filter": bad_filter}), 400, "invalidFilter")
    _error(idp("GET", "/Users", params={"startIndex": "first"}), 400, "invalidValue")

    uid = user["id"]
    for operations, scim_type in (
        ([{"op": "jump", "path": "active", "value": False}], "invalidSyntax"),
        ([{"op": "remove"}], "noTarget"),
        ([{"op": "replace", "path": "emails[type eq", "value": "x"}], "invalidPath"),
        (
            [{"op": "replace", "path": 'emails[type ne "work"].value', "value": "x"}],
            "invalidFilter",
        ),
        ([{"op": "replace", "value": "not an object"}], "invalidValue"),
        ([{"op": "replace", "path": "active", "value": "maybe"}], "invalidValue"),
        (
            [{"op": "replace", "path": "emails", "value": [{"value": "not-an-address"}]}],
            "invalidValue",
        ),
        ([], "invalidSyntax"),
    ):
        _error(
            idp("PATCH", f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": operations}),
            400,
            scim_type,
        )
    assert idp("GET", f"/Users/{uid}").json()["meta"]["version"] == 'W/"1"'  # nothing changed

    stale = idp(
        "PUT", f"/Users/{uid}", {"userName": "a@example.com"}, headers={"If-Match": 'W/"7"'}
    )
    _error(stale, 412)
    fresh = idp(
        "PUT",
        f"/Users/{uid}",
        {"userName": "a@example.com", "displayName": "A"},
        headers={"If-Match": 'W/"1"'},
    )
    assert fresh.status_code == 200 and fresh.headers["ETag"] == 'W/"2"'
    _error(idp("DELETE", f"/Users/{uid}", headers={"If-Match": 'W/"1"'}), 412)
    _error(idp("GET", "/Users/dir_missing"), 404)
    _error(idp("GET", "/Groups"), 404)
    _error(
        Idp(factory, factory.operator().headers, "/scim/v2/sites/sit_missing")("GET", "/Users"), 404
    )


def test_a_site_base_url_serves_any_keeper_of_the_site(factory: Factory) -> None:
    here = building(factory)
    admin = Idp(factory, factory.operator().headers, f"/scim/v2/sites/{here.site_id}")
    user = admin("POST", "/Users", {"userName": "a@example.com"})
    assert user.status_code == 201
    assert f"/scim/v2/sites/{here.site_id}/Users/" in user.json()["meta"]["location"]
    keeper = Idp(factory, here.keeper.headers)
    assert keeper("GET", f"/Users/{user.json()['id']}").status_code == 200


@pytest.mark.parametrize("base", ["/scim/v2", "/scim/v2/sites/sit_any"])
def test_discovery(factory: Factory, base: str) -> None:
    idp = Idp(factory, {}, base)
    config = idp("GET", "/ServiceProviderConfig").json()
    assert config["patch"]["supported"] is True and config["bulk"]["supported"] is False
    assert config["filter"] == {"supported": True, "maxResults": 200}
    types = idp("GET", "/ResourceTypes").json()
    assert types["Resources"][0]["endpoint"] == "/Users"
    schemas = idp("GET", "/Schemas").json()
    assert {s["id"] for s in schemas["Resources"]} == {USER, EXTENSION}
    assert idp("GET", f"/Schemas/{EXTENSION}").json()["attributes"][0]["name"] == "unit"
