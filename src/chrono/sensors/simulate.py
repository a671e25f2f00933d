"""Sensor simulator: a seeded ``sensor_readings`` SQLite table plus the ground truth it planted.

:func:`simulate` writes what a fleet of edge sensors would have written (timestamps in UTC with
milliseconds and each sensor's zone in ``original_timezone``, so the text of ``timestamp`` sorts in
event-time order; arrival order in ``id``) and, next to the database, ``<db>.truth.json`` naming
by id every row the pipeline must treat specially: invalid rows and the rule each breaks, exact
duplicates, late and out-of-order arrivals, planted incidents and isolated anomalies.

Ground truth holds by construction, for an incident rule of ``threshold=3`` anomalous readings at
one location within ``window_s=60`` and ``cooldown_s=300``:

* an incident is a burst of 3-6 anomalous readings at one location within 30 s, and no other
  anomalous reading at that location lies within 10 minutes of any of them;
* isolated anomalies at one location are at least 31 s apart, so any three span more than 60 s.

These spacing rules cap the anomalous fraction (see :func:`simulate`); a larger ``anomaly_rate``
is clamped to the cap and the truth file records requested, effective and capped rates.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from chrono.core.errors import ConfigError
from chrono.core.logging import log_event
from chrono.sensors.model import ANOMALY_TYPES, READING_SCHEMA

TABLE = "sensor_readings"
"""Table the simulator writes, as common edge generators name it."""
SPEC_VERSION = "2.0.0"
"""Version of the validation spec whose rule ids the truth file uses."""
DEFAULT_START = datetime(2025, 3, 1, tzinfo=UTC)
"""Event time of the first step when ``start`` is not given (fixed, so seeds reproduce)."""

INCIDENT_WINDOW_S = 60
INCIDENT_THRESHOLD = 3
INCIDENT_COOLDOWN_S = 300
BURST_SPAN_S = 30
"""All readings of one planted burst lie within this many seconds."""
BURST_GUARD_S = 600
"""No other anomalous reading at a burst's location comes this close to any of its readings."""
ISOLATED_GAP_S = INCIDENT_WINDOW_S // 2 + 1
"""Least spacing of isolated anomalies at one location: three of them span at least 62 s."""
BURST_SIZES = (3, 6)
BURST_SHARE = 0.25
"""Share of the requested anomalies that goes into bursts (before the caps apply)."""

INVALID_FRACTION = 0.02
DUPLICATE_FRACTION = 0.01
JITTER_FRACTION = 0.05
LATE_FRACTION = 0.01
JITTER_MS = (1_000, 8_000)
LATE_MS = (120_000, 240_000)
DUPLICATE_DELAY_MS = (2_000, 90_000)

# Rules of spec 2.0.0 that planted invalid rows break, one rule per row.
INVALID_RULES: tuple[str, ...] = (
    "temperature.max",
    "temperature.min",
    "humidity.max",
    "pressure.min",
    "voltage.max",
    "sensor_id.required",
    "location.required",
    "timestamp.type",
    "anomaly_type.allowed",
    "latitude.max",
    "anomaly_flag_matches_status",
    "anomaly_type_needs_flag",
)
_BAD_TIMESTAMPS = ("yesterday noon", "2025-13-45T99:00:00Z", "03/01/2025 noon")

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"
_SITES: tuple[tuple[str, float, float], ...] = (
    ("Europe/Berlin", 52.520, 13.405),
    ("America/New_York", 40.713, -74.006),
    ("UTC", 51.477, 0.000),
    ("Asia/Tokyo", 35.680, 139.690),
    ("America/Los_Angeles", 34.052, -118.244),
    ("Asia/Kolkata", 19.076, 72.878),
    ("Australia/Sydney", -33.869, 151.209),
    ("America/Sao_Paulo", -23.551, -46.633),
)
_SITE_KINDS = ("warehouse", "factory", "greenhouse", "depot", "datacenter")
_CATALOGUE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Bosch Sensortec", ("BME680", "BME688")),
    ("Sensirion", ("SHT45", "SEN55")),
    ("Honeywell", ("HIH8131", "ABP2")),
    ("Texas Instruments", ("HDC3022",)),
    ("Acme Edge", ("EnviroNode-2", "EnviroNode-3")),
)
_FIRMWARE = ("1.4.2", "1.5.0", "2.0.1", "2.1.3", "3.0.0-rc1")
_SENSORS_PER_LOCATION = 5


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate` wrote: where, and how many rows of each kind."""

    db_path: Path
    truth_path: Path
    rows: int
    valid: int
    invalid: int
    duplicates: int
    late: int
    incidents: int
    isolated_anomalies: int


def truth_path_for(db_path: Path) -> Path:
    """Where the ground truth of a simulated database lives: ``<db_path>.truth.json``."""
    return Path(str(db_path) + ".truth.json")


def simulate(
    db_path: Path,
    *,
    sensors: int = 50,
    minutes: int = 60,
    anomaly_rate: float = 0.05,
    seed: int = 0,
    interval_s: int = 5,
    start: datetime | None = None,
    overwrite: bool = False,
) -> SimulationSummary:
    """Write ``sensors`` sensors reporting every ``interval_s`` for ``minutes`` into ``db_path``.

    The same arguments give byte-identical table content and truth file. ``start`` is the event
    time of the first step (naive means UTC; default :data:`DEFAULT_START`). An existing
    ``sensor_readings`` table is refused with ``ConfigError("simulate_db_exists")`` unless
    ``overwrite`` is set, in which case only that table is replaced.

    Anomaly cap: outside bursts a location holds at most two anomalous readings per 62 s, a burst
    holds at most 6, and each burst keeps 10 minutes either side of it free of anomalies at its
    location. With 5 sensors per location reporting every 5 s that allows about 1/31 (3.2 %) of
    readings far from bursts and about 2.4 % overall for the defaults (one burst per location per
    full hour, at least one). ``anomaly_rate`` above the cap is clamped to it; the truth file's
    ``anomaly_rate`` object says what was requested, what was planted and what the cap was.
    """
    db_path = Path(db_path)
    _check_options(sensors, minutes, anomaly_rate, seed, interval_s)
    if not overwrite and _table_exists(db_path):
        raise _table_exists_error(db_path)
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    interval_ms = interval_s * 1000
    fleet = _make_fleet(rng, sensors, interval_ms)
    grid = _make_grid(rng, fleet, _epoch_ms(start or DEFAULT_START), minutes, interval_ms)

    n_invalid = round(INVALID_FRACTION * grid.size)
    valid_size = grid.size - n_invalid
    plan = _plan_anomalies(rng, fleet, grid, anomaly_rate * valid_size, minutes)
    anomalous = np.zeros(grid.size, dtype=bool)
    anomalous[plan.anomalous_rows()] = True
    _apply_anomalies(rng, grid, plan.anomalous_rows())

    invalid_rule = _choose_invalid(rng, ~anomalous, n_invalid)
    valid = invalid_rule == ""
    frame = _readings_frame(rng, fleet, grid, invalid_rule)
    arrivals = _plan_arrivals(rng, grid, valid, anomalous)

    ordered, truth = _arrange(frame, grid, arrivals, invalid_rule, plan, fleet)
    truth_path = truth_path_for(db_path)
    rate = {
        "requested": anomaly_rate,
        "effective": round(plan.planted / valid_size, 6) if valid_size else 0.0,
        "cap": round(plan.cap / valid_size, 6) if valid_size else 0.0,
    }
    truth.update(spec_version=SPEC_VERSION, seed=seed, anomaly_rate=rate)
    _write_table(db_path, ordered, overwrite)
    # The truth file is the marker that the database is complete: it is written last.
    _write_json(truth_path, truth)

    counts = truth["counts"]
    log_event(
        "sensors_simulated",
        rows=counts["rows"],
        invalid_count=counts["invalid"],
        duplicates=counts["duplicates"],
        late_count=counts["late"],
        incidents_count=counts["incidents"],
        isolated_count=counts["isolated_anomalies"],
        seconds=round(time.perf_counter() - began, 3),
    )
    return SimulationSummary(
        db_path=db_path,
        truth_path=truth_path,
        rows=counts["rows"],
        valid=counts["valid"],
        invalid=counts["invalid"],
        duplicates=counts["duplicates"],
        late=counts["late"],
        incidents=counts["incidents"],
        isolated_anomalies=counts["isolated_anomalies"],
    )


def _check_options(
    sensors: int, minutes: int, anomaly_rate: float, seed: int, interval_s: int
) -> None:
    problems = [
        ("sensors", sensors >= 1, "use 1 or more"),
        ("minutes", minutes >= 1, "use 1 or more"),
        ("interval_s", 1 <= interval_s <= minutes * 60, "use 1 s up to the simulated span"),
        ("anomaly_rate", 0.0 <= anomaly_rate <= 1.0, "use a fraction between 0 and 1"),
        ("seed", seed >= 0, "use a non-negative integer"),
    ]
    for option, ok, fix in problems:
        if not ok:
            raise ConfigError("simulate_invalid_option", f"simulate: --{option} invalid; {fix}")


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _iso_utc(epoch_ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@dataclass(frozen=True)
class _Fleet:
    """Fixed attributes of each sensor (arrays indexed by sensor) and of each location."""

    sensor_ids: list[str]
    location_of: np.ndarray
    locations: list[str]
    timezones: list[str]
    latitude: np.ndarray
    longitude: np.ndarray
    manufacturer: list[str]
    model: list[str]
    firmware: list[str]
    phase_ms: np.ndarray


def _make_fleet(rng: np.random.Generator, sensors: int, interval_ms: int) -> _Fleet:
    n_locations = max(1, (sensors + _SENSORS_PER_LOCATION // 2) // _SENSORS_PER_LOCATION)
    sites = [_SITES[i % len(_SITES)] for i in range(n_locations)]
    site_lat = np.array([s[1] for s in sites]) + rng.uniform(-0.2, 0.2, n_locations)
    site_lon = np.array([s[2] for s in sites]) + rng.uniform(-0.2, 0.2, n_locations)
    location_of = np.arange(sensors) % n_locations
    makers = rng.integers(0, len(_CATALOGUE), sensors)
    model_pick = rng.integers(0, 1_000, sensors)
    firmware = rng.integers(0, len(_FIRMWARE), sensors)
    width = max(4, len(str(sensors)))
    return _Fleet(
        sensor_ids=[f"SENSOR_{i + 1:0{width}d}" for i in range(sensors)],
        location_of=location_of,
        locations=[f"{_SITE_KINDS[i % len(_SITE_KINDS)]}-{i + 1:02d}" for i in range(n_locations)],
        timezones=[s[0] for s in sites],
        latitude=np.round(site_lat[location_of] + rng.uniform(-0.002, 0.002, sensors), 6),
        longitude=np.round(site_lon[location_of] + rng.uniform(-0.002, 0.002, sensors), 6),
        manufacturer=[_CATALOGUE[m][0] for m in makers],
        model=[
            _CATALOGUE[m][1][p % len(_CATALOGUE[m][1])]
            for m, p in zip(makers, model_pick, strict=True)
        ],
        firmware=[_FIRMWARE[f] for f in firmware],
        # Sensors do not tick in lockstep: each has its own millisecond phase in the interval.
        phase_ms=rng.integers(0, interval_ms, sensors),
    )


@dataclass(frozen=True)
class _Grid:
    """One reading per sensor and step (row = step * sensors + sensor); arrays are mutated."""

    sensor: np.ndarray
    event_ms: np.ndarray
    metrics: dict[str, np.ndarray]
    status_code: np.ndarray
    anomaly_flag: np.ndarray
    anomaly_type: np.ndarray
    first_ms: int
    span_ms: int

    @property
    def size(self) -> int:
        return int(self.sensor.size)


def _make_grid(
    rng: np.random.Generator, fleet: _Fleet, start_ms: int, minutes: int, interval_ms: int
) -> _Grid:
    sensors = len(fleet.sensor_ids)
    span_ms = minutes * 60_000
    steps = span_ms // interval_ms
    sensor = np.tile(np.arange(sensors), steps)
    step = np.repeat(np.arange(steps), sensors)
    event_ms = start_ms + fleet.phase_ms[sensor] + step * interval_ms
    n = sensor.size
    hours = step * (interval_ms / 3_600_000)

    def drift(low: float, high: float, amplitude: float, noise: float) -> np.ndarray:
        base = rng.uniform(low, high, sensors)[sensor]
        swing = rng.uniform(0.2, 1.0, sensors)[sensor] * amplitude
        phase = rng.uniform(0.0, 2 * np.pi, sensors)[sensor]
        return base + swing * np.sin(2 * np.pi * hours / 6 + phase) + rng.normal(0, noise, n)

    # Normal readings stay well inside the spec's anomaly thresholds and field bounds.
    metrics = {
        "temperature": np.round(np.clip(drift(18, 30, 3.0, 0.3), 15, 35), 2),
        "humidity": np.round(np.clip(drift(38, 62, 6.0, 0.8), 30, 70), 2),
        "pressure": np.round(np.clip(drift(1000, 1020, 4.0, 0.4), 990, 1030), 2),
        "vibration": np.round(np.clip(np.abs(drift(0.5, 2.0, 0.8, 0.3)), 0, 5), 2),
        "voltage": np.round(np.clip(drift(11.8, 12.2, 0.1, 0.03), 11.5, 12.5), 3),
    }
    return _Grid(
        sensor=sensor,
        event_ms=event_ms,
        metrics=metrics,
        status_code=np.zeros(n, dtype=np.int64),
        anomaly_flag=np.zeros(n, dtype=np.int64),
        anomaly_type=np.full(n, None, dtype=object),
        first_ms=start_ms,
        span_ms=span_ms,
    )


@dataclass(frozen=True)
class _AnomalyPlan:
    """Grid rows chosen as anomalous: bursts (one incident each) and isolated readings."""

    bursts: list[np.ndarray]
    burst_locations: list[int]
    isolated: np.ndarray
    cap: int
    """Most anomalous readings this layout could have held."""

    @property
    def planted(self) -> int:
        return int(sum(b.size for b in self.bursts) + self.isolated.size)

    def anomalous_rows(self) -> np.ndarray:
        return np.concatenate([*self.bursts, self.isolated]).astype(np.int64)


def _plan_anomalies(
    rng: np.random.Generator, fleet: _Fleet, grid: _Grid, target: float, minutes: int
) -> _AnomalyPlan:
    n_locations = len(fleet.locations)
    location_of_row = fleet.location_of[grid.sensor]
    by_location = np.lexsort((grid.event_ms, location_of_row))
    bounds = np.searchsorted(location_of_row[by_location], np.arange(n_locations + 1))

    def location_rows(loc: int) -> np.ndarray:
        return np.asarray(by_location[bounds[loc] : bounds[loc + 1]])

    # One burst slot per location per full hour (at least one); slots keep bursts >= 10 min apart.
    slots_per_location = max(1, minutes // 60)
    slots = [(loc, j) for loc in range(n_locations) for j in range(slots_per_location)]
    mean_burst = sum(BURST_SIZES) / 2
    wanted = 0 if target <= 0 else max(1, round(target * BURST_SHARE / mean_burst))
    chosen = np.sort(rng.choice(len(slots), size=min(len(slots), wanted), replace=False))

    bursts: list[np.ndarray] = []
    burst_locations: list[int] = []
    for slot in chosen.tolist():
        loc, j = slots[slot]
        rows = location_rows(loc)
        lo, hi = _burst_start_range(j, slots_per_location, grid.span_ms)
        t0 = grid.first_ms + int(rng.integers(lo, hi + 1))
        a, b = np.searchsorted(grid.event_ms[rows], [t0, t0 + BURST_SPAN_S * 1000])
        if b - a < INCIDENT_THRESHOLD:
            continue  # too few readings at this location within 30 s for a burst
        size = min(int(rng.integers(BURST_SIZES[0], BURST_SIZES[1] + 1)), int(b - a))
        picked = np.sort(rng.choice(np.arange(a, b), size=size, replace=False))
        bursts.append(rows[picked])
        burst_locations.append(loc)

    # Isolated anomalies go in the time left free around the bursts, location by location.
    gap_ms = ISOLATED_GAP_S * 1000
    guard_ms = BURST_GUARD_S * 1000
    segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for loc in range(n_locations):
        rows = location_rows(loc)
        times = grid.event_ms[rows]
        blocked = sorted(
            (int(grid.event_ms[b].min()) - guard_ms, int(grid.event_ms[b].max()) + guard_ms)
            for b, where in zip(bursts, burst_locations, strict=True)
            if where == loc
        )
        edges = [(None, None), *blocked, (None, None)]
        for (_, free_from), (free_to, _) in itertools.pairwise(edges):
            keep = np.ones(times.size, dtype=bool)
            if free_from is not None:
                keep &= times >= free_from
            if free_to is not None:
                keep &= times <= free_to
            if keep.any():
                segments.append((rows[keep], times[keep], _greedy_from_right(times[keep], gap_ms)))

    capacities = np.array([len(right) for _, _, right in segments], dtype=np.int64)
    burst_readings = sum(b.size for b in bursts)
    wanted_isolated = max(0, round(target) - burst_readings)
    quotas = _largest_remainder(capacities, wanted_isolated)
    isolated = [
        rows[_spread(rng, times, right, int(q), gap_ms)]
        for (rows, times, right), q in zip(segments, quotas, strict=True)
        if q > 0
    ]
    return _AnomalyPlan(
        bursts=bursts,
        burst_locations=burst_locations,
        isolated=np.sort(np.concatenate([np.zeros(0, dtype=np.int64), *isolated])),
        cap=int(burst_readings + capacities.sum()),
    )


def _burst_start_range(slot: int, slots: int, span_ms: int) -> tuple[int, int]:
    """Offsets (ms from start) a burst in ``slot`` may begin at; neighbours end >= 10 min away."""
    seg = span_ms // slots
    half_guard = BURST_GUARD_S * 1000 // 2
    lo = slot * seg + (half_guard if slot > 0 else 0)
    end = span_ms if slot == slots - 1 else (slot + 1) * seg - half_guard
    hi = end - BURST_SPAN_S * 1000
    return lo, max(lo, hi)


def _greedy_from_right(times: np.ndarray, gap_ms: int) -> np.ndarray:
    """Latest possible picks with gaps >= ``gap_ms`` (ascending); their count is the capacity."""
    picks = [int(times[-1])]
    while True:
        idx = int(np.searchsorted(times, picks[-1] - gap_ms, side="right")) - 1
        if idx < 0:
            break
        picks.append(int(times[idx]))
    return np.array(picks[::-1], dtype=np.int64)


def _spread(
    rng: np.random.Generator, times: np.ndarray, right: np.ndarray, count: int, gap_ms: int
) -> np.ndarray:
    """Indices of ``count`` of ``times`` spread at random, consecutive picks >= ``gap_ms`` apart.

    Targets are uniform with the gaps squeezed out; each pick is then held between the previous
    pick plus the gap and the latest time that still leaves room for the rest (``right``).
    """
    slack = max(0, int(times[-1] - times[0]) - (count - 1) * gap_ms)
    targets = times[0] + np.sort(rng.integers(0, slack + 1, count)) + np.arange(count) * gap_ms
    picks = np.empty(count, dtype=np.int64)
    lowest = int(times[0])
    for i in range(count):
        highest = int(right[right.size - count + i])
        idx = int(np.searchsorted(times, min(max(int(targets[i]), lowest), highest)))
        picks[i] = idx
        lowest = int(times[idx]) + gap_ms
    return picks


def _largest_remainder(capacities: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` proportionally to ``capacities`` (never above them), deterministically."""
    available = int(capacities.sum())
    if total >= available:
        return capacities.copy()
    exact = capacities * (total / available)
    quotas = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quotas), kind="stable")
    quotas[order[: total - int(quotas.sum())]] += 1
    return quotas


def _apply_anomalies(rng: np.random.Generator, grid: _Grid, rows: np.ndarray) -> None:
    """Flag ``rows`` and bend their values by anomaly type, staying within the field bounds."""
    kinds = np.array(ANOMALY_TYPES, dtype=object)[rng.integers(0, len(ANOMALY_TYPES), rows.size)]
    grid.anomaly_flag[rows] = 1
    grid.status_code[rows] = rng.integers(1, 6, rows.size)
    grid.anomaly_type[rows] = kinds
    m = grid.metrics

    def bend(kind: str, metric: str, low: float, high: float, relative: bool = False) -> None:
        sel = rows[kinds == kind]
        shift = rng.uniform(low, high, sel.size)
        m[metric][sel] = np.round(m[metric][sel] + shift if relative else shift, 2)

    # Some spikes/dips/noise cross the anomaly thresholds (temperature 80, voltage 3, vibration
    # 50); none leaves the field bounds (temperature 125, voltage 0-50, vibration 100).
    bend("spike", "temperature", 70.0, 120.0)
    bend("trend", "temperature", 8.0, 25.0, relative=True)
    bend("trend", "pressure", -20.0, -5.0, relative=True)
    bend("pattern", "voltage", 1.5, 10.5)
    bend("noise", "humidity", 0.0, 100.0)
    bend("noise", "vibration", 10.0, 80.0)
    m["vibration"][rows[kinds == "missing_data"]] = np.nan


def _choose_invalid(rng: np.random.Generator, eligible: np.ndarray, count: int) -> np.ndarray:
    """Rule id each grid row breaks ("" for valid rows); every rule used about equally often."""
    rule = np.full(eligible.size, "", dtype=object)
    pool = np.flatnonzero(eligible)
    count = min(count, pool.size)
    rows = np.sort(rng.choice(pool, size=count, replace=False))
    rules = np.resize(np.array(INVALID_RULES, dtype=object), count)
    rng.shuffle(rules)
    rule[rows] = rules
    return rule


def _readings_frame(
    rng: np.random.Generator, fleet: _Fleet, grid: _Grid, invalid_rule: np.ndarray
) -> pl.DataFrame:
    """The grid as reading columns (no id yet), invalid rows already broken."""
    sensor = pl.Series(grid.sensor)
    location_idx = fleet.location_of[grid.sensor]
    per_row_rule = pl.Series("_rule", invalid_rule.tolist(), dtype=pl.String)
    frame = pl.DataFrame(
        {
            "_event_ms": grid.event_ms,
            "sensor_id": pl.Series(fleet.sensor_ids).gather(sensor),
            **{name: pl.Series(values, nan_to_null=True) for name, values in grid.metrics.items()},
            "status_code": grid.status_code,
            "anomaly_flag": grid.anomaly_flag,
            "anomaly_type": pl.Series(grid.anomaly_type.tolist(), dtype=pl.String),
            "firmware_version": pl.Series(fleet.firmware).gather(sensor),
            "model": pl.Series(fleet.model).gather(sensor),
            "manufacturer": pl.Series(fleet.manufacturer).gather(sensor),
            "location": pl.Series(fleet.locations).gather(pl.Series(location_idx)),
            "latitude": fleet.latitude[grid.sensor],
            "longitude": fleet.longitude[grid.sensor],
            "original_timezone": pl.Series(fleet.timezones).gather(pl.Series(location_idx)),
            "_rule": per_row_rule,
            "_u": rng.random(grid.size),
        }
    )
    event = pl.from_epoch(pl.col("_event_ms"), time_unit="ms").dt.replace_time_zone("UTC")
    utc_text = event.dt.strftime(_TIMESTAMP_FORMAT)
    rule, u = pl.col("_rule"), pl.col("_u")

    def broken(name: str, value: pl.Expr, *rules: str) -> pl.Expr:
        return pl.when(rule.is_in(list(rules))).then(value).otherwise(pl.col(name)).alias(name)

    bad_timestamp = pl.lit(pl.Series(_BAD_TIMESTAMPS)).gather(
        (u * len(_BAD_TIMESTAMPS)).floor().cast(pl.Int64)
    )
    null = pl.lit(None)
    return frame.with_columns(
        pl.when(rule == "timestamp.type")
        .then(bad_timestamp)
        .otherwise(utc_text)
        .alias("timestamp"),
        pl.when(rule == "temperature.max")
        .then((126 + 54 * u).round(2))
        .when(rule == "temperature.min")
        .then((-41 - 39 * u).round(2))
        .otherwise(pl.col("temperature"))
        .alias("temperature"),
        broken("humidity", (101 + 49 * u).round(2), "humidity.max"),
        broken("pressure", (100 + 199 * u).round(2), "pressure.min"),
        broken("voltage", (51 + 39 * u).round(3), "voltage.max"),
        broken("sensor_id", null.cast(pl.String), "sensor_id.required"),
        broken("location", null.cast(pl.String), "location.required"),
        broken("latitude", (91 + 29 * u).round(6), "latitude.max"),
        broken(
            "anomaly_flag",
            pl.lit(1, dtype=pl.Int64),
            "anomaly_type.allowed",
            "anomaly_flag_matches_status",
        ),
        pl.when(rule == "anomaly_type.allowed")
        .then(pl.lit(2, dtype=pl.Int64))
        .otherwise(pl.col("status_code"))
        .alias("status_code"),
        pl.when(rule == "anomaly_type.allowed")
        .then(pl.lit("meltdown"))
        .when(rule.is_in(["anomaly_flag_matches_status", "anomaly_type_needs_flag"]))
        .then(pl.lit("spike"))
        .otherwise(pl.col("anomaly_type"))
        .alias("anomaly_type"),
    )


@dataclass(frozen=True)
class _Arrivals:
    """Arrival time of each grid row plus the duplicates to append after their originals."""

    arrival_ms: np.ndarray
    late: np.ndarray
    jittered: np.ndarray
    duplicate_of: np.ndarray
    duplicate_arrival_ms: np.ndarray


def _plan_arrivals(
    rng: np.random.Generator, grid: _Grid, valid: np.ndarray, anomalous: np.ndarray
) -> _Arrivals:
    def pick(pool: np.ndarray, fraction: float) -> np.ndarray:
        rows = np.flatnonzero(pool)
        size = min(rows.size, round(fraction * grid.size))
        return np.sort(rng.choice(rows, size=size, replace=False))

    late = pick(valid & ~anomalous, LATE_FRACTION)
    is_late = np.zeros(grid.size, dtype=bool)
    is_late[late] = True
    jittered = pick(valid & ~is_late, JITTER_FRACTION)
    arrival_ms = grid.event_ms.copy()
    arrival_ms[late] += rng.integers(LATE_MS[0], LATE_MS[1] + 1, late.size)
    arrival_ms[jittered] += rng.integers(JITTER_MS[0], JITTER_MS[1] + 1, jittered.size)
    # Bursts are anomalous, so excluding anomalies keeps incident rows from being duplicated.
    originals = pick(valid & ~anomalous & ~is_late, DUPLICATE_FRACTION)
    delay = rng.integers(DUPLICATE_DELAY_MS[0], DUPLICATE_DELAY_MS[1] + 1, originals.size)
    return _Arrivals(
        arrival_ms=arrival_ms,
        late=late,
        jittered=jittered,
        duplicate_of=originals,
        duplicate_arrival_ms=arrival_ms[originals] + delay,
    )


def _arrange(
    frame: pl.DataFrame,
    grid: _Grid,
    arrivals: _Arrivals,
    invalid_rule: np.ndarray,
    plan: _AnomalyPlan,
    fleet: _Fleet,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Rows in arrival order with ids, and the truth (without spec version and seed)."""
    n_grid = grid.size
    originals = arrivals.duplicate_of
    everything = pl.concat([frame, frame[originals.tolist()]])
    arrival = np.concatenate([arrivals.arrival_ms, arrivals.duplicate_arrival_ms])
    position = np.arange(arrival.size)
    order = np.lexsort((position, arrival))
    ids = np.empty(arrival.size, dtype=np.int64)
    ids[order] = np.arange(1, arrival.size + 1)
    ordered = everything[order.tolist()].with_columns(id=pl.Series(ids[order]))
    ordered = ordered.select(list(READING_SCHEMA))

    # A delayed row counts as late/out of order only if a valid row with a later event time
    # really arrived before it (in tiny runs a short delay may overtake nothing).
    valid = invalid_rule == ""
    in_arrival = order[order < n_grid]
    in_arrival = in_arrival[valid[in_arrival]]
    events = grid.event_ms[in_arrival]
    seen_before = np.concatenate([[np.iinfo(np.int64).min], np.maximum.accumulate(events)[:-1]])
    overtaken = np.zeros(n_grid, dtype=bool)
    overtaken[in_arrival] = seen_before > events

    def id_list(rows: np.ndarray) -> list[int]:
        return sorted(int(i) for i in ids[rows])

    late = id_list(arrivals.late[overtaken[arrivals.late]])
    out_of_order = id_list(arrivals.jittered[overtaken[arrivals.jittered]])
    invalid_rows = np.flatnonzero(~valid)
    invalid = {str(int(ids[r])): [str(invalid_rule[r])] for r in invalid_rows}
    duplicates = {
        str(int(ids[n_grid + k])): int(ids[original]) for k, original in enumerate(originals)
    }
    incidents = sorted(
        (
            {
                "location": fleet.locations[loc],
                "reading_ids": id_list(rows),
                "start": _iso_utc(int(grid.event_ms[rows].min())),
                "end": _iso_utc(int(grid.event_ms[rows].max())),
            }
            for rows, loc in zip(plan.bursts, plan.burst_locations, strict=True)
        ),
        key=lambda incident: (incident["start"], incident["location"]),
    )
    isolated = id_list(plan.isolated)
    rows_total = int(arrival.size)
    counts = {
        "rows": rows_total,
        "valid": rows_total - len(invalid) - len(duplicates),
        "invalid": len(invalid),
        "duplicates": len(duplicates),
        "late": len(late),
        "out_of_order": len(out_of_order),
        "incidents": len(incidents),
        "incident_readings": sum(len(i["reading_ids"]) for i in incidents),
        "isolated_anomalies": len(isolated),
    }
    truth: dict[str, Any] = {
        "rows": rows_total,
        "counts": counts,
        "invalid": invalid,
        "duplicates": duplicates,
        "late": late,
        "out_of_order": out_of_order,
        "incidents": incidents,
        "isolated_anomalies": isolated,
        "window_s": INCIDENT_WINDOW_S,
        "threshold": INCIDENT_THRESHOLD,
        "cooldown_s": INCIDENT_COOLDOWN_S,
    }
    return ordered, truth


def _table_exists(db_path: Path) -> bool:
    if not db_path.exists():
        return False
    con = sqlite3.connect(db_path)
    try:
        found = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
    finally:
        con.close()
    return found is not None


def _table_exists_error(db_path: Path) -> ConfigError:
    return ConfigError(
        "simulate_db_exists",
        f"{db_path.name}: table {TABLE} already exists; pass --overwrite to replace it "
        "or choose another --db",
    )


def _sql_type(dtype: pl.DataType) -> str:
    if dtype == pl.Int64:
        return "INTEGER"
    if dtype == pl.Float64:
        return "REAL"
    return "TEXT"


def _write_table(db_path: Path, rows: pl.DataFrame, overwrite: bool) -> None:
    columns = [
        "id INTEGER PRIMARY KEY" if name == "id" else f"{name} {_sql_type(dtype)}"
        for name, dtype in READING_SCHEMA.items()
    ]
    placeholders = ", ".join("?" for _ in READING_SCHEMA)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        # One explicit transaction: DDL and all inserts land together or not at all.
        con.execute("BEGIN IMMEDIATE")
        exists = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        if exists and not overwrite:
            con.execute("ROLLBACK")
            raise _table_exists_error(db_path)
        con.execute(f"DROP TABLE IF EXISTS {TABLE}")
        con.execute(f"CREATE TABLE {TABLE} ({', '.join(columns)})")
        con.executemany(
            f"INSERT INTO {TABLE} ({', '.join(READING_SCHEMA)}) VALUES ({placeholders})",
            rows.rows(),
        )
        con.execute(f"CREATE INDEX {TABLE}_timestamp_id ON {TABLE} (timestamp, id)")
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
