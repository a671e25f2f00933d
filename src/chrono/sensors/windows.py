"""Event-time tumbling windows per sensor: mergeable state, watermark, lateness, versions.

A window is ``[window_start, window_start + size_s)`` aligned to the Unix epoch, one per sensor.
Batches of validated readings are folded into a :class:`WindowState` that holds, per open window,
a mergeable aggregate (count; per metric n, mean, M2, min, max) so that any split of the input into
batches, restarts included, yields the same final numbers.

Per reading, in arrival (``_seq``) order:

* **late** when ``window_end + allowed_lateness <= watermark_before``, where
  ``watermark_before`` is the largest event time of every reading that arrived earlier (any batch)
  minus ``max_out_of_orderness_s``. Late readings are not aggregated and go to ``late``;
* otherwise a **duplicate** when an earlier non-late reading had the same
  ``(sensor_id, _event_time)``; duplicates are not aggregated and go to ``duplicates``
  (a reading that is both late and a duplicate is reported as late);
* otherwise it is merged into its window.

After a batch the watermark is the largest event time seen minus ``max_out_of_orderness_s``.
Every window that changed since its last emission and ends at or before the watermark is emitted
as a new version (``final=True``); windows with ``window_end + allowed_lateness <= watermark`` are
then closed (dropped from state, their duplicate keys with them). Everything here is pure: the
caller persists :meth:`WindowState.to_bytes`.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from pydantic import Field, field_validator

from chrono.core.config import StrictModel
from chrono.core.errors import ConfigError, TerminalError
from chrono.core.logging import log_event
from chrono.sensors.model import EVENT_TIME, METRICS, SEQ

_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TS = pl.Datetime("us", "UTC")

# State serialisation: magic, then length-prefixed JSON header and two Parquet tables.
_MAGIC = b"CHRWIN\x00\x01"
_FORMAT = 1

# Helper columns added to a batch; the odd names keep them clear of any input column.
_EV = "__win_event_us"
_WS = "__win_start_us"
_LATE = "__win_late"
_DUP = "__win_dup"
_SEEN = "__win_seen"
_EMIT = "__win_emit"

# State table columns (window_start is epoch microseconds in state, Datetime on output).
_KEY = ["sensor_id", "window_start"]


class WindowingConfig(StrictModel):
    """Event-time tumbling windows per sensor."""

    size_s: int = Field(default=60, gt=0)
    """Window length in seconds; windows are tumbling and aligned to the Unix epoch."""
    allowed_lateness_s: int = Field(default=300, ge=0)
    """How long after its end (in watermark time) a window still accepts readings and re-emits."""
    max_out_of_orderness_s: int = Field(default=10, ge=0)
    """Watermark = largest event time seen minus this many seconds."""
    metrics: list[str] = Field(default_factory=lambda: list(METRICS))
    """Numeric columns aggregated per window (mean, min, max, sample std)."""

    @field_validator("metrics")
    @classmethod
    def _distinct_metrics(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("metrics must be distinct; remove the repeated names")
        clash = {"sensor_id", "location", "count", "version", "final"} & set(value)
        if clash or any(not m or m.startswith("_") for m in value):
            raise ValueError("metrics must be non-empty column names, not internal or output ones")
        return value


def window_columns(config: WindowingConfig) -> list[str]:
    """Columns of an emitted window version, in order."""
    cols = ["sensor_id", "location", "window_start", "window_end", "count"]
    for m in config.metrics:
        cols += [f"{m}_mean", f"{m}_min", f"{m}_max", f"{m}_std"]
    return [*cols, "version", "final"]


def _window_schema(config: WindowingConfig) -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {
        "sensor_id": pl.String(), "location": pl.String(),
        "window_start": _TS, "window_end": _TS, "count": pl.Int64(),
    }
    for m in config.metrics:
        for stat in ("mean", "min", "max", "std"):
            schema[f"{m}_{stat}"] = pl.Float64()
    schema["version"] = pl.Int64()
    schema["final"] = pl.Boolean()
    return schema


def _n(m: str) -> str:
    return f"{m}__n"


def _mean(m: str) -> str:
    return f"{m}__mean"


def _m2(m: str) -> str:
    return f"{m}__m2"


def _min(m: str) -> str:
    return f"{m}__min"


def _max(m: str) -> str:
    return f"{m}__max"


def _state_schema(metrics: list[str]) -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {
        "sensor_id": pl.String(), "window_start": pl.Int64(), "location": pl.String(),
        "count": pl.Int64(),
    }
    for m in metrics:
        schema[_n(m)] = pl.Int64()
        schema[_mean(m)] = pl.Float64()
        schema[_m2(m)] = pl.Float64()
        schema[_min(m)] = pl.Float64()
        schema[_max(m)] = pl.Float64()
    schema["version"] = pl.Int64()
    schema["dirty"] = pl.Boolean()
    return schema


_SEEN_SCHEMA: dict[str, pl.DataType] = {"sensor_id": pl.String(), "event_us": pl.Int64()}


def _table_bytes(frame: pl.DataFrame) -> bytes:
    # Parquet, not Arrow IPC: IPC copies whatever bytes sit under null slots, which differ between
    # equal frames built by different operations; Parquet stores only the valid values.
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=False)
    return buf.getvalue()


class WindowState:
    """Open windows, the duplicate keys of their readings and the largest event time seen.

    Immutable: :func:`update_windows` and :func:`flush_windows` return a new state.
    """

    def __init__(
        self,
        config: WindowingConfig,
        windows: pl.DataFrame,
        seen: pl.DataFrame,
        max_event_us: int | None,
    ) -> None:
        self._config = config
        self._windows = windows
        self._seen = seen
        self._max_event_us = max_event_us

    @classmethod
    def empty(cls, config: WindowingConfig) -> WindowState:
        """A state with no windows and no watermark."""
        return cls(
            config,
            pl.DataFrame(schema=_state_schema(config.metrics)),
            pl.DataFrame(schema=_SEEN_SCHEMA),
            None,
        )

    @property
    def config(self) -> WindowingConfig:
        return self._config

    @property
    def watermark(self) -> datetime | None:
        """Largest event time seen minus the out-of-orderness bound (UTC); None before any data."""
        if self._max_event_us is None:
            return None
        us = self._max_event_us - self._config.max_out_of_orderness_s * _US
        return _EPOCH + timedelta(microseconds=us)

    @property
    def open_windows(self) -> int:
        """Windows still held (not yet closed by the watermark)."""
        return self._windows.height

    @property
    def seen_keys(self) -> int:
        """Duplicate-detection keys held (one per aggregated reading of an open window)."""
        return self._seen.height

    def to_bytes(self) -> bytes:
        """Serialise: magic, JSON header, then the window and seen-key tables as Parquet.

        Tables are sorted by key first, so equal states give equal bytes.
        """
        cfg = self._config
        header = {
            "format": _FORMAT,
            "size_s": cfg.size_s,
            "metrics": list(cfg.metrics),
            "allowed_lateness_s": cfg.allowed_lateness_s,
            "max_out_of_orderness_s": cfg.max_out_of_orderness_s,
            "max_event_us": self._max_event_us,
        }
        parts = [
            json.dumps(header, sort_keys=True, separators=(",", ":")).encode(),
            _table_bytes(self._windows.sort(_KEY)),
            _table_bytes(self._seen.sort(["sensor_id", "event_us"])),
        ]
        return _MAGIC + b"".join(struct.pack(">Q", len(p)) + p for p in parts)

    @classmethod
    def from_bytes(cls, data: bytes, config: WindowingConfig) -> WindowState:
        """Restore a state written by :meth:`to_bytes` under ``config``.

        Raises ConfigError when ``size_s`` changed or ``metrics`` gained a name the state lacks
        (dropping or reordering metrics is fine; lateness and out-of-orderness apply from now on).
        """
        header, windows, seen = _parse_state(data)
        if header["size_s"] != config.size_s:
            raise ConfigError(
                "config_windows_incompatible",
                f"windowing key size_s is {config.size_s} but the saved window state uses "
                f"{header['size_s']}; set size_s back to {header['size_s']} or delete the "
                "window state to start fresh",
            )
        missing = [m for m in config.metrics if m not in header["metrics"]]
        if missing:
            raise ConfigError(
                "config_windows_incompatible",
                f"windowing key metrics adds {len(missing)} metric(s) the saved window state "
                "does not aggregate; remove them or delete the window state to start fresh",
            )
        windows = windows.select(list(_state_schema(config.metrics)))
        return cls(config, windows, seen, header["max_event_us"])


def _parse_state(data: bytes) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame]:
    corrupt = TerminalError("window_state_corrupt", "saved window state cannot be read")
    if not data.startswith(_MAGIC):
        raise corrupt
    parts: list[bytes] = []
    pos = len(_MAGIC)
    try:
        for _ in range(3):
            (size,) = struct.unpack_from(">Q", data, pos)
            pos += 8
            if pos + size > len(data):
                raise corrupt
            parts.append(data[pos : pos + size])
            pos += size
        header = json.loads(parts[0])
        if header.get("format") != _FORMAT:
            raise TerminalError(
                "window_state_corrupt", f"window state format {header.get('format')} unknown"
            )
        windows = pl.read_parquet(io.BytesIO(parts[1]))
        seen = pl.read_parquet(io.BytesIO(parts[2]))
    except TerminalError:
        raise
    except Exception as exc:  # any decoding failure means the blob is not ours or truncated
        raise TerminalError(
            "window_state_corrupt", f"saved window state cannot be read ({type(exc).__name__})"
        ) from None
    if windows.schema != pl.Schema(_state_schema(header["metrics"])) or seen.schema != pl.Schema(
        _SEEN_SCHEMA
    ):
        raise corrupt
    return header, windows, seen


@dataclass(frozen=True)
class WindowUpdate:
    """What one batch (or the final flush) produced."""

    windows: pl.DataFrame
    """Emitted window versions (:func:`window_columns`), sorted by (window_start, sensor_id)."""
    late: pl.DataFrame
    """Readings too late for their window: their input columns plus ``window_start``."""
    duplicates: pl.DataFrame
    """Readings whose (sensor_id, _event_time) was already seen: their input columns."""
    state: WindowState
    """The state after this batch; persist ``state.to_bytes()``."""


def _check_input(valid: pl.DataFrame, config: WindowingConfig) -> None:
    needed = [SEQ, EVENT_TIME, "sensor_id", "location", *config.metrics]
    missing = [c for c in needed if c not in valid.columns]
    if missing:
        raise TerminalError(
            "windows_missing_columns", f"batch lacks column(s) {', '.join(sorted(missing))}"
        )
    nulls = valid.select(
        pl.any_horizontal(pl.col(SEQ, EVENT_TIME, "sensor_id").is_null()).sum()
    ).item()
    if nulls:
        raise TerminalError(
            "windows_null_key", f"{nulls} reading(s) lack _seq, _event_time or sensor_id"
        )


def _classify(state: WindowState, valid: pl.DataFrame) -> pl.DataFrame:
    """The batch in arrival order with event/window microseconds and late/duplicate flags."""
    config = state.config
    size_us = config.size_s * _US
    lateness_us = config.allowed_lateness_s * _US
    ooo_us = config.max_out_of_orderness_s * _US
    ev = pl.col(EVENT_TIME).cast(_TS).dt.epoch("us")
    # Watermark just before each reading: everything that arrived earlier, this batch or before.
    prior_max = pl.col(_EV).cum_max().shift(1)
    if state._max_event_us is not None:
        prior_max = pl.max_horizontal(prior_max, pl.lit(state._max_event_us, pl.Int64))
    late = (pl.col(_WS) + (size_us + lateness_us) <= prior_max - ooo_us).fill_null(False)
    seen = state._seen.lazy().select(
        "sensor_id", pl.col("event_us").alias(_EV), pl.lit(True).alias(_SEEN)
    )
    # An earlier reading with the same key is never late when this one is not (the watermark only
    # rises), so first occurrence among on-time readings plus the held keys decides duplicates.
    first = pl.struct("sensor_id", _EV, _LATE).is_first_distinct()
    duplicate = ~pl.col(_LATE) & (pl.col(_SEEN).fill_null(False) | ~first)
    if not valid[SEQ].is_sorted():
        valid = valid.sort(SEQ, maintain_order=True)
    # The flags are worked out on the key columns only, then set beside the batch's columns
    # (no copy of the wide batch through the join).
    flags = (
        valid.lazy()
        .select(pl.col("sensor_id"), ev.alias(_EV))
        .with_columns(((pl.col(_EV) // size_us) * size_us).alias(_WS))
        .with_columns(late.alias(_LATE))
        .join(seen, on=["sensor_id", _EV], how="left", maintain_order="left")
        .select(_EV, _WS, _LATE, duplicate.alias(_DUP))
        .collect()
    )
    return valid.hstack(flags.get_columns())


def _partials(kept: pl.LazyFrame, metrics: list[str]) -> pl.LazyFrame:
    """Per (sensor_id, window_start) aggregates of one batch; M2 two-pass within the group."""
    aggs: list[pl.Expr] = [pl.col("location").min(), pl.len().cast(pl.Int64).alias("count")]
    for m in metrics:
        x = pl.col(m)
        aggs += [
            x.count().cast(pl.Int64).alias(_n(m)),
            x.mean().alias(_mean(m)),
            ((x - x.mean()) ** 2).sum().alias(_m2(m)),
            x.min().alias(_min(m)),
            x.max().alias(_max(m)),
        ]
    return (
        kept.select(
            pl.col("sensor_id").cast(pl.String),
            pl.col(_WS).alias("window_start"),
            pl.col("location").cast(pl.String),
            *[pl.col(m).cast(pl.Float64) for m in metrics],
        )
        .group_by(_KEY)
        .agg(aggs)
    )


def _merge(state: pl.DataFrame, part: pl.LazyFrame, metrics: list[str]) -> pl.DataFrame:
    """Fold batch partials into the state rows they touch (Chan's parallel merge).

    Untouched rows are copied as they are, so their floats never drift.
    """
    joined = part.join(state.lazy(), on=_KEY, how="left", suffix="_a")
    exprs: list[pl.Expr] = [
        pl.col("sensor_id"),
        pl.col("window_start"),
        pl.min_horizontal("location", "location_a").alias("location"),
        (pl.col("count") + pl.col("count_a").fill_null(0)).alias("count"),
    ]
    for m in metrics:
        na = pl.col(f"{_n(m)}_a").fill_null(0)
        nb = pl.col(_n(m))
        n = na + nb
        ma, mb = pl.col(f"{_mean(m)}_a"), pl.col(_mean(m))
        m2a, m2b = pl.col(f"{_m2(m)}_a"), pl.col(_m2(m))
        delta = mb - ma
        exprs += [
            n.alias(_n(m)),
            pl.when(na == 0).then(mb).when(nb == 0).then(ma)
            .otherwise(ma + delta * (nb / n)).alias(_mean(m)),
            pl.when(na == 0).then(m2b).when(nb == 0).then(m2a)
            .otherwise(m2a + m2b + delta * delta * (na * nb / n)).alias(_m2(m)),
            pl.min_horizontal(_min(m), f"{_min(m)}_a").alias(_min(m)),
            pl.max_horizontal(_max(m), f"{_max(m)}_a").alias(_max(m)),
        ]
    exprs += [pl.col("version").fill_null(0), pl.lit(True).alias("dirty")]
    untouched = state.lazy().join(part.select(_KEY), on=_KEY, how="anti")
    return pl.concat([untouched, joined.select(exprs)], how="vertical").collect()


def _emit(rows: pl.LazyFrame, config: WindowingConfig, wm_us: int | None) -> pl.LazyFrame:
    """Render state rows (versions already bumped) as emitted window versions."""
    size_us = config.size_s * _US
    end = pl.col("window_start") + size_us
    exprs: list[pl.Expr] = [
        pl.col("sensor_id"),
        pl.col("location"),
        pl.col("window_start").cast(_TS),
        end.cast(_TS).alias("window_end"),
        pl.col("count"),
    ]
    for m in config.metrics:
        n = pl.col(_n(m))
        exprs += [
            pl.when(n > 0).then(pl.col(_mean(m))).alias(f"{m}_mean"),
            pl.col(_min(m)).alias(f"{m}_min"),
            pl.col(_max(m)).alias(f"{m}_max"),
            pl.when(n >= 2).then((pl.col(_m2(m)) / (n - 1)).sqrt()).alias(f"{m}_std"),
        ]
    final = pl.lit(False) if wm_us is None else end <= wm_us
    exprs += [pl.col("version"), final.alias("final")]
    schema = _window_schema(config)
    return (
        rows.select(exprs)
        .sort(["window_start", "sensor_id"])
        .select(pl.col(name).cast(dtype) for name, dtype in schema.items())
    )


def _release(
    windows: pl.DataFrame,
    config: WindowingConfig,
    emit_mask: pl.Expr,
    keep_mask: pl.Expr,
    wm_us: int | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Emit rows matching ``emit_mask`` as a new version; keep rows matching ``keep_mask``.

    Returns (emitted window versions, the new state table).
    """
    bumped = windows.lazy().with_columns(emit_mask.fill_null(False).alias(_EMIT)).with_columns(
        pl.when(_EMIT).then(pl.col("version") + 1).otherwise("version").alias("version"),
        (pl.col("dirty") & ~pl.col(_EMIT)).alias("dirty"),
    )
    emitted = _emit(bumped.filter(_EMIT), config, wm_us)
    kept = bumped.filter(keep_mask).drop(_EMIT)
    out, new_windows = pl.collect_all([emitted, kept])
    return out, new_windows


def update_windows(state: WindowState, valid: pl.DataFrame) -> WindowUpdate:
    """Fold one batch of validated readings into ``state``; emit windows the watermark completed.

    The result does not depend on how readings are split into batches, only on their ``_seq``
    order: late and duplicate sets, and the latest version of every window, are the same for any
    split (the number of intermediate versions is what varies).
    """
    config = state.config
    _check_input(valid, config)
    input_cols = valid.columns
    size_us = config.size_s * _US
    lateness_us = config.allowed_lateness_s * _US

    batch = _classify(state, valid)
    late = batch.filter(_LATE)
    duplicates = batch.filter(_DUP)
    kept = batch.lazy().filter(~pl.col(_LATE) & ~pl.col(_DUP))

    windows = _merge(state._windows, _partials(kept, config.metrics), config.metrics)
    kept_keys = kept.select(pl.col("sensor_id").cast(pl.String), pl.col(_EV).alias("event_us"))
    seen = pl.concat([state._seen.lazy(), kept_keys])

    max_event_us = state._max_event_us
    if batch.height:
        batch_max = int(batch[_EV].max())  # type: ignore[arg-type]
        max_event_us = batch_max if max_event_us is None else max(max_event_us, batch_max)

    wm_us = None if max_event_us is None else max_event_us - config.max_out_of_orderness_s * _US
    if wm_us is None:
        emitted, new_seen = _emit(windows.clear().lazy(), config, wm_us).collect(), seen.collect()
    else:
        end = pl.col("window_start") + size_us
        emitted, windows = _release(
            windows, config, pl.col("dirty") & (end <= wm_us), end + lateness_us > wm_us, wm_us
        )
        # Keys live exactly as long as their window: same closing rule on the key's window.
        seen_end = (pl.col("event_us") // size_us) * size_us + size_us
        new_seen = seen.filter(seen_end + lateness_us > wm_us).collect()

    update = WindowUpdate(
        windows=emitted,
        late=late.with_columns(pl.col(_WS).cast(_TS).alias("window_start")).select(
            [*[c for c in input_cols if c != "window_start"], "window_start"]
        ),
        duplicates=duplicates.select(input_cols),
        state=WindowState(config, windows, new_seen, max_event_us),
    )
    log_event(
        "windows_update",
        level=logging.DEBUG,
        rows=valid.height,
        late_count=late.height,
        duplicates=duplicates.height,
        emitted_count=emitted.height,
        open_windows_count=windows.height,
    )
    return update


def flush_windows(state: WindowState) -> WindowUpdate:
    """End of input: emit every window changed since its last emission, without closing any.

    ``final`` is True only for windows the watermark has passed; later data may still re-emit a
    window with a higher version. ``late`` and ``duplicates`` are empty (no readings come in).
    """
    config = state.config
    wm_us = None
    if state._max_event_us is not None:
        wm_us = state._max_event_us - config.max_out_of_orderness_s * _US
    emitted, windows = _release(state._windows, config, pl.col("dirty"), pl.lit(True), wm_us)
    return WindowUpdate(
        windows=emitted,
        late=pl.DataFrame(),
        duplicates=pl.DataFrame(),
        state=WindowState(config, windows, state._seen, state._max_event_us),
    )
