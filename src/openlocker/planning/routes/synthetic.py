"""A synthetic city for demos and tests: clustered demand, lockers where people are.

Same arguments, same city: everything is drawn from one seeded generator.
"""

from __future__ import annotations

import math

import numpy as np

from openlocker.planning.routes.geo import EARTH_RADIUS_M
from openlocker.planning.routes.scenario import (
    DEFAULT_SIZES,
    Delivery,
    Depot,
    LockerSite,
    Point,
    Scenario,
    ScenarioError,
    default_vans,
)

CITY_CENTRE = Point(52.2297, 21.0122)
"""Warsaw, where parcel lockers are most common; any centre would do."""
CITY_RADIUS_M = 6000.0
NEIGHBOURHOOD_SPREAD_M = 250.0
BACKGROUND_SHARE = 0.15
"""Share of addresses spread evenly over the city rather than in a neighbourhood."""
SIZE_SHARES = (0.6, 0.3, 0.1)
"""Shares of S, M and L parcels."""
COMPARTMENTS = {"S": 40, "M": 25, "L": 10}
"""Compartments per synthetic locker, of which a seeded 50 to 90% are free."""


def synthetic_scenario(parcels: int, lockers: int, seed: int) -> Scenario:
    """A city of ``parcels`` deliveries around neighbourhoods and ``lockers`` locker sites."""
    if parcels < 1:
        raise ScenarioError("--parcels must be at least 1")
    if lockers < 0:
        raise ScenarioError("--lockers must not be negative")
    rng = np.random.default_rng(seed)
    neighbourhoods = max(lockers, 1)
    centres = _disc(rng, neighbourhoods, CITY_RADIUS_M * 0.8)
    home = rng.integers(0, neighbourhoods, parcels)
    clustered = centres[home] + rng.normal(0.0, NEIGHBOURHOOD_SPREAD_M, (parcels, 2))
    background = _disc(rng, parcels, CITY_RADIUS_M)
    spread = rng.random(parcels) < BACKGROUND_SHARE
    addresses = np.where(spread[:, None], background, clustered)
    size_codes = list(DEFAULT_SIZES)
    sizes = rng.choice(len(size_codes), parcels, p=SIZE_SHARES)
    deliveries = tuple(
        Delivery(id=f"p{i + 1:05d}", point=_to_point(x, y), size=size_codes[int(s)])
        for i, ((x, y), s) in enumerate(zip(addresses, sizes, strict=True))
    )
    sites = []
    for k in range(lockers):
        x, y = centres[k] + rng.normal(0.0, 100.0, 2)
        free = {code: int(n * rng.uniform(0.5, 0.9)) for code, n in COMPARTMENTS.items()}
        sites.append(LockerSite(id=f"L{k + 1:03d}", point=_to_point(x, y), free=free))
    depot_bearing = rng.uniform(0, 2 * math.pi)
    depot = _to_point(
        CITY_RADIUS_M * 1.1 * math.cos(depot_bearing), CITY_RADIUS_M * 1.1 * math.sin(depot_bearing)
    )
    return Scenario(
        depot=Depot(point=depot),
        vehicles=(default_vans(parcels),),
        deliveries=deliveries,
        lockers=tuple(sites),
    )


def _disc(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """``n`` points spread evenly over a disc, as metres east and north of the centre."""
    r = radius * np.sqrt(rng.random(n))
    theta = rng.uniform(0, 2 * math.pi, n)
    return np.column_stack([r * np.cos(theta), r * np.sin(theta)])


def _to_point(east_m: float, north_m: float) -> Point:
    lat = CITY_CENTRE.lat + math.degrees(north_m / EARTH_RADIUS_M)
    lon = CITY_CENTRE.lon + math.degrees(
        east_m / (EARTH_RADIUS_M * math.cos(math.radians(CITY_CENTRE.lat)))
    )
    return Point(round(lat, 6), round(lon, 6))
