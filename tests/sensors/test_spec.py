"""Tests of the sensor validation spec: loading, rule kinds, timestamps, anomalies, invariants."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chrono.core.errors import ConfigError
from chrono.sensors.model import ANOMALOUS, EVENT_TIME, READING_SCHEMA, SEQ, conform, empty_readings
from chrono.sensors.spec import (
    DEFAULT_SPEC_PATH,
    ERRORS_DTYPE,
    ValidationResult,
    ValidationSpec,
    load_spec,
    validate,
)

SPEC = load_spec()
DEFAULT_YAML: dict[str, Any] = yaml.safe_load(DEFAULT_SPEC_PATH.read_text(encoding="utf-8"))


def reading(**overrides: Any) -> dict[str, Any]:
    """A reading that passes the default spec, with ``overrides`` applied."""
    row: dict[str, Any] = {
        "id": 1, "timestamp": "2024-03-10T12:00:00Z", "sensor_id": "sensor_01",
        "temperature": 21.5, "humidity": 40.0, "pressure": 1013.0, "vibration": 1.0,
        "voltage": 12.0, "status_code": 0, "anomaly_flag": 0, "anomaly_type": None,
        "firmware_version": "1.2.3", "model": "TX-1", "manufacturer": "Acme",
        "location": "hall-a", "latitude": 52.5, "longitude": 13.4, "original_timezone": "UTC",
    }
    row.update(overrides)
    return row


def batch(rows: list[dict[str, Any]], **columns: list[Any]) -> pl.DataFrame:
    """Conformed readings with ``_seq`` 0..n-1, plus extra ``columns`` as given."""
    frame = conform(pl.DataFrame(rows, schema=READING_SCHEMA))
    frame = frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(SEQ))
    extras = [pl.Series(name, values, dtype=pl.String) for name, values in columns.items()]
    return frame.with_columns(extras) if extras else frame


def failed_ids(result: ValidationResult) -> list[list[str]]:
    return [[e["rule_id"] for e in errors] for errors in result.invalid["errors"].to_list()]


def spec_with(**changes: Any) -> ValidationSpec:
    """The default spec with top-level keys replaced (validated like a loaded file)."""
    return ValidationSpec.model_validate({**copy.deepcopy(DEFAULT_YAML), **changes})


def minimal_spec(fields: dict[str, Any], **extra: Any) -> ValidationSpec:
    return ValidationSpec.model_validate(
        {"version": "t1", "fields": fields, "anomaly": {"flag_field": None}, **extra})


# --- the default spec ------------------------------------------------------------------------


def test_default_spec_loads_with_the_agreed_rule_ids() -> None:
    assert load_spec(None).version == SPEC.version == "2.0.0"
    ids = SPEC.rule_ids()
    for rule_id in ("timestamp.type", "temperature.max", "sensor_id.pattern",
                    "anomaly_flag.allowed", "anomaly_flag_matches_status",
                    "anomaly_type_needs_flag"):
        assert rule_id in ids
    assert len(ids) == len(set(ids))


def test_good_reading_is_valid_with_event_time_and_flag() -> None:
    result = validate(batch([reading()]), SPEC)
    assert result.invalid.height == 0
    assert result.valid.height == 1
    assert result.valid.schema[EVENT_TIME] == pl.Datetime("us", "UTC")
    assert result.valid[EVENT_TIME][0] == datetime(2024, 3, 10, 12, tzinfo=UTC)
    assert result.valid[ANOMALOUS].to_list() == [False]
    assert set(result.rule_counts) == set(SPEC.rule_ids())
    assert not any(result.rule_counts.values())


# --- field checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"temperature": 125.01}, ["temperature.max"]),
    ({"temperature": -40.5}, ["temperature.min"]),
    ({"humidity": None}, ["humidity.required"]),
    ({"id": -1}, ["id.min"]),
    ({"sensor_id": "bad id!"}, ["sensor_id.pattern"]),
    ({"anomaly_flag": 2}, ["anomaly_flag.allowed"]),
    ({"anomaly_flag": 1, "status_code": 3, "anomaly_type": "weird"}, ["anomaly_type.allowed"]),
    ({"location": None}, ["location.required"]),
    ({"location": ""}, ["location.required"]),
    ({"timestamp": None}, ["timestamp.required"]),
    ({"timestamp": "yesterday noon"}, ["timestamp.type"]),
    ({"latitude": 90.5}, ["latitude.max"]),
    ({"status_code": 1000, "anomaly_flag": 1}, ["status_code.max"]),
])
def test_each_field_check_fails(overrides: dict[str, Any], expected: list[str]) -> None:
    result = validate(batch([reading(**overrides)]), SPEC)
    assert result.valid.height == 0
    assert failed_ids(result) == [expected]
    assert all(result.rule_counts[rule_id] == 1 for rule_id in expected)
    assert sum(result.rule_counts.values()) == len(expected)


@pytest.mark.parametrize("overrides", [
    {"temperature": 125.0}, {"temperature": -40.0},           # bounds are inclusive
    {"vibration": None}, {"latitude": None, "longitude": None},  # optional fields may be missing
    {"anomaly_type": None, "firmware_version": None, "model": ""},
    {"anomaly_flag": 1, "status_code": 7, "anomaly_type": "spike"},
    {"sensor_id": "site:a.b-c_1"},
])
def test_each_field_check_passes(overrides: dict[str, Any]) -> None:
    result = validate(batch([reading(**overrides)]), SPEC)
    assert failed_ids(result) == []
    assert result.valid.height == 1


def test_every_failed_rule_of_a_row_is_listed_in_spec_order() -> None:
    row = reading(timestamp="not a time", temperature=300.0, humidity=-1.0, sensor_id="no way",
                  location=None, anomaly_flag=0, anomaly_type="spike", status_code=4)
    result = validate(batch([reading(), row]), SPEC)
    assert result.valid[SEQ].to_list() == [0]
    assert result.invalid[SEQ].to_list() == [1]
    errors = result.invalid["errors"].to_list()[0]
    assert [(e["rule_id"], e["field"], e["message"]) for e in errors] == [
        ("timestamp.type", "timestamp", "not a datetime"),
        ("sensor_id.pattern", "sensor_id", "does not match pattern"),
        ("temperature.max", "temperature", "above max 125 celsius"),
        ("humidity.min", "humidity", "below min 0 percent"),
        ("location.required", "location", "missing"),
        ("anomaly_flag_matches_status", "status_code",
         "anomaly_flag != 1 requires status_code = 0"),
        ("anomaly_type_needs_flag", "anomaly_type",
         "anomaly_flag = 0 requires anomaly_type is null"),
    ]
    assert result.invalid.schema["errors"] == ERRORS_DTYPE
    assert result.invalid["spec_version"].to_list() == ["2.0.0"]
    assert sum(result.rule_counts.values()) == len(errors)


def test_a_required_column_that_is_absent_fails_every_row() -> None:
    frame = batch([reading(), reading(id=2)]).drop("location", "vibration")
    result = validate(frame, SPEC)
    assert failed_ids(result) == [["location.required"]] * 2
    assert result.rule_counts["location.required"] == 2
    assert "vibration.type" in result.rule_counts  # optional and absent: checked, never failing
    assert result.rule_counts["vibration.type"] == 0


def test_raw_text_tells_a_wrong_type_from_a_missing_value() -> None:
    rows = [reading(temperature=None), reading(temperature=None), reading(temperature=None),
            reading(vibration=None), reading()]
    raw = {"_raw_temperature": ["hot", None, "", None, None],
           "_raw_vibration": [None, None, None, "lots", None]}
    result = validate(batch(rows, **raw), SPEC)
    assert failed_ids(result) == [["temperature.type"], ["temperature.required"],
                                  ["temperature.required"], ["vibration.type"]]
    assert result.valid[SEQ].to_list() == [4]
    assert "_raw_temperature" in result.invalid.columns  # input columns are kept


def test_unconformed_text_columns_are_typed_by_the_spec() -> None:
    frame = pl.DataFrame({
        "id": ["1", "2", "x", "4"], "timestamp": ["2024-01-01T00:00:00Z"] * 4,
        "sensor_id": ["s1"] * 4, "temperature": ["20.5", "abc", "21", "nan"],
        "humidity": [50.0] * 4, "pressure": [1000.0] * 4, "voltage": [12.0] * 4,
        "status_code": [0.0, 0.0, 0.5, 0.0], "anomaly_flag": [0] * 4, "location": ["a"] * 4,
    })
    result = validate(frame, SPEC)
    assert result.valid["id"].to_list() == ["1"]
    assert failed_ids(result) == [["temperature.type"], ["id.type", "status_code.type"],
                                  ["temperature.type"]]


# --- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "utc"), [
    ("2024-03-10T12:00:00Z", datetime(2024, 3, 10, 12)),
    ("2024-03-10T12:00:00z", datetime(2024, 3, 10, 12)),
    ("2024-03-10T12:00:00+02:00", datetime(2024, 3, 10, 10)),
    ("2024-03-10T12:00:00.250-05:30", datetime(2024, 3, 10, 17, 30, 0, 250000)),
    ("2024-03-10 12:00:00+0100", datetime(2024, 3, 10, 11)),
    ("2024-03-10T01:00:00+03", datetime(2024, 3, 9, 22)),
    ("2024-03-10T12:00:00.123456789Z", datetime(2024, 3, 10, 12, 0, 0, 123456)),
    ("2024-03-10T12:00:00", datetime(2024, 3, 10, 12)),         # naive: read as UTC
    ("2024-03-10 12:00:00.5", datetime(2024, 3, 10, 12, 0, 0, 500000)),
    ("2024-02-29T23:59:59-00:00", datetime(2024, 2, 29, 23, 59, 59)),
    ("2016-12-31T23:59:60Z", datetime(2017, 1, 1)),              # a leap second rolls over
])
def test_timestamps_convert_to_utc(text: str, utc: datetime) -> None:
    result = validate(batch([reading(timestamp=text)]), SPEC)
    assert result.valid[EVENT_TIME].to_list() == [utc.replace(tzinfo=UTC)]


@pytest.mark.parametrize("text", [
    "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-03-10T24:00:00Z", "2024-13-01T00:00:00",
    "10/03/2024 12:00", "2024-03-10", "2024-03-10T12:00Z", "2024-03-10T12:00:00 +01:00", " ",
    "2024-03-10T12:00:00+24:00", "2024-03-10T12:00:00.Z",
])
def test_malformed_timestamps_fail_type_even_among_good_ones(text: str) -> None:
    rows = [reading(), reading(timestamp=text), reading(timestamp="2024-03-10 12:00:00")]
    result = validate(batch(rows), SPEC)
    assert failed_ids(result) == [["timestamp.type"]]
    assert result.valid[SEQ].to_list() == [0, 2]


def test_naive_times_are_read_in_the_spec_naive_timezone() -> None:
    berlin = spec_with(naive_timezone="Europe/Berlin")
    texts = ["2024-07-01T12:00:00", "2024-01-01 12:00:00", "2024-07-01T12:00:00Z",
             "2024-10-27T02:30:00", "2024-03-31T02:30:00"]
    result = validate(batch([reading(timestamp=t) for t in texts]), berlin)
    assert result.valid[EVENT_TIME].to_list() == [
        datetime(2024, 7, 1, 10, tzinfo=UTC), datetime(2024, 1, 1, 11, tzinfo=UTC),
        datetime(2024, 7, 1, 12, tzinfo=UTC),
        datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # clocks going back: the earlier instant
    ]
    assert failed_ids(result) == [["timestamp.type"]]  # 02:30 did not exist that night
    assert result.invalid[SEQ].to_list() == [4]


def test_datetime_typed_columns_are_accepted() -> None:
    aware = pl.Series([datetime(2024, 1, 1, 12, tzinfo=UTC)]).dt.convert_time_zone("Asia/Tokyo")
    naive = pl.Series([datetime(2024, 1, 1, 12)]).dt.cast_time_unit("ns")
    for stamps in (aware, naive):
        frame = batch([reading()]).with_columns(stamps.alias("timestamp"))
        assert validate(frame, SPEC).valid[EVENT_TIME].to_list() == [
            datetime(2024, 1, 1, 12, tzinfo=UTC)]


def _stamp_text(moment: datetime, sep: str, digits: int, offset: str) -> tuple[str, datetime]:
    """``moment`` written as ISO text, and the UTC instant that text means."""
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    micros = moment.microsecond
    if digits:
        text += "." + f"{micros:06d}000"[:digits]
        micros = int(f"{micros:06d}000"[:min(digits, 6)].ljust(6, "0"))
    else:
        micros = 0
    local = moment.replace(microsecond=micros)
    if offset in ("", "Z", "z"):
        return text + offset, local.replace(tzinfo=UTC)
    sign = -1 if offset[0] == "-" else 1
    hours, minutes = int(offset[1:3]), int(offset[-2:]) if len(offset) > 3 else 0
    shift = timedelta(hours=hours, minutes=minutes) * sign
    return text + offset, (local - shift).replace(tzinfo=UTC)


TIMESTAMP_ONLY = minimal_spec({"timestamp": {"type": "datetime"}})
_OFFSETS = st.one_of(
    st.sampled_from(["", "Z", "z", "+00:00", "-00:00"]),
    st.builds(lambda s, h, m, colon: f"{s}{h:02d}{':' if colon else ''}{m:02d}",
              st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59), st.booleans()),
    st.builds(lambda s, h: f"{s}{h:02d}", st.sampled_from("+-"), st.integers(0, 23)),
)
_GOOD_STAMPS = st.builds(
    _stamp_text, st.datetimes(datetime(1971, 1, 1), datetime(2099, 12, 31)),
    st.sampled_from("T "), st.integers(0, 9), _OFFSETS,
)
_BAD_STAMPS = st.sampled_from([
    "2024-02-30T00:00:00Z", "2024-04-31 10:00:00", "2024-00-10T00:00:00",
    "2024-01-01T12:00:00+2400", "2024-01-01T12:00", "2024-01-01", "garbage", "2024-01-01T1:00:00",
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_GOOD_STAMPS, _BAD_STAMPS.map(lambda t: (t, None))), min_size=1,
                max_size=25))
def test_timestamp_parsing_matches_iso_meaning_whatever_shares_the_batch(
        stamps: list[tuple[str, datetime | None]]) -> None:
    frame = pl.DataFrame({"timestamp": [text for text, _ in stamps]},
                         schema={"timestamp": pl.String})
    result = validate(frame.with_row_index(SEQ), TIMESTAMP_ONLY)
    expected_valid = [utc for _, utc in stamps if utc is not None]
    assert result.valid[EVENT_TIME].to_list() == expected_valid
    assert result.invalid.height == len(stamps) - len(expected_valid)


# --- cross-field rules -----------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"anomaly_flag": 1, "status_code": 0, "anomaly_type": "spike"},
     [("anomaly_flag_matches_status", "anomaly_flag = 1 requires status_code != 0")]),
    ({"anomaly_flag": 0, "status_code": 5},                    # the `otherwise` branch
     [("anomaly_flag_matches_status", "anomaly_flag != 1 requires status_code = 0")]),
    ({"anomaly_flag": 0, "anomaly_type": "noise"},
     [("anomaly_type_needs_flag", "anomaly_flag = 0 requires anomaly_type is null")]),
    # A missing value is its own field's failure, not the rule's.
    ({"anomaly_flag": None}, [("anomaly_flag.required", "missing")]),
    ({"anomaly_flag": 1, "status_code": None}, [("status_code.required", "missing")]),
    ({"anomaly_flag": 1, "status_code": 2}, []),
    ({"anomaly_flag": 1, "status_code": 2, "anomaly_type": "trend"}, []),
])
def test_cross_field_rules(overrides: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    result = validate(batch([reading(**overrides)]), SPEC)
    got = [(e["rule_id"], e["message"]) for row in result.invalid["errors"].to_list() for e in row]
    assert got == expected
    assert result.valid.height == (0 if expected else 1)


def test_cross_field_in_and_range_tests() -> None:
    spec = minimal_spec(
        {"model": {"type": "string"}, "voltage": {"type": "float", "unit": "volt"}},
        rules=[{"id": "lv_models_run_low", "description": "LV models run on 5-20 V",
                "when": {"field": "model", "in": ["LV-1", "LV-2"]},
                "then": {"field": "voltage", "min": 5, "max": 20},
                "otherwise": {"field": "voltage", "min": 20}}],
    )
    frame = pl.DataFrame({"model": ["LV-1", "LV-2", "HV-9", "HV-9", None, "LV-1"],
                          "voltage": [12.0, 25.0, 230.0, 12.0, 1.0, None]})
    result = validate(frame.with_row_index(SEQ), spec)
    assert result.invalid[SEQ].to_list() == [1, 3]
    messages = [row[0]["message"] for row in result.invalid["errors"].to_list()]
    assert messages == ["model in {'LV-1', 'LV-2'} requires voltage in [5, 20]",
                        "model not in {'LV-1', 'LV-2'} requires voltage >= 20"]
    assert result.rule_counts == {"model.type": 0, "voltage.type": 0, "lv_models_run_low": 2}


# --- anomalies -----------------------------------------------------------------------------------


def test_anomalous_is_the_flag_or_a_crossed_threshold() -> None:
    rows = [
        reading(), reading(temperature=80.0), reading(temperature=80.5),
        reading(voltage=2.5), reading(vibration=None), reading(vibration=50.5),
        reading(anomaly_flag=1, status_code=9, anomaly_type="spike"),
        reading(temperature=-20.5),
    ]
    result = validate(batch(rows), SPEC)
    assert result.valid[ANOMALOUS].to_list() == [False, False, True, True, False, True, True, True]
    no_flag = spec_with(anomaly={"flag_field": None, "thresholds": {}})
    flagged = validate(batch([rows[6]]), no_flag)
    assert flagged.valid[ANOMALOUS].to_list() == [False]


# --- bad spec files --------------------------------------------------------------------------


def _mutated(change: Any) -> dict[str, Any]:
    tree = copy.deepcopy(DEFAULT_YAML)
    change(tree)
    return tree


@pytest.mark.parametrize(("change", "key"), [
    (lambda t: t["fields"]["temperature"].update(min=130), "fields.temperature.min"),
    (lambda t: t["fields"]["temperature"].update(mni=1), "fields.temperature.mni"),
    (lambda t: t.update(owner="me"), "'owner'"),
    (lambda t: t["fields"]["sensor_id"].update(pattern="(?<=x)y"), "fields.sensor_id.pattern"),
    (lambda t: t["fields"]["sensor_id"].update(pattern="[a-"), "fields.sensor_id.pattern"),
    (lambda t: t["fields"]["location"].update(max=3), "fields.location.max"),
    (lambda t: t["fields"]["anomaly_flag"].update(allowed=[0, "one"]),
     "fields.anomaly_flag.allowed.1"),
    (lambda t: t["fields"]["humidity"].update(type="number"), "fields.humidity.type"),
    (lambda t: t["rules"][0]["when"].update(field="flag"), "rules.0.when.field"),
    (lambda t: t["rules"][1]["then"].update(equals="x"), "rules.1.then"),
    (lambda t: t["rules"][0]["then"].update(not_equals="zero"), "rules.0.then.not_equals"),
    (lambda t: t["rules"].append(copy.deepcopy(t["rules"][0])), "rules.2.id"),
    (lambda t: t["rules"][0].update(id="temperature.max"), "rules.0.id"),
    (lambda t: t["rules"][0].pop("description"), "rules.0.description"),
    (lambda t: t.pop("version"), "'version'"),
    (lambda t: t.update(naive_timezone="Mars/Olympus"), "naive_timezone"),
    (lambda t: t["anomaly"]["thresholds"].update(voltage={"min": 30, "max": 3}),
     "anomaly.thresholds.voltage.min"),
    (lambda t: t["anomaly"]["thresholds"].update(location={"max": 1}),
     "anomaly.thresholds.location"),
    (lambda t: t["anomaly"].update(flag_field="alarm"), "anomaly.flag_field"),
])
def test_bad_spec_names_file_key_and_fix(tmp_path: Path, change: Any, key: str) -> None:
    path = tmp_path / "bad_spec.yaml"
    path.write_text(yaml.safe_dump(_mutated(change)), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert err.value.code == "spec_invalid"
    assert str(path) in err.value.detail
    assert key in err.value.detail
    assert "fix:" in err.value.detail


@pytest.mark.parametrize(("text", "code"), [
    ("version: [1, 2\n", "spec_yaml"), ("- just\n- a list\n", "spec_yaml"), ("", "spec_yaml"),
])
def test_unreadable_spec_files(tmp_path: Path, text: str, code: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert err.value.code == code
    assert str(path) in err.value.detail
    with pytest.raises(ConfigError, match="spec_missing"):
        load_spec(tmp_path / "absent.yaml")


# --- invariants ----------------------------------------------------------------------------------

_ROWS = st.fixed_dictionaries({
    "id": st.one_of(st.none(), st.integers(-5, 10**6)),
    "timestamp": st.one_of(st.none(), _GOOD_STAMPS.map(lambda s: s[0]), _BAD_STAMPS,
                           st.text(max_size=8)),
    "sensor_id": st.one_of(st.none(), st.sampled_from(["s1", "bad id", "", "x" * 70])),
    "temperature": st.one_of(st.none(), st.floats(-100, 200, allow_nan=False)),
    "humidity": st.one_of(st.none(), st.floats(-5, 105, allow_nan=False)),
    "pressure": st.one_of(st.none(), st.floats(250, 1150, allow_nan=False)),
    "vibration": st.one_of(st.none(), st.floats(-1, 120, allow_nan=False)),
    "voltage": st.one_of(st.none(), st.floats(-1, 60, allow_nan=False)),
    "status_code": st.one_of(st.none(), st.integers(-1, 1001)),
    "anomaly_flag": st.one_of(st.none(), st.integers(-1, 2)),
    "anomaly_type": st.one_of(st.none(), st.sampled_from(["spike", "noise", "other"])),
    "location": st.one_of(st.none(), st.sampled_from(["a", ""])),
})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ROWS, max_size=30))
def test_every_row_lands_in_exactly_one_output_in_order(rows: list[dict[str, Any]]) -> None:
    frame = batch(rows).with_columns(pl.lit("kept").alias("extra"))
    result = validate(frame, SPEC)
    valid_seq, invalid_seq = result.valid[SEQ].to_list(), result.invalid[SEQ].to_list()
    assert result.valid.height + result.invalid.height == len(rows)
    assert sorted(valid_seq + invalid_seq) == list(range(len(rows)))
    assert valid_seq == sorted(valid_seq) and invalid_seq == sorted(invalid_seq)
    assert result.valid.columns == [*frame.columns, EVENT_TIME, ANOMALOUS]
    assert result.invalid.columns == [*frame.columns, "errors", "spec_version"]
    errors = [e for row in result.invalid["errors"].to_list() for e in row]
    assert all(row for row in result.invalid["errors"].to_list())
    assert sum(result.rule_counts.values()) == len(errors)
    # Messages come from the spec, not the reading: one text per rule id (two for rules with
    # an `otherwise` branch).
    texts: dict[str, set[str]] = {}
    for e in errors:
        texts.setdefault(e["rule_id"], set()).add(e["message"])
    assert all(len(t) <= 2 for t in texts.values())


def test_messages_never_carry_the_readings_values() -> None:
    planted = reading(temperature=98765.4321, humidity=-31337.0, sensor_id="SECRET agent 007",
                      timestamp="SECRET-1999-12-31", location="", status_code=424242,
                      anomaly_type="SECRETTYPE")
    raw = {"_raw_voltage": ["SECRET-VOLT"]}
    result = validate(batch([planted | {"voltage": None}], **raw), SPEC)
    messages = [e["message"] for e in result.invalid["errors"].to_list()[0]]
    assert len(messages) >= 6
    for secret in ("98765", "31337", "SECRET", "007", "424242", "1999"):
        assert not any(secret in m for m in messages), secret


# --- shape, caching, speed ---------------------------------------------------------------------


def test_empty_batch_keeps_the_output_schemas() -> None:
    result = validate(empty_readings(), SPEC)
    assert result.valid.height == result.invalid.height == 0
    assert result.valid.schema[ANOMALOUS] == pl.Boolean
    assert result.invalid.schema["errors"] == ERRORS_DTYPE


def test_checks_are_compiled_once_per_spec_and_schema() -> None:
    from chrono.sensors.spec import _plan_for

    spec = load_spec()
    frame = batch([reading()])
    plan = _plan_for(spec, frame.schema)
    validate(frame, spec)
    assert _plan_for(spec, frame.schema) is plan
    copied = spec.model_copy()
    assert _plan_for(copied, frame.schema) is not plan
    assert spec == copied == load_spec()  # the cache is no part of a spec's value


def _million_readings() -> pl.DataFrame:
    n = 1_000_000
    rng = np.random.default_rng(7)
    i = pl.int_range(n, dtype=pl.Int64)
    seconds = pl.lit(datetime(2024, 1, 1)) + pl.duration(seconds=i)
    # Half `T...Z`, a quarter `T...+02:00`, a quarter naive with a space: formats mix in a batch.
    stamps = (pl.when(i % 2 == 0).then(seconds.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
              .when(i % 4 == 1).then(seconds.dt.strftime("%Y-%m-%dT%H:%M:%S.%3f+02:00"))
              .otherwise(seconds.dt.strftime("%Y-%m-%d %H:%M:%S")))
    return conform(pl.select(
        i.alias("id"), stamps.alias("timestamp"),
        pl.format("sensor_{}", i % 50).alias("sensor_id"),
        pl.Series("temperature", rng.normal(20, 30, n)),
        pl.Series("humidity", rng.uniform(0, 100, n)),
        pl.Series("pressure", rng.uniform(900, 1100, n)),
        pl.Series("vibration", rng.uniform(0, 60, n)),
        pl.Series("voltage", rng.uniform(0, 40, n)),
        pl.lit(0).alias("status_code"), pl.lit(0).alias("anomaly_flag"),
        pl.format("hall-{}", i % 5).alias("location"),
    )).with_columns(pl.col("id").alias(SEQ))


def _timed(frame: pl.DataFrame, spec: ValidationSpec) -> tuple[ValidationResult, str]:
    validate(frame.head(1000), spec)  # compile outside the timing
    started, cpu = time.perf_counter(), time.process_time()
    result = validate(frame, spec)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return result, f"{wall:.3f} s wall, {cpu:.3f} s CPU"


def test_a_million_readings_in_one_pass(capsys: pytest.CaptureFixture[str]) -> None:
    frame = _million_readings()
    result, timing = _timed(frame, SPEC)
    assert result.valid.height + result.invalid.height == frame.height
    assert result.rule_counts["temperature.max"] == (frame["temperature"] > 125).sum()
    assert result.rule_counts["timestamp.type"] == 0
    stamps, stamp_timing = _timed(frame.select("timestamp", SEQ), TIMESTAMP_ONLY)
    assert stamps.valid.height == frame.height
    with capsys.disabled():
        print(f"\nvalidate 1,000,000 readings: {timing} ({result.invalid.height} invalid); "
              f"timestamps alone: {stamp_timing}")
