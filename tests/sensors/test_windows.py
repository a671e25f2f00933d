"""Tests for event-time windows: DuckDB reference over any batch split, restarts, lateness."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from chrono.core.errors import ConfigError, TerminalError
from chrono.sensors.model import METRICS
from chrono.sensors.windows import (
    WindowingConfig,
    WindowState,
    WindowUpdate,
    flush_windows,
    update_windows,
    window_columns,
)

BASE_S = 1_700_000_000  # a multiple of every window size used below
US = 1_000_000
KEY = ["sensor_id", "window_start"]


# ----------------------------------------------------------------------------- helpers
def readings(rows: list[tuple], metrics: list[str]) -> pl.DataFrame:
    """Rows of (seq, sensor_id, location, event_us, *metric values) as a validated batch."""
    schema = {"_seq": pl.Int64, "sensor_id": pl.String, "location": pl.String,
              "event_us": pl.Int64, **{m: pl.Float64 for m in metrics}}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(
        pl.col("event_us").cast(pl.Datetime("us", "UTC")).alias("_event_time"),
        pl.col("_seq").cast(pl.String).alias("extra"),  # an unrelated column to carry through
    ).drop("event_us")


def at(seconds: float) -> int:
    return int((BASE_S + seconds) * US)


def duckdb_reference(
    frame: pl.DataFrame, config: WindowingConfig
) -> tuple[pl.DataFrame, set[int], set[int]]:
    """(windows, late _seqs, duplicate _seqs) computed by DuckDB from the definitions alone."""
    size, late_us = config.size_s * US, config.allowed_lateness_s * US
    ooo = config.max_out_of_orderness_s * US
    con = duckdb.connect()
    con.register("r", frame.to_arrow())
    con.execute(f"""
        CREATE TEMP TABLE flagged AS
        WITH t AS (
            SELECT *, epoch_us(_event_time) AS ev,
                   CAST(floor(epoch_us(_event_time) / {size}.0) AS BIGINT) * {size} AS ws,
                   max(epoch_us(_event_time)) OVER (
                       ORDER BY _seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
                   ) - {ooo} AS wm_before
            FROM r
        ), l AS (
            SELECT *, coalesce(ws + {size} + {late_us} <= wm_before, false) AS late FROM t
        )
        SELECT *, NOT late AND row_number() OVER (
                   PARTITION BY sensor_id, ev, late ORDER BY _seq) > 1 AS dup
        FROM l
    """)
    aggs = ", ".join(
        f"avg({m}) AS {m}_mean, min({m}) AS {m}_min, max({m}) AS {m}_max, "
        f"stddev_samp({m}) AS {m}_std"
        for m in config.metrics
    )
    windows = con.sql(f"""
        SELECT sensor_id, min(location) AS location, ws AS window_start, count(*) AS count, {aggs}
        FROM flagged WHERE NOT late AND NOT dup
        GROUP BY sensor_id, ws ORDER BY ws, sensor_id
    """).pl()
    late = {int(s) for (s,) in con.sql("SELECT _seq FROM flagged WHERE late").fetchall()}
    dups = {int(s) for (s,) in con.sql("SELECT _seq FROM flagged WHERE dup").fetchall()}
    return windows, late, dups


def latest_versions(emitted: pl.DataFrame) -> pl.DataFrame:
    """The last version of each window, window_start as epoch microseconds."""
    return (
        emitted.sort("version")
        .group_by(KEY, maintain_order=True).last()
        .with_columns(pl.col("window_start").dt.epoch("us"))
        .sort(["window_start", "sensor_id"])
    )


def assert_matches_reference(emitted: pl.DataFrame, reference: pl.DataFrame) -> None:
    latest = latest_versions(emitted).select(reference.columns)
    assert_frame_equal(latest, reference, check_dtypes=False, rel_tol=1e-9, abs_tol=1e-9)


def run_batches(
    config: WindowingConfig, frame: pl.DataFrame, cuts: list[int], *, restart: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, WindowState]:
    """Feed ``frame`` split at ``cuts``, optionally restarting from bytes at every boundary."""
    state = WindowState.empty(config)
    updates: list[WindowUpdate] = []
    bounds = [0, *cuts, frame.height]
    for lo, hi in itertools.pairwise(bounds):
        if restart:
            state = WindowState.from_bytes(state.to_bytes(), config)
        update = update_windows(state, frame.slice(lo, hi - lo))
        updates.append(update)
        state = update.state
    flushed = flush_windows(state)
    emitted = pl.concat([u.windows for u in [*updates, flushed]])
    late = pl.concat([u.late for u in updates])
    dups = pl.concat([u.duplicates for u in updates])
    return emitted, late, dups, flushed.state


# ----------------------------------------------------------------------------- property
@st.composite
def scenarios(draw: st.DrawFn) -> tuple[WindowingConfig, pl.DataFrame, list[int]]:
    config = WindowingConfig(
        size_s=draw(st.sampled_from([5, 10, 60])),
        allowed_lateness_s=draw(st.sampled_from([0, 10, 30])),
        max_out_of_orderness_s=draw(st.sampled_from([0, 3, 10])),
        metrics=["temperature", "humidity"],
    )
    n = draw(st.integers(1, 30))
    value = st.one_of(st.none(), st.integers(-100_000, 100_000).map(lambda v: v / 100))
    rows: list[tuple] = []
    for i in range(n):
        if rows and draw(st.integers(0, 5)) == 0:  # same key as an earlier reading
            sensor, event_us = draw(st.sampled_from([(r[1], r[3]) for r in rows]))
        else:
            sensor = draw(st.sampled_from(["s1", "s2", "s3"]))
            far_late = draw(st.integers(0, 9)) == 0
            seconds = draw(st.integers(-400, -300)) if far_late else draw(st.integers(0, 120))
            event_us = at(seconds) + draw(st.sampled_from([0, 0, 1, 500_000, 999_999]))
        location = draw(st.sampled_from(["L1", "L2"]))
        rows.append((i, sensor, location, event_us, draw(value), draw(value)))
    order = draw(st.permutations(range(n)))
    # Arrival order is a shuffle of the event order; _seq is increasing but not contiguous.
    arrived = [(3 * pos + 7, *rows[i][1:]) for pos, i in enumerate(order)]
    frame = readings(arrived, config.metrics)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=6)) & set(range(1, n)))
    return config, frame, cuts


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_any_batch_split_matches_duckdb_reference(
    scenario: tuple[WindowingConfig, pl.DataFrame, list[int]],
) -> None:
    config, frame, cuts = scenario
    reference, ref_late, ref_dups = duckdb_reference(frame, config)
    splits = {
        "all_at_once": [],
        "size_1": list(range(1, frame.height)),
        "random": cuts,
    }
    results = {name: run_batches(config, frame, split) for name, split in splits.items()}
    for name, (emitted, late, dups, state) in results.items():
        assert set(late["_seq"].to_list()) == ref_late, name
        assert set(dups["_seq"].to_list()) == ref_dups, name
        assert_matches_reference(emitted, reference)
        # Versions of one window are 1, 2, ... in emission order.
        versions = emitted.group_by(KEY, maintain_order=True).agg("version")["version"]
        for v in versions.to_list():
            assert v == list(range(1, len(v) + 1)), name
        # After flush, exactly the windows the watermark has passed are final.
        wm = state.watermark
        assert wm is not None
        latest = emitted.sort("version").group_by(KEY).last()
        assert (latest["final"] == (latest["window_end"] <= wm)).all(), name
        assert late.columns == [*frame.columns, "window_start"] or late.is_empty()
        assert dups.columns == frame.columns or dups.is_empty()

    # A restart at every batch boundary changes nothing at all.
    plain = results["random"]
    restarted = run_batches(config, frame, cuts, restart=True)
    for a, b in zip(plain[:3], restarted[:3], strict=True):
        assert_frame_equal(a, b)
    assert plain[3].to_bytes() == restarted[3].to_bytes()


# ----------------------------------------------------------------------------- examples
CFG = WindowingConfig(size_s=10, allowed_lateness_s=20, max_out_of_orderness_s=5,
                      metrics=["temperature"])


def test_late_data_within_lateness_reemits_a_higher_version() -> None:
    first = update_windows(WindowState.empty(CFG), readings(
        [(1, "s1", "L1", at(1), 1.0), (2, "s1", "L1", at(3), 3.0), (3, "s1", "L1", at(16), 0.0)],
        CFG.metrics,
    ))
    assert first.windows.select("window_start", "count", "temperature_mean", "version",
                                "final").rows() == [
        (datetime.fromtimestamp(BASE_S, UTC), 2, 2.0, 1, True),
    ]
    # Watermark is 11 s: [0, 10) still accepts data until the watermark reaches 30 s.
    second = update_windows(first.state, readings([(4, "s1", "L0", at(8), 5.0)], CFG.metrics))
    assert second.late.is_empty()
    row = second.windows.row(0, named=True)
    assert (row["count"], row["temperature_mean"], row["version"]) == (3, 3.0, 2)
    assert row["temperature_std"] == pytest.approx(2.0)
    assert row["location"] == "L0"  # min over the window's readings
    # A batch that does not touch the window emits nothing for it.
    third = update_windows(second.state, readings([(5, "s1", "L1", at(17), 1.0)], CFG.metrics))
    assert third.windows.is_empty()


def test_readings_beyond_lateness_land_in_late() -> None:
    first = update_windows(WindowState.empty(CFG), readings(
        [(1, "s1", "L1", at(1), 1.0), (2, "s1", "L1", at(35), 2.0)], CFG.metrics
    ))
    # Watermark 30 s = window_end 10 s + lateness 20 s: [0, 10) is closed.
    assert first.state.watermark == datetime.fromtimestamp(BASE_S + 30, UTC)
    assert first.windows["version"].to_list() == [1]
    late = update_windows(first.state, readings([(3, "s1", "L1", at(9), 7.0)], CFG.metrics))
    assert late.late["_seq"].to_list() == [3]
    assert late.late["window_start"].to_list() == [datetime.fromtimestamp(BASE_S, UTC)]
    assert late.late.columns == [*readings([], CFG.metrics).columns, "window_start"]
    assert late.windows.is_empty() and late.duplicates.is_empty()
    # Lateness is decided per reading in arrival order, inside one batch too.
    both = update_windows(WindowState.empty(CFG), readings(
        [(1, "s1", "L1", at(1), 1.0), (2, "s1", "L1", at(35), 2.0), (3, "s1", "L1", at(9), 7.0)],
        CFG.metrics,
    ))
    assert both.late["_seq"].to_list() == [3]


def test_duplicates_are_detected_across_batches_and_not_aggregated() -> None:
    first = update_windows(WindowState.empty(CFG), readings(
        [(1, "s1", "L1", at(1), 1.0), (2, "s1", "L1", at(1), 9.0), (3, "s2", "L1", at(1), 5.0)],
        CFG.metrics,
    ))
    assert first.duplicates["_seq"].to_list() == [2]
    second = update_windows(first.state, readings(
        [(4, "s1", "L1", at(1), 4.0), (5, "s1", "L1", at(30), 4.0)], CFG.metrics
    ))
    assert second.duplicates["_seq"].to_list() == [4]
    assert second.duplicates.columns == readings([], CFG.metrics).columns
    s1 = second.windows.filter(pl.col("sensor_id") == "s1").row(0, named=True)
    assert (s1["count"], s1["temperature_mean"], s1["temperature_std"]) == (1, 1.0, None)


def test_closed_windows_leave_state() -> None:
    config = WindowingConfig(size_s=60, allowed_lateness_s=120, max_out_of_orderness_s=10)
    rng = np.random.default_rng(1)
    sensors, seconds = 5, 4 * 3600
    t = np.repeat(np.arange(seconds), sensors)
    frame = pl.DataFrame({
        "_seq": np.arange(t.size),
        "sensor_id": np.tile([f"s{i}" for i in range(sensors)], seconds),
        "location": "L1",
        "_event_time": (at(0) + t * US).astype("datetime64[us]"),
        **{m: rng.normal(size=t.size) for m in METRICS},
    }).with_columns(pl.col("_event_time").dt.replace_time_zone("UTC"))
    state = WindowState.empty(config)
    held = []
    for lo in range(0, frame.height, 1800):
        state = update_windows(state, frame.slice(lo, 1800)).state
        held.append((state.open_windows, state.seen_keys))
    # Open: the current window plus those within lateness (+1 for the watermark lag), per sensor.
    assert max(w for w, _ in held) <= sensors * (1 + 120 // 60 + 2)
    assert max(k for _, k in held) <= sensors * 60 * (1 + 120 // 60 + 2)
    assert len(state.to_bytes()) < 200_000


def test_flush_emits_open_windows_without_closing_them() -> None:
    first = update_windows(WindowState.empty(CFG), readings(
        [(1, "s1", "L1", at(1), 1.0), (2, "s1", "L1", at(12), 2.0)], CFG.metrics
    ))
    assert first.windows.is_empty()  # watermark 7 s: no window complete yet
    flushed = flush_windows(first.state)
    assert flushed.windows.select("version", "final").rows() == [(1, False), (1, False)]
    assert flushed.state.open_windows == 2
    assert flush_windows(flushed.state).windows.is_empty()  # nothing changed since
    later = update_windows(flushed.state, readings([(3, "s1", "L1", at(40), 3.0)], CFG.metrics))
    assert later.windows.is_empty()  # unchanged windows are not emitted again
    more = update_windows(later.state, readings([(4, "s1", "L1", at(11), 4.0)], CFG.metrics))
    assert more.windows.select("window_start", "count", "version", "final").rows() == [
        (datetime.fromtimestamp(BASE_S + 10, UTC), 2, 2, True),
    ]


def test_schema_alignment_and_empty_batch() -> None:
    state = WindowState.empty(CFG)
    empty = update_windows(state, readings([], CFG.metrics))
    assert empty.windows.columns == window_columns(CFG)
    assert empty.state.watermark is None and empty.state.open_windows == 0
    pre_epoch = readings([(1, "s1", "L1", -1, 1.0), (2, "s1", "L1", 60 * US, 1.0)], CFG.metrics)
    update = update_windows(state, pre_epoch)
    assert update.windows.schema == pl.Schema({
        "sensor_id": pl.String(), "location": pl.String(),
        "window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC"),
        "count": pl.Int64(), "temperature_mean": pl.Float64(), "temperature_min": pl.Float64(),
        "temperature_max": pl.Float64(), "temperature_std": pl.Float64(),
        "version": pl.Int64(), "final": pl.Boolean(),
    })
    assert update.windows["window_start"].dt.epoch("s").to_list() == [-10]
    with pytest.raises(TerminalError) as err:
        update_windows(state, readings([], CFG.metrics).drop("location"))
    assert err.value.code == "windows_missing_columns"


def test_state_bytes_are_deterministic_and_config_checked() -> None:
    frame = readings([(i, f"s{i % 3}", "L1", at(i * 7 % 50), float(i)) for i in range(30)],
                     CFG.metrics)
    state = update_windows(WindowState.empty(CFG), frame).state
    blob = state.to_bytes()
    assert blob == state.to_bytes() == WindowState.from_bytes(blob, CFG).to_bytes()
    relaxed = CFG.model_copy(update={"allowed_lateness_s": 60})
    assert WindowState.from_bytes(blob, relaxed).open_windows == state.open_windows
    with pytest.raises(ConfigError, match="size_s"):
        WindowState.from_bytes(blob, CFG.model_copy(update={"size_s": 30}))
    with pytest.raises(ConfigError, match="metrics"):
        more = CFG.model_copy(update={"metrics": ["temperature", "humidity"]})
        WindowState.from_bytes(blob, more)
    with pytest.raises(TerminalError) as err:
        WindowState.from_bytes(blob[:-10], CFG)
    assert err.value.code == "window_state_corrupt"
    with pytest.raises(ValueError):
        WindowingConfig(metrics=["temperature", "temperature"])


# ----------------------------------------------------------------------------- performance
def test_perf_one_million_readings_in_batches_of_100k() -> None:
    """Sanity timing (printed, never asserted): about a second for 1M readings on 2 cores."""
    config = WindowingConfig()
    rng = np.random.default_rng(7)
    sensors, per_sensor = 50, 20_000
    t = np.repeat(np.arange(per_sensor, dtype=np.int64), sensors) * US
    t = t + rng.integers(-5 * US, 5 * US, size=t.size)  # out of order within the watermark lag
    frame = pl.DataFrame({
        "_seq": np.arange(t.size),
        "sensor_id": np.tile([f"sensor-{i:02d}" for i in range(sensors)], per_sensor),
        "location": np.tile([f"L{i % 7}" for i in range(sensors)], per_sensor),
        "_event_time": (at(0) + t).astype("datetime64[us]"),
        **{m: rng.normal(20.0, 5.0, size=t.size) for m in METRICS},
    }).with_columns(pl.col("_event_time").dt.replace_time_zone("UTC"))
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 0).then(None).otherwise(pl.col("humidity"))
        .alias("humidity")
    )
    started = time.perf_counter()
    emitted, late, dups, _ = run_batches(config, frame, list(range(100_000, 1_000_000, 100_000)))
    elapsed = time.perf_counter() - started
    print(f"windows: 1,000,000 readings, 50 sensors, batches of 100k: {elapsed:.2f} s "
          f"({emitted.height} window versions)")
    reference, ref_late, ref_dups = duckdb_reference(frame, config)
    assert set(late["_seq"].to_list()) == ref_late
    assert set(dups["_seq"].to_list()) == ref_dups
    assert_matches_reference(emitted, reference)
