"""The kiosk's directory search: folded prefixes, ranking, what it shows, its limit."""

from __future__ import annotations

import pytest
from httpx import Response

from openlocker.core.clock import FrozenClock
from openlocker.directory import service
from openlocker.directory.search import fold, matches, query_words, search_key
from tests.directory.helpers import add_entry, building, events
from tests.factories import Factory


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Łucja Żółć", "lucja zolc"),
        ("  JOSÉ   García-Pérez ", "jose garcia perez"),
        ("Søren Kierkegaard", "soren kierkegaard"),
        ("Straße 12/3", "strasse 12 3"),
        ("Ærø", "aero"),
        ("Müller_Lüdenscheidt", "muller ludenscheidt"),
    ],
)
def test_fold_drops_case_accents_and_punctuation(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_every_word_must_begin_a_word_of_the_name_or_unit() -> None:
    key = search_key("Anna Maria Nowak", "12A")
    assert matches(key, query_words("now"))
    assert matches(key, query_words("an NOW"))
    assert matches(key, query_words("12"))
    assert not matches(key, query_words("owak"))  # inside a word, not its start
    assert not matches(key, query_words("nowak 13"))


def _search(
    factory: Factory, site_id: str, headers: dict[str, str], q: str, **params: int
) -> Response:
    return factory.client.get(
        f"/v1/sites/{site_id}/directory", params={"q": q, **params}, headers=headers
    )


def test_search_finds_active_entries_by_folded_prefix_and_shows_no_contact(
    factory: Factory,
) -> None:
    here = building(factory)
    lucja = add_entry(factory, here, display_name="Łucja Żółć", unit="12A", phone="600100200")
    add_entry(factory, here, display_name="Jan Żółtowski", unit="14")
    gone = add_entry(factory, here, display_name="Zofia Żółć", unit="12B", active=False)

    found = _search(factory, here.site_id, here.kiosk.headers, "ZOLC").json()
    assert found == {
        "items": [{"id": lucja["id"], "display_name": "Łucja Żółć", "unit": "12A"}],
        "more": False,
    }
    by_unit = _search(factory, here.site_id, here.kiosk.headers, "12a").json()["items"]
    assert [i["id"] for i in by_unit] == [lucja["id"]]
    both = _search(factory, here.site_id, here.kiosk.headers, "żół").json()["items"]
    assert {i["display_name"] for i in both} == {"Łucja Żółć", "Jan Żółtowski"}
    assert gone["id"] not in {i["id"] for i in both}
    # Punctuation alone (SQL's wildcards too) is nothing to search by.
    nothing = _search(factory, here.site_id, here.kiosk.headers, "%_")
    assert nothing.status_code == 422 and nothing.json()["code"] == "invalid_query"


def test_search_is_capped_and_says_there_is_more(factory: Factory) -> None:
    here = building(factory)
    for n in range(service.SEARCH_LIMIT + 2):
        add_entry(factory, here, display_name=f"Kowalski {n:02d}", unit=str(n))
    page = _search(factory, here.site_id, here.kiosk.headers, "kow").json()
    assert len(page["items"]) == service.SEARCH_LIMIT and page["more"] is True
    assert [i["display_name"] for i in page["items"]][:2] == ["Kowalski 00", "Kowalski 01"]
    assert (
        len(_search(factory, here.site_id, here.kiosk.headers, "kow", limit=3).json()["items"]) == 3
    )
    assert _search(factory, here.site_id, here.kiosk.headers, "kow", limit=99).status_code == 422


def test_only_the_sites_own_kiosk_searches_it(factory: Factory) -> None:
    here, there = building(factory), building(factory)
    add_entry(factory, here, display_name="Anna Nowak")
    for headers in (there.kiosk.headers, here.keeper.headers, factory.operator().headers):
        answer = _search(factory, here.site_id, headers, "anna")
        assert answer.status_code == 403 and answer.json()["code"] == "not_site_kiosk"
    assert _search(factory, there.site_id, there.kiosk.headers, "anna").json()["items"] == []


def test_searches_past_the_limit_are_refused_until_the_next_minute(
    factory: Factory, clock: FrozenClock
) -> None:
    here = building(factory)
    add_entry(factory, here, display_name="Anna Nowak")
    assert clock().second == 0  # the searches below fall in one minute
    for _ in range(service.SEARCHES_PER_MINUTE):
        assert _search(factory, here.site_id, here.kiosk.headers, "anna").status_code == 200
    for _ in range(3):
        refused = _search(factory, here.site_id, here.kiosk.headers, "anna")
        assert refused.status_code == 429 and refused.json()["code"] == "too_many_searches"
        assert refused.headers["Retry-After"] == "60"
    assert [name for name, _ in events(factory.ctx, "directory.search")] == [
        "directory.search_limited"
    ]
    clock.advance(seconds=60)
    assert _search(factory, here.site_id, here.kiosk.headers, "anna").status_code == 200


def test_the_unit_typed_whole_comes_first_then_names_that_begin_with_the_query(
    factory: Factory,
) -> None:
    here = building(factory)
    for name, unit in (
        ("Zenon Kowal", "12"),
        ("Adam Nowak", "120"),
        ("12 Angry Men Ltd", "3"),
        ("Beata Kowal", "12"),
        ("Łukasz Mały", "12"),
    ):
        add_entry(factory, here, display_name=name, unit=unit)
    found = _search(factory, here.site_id, here.kiosk.headers, "12").json()["items"]
    assert [i["display_name"] for i in found] == [
        "Beata Kowal",
        "Łukasz Mały",  # folded: after b, before z
        "Zenon Kowal",
        "12 Angry Men Ltd",
        "Adam Nowak",
    ]
