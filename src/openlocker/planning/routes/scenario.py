"""A day's deliveries as the route planner sees them, and how to read one from JSON and CSV.

Every default below has its published source in ``docs/planning.md`` (section Routes).
Parsing is strict: a missing field, a negative count or a malformed row raises
``ScenarioError`` naming the field and, for CSV, the line.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FailedParcelPolicy = Literal["redeliver", "locker"]
FAILED_PARCEL_POLICIES: tuple[FailedParcelPolicy, ...] = ("redeliver", "locker")

#: Parcel size classes, smallest first, with the van space each takes in litres: the inner
#: volumes of InPost's A, B and C compartments (8x38x64, 19x38x64 and 41x38x64 cm).
DEFAULT_SIZES: dict[str, int] = {"S": 19, "M": 46, "L": 100}
#: Load space of a medium panel van in litres (about 6 m3, e.g. a Ford Transit Custom).
DEFAULT_VAN_CAPACITY = 6000
#: HMRC approved mileage rate for cars and vans, 45p a mile, in GBP per km.
DEFAULT_COST_PER_KM = 0.28
#: UK National Living Wage from April 2025, GBP per hour.
DEFAULT_COST_PER_HOUR = 12.21
#: UK government GHG conversion factor for an average diesel van (up to 3.5 t), kg CO2e per km.
DEFAULT_CO2_KG_PER_KM = 0.25
#: GB domestic drivers' hours rules: at most 10 hours of driving a day.
DEFAULT_SHIFT_HOURS = 10.0
#: Newell (1980) and O'Sullivan (1996): urban road distance is 1.2 to 1.23 times the straight line.
DEFAULT_CIRCUITY = 1.2
#: DfT travel time measures: 23.3 mph (37.5 km/h) average on local 'A' roads, year to June 2023.
DEFAULT_SPEED_KMH = 37.5
#: IMRG MetaPack UK Delivery Index: carded (failed first) deliveries 4.65% in 2014, 2.77% by 2019.
DEFAULT_FAILURE_RATE = 0.04
#: Share of recipients who accept a locker: InPost/Retail Economics 2025, 41% of UK consumers.
DEFAULT_LOCKER_ACCEPTANCE = 0.41
#: Zielona Góra user survey (Wrocław University of Economics): lockers within 300 m satisfy 75%.
DEFAULT_MAX_WALK_M = 300.0
#: Service times in seconds, checked against InPost's ~75 door-to-door parcels a courier-day
#: (3 min at the door understates it) and ~1,000 into lockers (see docs): a doorstep stop,
#: and a locker stop's fixed part and its time per parcel.
DEFAULT_DOORSTEP_SERVICE_S = 180
DEFAULT_LOCKER_FIXED_S = 600
DEFAULT_LOCKER_PER_PARCEL_S = 20


#: Default fleet size: one van per InPost door-to-door courier-day (~75 parcels).
PARCELS_PER_VAN = 75


class ScenarioError(ValueError):
    """The scenario cannot be planned; the message says which field or line and why."""


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float


@dataclass(frozen=True)
class Depot:
    point: Point
    opens_s: int = 8 * 3600
    """Seconds after midnight when vehicles may leave; delivery windows are local times."""


@dataclass(frozen=True)
class VehicleType:
    name: str
    count: int
    capacity: int
    cost_per_km: float = DEFAULT_COST_PER_KM
    cost_per_hour: float = DEFAULT_COST_PER_HOUR
    co2_kg_per_km: float = DEFAULT_CO2_KG_PER_KM
    shift_hours: float = DEFAULT_SHIFT_HOURS
    fixed_cost: float = 0.0


@dataclass(frozen=True)
class Delivery:
    id: str
    point: Point
    size: str
    window_s: tuple[int, int] | None = None
    """Delivery time window as seconds after midnight, or None for any time."""
    accepts_locker: bool | None = None
    """The recipient's known choice; None means drawn at the scenario's acceptance share."""
    locker: str | None = None
    """The locker the recipient chose, if any; tried first, whatever the walk."""


@dataclass(frozen=True)
class LockerSite:
    id: str
    point: Point
    free: Mapping[str, int]
    """Free compartments by size code."""


@dataclass(frozen=True)
class ServiceTimes:
    doorstep_s: int = DEFAULT_DOORSTEP_SERVICE_S
    locker_fixed_s: int = DEFAULT_LOCKER_FIXED_S
    locker_per_parcel_s: int = DEFAULT_LOCKER_PER_PARCEL_S


@dataclass(frozen=True)
class Scenario:
    depot: Depot
    vehicles: tuple[VehicleType, ...]
    deliveries: tuple[Delivery, ...]
    lockers: tuple[LockerSite, ...]
    sizes: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_SIZES))
    """Size code to van space, smallest first; a parcel fits a compartment of its size or larger."""
    locker_acceptance: float = DEFAULT_LOCKER_ACCEPTANCE
    max_walk_m: float = DEFAULT_MAX_WALK_M
    failure_rate: float = DEFAULT_FAILURE_RATE
    failed_parcels: FailedParcelPolicy = "redeliver"
    service: ServiceTimes = ServiceTimes()
    circuity: float = DEFAULT_CIRCUITY
    speed_kmh: float = DEFAULT_SPEED_KMH
    road_matrix: Path | None = None
    """A CSV of road km between ids (``depot``, deliveries, lockers), if the user has one."""


def default_vans(parcels: int) -> VehicleType:
    """Default vans, enough of them for ``parcels`` at a door-to-door courier's day each."""
    return VehicleType(
        name="van",
        count=max(math.ceil(parcels / PARCELS_PER_VAN), 1),
        capacity=DEFAULT_VAN_CAPACITY,
    )


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file holding an object; ``what`` names it in errors."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ScenarioError(f"{path}: the {what} must be a JSON object")
    return document


def load_scenario(path: Path, deliveries_csv: Path | None = None) -> Scenario:
    """Read a scenario JSON file; deliveries come from ``deliveries_csv`` when given, else
    from the file's ``deliveries`` (a list, or a CSV path relative to the JSON file)."""
    document = read_json_object(path, "scenario")
    if deliveries_csv is not None:
        document["deliveries"] = str(deliveries_csv.resolve())
    return parse_scenario(document, base_dir=path.parent)


def parse_scenario(document: Mapping[str, Any], *, base_dir: Path = Path(".")) -> Scenario:
    """Validate a decoded JSON scenario; relative file paths resolve against ``base_dir``."""
    sizes = _sizes(document.get("sizes", DEFAULT_SIZES))
    depot_doc = _object(document, "depot")
    depot = Depot(
        point=_point(depot_doc, "depot"),
        opens_s=_clock(depot_doc.get("opens", "08:00"), "depot.opens"),
    )
    vehicles_doc = document.get("vehicles")
    if vehicles_doc is None:
        raise ScenarioError("missing field 'vehicles'")
    if isinstance(vehicles_doc, dict):
        vehicles_doc = [vehicles_doc]
    if not isinstance(vehicles_doc, list) or not vehicles_doc:
        raise ScenarioError("'vehicles' must be an object or a non-empty list of objects")
    vehicles = tuple(_vehicle(v, f"vehicles[{i}]") for i, v in enumerate(vehicles_doc))

    deliveries_doc = document.get("deliveries")
    if deliveries_doc is None:
        raise ScenarioError("missing field 'deliveries'")
    if isinstance(deliveries_doc, str):
        deliveries = read_deliveries_csv(base_dir / deliveries_doc, sizes)
    elif isinstance(deliveries_doc, list):
        deliveries = tuple(
            _delivery(d, f"deliveries[{i}]", sizes) for i, d in enumerate(deliveries_doc)
        )
    else:
        raise ScenarioError("'deliveries' must be a list or the path of a CSV file")
    _check_unique((d.id for d in deliveries), "delivery")

    lockers_doc = document.get("lockers", [])
    if not isinstance(lockers_doc, list):
        raise ScenarioError("'lockers' must be a list")
    lockers = tuple(_locker(s, f"lockers[{i}]", sizes) for i, s in enumerate(lockers_doc))
    _check_unique((s.id for s in lockers), "locker")
    known = {s.id for s in lockers}
    for d in deliveries:
        if d.locker is not None and d.locker not in known:
            raise ScenarioError(f"delivery {d.id}: unknown locker {d.locker!r}")

    service_doc = document.get("service", {})
    if not isinstance(service_doc, dict):
        raise ScenarioError("'service' must be an object")
    service = ServiceTimes(
        doorstep_s=_int(service_doc, "doorstep_s", "service", DEFAULT_DOORSTEP_SERVICE_S),
        locker_fixed_s=_int(service_doc, "locker_fixed_s", "service", DEFAULT_LOCKER_FIXED_S),
        locker_per_parcel_s=_int(
            service_doc, "locker_per_parcel_s", "service", DEFAULT_LOCKER_PER_PARCEL_S
        ),
    )
    policy = document.get("failed_parcels", "redeliver")
    if policy not in FAILED_PARCEL_POLICIES:
        raise ScenarioError(f"'failed_parcels' must be one of {', '.join(FAILED_PARCEL_POLICIES)}")
    road_matrix = document.get("road_matrix")
    if road_matrix is not None and not isinstance(road_matrix, str):
        raise ScenarioError("'road_matrix' must be the path of a CSV file")
    circuity = _number(document, "circuity", "scenario", DEFAULT_CIRCUITY)
    if circuity < 1:
        raise ScenarioError(
            "'circuity' must be at least 1 (roads are never shorter than a straight line)"
        )
    speed = _number(document, "speed_kmh", "scenario", DEFAULT_SPEED_KMH)
    if speed <= 0:
        raise ScenarioError("'speed_kmh' must be positive")
    return Scenario(
        depot=depot,
        vehicles=vehicles,
        deliveries=deliveries,
        lockers=lockers,
        sizes=sizes,
        locker_acceptance=_share(document, "locker_acceptance", DEFAULT_LOCKER_ACCEPTANCE),
        max_walk_m=_number(document, "max_walk_m", "scenario", DEFAULT_MAX_WALK_M),
        failure_rate=_share(document, "failure_rate", DEFAULT_FAILURE_RATE),
        failed_parcels=policy,
        service=service,
        circuity=circuity,
        speed_kmh=speed,
        road_matrix=None if road_matrix is None else base_dir / road_matrix,
    )


DELIVERY_CSV_COLUMNS = ("id", "lat", "lon", "size")
"""Required CSV columns; optional ones are ``window_start``, ``window_end`` (HH:MM),
``accepts_locker`` (``yes``/``no``, empty for unknown) and ``locker`` (a chosen locker id)."""


def read_deliveries_csv(path: Path, sizes: Mapping[str, int]) -> tuple[Delivery, ...]:
    """Read deliveries from a CSV file with a header row (see ``DELIVERY_CSV_COLUMNS``)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in DELIVERY_CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ScenarioError(f"{path}: missing column(s) {', '.join(missing)}")
            deliveries = []
            for row in reader:
                where = f"{path.name} line {reader.line_num}"
                if None in row or any(v is None for v in row.values()):
                    raise ScenarioError(f"{where}: wrong number of fields")
                document: dict[str, Any] = {
                    "id": row["id"],
                    "lat": _csv_float(row["lat"], f"{where}: lat"),
                    "lon": _csv_float(row["lon"], f"{where}: lon"),
                    "size": row["size"],
                }
                if row.get("locker"):
                    document["locker"] = row["locker"]
                if row.get("window_start") or row.get("window_end"):
                    document["window"] = [row.get("window_start"), row.get("window_end")]
                choice = (row.get("accepts_locker") or "").strip().lower()
                if choice:
                    if choice not in ("yes", "no", "true", "false", "1", "0"):
                        raise ScenarioError(f"{where}: accepts_locker must be yes or no")
                    document["accepts_locker"] = choice in ("yes", "true", "1")
                deliveries.append(_delivery(document, where, sizes))
    except OSError as exc:
        raise ScenarioError(f"cannot read deliveries {path}: {exc.strerror}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: malformed CSV: {exc}") from exc
    return tuple(deliveries)


def parse_clock(value: str) -> int:
    """``HH:MM`` as seconds after midnight."""
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(value)
    seconds = int(hours) * 3600 + int(minutes) * 60
    if int(minutes) >= 60 or seconds > 24 * 3600:
        raise ValueError(value)
    return seconds


def _clock(value: object, where: str) -> int:
    if not isinstance(value, str):
        raise ScenarioError(f"{where} must be a time as HH:MM")
    try:
        return parse_clock(value)
    except ValueError:
        raise ScenarioError(f"{where} must be a time as HH:MM, got {value!r}") from None


def _object(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key)
    if value is None:
        raise ScenarioError(f"missing field '{key}'")
    if not isinstance(value, dict):
        raise ScenarioError(f"'{key}' must be an object")
    return value


def _number(
    document: Mapping[str, Any], key: str, where: str, default: float | None = None
) -> float:
    value = document.get(key, default)
    if value is None:
        raise ScenarioError(f"{where}: missing field '{key}'")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}.{key} must be a number, got {value!r}")
    if value < 0:
        raise ScenarioError(f"{where}.{key} must not be negative, got {value}")
    return float(value)


def _int(document: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = document.get(key, default)
    if value is None:
        raise ScenarioError(f"{where}: missing field '{key}'")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}.{key} must be a whole number, got {value!r}")
    if value < 0:
        raise ScenarioError(f"{where}.{key} must not be negative, got {value}")
    return value


def _share(document: Mapping[str, Any], key: str, default: float) -> float:
    value = _number(document, key, "scenario", default)
    if value > 1:
        raise ScenarioError(f"'{key}' is a share between 0 and 1, got {value}")
    return value


def _point(document: Mapping[str, Any], where: str) -> Point:
    lat = document.get("lat")
    lon = document.get("lon")
    if lat is None or lon is None:
        raise ScenarioError(f"{where}: missing field '{'lat' if lat is None else 'lon'}'")
    for name, value, bound in (("lat", lat, 90), ("lon", lon, 180)):
        if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > bound:
            raise ScenarioError(f"{where}.{name} must be a number within ±{bound}, got {value!r}")
    return Point(float(lat), float(lon))


def _sizes(document: object) -> dict[str, int]:
    if not isinstance(document, dict) or not document:
        raise ScenarioError("'sizes' must be an object of size code to van space, smallest first")
    sizes = {}
    for code, space in document.items():
        if isinstance(space, bool) or not isinstance(space, int) or space <= 0:
            raise ScenarioError(f"sizes.{code} must be a positive whole number, got {space!r}")
        sizes[str(code)] = space
    if list(sizes.values()) != sorted(sizes.values()):
        raise ScenarioError("'sizes' must list the smallest size first")
    return sizes


def _vehicle(document: object, where: str) -> VehicleType:
    if not isinstance(document, dict):
        raise ScenarioError(f"{where} must be an object")
    count = _int(document, "count", where)
    capacity = _int(document, "capacity", where, DEFAULT_VAN_CAPACITY)
    if count == 0 or capacity == 0:
        raise ScenarioError(f"{where}: count and capacity must be positive")
    shift = _number(document, "shift_hours", where, DEFAULT_SHIFT_HOURS)
    if shift == 0:
        raise ScenarioError(f"{where}.shift_hours must be positive")
    return VehicleType(
        name=str(document.get("name", where)),
        count=count,
        capacity=capacity,
        cost_per_km=_number(document, "cost_per_km", where, DEFAULT_COST_PER_KM),
        cost_per_hour=_number(document, "cost_per_hour", where, DEFAULT_COST_PER_HOUR),
        co2_kg_per_km=_number(document, "co2_kg_per_km", where, DEFAULT_CO2_KG_PER_KM),
        shift_hours=shift,
        fixed_cost=_number(document, "fixed_cost", where, 0.0),
    )


def _delivery(document: object, where: str, sizes: Mapping[str, int]) -> Delivery:
    if not isinstance(document, dict):
        raise ScenarioError(f"{where} must be an object")
    identifier = document.get("id")
    if identifier is None or str(identifier).strip() == "":
        raise ScenarioError(f"{where}: missing field 'id'")
    size = document.get("size", next(iter(sizes)))
    if size not in sizes:
        raise ScenarioError(f"{where}: unknown size {size!r} (known: {', '.join(sizes)})")
    window = document.get("window")
    window_s = None
    if window is not None:
        if not isinstance(window, list) or len(window) != 2:
            raise ScenarioError(f"{where}.window must be [start, end] as HH:MM")
        window_s = (_clock(window[0], f"{where}.window"), _clock(window[1], f"{where}.window"))
        if window_s[0] >= window_s[1]:
            raise ScenarioError(f"{where}.window must end after it starts")
    accepts = document.get("accepts_locker")
    if accepts is not None and not isinstance(accepts, bool):
        raise ScenarioError(f"{where}.accepts_locker must be true or false")
    locker = document.get("locker") or None
    return Delivery(
        id=str(identifier),
        point=_point(document, where),
        size=str(size),
        window_s=window_s,
        accepts_locker=accepts,
        locker=None if locker is None else str(locker),
    )


def _locker(document: object, where: str, sizes: Mapping[str, int]) -> LockerSite:
    if not isinstance(document, dict):
        raise ScenarioError(f"{where} must be an object")
    identifier = document.get("id")
    if identifier is None:
        raise ScenarioError(f"{where}: missing field 'id'")
    free_doc = document.get("free")
    if not isinstance(free_doc, dict):
        raise ScenarioError(f"{where}: 'free' must be an object of size code to free compartments")
    for code in free_doc:
        if code not in sizes:
            raise ScenarioError(f"{where}.free: unknown size {code!r} (known: {', '.join(sizes)})")
    free = {code: _int(free_doc, code, f"{where}.free", 0) for code in sizes}
    return LockerSite(id=str(identifier), point=_point(document, where), free=free)


def _csv_float(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ScenarioError(f"{where} must be a number, got {value!r}") from None


def _check_unique(ids: Any, kind: str) -> None:
    seen: set[str] = set()
    for identifier in ids:
        if identifier in seen:
            raise ScenarioError(f"duplicate {kind} id {identifier!r}")
        if identifier == "depot":
            raise ScenarioError(f"'depot' is reserved for the depot and cannot be a {kind} id")
        seen.add(identifier)
