"""Tests for the sensor simulator: determinism, accounting, schema and the planted ground truth.

Every check recomputes the truth independently from the table with plain Python predicates built
from the default spec's numbers, so a simulator that drifts from the spec fails here.
"""

from __future__ import annotations

import bisect
import json
import re
import sqlite3
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chrono.sensors
from chrono.core.errors import ConfigError
from chrono.sensors.model import ANOMALY_TYPES, READING_SCHEMA
from chrono.sensors.simulate import INVALID_RULES, SimulationSummary, simulate, truth_path_for

SPEC_PATH = Path(chrono.sensors.__file__).parent / "specs" / "sensor_validation_spec_v2.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UTC_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "float": (int, float),
    "string": (str,),
    "datetime": (str,),
}


@dataclass(frozen=True)
class Run:
    summary: SimulationSummary
    rows: list[dict[str, Any]]
    truth: dict[str, Any]

    @cached_property
    def by_id(self) -> dict[int, dict[str, Any]]:
        return {row["id"]: row for row in self.rows}

    @cached_property
    def excluded(self) -> set[int]:
        """Rows that are not valid readings: invalid ones and duplicates."""
        return {int(i) for i in self.truth["invalid"]} | {int(i) for i in self.truth["duplicates"]}


def load(summary: SimulationSummary) -> Run:
    con = sqlite3.connect(summary.db_path)
    con.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM sensor_readings ORDER BY id")]
    finally:
        con.close()
    return Run(summary, rows, json.loads(summary.truth_path.read_text(encoding="utf-8")))


def event_ms(timestamp: str) -> int:
    return (datetime.fromisoformat(timestamp) - EPOCH) // timedelta(milliseconds=1)


def holds(row: dict[str, Any], condition: dict[str, Any]) -> bool:
    value = row[condition["field"]]
    if "equals" in condition:
        return bool(value == condition["equals"])
    if "not_equals" in condition:
        return bool(value != condition["not_equals"])
    return (value is None) == condition["is_null"]


def broken_rules(row: dict[str, Any]) -> set[str]:
    """Rule ids of the spec that ``row`` breaks, by a deliberately naive reading of the spec."""
    broken: set[str] = set()
    for field, rule in SPEC["fields"].items():
        value = row[field]
        if value is None:
            if rule.get("required"):
                broken.add(f"{field}.required")
            continue
        if not isinstance(value, PYTHON_TYPES[rule["type"]]):
            broken.add(f"{field}.type")
            continue
        if rule["type"] == "datetime":
            try:
                datetime.fromisoformat(str(value))
            except ValueError:
                broken.add(f"{field}.type")
            continue
        if "min" in rule and value < rule["min"]:
            broken.add(f"{field}.min")
        if "max" in rule and value > rule["max"]:
            broken.add(f"{field}.max")
        if "pattern" in rule and not re.search(rule["pattern"], str(value)):
            broken.add(f"{field}.pattern")
        if "allowed" in rule and value not in rule["allowed"]:
            broken.add(f"{field}.allowed")
    for rule in SPEC["rules"]:
        if holds(row, rule["when"]):
            ok = holds(row, rule["then"])
        else:
            ok = holds(row, rule["otherwise"]) if "otherwise" in rule else True
        if not ok:
            broken.add(rule["id"])
    return broken


def is_anomalous(row: dict[str, Any]) -> bool:
    """The spec's anomaly definition: flagged, or any threshold crossed."""
    if row[SPEC["anomaly"]["flag_field"]] == 1:
        return True
    for field, bounds in SPEC["anomaly"]["thresholds"].items():
        value = row[field]
        if value is None:
            continue
        if value < bounds.get("min", float("-inf")) or value > bounds.get("max", float("inf")):
            return True
    return False


def check_accounting(run: Run) -> None:
    truth, summary = run.truth, run.summary
    ids = [row["id"] for row in run.rows]
    assert ids == list(range(1, len(ids) + 1))
    invalid = {int(i) for i in truth["invalid"]}
    duplicates = {int(i) for i in truth["duplicates"]}
    assert not invalid & duplicates
    valid = set(ids) - invalid - duplicates
    counts = truth["counts"]
    assert truth["rows"] == counts["rows"] == len(ids) == summary.rows
    assert counts["valid"] == len(valid) == summary.valid
    assert counts["invalid"] == len(invalid) == summary.invalid
    assert counts["duplicates"] == len(duplicates) == summary.duplicates
    assert counts["late"] == len(truth["late"]) == summary.late
    assert counts["out_of_order"] == len(truth["out_of_order"])
    assert counts["incidents"] == len(truth["incidents"]) == summary.incidents
    assert counts["isolated_anomalies"] == len(truth["isolated_anomalies"])
    assert counts["isolated_anomalies"] == summary.isolated_anomalies
    incident_ids = [i for inc in truth["incidents"] for i in inc["reading_ids"]]
    assert counts["incident_readings"] == len(incident_ids) == len(set(incident_ids))
    for listed in (truth["late"], truth["out_of_order"], truth["isolated_anomalies"], incident_ids):
        assert set(listed) <= valid
    assert not set(truth["late"]) & set(truth["out_of_order"])
    assert not set(incident_ids) & set(truth["isolated_anomalies"])
    assert truth["spec_version"] == SPEC["version"]
    assert (truth["window_s"], truth["threshold"], truth["cooldown_s"]) == (60, 3, 300)
    rate = truth["anomaly_rate"]
    assert rate["effective"] <= rate["cap"]


def check_rules(run: Run) -> None:
    """Invalid rows break exactly their listed rule; every other row breaks none."""
    for row in run.rows:
        assert broken_rules(row) == set(run.truth["invalid"].get(str(row["id"]), [])), row["id"]


def check_duplicates(run: Run) -> None:
    by_id = run.by_id
    in_incident = {i for inc in run.truth["incidents"] for i in inc["reading_ids"]}
    for dup_id, original_id in run.truth["duplicates"].items():
        duplicate, original = by_id[int(dup_id)], by_id[original_id]
        assert original_id < int(dup_id)
        assert original_id not in run.excluded
        assert original_id not in in_incident
        assert not is_anomalous(original)
        assert {k: v for k, v in duplicate.items() if k != "id"} == {
            k: v for k, v in original.items() if k != "id"
        }


def check_arrival(run: Run) -> None:
    """Valid rows overtaken by a later reading are exactly the late and out-of-order ones."""
    latest = None
    overtaken: dict[int, int] = {}
    for row in run.rows:
        if row["id"] in run.excluded:
            continue
        t = event_ms(row["timestamp"])
        if latest is not None and latest > t:
            overtaken[row["id"]] = latest - t
        latest = t if latest is None else max(latest, t)
    late, out_of_order = set(run.truth["late"]), set(run.truth["out_of_order"])
    assert set(overtaken) == late | out_of_order
    assert all(overtaken[i] <= 8_000 for i in out_of_order)
    assert all(overtaken[i] <= 240_000 for i in late)
    anomalous_ids = {r["id"] for r in run.rows if is_anomalous(r)}
    assert not late & anomalous_ids


def check_spacing(run: Run) -> None:
    """Recompute incidents from the table: 3+ anomalies within 60 s happen only inside bursts."""
    truth = run.truth
    burst_of = {i: n for n, inc in enumerate(truth["incidents"]) for i in inc["reading_ids"]}
    anomalous = [r for r in run.rows if r["id"] not in run.excluded and is_anomalous(r)]
    assert {r["id"] for r in anomalous} == set(burst_of) | set(truth["isolated_anomalies"])
    by_location: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in anomalous:
        by_location[row["location"]].append((event_ms(row["timestamp"]), row["id"]))
    for items in by_location.values():
        items.sort()
        times = [t for t, _ in items]
        for i, t in enumerate(times):
            window = [rid for _, rid in items[i : bisect.bisect_right(times, t + 60_000)]]
            if len(window) >= 3:
                assert {burst_of.get(rid) for rid in window} == {burst_of.get(window[0])}
                assert burst_of.get(window[0]) is not None
    for n, incident in enumerate(truth["incidents"]):
        times = [event_ms(run.by_id[i]["timestamp"]) for i in incident["reading_ids"]]
        assert 3 <= len(times) <= 6
        assert max(times) - min(times) < 30_000
        assert {run.by_id[i]["location"] for i in incident["reading_ids"]} == {incident["location"]}
        assert event_ms(incident["start"]) == min(times)
        assert event_ms(incident["end"]) == max(times)
        others = [u for u, rid in by_location[incident["location"]] if burst_of.get(rid) != n]
        assert all(abs(u - t) >= 600_000 for u in others for t in times)
    # A reference detector (threshold 3 within 60 s, 300 s cooldown) sees one incident per burst.
    detected: list[int] = []
    for items in by_location.values():
        times = [t for t, _ in items]
        quiet_until = None
        for i, (t, rid) in enumerate(items):
            fired = i + 1 - bisect.bisect_left(times, t - 60_000) >= 3
            if fired and (quiet_until is None or t >= quiet_until):
                detected.append(burst_of[rid])
                quiet_until = t + 300_000
    assert sorted(detected) == list(range(len(truth["incidents"])))


def check_values(run: Run) -> None:
    for row in run.rows:
        if row["id"] in run.excluded:
            continue
        assert UTC_TIMESTAMP.match(row["timestamp"])
        assert ZoneInfo(row["original_timezone"])  # a real IANA zone
        if row["anomaly_flag"] == 0:
            assert not is_anomalous(row)
            assert 15 <= row["temperature"] <= 35
            assert 30 <= row["humidity"] <= 70
            assert 990 <= row["pressure"] <= 1030
            assert 0 <= row["vibration"] <= 5
            assert 11.5 <= row["voltage"] <= 12.5
            assert (row["status_code"], row["anomaly_type"]) == (0, None)
        else:
            assert 1 <= row["status_code"] <= 5
            assert row["anomaly_type"] in ANOMALY_TYPES
            assert (row["vibration"] is None) == (row["anomaly_type"] == "missing_data")


def check_all(run: Run) -> None:
    check_accounting(run)
    check_rules(run)
    check_duplicates(run)
    check_arrival(run)
    check_spacing(run)
    check_values(run)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The CLI's defaults: 50 sensors every 5 s for 60 minutes (36,000 readings)."""
    return load(simulate(tmp_path_factory.mktemp("default") / "sensor_data.db"))


@pytest.fixture(scope="module")
def capped_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A rate far above the cap, over more than one hour so several bursts share a location."""
    db = tmp_path_factory.mktemp("capped") / "capped.db"
    return load(simulate(db, sensors=8, minutes=150, anomaly_rate=1.0, seed=11, interval_s=10))


def test_default_run_plants_what_the_pipeline_needs(default_run: Run) -> None:
    summary, counts = default_run.summary, default_run.truth["counts"]
    assert summary.rows == 36_000 + summary.duplicates
    assert summary.truth_path == truth_path_for(summary.db_path)
    assert summary.invalid == 720 and summary.duplicates == 360
    assert summary.incidents >= 5 and summary.isolated_anomalies >= 20
    assert summary.late >= 300 and counts["out_of_order"] >= 1_500
    assert {rules[0] for rules in default_run.truth["invalid"].values()} == set(INVALID_RULES)
    assert len({r["location"] for r in default_run.rows if r["location"]}) == 10
    assert len({r["original_timezone"] for r in default_run.rows}) >= 4


@pytest.mark.parametrize("run_name", ["default_run", "capped_run"])
def test_planted_truth_holds(run_name: str, request: pytest.FixtureRequest) -> None:
    check_all(request.getfixturevalue(run_name))


def test_capped_rate_is_clamped_and_reported(capped_run: Run) -> None:
    rate = capped_run.truth["anomaly_rate"]
    assert rate["requested"] == 1.0
    assert rate["effective"] == rate["cap"] < 0.2
    # 150 minutes give each location two burst slots (one per full hour), all used at this rate.
    locations = {r["location"] for r in capped_run.rows} - {None}
    assert capped_run.summary.incidents == 2 * len(locations)


def test_schema_matches_reading_schema(default_run: Run) -> None:
    con = sqlite3.connect(default_run.summary.db_path)
    try:
        info = con.execute("PRAGMA table_info(sensor_readings)").fetchall()
        indexes = con.execute("PRAGMA index_list(sensor_readings)").fetchall()
        indexed = [
            [c[2] for c in con.execute(f"PRAGMA index_info({ix[1]})").fetchall()] for ix in indexes
        ]
    finally:
        con.close()
    assert [c[1] for c in info] == list(READING_SCHEMA)
    expected = {"id": "INTEGER"} | {
        name: {"Int64": "INTEGER", "Float64": "REAL", "String": "TEXT"}[str(dtype)]
        for name, dtype in READING_SCHEMA.items()
        if name != "id"
    }
    assert {c[1]: c[2] for c in info} == expected
    assert [c[1] for c in info if c[5]] == ["id"]
    assert ["timestamp", "id"] in indexed


def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path: Path) -> None:
    options: dict[str, Any] = {"sensors": 12, "minutes": 20, "seed": 3}
    first = simulate(tmp_path / "a.db", **options)
    second = simulate(tmp_path / "b.db", **options)
    other = simulate(tmp_path / "c.db", **{**options, "seed": 4})
    assert first.db_path.read_bytes() == second.db_path.read_bytes()
    assert first.truth_path.read_bytes() == second.truth_path.read_bytes()
    assert load(first).rows == load(second).rows
    assert load(first).rows != load(other).rows
    assert first.truth_path.read_bytes() != other.truth_path.read_bytes()


def test_existing_table_is_refused_unless_overwrite(tmp_path: Path) -> None:
    db = tmp_path / "sensor_data.db"
    simulate(db, sensors=5, minutes=5, seed=1)
    with pytest.raises(ConfigError) as refused:
        simulate(db, sensors=5, minutes=5, seed=2)
    assert refused.value.code == "simulate_db_exists"
    replaced = simulate(db, sensors=5, minutes=5, seed=2, overwrite=True)
    fresh = simulate(tmp_path / "fresh.db", sensors=5, minutes=5, seed=2)
    assert load(replaced).rows == load(fresh).rows
    assert replaced.truth_path.read_bytes() == fresh.truth_path.read_bytes()


@pytest.mark.parametrize(
    "options",
    [{"anomaly_rate": 1.5}, {"sensors": 0}, {"minutes": 0}, {"interval_s": 0}, {"seed": -1}],
)
def test_bad_options_are_config_errors(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as bad:
        simulate(tmp_path / "x.db", **options)
    assert bad.value.code == "simulate_invalid_option"
    assert not (tmp_path / "x.db").exists()


def test_zero_rate_plants_no_anomalies(tmp_path: Path) -> None:
    run = load(simulate(tmp_path / "calm.db", sensors=10, minutes=15, anomaly_rate=0.0))
    assert run.summary.incidents == run.summary.isolated_anomalies == 0
    check_all(run)


def test_start_sets_event_time(tmp_path: Path) -> None:
    start = datetime(2025, 3, 9, 6, 55, tzinfo=UTC)
    run = load(simulate(tmp_path / "dst.db", sensors=10, minutes=10, start=start))
    times = [event_ms(r["timestamp"]) for r in run.rows if r["id"] not in run.excluded]
    assert min(times) >= event_ms(start.isoformat())
    assert max(times) < event_ms((start + timedelta(minutes=10)).isoformat())
    assert all(r["timestamp"].endswith("Z") for r in run.rows if r["id"] not in run.excluded)
    check_values(run)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    sensors=st.integers(1, 14),
    minutes=st.integers(1, 70),
    anomaly_rate=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
    interval_s=st.sampled_from([1, 5, 10, 30]),
)
def test_truth_holds_for_any_small_run(
    sensors: int, minutes: int, anomaly_rate: float, seed: int, interval_s: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        summary = simulate(
            Path(folder) / "s.db",
            sensors=sensors,
            minutes=minutes,
            anomaly_rate=anomaly_rate,
            seed=seed,
            interval_s=interval_s,
        )
        check_all(load(summary))
