"""Which compartment a parcel gets, and which other sites have room: plain functions.

Nothing here touches the database; the service loads free compartments into ``Candidate``
values, asks for them ranked, and claims the first one it can lock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from openlocker.core.errors import InvalidInput

#: Highest compartment floor (mm above ground) a parcel marked ``accessible`` may be put in,
#: so a recipient in a wheelchair can reach into it.
ACCESSIBLE_MAX_FLOOR_MM = 1200
#: Mean Earth radius (IUGG), for great-circle distances.
EARTH_RADIUS_M = 6_371_008.8

Dimensions = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class SizeClass:
    """A compartment size: inner width, height and depth in mm. Sizes are data, not code."""

    code: str
    width_mm: int
    height_mm: int
    depth_mm: int

    @property
    def dimensions_mm(self) -> Dimensions:
        return (self.width_mm, self.height_mm, self.depth_mm)

    @property
    def volume_mm3(self) -> int:
        return self.width_mm * self.height_mm * self.depth_mm


@dataclass(frozen=True, slots=True)
class Candidate:
    """A free compartment that might take the parcel."""

    id: str
    label: str
    size: SizeClass
    temperature: str
    floor_height_mm: int
    use_count: int


@dataclass(frozen=True, slots=True)
class ParcelNeed:
    """What a parcel asks of a compartment.

    ``dimensions_mm`` (measured, any order) wins over ``size_code`` (declared size class) when
    both are given; the declared size stands for its class's inner dimensions.
    """

    dimensions_mm: Dimensions | None
    size_code: str | None
    temperature: str = "ambient"
    accessible: bool = False


def fits(dimensions_mm: Dimensions, size: SizeClass) -> bool:
    """True when a box of ``dimensions_mm`` goes into ``size`` in some axis-aligned orientation."""
    return all(
        need <= room
        for need, room in zip(sorted(dimensions_mm), sorted(size.dimensions_mm), strict=True)
    )


def need_dimensions(need: ParcelNeed, sizes: Mapping[str, SizeClass]) -> Dimensions:
    """The box the parcel occupies: its measured dimensions, else its declared class's inner ones.

    Raises ``InvalidInput`` with ``invalid_dimensions`` (a side not positive), ``unknown_size``
    (declared class not in ``sizes``) or ``size_required`` (neither given).
    """
    if need.dimensions_mm is not None:
        if len(need.dimensions_mm) != 3 or min(need.dimensions_mm) <= 0:
            raise InvalidInput(
                "Parcel dimensions must be three positive millimetre values.",
                code="invalid_dimensions",
            )
        return need.dimensions_mm
    if need.size_code is None:
        raise InvalidInput("Give the parcel's size or its dimensions.", code="size_required")
    size = sizes.get(need.size_code)
    if size is None:
        raise InvalidInput(f"Unknown size class {need.size_code!r}.", code="unknown_size")
    return size.dimensions_mm


def _by_volume(size: SizeClass) -> tuple[int, str]:
    return (size.volume_mm3, size.code)


def fitting_sizes(need: ParcelNeed, sizes: Iterable[SizeClass]) -> list[SizeClass]:
    """The size classes the parcel fits in, smallest first (by volume, then code)."""
    by_code = {size.code: size for size in sizes}
    box = need_dimensions(need, by_code)
    return sorted((size for size in by_code.values() if fits(box, size)), key=_by_volume)


def is_too_large(need: ParcelNeed, sizes: Iterable[SizeClass]) -> bool:
    """True when the parcel fits none of ``sizes``: no compartment could ever take it."""
    return not fitting_sizes(need, sizes)


def rank_candidates(
    need: ParcelNeed,
    candidates: Iterable[Candidate],
    *,
    sizes: Mapping[str, SizeClass] | None = None,
) -> list[Candidate]:
    """The candidates that can take the parcel, best first.

    A candidate qualifies when the parcel fits its size, its temperature is the parcel's,
    and, for an accessible parcel, its floor is at most ``ACCESSIBLE_MAX_FLOOR_MM`` high.
    Best is the smallest size (volume), then the least used door (spreads wear), then label.
    A declared size is looked up in ``sizes``, or else among the candidates' own classes;
    pass ``sizes`` whenever the declared class may have no free candidate.
    """
    pool = list(candidates)
    known = dict(sizes) if sizes is not None else {c.size.code: c.size for c in pool}
    box = need_dimensions(need, known)
    chosen = [
        c
        for c in pool
        if c.temperature == need.temperature
        and (not need.accessible or c.floor_height_mm <= ACCESSIBLE_MAX_FLOOR_MM)
        and fits(box, c.size)
    ]
    return sorted(chosen, key=lambda c: (c.size.volume_mm3, c.use_count, c.label))


def takes_all(
    needs: Sequence[ParcelNeed],
    free: Mapping[tuple[str, str], int],
    sizes: Mapping[str, SizeClass],
) -> bool:
    """True when free compartments, counted by (size code, temperature), hold every need at
    once: the largest need first, each in the smallest free class it fits (the order the
    server claims in). Accessibility is not asked of an order's items."""
    left = dict(free)

    def smallest(need: ParcelNeed) -> int:
        fitting = fitting_sizes(need, sizes.values())
        return fitting[0].volume_mm3 if fitting else 0

    for need in sorted(needs, key=smallest, reverse=True):
        for size in fitting_sizes(need, sizes.values()):
            if left.get((size.code, need.temperature), 0) > 0:
                left[(size.code, need.temperature)] -= 1
                break
        else:
            return False
    return True


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class SiteRoom:
    """Another site, and whether it has a free compartment for the parcel."""

    site_id: str
    name: str
    lat: float
    lon: float
    has_room: bool


def nearest_with_room(
    lat: float, lon: float, sites: Iterable[SiteRoom], limit: int = 3
) -> list[tuple[SiteRoom, int]]:
    """Up to ``limit`` sites with room, nearest first, each with its distance in whole metres.

    Equal distances are ordered by site id so the answer is stable.
    """
    placed = [
        (site, round(haversine_m(lat, lon, site.lat, site.lon))) for site in sites if site.has_room
    ]
    placed.sort(key=lambda pair: (pair[1], pair[0].site_id))
    return placed[: max(0, limit)]
