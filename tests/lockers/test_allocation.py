"""Which compartment a parcel gets, and where else to send it when its site is full."""

from __future__ import annotations

import pytest

from openlocker.core.errors import InvalidInput
from openlocker.lockers.allocation import (
    ACCESSIBLE_MAX_FLOOR_MM,
    Candidate,
    ParcelNeed,
    SiteRoom,
    SizeClass,
    fits,
    fitting_sizes,
    haversine_m,
    is_too_large,
    nearest_with_room,
    need_dimensions,
    rank_candidates,
)

S = SizeClass("S", 380, 80, 640)
M = SizeClass("M", 380, 190, 640)
L = SizeClass("L", 380, 410, 640)
XL = SizeClass("XL", 600, 600, 640)
SIZES = {s.code: s for s in (S, M, L, XL)}


def compartment(
    label: str,
    size: SizeClass = M,
    *,
    temperature: str = "ambient",
    floor: int = 600,
    uses: int = 0,
) -> Candidate:
    return Candidate(f"cmp_{label}", label, size, temperature, floor, uses)


def measured(*dims: int, temperature: str = "ambient", accessible: bool = False) -> ParcelNeed:
    assert len(dims) == 3
    return ParcelNeed((dims[0], dims[1], dims[2]), None, temperature, accessible)


def declared(code: str, **kwargs: object) -> ParcelNeed:
    return ParcelNeed(None, code, **kwargs)  # type: ignore[arg-type]


# --- fitting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dims",
    [(380, 80, 640), (640, 380, 80), (80, 640, 380), (640, 80, 380), (100, 50, 600)],
)
def test_a_box_fits_in_any_orientation(dims: tuple[int, int, int]) -> None:
    assert fits(dims, S)


@pytest.mark.parametrize("dims", [(381, 80, 640), (380, 81, 640), (650, 10, 10), (90, 90, 90)])
def test_a_box_one_millimetre_too_big_on_any_side_does_not_fit(dims: tuple[int, int, int]) -> None:
    assert not fits(dims, S)


def test_a_flat_long_parcel_fits_only_when_turned() -> None:
    # 600 mm long does not fit S's 380 mm width, but fits its 640 mm depth.
    assert fits((600, 70, 300), S)


def test_declared_size_stands_for_its_inner_dimensions() -> None:
    assert need_dimensions(declared("L"), SIZES) == (380, 410, 640)
    assert [s.code for s in fitting_sizes(declared("M"), SIZES.values())] == ["M", "L", "XL"]


def test_measured_dimensions_win_over_a_declared_size() -> None:
    need = ParcelNeed((100, 50, 200), "XL")
    assert need_dimensions(need, SIZES) == (100, 50, 200)
    assert fitting_sizes(need, SIZES.values())[0] == S


def test_unknown_declared_size_is_refused_with_its_code() -> None:
    with pytest.raises(InvalidInput) as refused:
        need_dimensions(declared("XXL"), SIZES)
    assert refused.value.code == "unknown_size"
    assert refused.value.status == 422


def test_a_parcel_without_size_or_dimensions_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        need_dimensions(ParcelNeed(None, None), SIZES)
    assert refused.value.code == "size_required"


@pytest.mark.parametrize("dims", [(0, 10, 10), (10, -5, 10)])
def test_non_positive_dimensions_are_refused(dims: tuple[int, int, int]) -> None:
    with pytest.raises(InvalidInput) as refused:
        need_dimensions(ParcelNeed(dims, None), SIZES)
    assert refused.value.code == "invalid_dimensions"


def test_fitting_sizes_are_smallest_first_whatever_the_input_order() -> None:
    assert fitting_sizes(measured(300, 150, 500), [XL, L, S, M]) == [M, L, XL]


def test_equal_volumes_are_ordered_by_code() -> None:
    tall = SizeClass("T", 190, 380, 640)  # M turned on its side: same volume
    assert fitting_sizes(measured(100, 100, 100), [tall, M]) == [M, tall]


def test_too_large_means_no_size_class_at_all() -> None:
    assert is_too_large(measured(700, 700, 700), SIZES.values())
    assert not is_too_large(measured(640, 600, 600), SIZES.values())
    assert is_too_large(measured(10, 10, 10), [])


# --- ranking compartments --------------------------------------------------------------------


def test_smallest_fitting_compartment_comes_first() -> None:
    pool = [compartment("A1", XL), compartment("A2", L), compartment("A3", M), compartment("A4", S)]
    ranked = rank_candidates(measured(300, 150, 500), pool)
    assert [c.label for c in ranked] == ["A3", "A2", "A1"]


def test_equal_sizes_go_to_the_least_used_door_then_by_label() -> None:
    pool = [
        compartment("B2", uses=7),
        compartment("B3", uses=2),
        compartment("B1", uses=2),
        compartment("C1", L, uses=0),
    ]
    ranked = rank_candidates(declared("M"), pool)
    assert [c.label for c in ranked] == ["B1", "B3", "B2", "C1"]


def test_temperature_must_match_exactly() -> None:
    pool = [
        compartment("F1", temperature="frozen"),
        compartment("C1", temperature="chilled"),
        compartment("A1"),
    ]
    assert [c.label for c in rank_candidates(declared("M", temperature="chilled"), pool)] == ["C1"]
    assert [c.label for c in rank_candidates(declared("M"), pool)] == ["A1"]
    assert rank_candidates(declared("M", temperature="frozen"), [compartment("A1")]) == []


def test_accessible_parcels_only_get_compartments_within_reach() -> None:
    pool = [
        compartment("TOP", S, floor=1500),
        compartment("EDGE", M, floor=ACCESSIBLE_MAX_FLOOR_MM),
        compartment("HIGH", M, floor=ACCESSIBLE_MAX_FLOOR_MM + 1),
    ]
    accessible = rank_candidates(measured(100, 50, 100, accessible=True), pool)
    assert [c.label for c in accessible] == ["EDGE"]
    # Without the need, the smallest (high) door wins.
    assert rank_candidates(measured(100, 50, 100), pool)[0].label == "TOP"


def test_a_parcel_too_big_for_every_free_compartment_gets_none() -> None:
    pool = [compartment("A1", L), compartment("A2", S)]
    assert rank_candidates(measured(500, 500, 500), pool) == []


def test_a_declared_size_without_a_free_compartment_of_that_size_uses_the_size_table() -> None:
    only_large = [compartment("L1", L), compartment("XL1", XL)]
    ranked = rank_candidates(declared("M"), only_large, sizes=SIZES)
    assert [c.label for c in ranked] == ["L1", "XL1"]
    # XL parcel does not fit an L compartment.
    assert [c.label for c in rank_candidates(declared("XL"), only_large, sizes=SIZES)] == ["XL1"]


def test_a_declared_size_unknown_to_table_and_candidates_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        rank_candidates(declared("M"), [compartment("L1", L)])
    assert refused.value.code == "unknown_size"


# --- other sites -----------------------------------------------------------------------------

WARSAW = (52.2297, 21.0122)
KRAKOW = (50.0647, 19.9450)


def test_haversine_matches_the_warsaw_krakow_distance() -> None:
    metres = haversine_m(*WARSAW, *KRAKOW)
    assert 251_000 < metres < 253_000
    assert haversine_m(*KRAKOW, *WARSAW) == pytest.approx(metres)
    assert haversine_m(*WARSAW, *WARSAW) == 0.0


def test_haversine_of_one_degree_of_latitude_is_about_111_km() -> None:
    assert haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_195, abs=1)


def test_antipodes_are_half_the_circumference_apart() -> None:
    assert haversine_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(20_015_115, abs=1)


def test_nearest_with_room_skips_full_sites_and_sorts_by_distance() -> None:
    here = (52.2297, 21.0122)
    sites = [
        SiteRoom("sit_far", "Far", 52.2297, 21.1122, True),
        SiteRoom("sit_full", "Full next door", 52.2298, 21.0122, False),
        SiteRoom("sit_near", "Near", 52.2307, 21.0122, True),
        SiteRoom("sit_mid", "Mid", 52.2397, 21.0122, True),
        SiteRoom("sit_farther", "Farther", 52.3297, 21.0122, True),
    ]
    nearest = nearest_with_room(*here, sites)
    assert [(room.site_id, metres) for room, metres in nearest] == [
        ("sit_near", 111),
        ("sit_mid", 1112),
        ("sit_far", 6811),  # 0.1 degree of longitude at 52.23 N: 111.195 km x cos(52.23)
    ]
    assert all(isinstance(metres, int) for _, metres in nearest)


def test_nearest_with_room_honours_the_limit_and_breaks_ties_by_id() -> None:
    sites = [SiteRoom(f"sit_{n}", n, 0.0, 0.001, True) for n in "cab"]
    assert [r.site_id for r, _ in nearest_with_room(0.0, 0.0, sites, limit=2)] == ["sit_a", "sit_b"]
    assert nearest_with_room(0.0, 0.0, sites, limit=0) == []
    assert nearest_with_room(0.0, 0.0, [SiteRoom("sit_x", "x", 1, 1, False)]) == []
