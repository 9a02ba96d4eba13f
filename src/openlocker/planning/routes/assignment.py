"""Who takes a locker, which locker and compartment, and whose doorstep attempt fails.

Plain functions over plain data; randomness comes from a seeded ``numpy`` generator and is
drawn once per delivery in input order, so both scenarios see the same recipients at home.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from openlocker.planning.routes.geo import great_circle_m
from openlocker.planning.routes.scenario import Delivery, LockerSite, Scenario


@dataclass(frozen=True)
class LockerAssignment:
    """Parcels placed in lockers, and what each locker has left."""

    locker_of: Mapping[str, str]
    """Delivery id to locker id."""
    compartment_of: Mapping[str, str]
    """Delivery id to the size code of the compartment it takes (its own size or larger)."""
    free_after: Mapping[str, Mapping[str, int]]
    """Locker id to free compartments by size once these parcels are in."""
    out_of_reach: int
    """Accepting recipients with no locker within their walk."""
    no_room: int
    """Accepting recipients whose lockers within reach had no fitting compartment left."""


@dataclass(frozen=True)
class AttemptDraws:
    """Per delivery, a uniform draw for the first doorstep attempt and one for a retry.

    An attempt fails when its draw is below the failure rate.
    """

    first: Mapping[str, float]
    retry: Mapping[str, float]

    def fails_first(self, delivery_id: str, rate: float) -> bool:
        return self.first[delivery_id] < rate

    def fails_retry(self, delivery_id: str, rate: float) -> bool:
        return self.retry[delivery_id] < rate


def draw_locker_choices(scenario: Scenario, rng: np.random.Generator) -> frozenset[str]:
    """Ids of recipients who accept a locker: their known choice, else a draw at the share."""
    draws = rng.random(len(scenario.deliveries))
    return frozenset(
        d.id
        for d, u in zip(scenario.deliveries, draws, strict=True)
        if (d.accepts_locker if d.accepts_locker is not None else u < scenario.locker_acceptance)
    )


def draw_attempts(deliveries: Sequence[Delivery], rng: np.random.Generator) -> AttemptDraws:
    """One draw per delivery for the first attempt and one for the next-day retry."""
    first = rng.random(len(deliveries))
    retry = rng.random(len(deliveries))
    return AttemptDraws(
        first={d.id: float(u) for d, u in zip(deliveries, first, strict=True)},
        retry={d.id: float(u) for d, u in zip(deliveries, retry, strict=True)},
    )


def walk_m(
    deliveries: Sequence[Delivery], lockers: Sequence[LockerSite], circuity: float
) -> np.ndarray:
    """Walking distance in metres from each delivery address (rows) to each locker (columns)."""
    if not deliveries or not lockers:
        return np.zeros((len(deliveries), len(lockers)))
    return great_circle_m([d.point for d in deliveries], [s.point for s in lockers]) * circuity


def assign_to_lockers(
    deliveries: Sequence[Delivery],
    accepting: frozenset[str],
    lockers: Sequence[LockerSite],
    sizes: Mapping[str, int],
    max_walk_m: float,
    circuity: float,
) -> LockerAssignment:
    """Place accepting recipients' parcels in lockers within their walk.

    Recipients who chose a locker get a compartment there first, however far it is. Then
    recipients closest to a locker go first; each takes the nearest locker within
    ``max_walk_m`` that has a free compartment of the parcel's size or larger, and the
    smallest such compartment. Parcels that find no room stay doorstep deliveries.
    """
    free = {s.id: dict(s.free) for s in lockers}
    walks = walk_m(deliveries, lockers, circuity)
    locker_of: dict[str, str] = {}
    compartment_of: dict[str, str] = {}
    column = {s.id: j for j, s in enumerate(lockers)}
    for d in deliveries:
        if d.id in accepting and d.locker is not None:
            chosen = np.full(len(lockers), np.inf)
            chosen[column[d.locker]] = 0.0
            claim = _claim(chosen, d.size, lockers, free, sizes, max_walk_m)
            if claim is not None:
                locker_of[d.id], compartment_of[d.id] = claim
    candidates = [
        i for i, d in enumerate(deliveries) if d.id in accepting and d.id not in locker_of
    ]
    nearest = {i: float(walks[i].min()) if lockers else np.inf for i in candidates}
    candidates.sort(key=lambda i: (nearest[i], i))
    out_of_reach = no_room = 0
    for i in candidates:
        if nearest[i] > max_walk_m:
            out_of_reach += 1
            continue
        claim = _claim(walks[i], deliveries[i].size, lockers, free, sizes, max_walk_m)
        if claim is None:
            no_room += 1
        else:
            locker_of[deliveries[i].id], compartment_of[deliveries[i].id] = claim
    return LockerAssignment(
        locker_of=locker_of,
        compartment_of=compartment_of,
        free_after=free,
        out_of_reach=out_of_reach,
        no_room=no_room,
    )


def take_compartment(
    delivery: Delivery,
    lockers: Sequence[LockerSite],
    free: dict[str, dict[str, int]],
    sizes: Mapping[str, int],
    max_walk_m: float,
    circuity: float,
) -> str | None:
    """Claim a compartment for one parcel in the nearest locker within walk; its id or None."""
    if not lockers:
        return None
    claim = _claim(
        walk_m([delivery], lockers, circuity)[0], delivery.size, lockers, free, sizes, max_walk_m
    )
    return None if claim is None else claim[0]


def _claim(
    walks: np.ndarray,
    size: str,
    lockers: Sequence[LockerSite],
    free: dict[str, dict[str, int]],
    sizes: Mapping[str, int],
    max_walk_m: float,
) -> tuple[str, str] | None:
    """Take the smallest fitting compartment in the nearest locker within walk that has one."""
    order = list(sizes)
    fitting = order[order.index(size) :]
    for j in np.argsort(walks, kind="stable"):
        if walks[j] > max_walk_m:
            return None
        site = lockers[int(j)]
        code = next((c for c in fitting if free[site.id].get(c, 0) > 0), None)
        if code is not None:
            free[site.id][code] -= 1
            return site.id, code
    return None
