"""The capacity scenario: a site's compartments, its demand, dwell times and expiry policy.

A scenario is plain data read from JSON (documented in ``docs/planning.md``) or measured
from a site's history (``history.py``). Every field but ``compartments`` and
``demand.parcels_per_day`` has a documented default.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ScenarioError(ValueError):
    """The scenario cannot be read or is inconsistent; the message says which field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SizeClass(_Strict):
    """A compartment size: inner width, height and depth in mm, the door's front area, a cost."""

    code: str = Field(min_length=1, max_length=8)
    inner_mm: tuple[int, int, int]
    front_area_m2: float = Field(gt=0)
    cost: float | None = Field(default=None, ge=0)


#: The server's seeded size classes (migration 0001); front area is inner width x height, as
#: ``history.py`` derives it. Costs are relative (S = 1), used when ``objective`` is ``"cost"``.
DEFAULT_SIZE_CLASSES: tuple[SizeClass, ...] = (
    SizeClass(code="S", inner_mm=(380, 80, 640), front_area_m2=0.0304, cost=1.0),
    SizeClass(code="M", inner_mm=(380, 190, 640), front_area_m2=0.0722, cost=1.3),
    SizeClass(code="L", inner_mm=(380, 410, 640), front_area_m2=0.1558, cost=1.8),
    SizeClass(code="XL", inner_mm=(600, 600, 640), front_area_m2=0.36, cost=2.6),
)


class Peak(_Strict):
    """Demand is multiplied by ``multiplier`` on every day from ``start`` to ``end`` inclusive."""

    start: date
    end: date
    multiplier: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Peak:
        if self.end < self.start:
            raise ValueError(f"peak ends ({self.end}) before it starts ({self.start})")
        return self


class ArrivalWindow(_Strict):
    """A courier window: ``share`` of the day's parcels arrive uniformly in [start, end) hours."""

    start_hour: float = Field(ge=0, lt=24)
    end_hour: float = Field(gt=0, le=24)
    share: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ArrivalWindow:
        if self.end_hour <= self.start_hour:
            raise ValueError("end_hour must be after start_hour")
        return self


DEFAULT_WINDOWS: tuple[ArrivalWindow, ...] = (
    ArrivalWindow(start_hour=8, end_hour=11, share=0.6),
    ArrivalWindow(start_hour=14, end_hour=17, share=0.4),
)


#: An assumed mix for the default size classes: most e-commerce parcels are small.
DEFAULT_SIZE_MIX = {"S": 0.45, "M": 0.35, "L": 0.15, "XL": 0.05}


class Demand(_Strict):
    """Parcels per day on an average ordinary week, shaped by size mix, weekday and peaks."""

    parcels_per_day: float = Field(gt=0)
    #: Share of parcels per size code; null means ``DEFAULT_SIZE_MIX`` (default size classes only).
    size_mix: dict[str, float] | None = None
    #: Monday to Sunday; rescaled to a mean of 1 so ``parcels_per_day`` stays the weekly mean.
    weekly_profile: tuple[float, float, float, float, float, float, float] = (1, 1, 1, 1, 1, 1, 1)
    peaks: tuple[Peak, ...] = ()
    arrival_windows: tuple[ArrivalWindow, ...] = DEFAULT_WINDOWS

    @model_validator(mode="after")
    def _consistent(self) -> Demand:
        shares = (self.size_mix or DEFAULT_SIZE_MIX).values()
        if any(share < 0 for share in shares) or sum(shares) <= 0:
            raise ValueError("size_mix needs non-negative shares with a positive sum")
        if any(f < 0 for f in self.weekly_profile) or sum(self.weekly_profile) <= 0:
            raise ValueError("weekly_profile needs 7 non-negative factors with a positive sum")
        if not self.arrival_windows:
            raise ValueError("arrival_windows needs at least one window")
        return self


class LognormalDwell(_Strict):
    """Collection time fitted as a lognormal to two figures: share within 24 h and the mean."""

    kind: Literal["lognormal"] = "lognormal"
    within_24h: float = Field(default=0.63, gt=0, lt=1)
    mean_hours: float = Field(default=35.0, gt=0)

    @model_validator(mode="after")
    def _fits(self) -> LognormalDwell:
        self.parameters()
        return self

    def parameters(self) -> tuple[float, float]:
        """(mu, sigma) of log-hours with P(T <= 24 h) = ``within_24h`` and E[T] = ``mean_hours``.

        From ln 24 = mu + z sigma (z the normal quantile of ``within_24h``) and
        ln mean = mu + sigma²/2: sigma = z + sqrt(z² + 2 ln(mean / 24)). Raises
        ``ValueError`` when no lognormal has both figures.
        """
        z = NormalDist().inv_cdf(self.within_24h)
        discriminant = z * z + 2.0 * math.log(self.mean_hours / 24.0)
        if discriminant < 0 or z + math.sqrt(discriminant) <= 0:
            raise ValueError(
                f"no lognormal has {self.within_24h:.0%} within 24 h "
                f"and a mean of {self.mean_hours} h"
            )
        sigma = z + math.sqrt(discriminant)
        return math.log(self.mean_hours) - sigma * sigma / 2.0, sigma


class ExponentialDwell(_Strict):
    kind: Literal["exponential"]
    mean_hours: float = Field(gt=0)


class HistogramDwell(_Strict):
    """An empirical histogram: ``counts[i]`` collections took ``edges_hours[i]..[i+1]`` hours."""

    kind: Literal["histogram"]
    edges_hours: tuple[float, ...]
    counts: tuple[float, ...]

    @model_validator(mode="after")
    def _shape(self) -> HistogramDwell:
        edges = self.edges_hours
        if len(edges) != len(self.counts) + 1 or len(self.counts) < 1:
            raise ValueError("edges_hours needs exactly one more entry than counts")
        if edges[0] < 0 or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("edges_hours must start at 0 or later and increase")
        if any(c < 0 for c in self.counts) or sum(self.counts) <= 0:
            raise ValueError("counts must be non-negative with a positive sum")
        return self


Dwell = Annotated[LognormalDwell | ExponentialDwell | HistogramDwell, Field(discriminator="kind")]


class Expiry(_Strict):
    """Uncollected parcels expire at the dwell deadline and wait for a courier to clear them.

    ``clearance_delay_hours`` null means the next courier visit (the next arrival window start).
    """

    deadline_hours: float | None = Field(default=72.0, gt=0)
    clearance_delay_hours: float | None = Field(default=None, ge=0)


#: More replications than this are refused, and never added by the planner.
MAX_REPLICATIONS = 1000


class Scenario(_Strict):
    """Everything one capacity plan needs; see ``docs/planning.md`` for the JSON format."""

    name: str = "site"
    start_date: date = Field(default_factory=lambda: date(datetime.now(UTC).year, 1, 1))
    days: int = Field(default=365, ge=1, le=3660)
    warmup_days: int = Field(default=7, ge=0, le=365)
    replications: int = Field(default=20, ge=2, le=MAX_REPLICATIONS)
    seed: int = Field(default=0, ge=0)
    target_overflow: float = Field(default=0.01, gt=0, lt=1)
    objective: Literal["area", "cost"] = "area"
    size_classes: tuple[SizeClass, ...] = DEFAULT_SIZE_CLASSES
    compartments: dict[str, int]
    demand: Demand
    dwell: Dwell = Field(default_factory=LognormalDwell)
    expiry: Expiry = Field(default_factory=Expiry)
    upsizing: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        codes = [size.code for size in self.size_classes]
        if not codes or len(set(codes)) != len(codes):
            raise ValueError("size_classes needs at least one class and unique codes")
        if self.demand.size_mix is None and set(DEFAULT_SIZE_MIX) - set(codes):
            raise ValueError("demand.size_mix is required unless the size classes are the defaults")
        for field, keys in (
            ("compartments", self.compartments),
            ("demand.size_mix", self.demand.size_mix or {}),
        ):
            unknown = sorted(set(keys) - set(codes))
            if unknown:
                raise ValueError(f"{field} names unknown size classes {unknown}; known: {codes}")
        if any(count < 0 for count in self.compartments.values()):
            raise ValueError("compartments counts must be non-negative")
        deadline = self.expiry.deadline_hours
        if deadline is not None:
            # An expired parcel is cleared within a day unless a longer delay is given.
            longest = deadline + max(self.expiry.clearance_delay_hours or 0.0, 24.0)
            if self.warmup_days * 24 < longest:
                raise ValueError(
                    f"warmup_days must cover the longest holding time ({longest:.0f} h): "
                    f"at least {math.ceil(longest / 24)}"
                )
        if self.objective == "cost" and any(size.cost is None for size in self.size_classes):
            raise ValueError('objective "cost" needs a cost on every size class')
        return self

    @property
    def codes(self) -> list[str]:
        """Size codes from smallest to largest (the order a parcel upsizes in)."""
        return [size.code for size in self.size_classes]

    def counts(self) -> list[int]:
        """The site's compartments per size class, in ``codes`` order."""
        return [self.compartments.get(code, 0) for code in self.codes]

    def mix(self) -> list[float]:
        """The size mix per size class, normalised to sum to 1."""
        size_mix = self.demand.size_mix or DEFAULT_SIZE_MIX
        shares = [size_mix.get(code, 0.0) for code in self.codes]
        return [share / sum(shares) for share in shares]

    def unit_weights(self) -> list[float]:
        """What one compartment of each size costs under the objective (area m² or cost)."""
        if self.objective == "cost":
            return [float(size.cost or 0.0) for size in self.size_classes]
        return [size.front_area_m2 for size in self.size_classes]

    def calendar(self) -> list[date]:
        """The simulated dates, warm-up included (warm-up days come first)."""
        first = self.start_date - timedelta(days=self.warmup_days)
        return [first + timedelta(days=d) for d in range(self.warmup_days + self.days)]


def parse_scenario(document: object) -> Scenario:
    """A validated scenario from decoded JSON; raises ``ScenarioError`` naming the bad fields."""
    try:
        return Scenario.model_validate(document)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"]) or "scenario"
            problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
        raise ScenarioError("invalid scenario:\n  " + "\n  ".join(problems)) from None


def read_document(path: Path) -> Any:
    """The decoded JSON of a scenario file; raises ``ScenarioError`` when unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ScenarioError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ScenarioError(f"{path} is not JSON: {error.msg} at line {error.lineno}") from None


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario JSON file; raises ``ScenarioError`` with a readable reason."""
    return parse_scenario(read_document(path))
