"""Incremental sources of sensor readings (SQLite, CSV, NDJSON, MQTT) with restart-safe cursors.

A source hands out batches of readings after a cursor and the cursor after them. Cursors are
small JSON-serialisable dicts that the orchestrator persists once a batch's outputs are written;
reading again from an older cursor returns the same rows again (as long as the input has not
changed under it), so a crash between writing and committing replays instead of losing data.

Every batch is :func:`~chrono.sensors.model.conform`-ed (reading dtypes, extra columns kept) and
carries ``_seq``, strictly increasing across batches and restarts (the cursor holds the next one).
A value that does not cast to its reading dtype becomes null and keeps its text in a
``_raw_<field>`` column (present only when some row of the batch failed), so validation reports
a type error rather than a missing value. Records that cannot be parsed at all become rows with
every reading field null and ``_raw_line_error`` set to a reason code (``ndjson_parse``,
``csv_parse``, ``mqtt_parse``); the batch goes on.

Cursor formats:

* sqlite: ``{"ts", "id", "max_id", "seq"}``; rows in ``(timestamp, id)`` order; rows inserted
  after the cursor passed their position (``id > max_id``) come first in the next batch.
* csv / ndjson: ``{"file", "offset", "seq"}``; ``offset`` is the byte just after the last line
  consumed in ``file`` (files of a folder are read in name order).
* mqtt: ``{"seq"}``; the broker keeps what was not handed out yet (persistent session), and the
  source replays only its previous batch.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from chrono.core.config import StrictModel
from chrono.core.errors import ConfigError, TransientError
from chrono.core.logging import log_event
from chrono.sensors.model import READING_SCHEMA, SEQ, conform, empty_readings

RAW_PREFIX = "_raw_"
"""``_raw_<field>``: text of a value that did not cast to the field's dtype (null elsewhere)."""
LINE_ERROR = "_raw_line_error"
"""Reason code of a record that could not be parsed at all (every reading field is null)."""
NDJSON_PARSE = "ndjson_parse"
CSV_PARSE = "csv_parse"
MQTT_PARSE = "mqtt_parse"

Cursor = dict[str, Any]
"""A source position: a small JSON-serialisable dict (its keys depend on the kind)."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BOM = b"\xef\xbb\xbf"
_FIRST_BLOCK = 1 << 20
_MAX_BLOCK = 16 << 20
_SAMPLE_LINES = 16_384
"""NDJSON batches with more lines infer their schema from this many lines spread over them."""
_SMALL_SEGMENT = 16
"""Below this many lines a failing segment is parsed line by line instead of halved again."""
_UCI_INDEX = "row_index"
"""Name given to an unnamed leading column (rows one field wider than the header); map it with
``source.columns`` (e.g. ``row_index: id``) to keep the file's own record numbers."""


class MqttSettings(StrictModel):
    """Where an ``mqtt`` source subscribes."""

    host: str = "127.0.0.1"
    """Broker host name or address."""
    port: int = 1883
    """Broker TCP port."""
    topic: str = "chrono/sensors/#"
    """Topic filter subscribed to; wildcards allowed."""
    qos: int = Field(default=1, ge=0, le=2)
    """Subscription QoS; 1 or 2 keep messages for this client while the pipeline is down."""
    client_id: str = "chrono-sensors"
    """Fixed client id: the broker keeps the session (and its queued messages) under it."""
    poll_s: float = Field(default=1.0, gt=0)
    """Longest a read waits for messages before returning what it has."""


class SourceConfig(StrictModel):
    """Where readings come from and how their columns map to the reading schema."""

    kind: Literal["sqlite", "csv", "ndjson", "mqtt"] = "sqlite"
    """Kind of source."""
    path: str = "sensor_data.db"
    """Database file (sqlite), or a file or folder (csv/ndjson: every ``*.csv`` / ``*.ndjson``
    of a folder, in name order); relative paths are read against the working folder."""
    table: str = "sensor_readings"
    """Table read by a sqlite source (a plain SQL identifier)."""
    name: str | None = None
    """Dataset name used in lineage and checkpoints; derived from kind and path when unset."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Source column -> reading column, e.g. ``{"date": "timestamp"}``; others keep their name."""
    defaults: dict[str, str | float | int] = Field(default_factory=dict)
    """Constant values for reading columns the source lacks, e.g. ``{"sensor_id": "room-1"}``."""
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    """Broker settings of an ``mqtt`` source."""

    @field_validator("table")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a plain SQL identifier (letters, digits, _)")
        return value

    @field_validator("columns", "defaults")
    @classmethod
    def _no_internal_targets(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        targets = value.values() if info.field_name == "columns" else value.keys()
        if any(not t or t.startswith("_") for t in targets):
            raise ValueError("reading column names must be non-empty and not start with '_'")
        return value


class Source(Protocol):
    """An incremental reader of readings."""

    name: str
    replayable: bool
    """Whether reading has no side effect, so a batch may be read ahead (on another thread,
    one read at a time) and read again from the same cursor."""

    def read(self, cursor: Cursor | None, limit: int) -> tuple[pl.DataFrame, Cursor]:
        """The next batch (at most ``limit`` rows) after ``cursor``, and the cursor after it."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


def open_source(config: SourceConfig, base_dir: Path | None = None) -> Source:
    """Open the source ``config`` describes; relative paths are read against ``base_dir``."""
    if config.kind == "mqtt":
        return MqttSource(config)
    path = Path(config.path)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.exists():
        what = "database file" if config.kind == "sqlite" else "file or folder"
        raise ConfigError(
            "sensor_source_missing",
            f"source.path: {config.kind} {what} {path} not found; create it (e.g. chrono sensors "
            "simulate) or point source.path at an existing one",
        )
    if config.kind == "sqlite":
        return SqliteSource(config, path)
    return FileSource(config, path)


def source_name(config: SourceConfig) -> str:
    """The dataset name of a source: ``config.name`` or one derived from kind and path."""
    if config.name:
        return config.name
    if config.kind == "mqtt":
        return f"mqtt://{config.mqtt.host}:{config.mqtt.port}/{config.mqtt.topic}"
    if config.kind == "sqlite":
        return f"sqlite:{config.path}#{config.table}"
    return f"{config.kind}:{config.path}"


# --------------------------------------------------------------------------- batch shaping
def _finish_batch(frame: pl.DataFrame, config: SourceConfig, seq: int) -> pl.DataFrame:
    """Rename, add defaults, cast (keeping failed text in ``_raw_`` columns), conform, ``_seq``."""
    frame = _rename(frame, config.columns)
    missing = {k: v for k, v in config.defaults.items() if k not in frame.columns}
    if missing:
        # Records that could not be parsed keep every reading field null, defaults included.
        parsed = pl.col(LINE_ERROR).is_null() if LINE_ERROR in frame.columns else pl.lit(True)
        frame = frame.with_columns(
            pl.when(parsed).then(pl.lit(v)).alias(k) for k, v in missing.items()
        )
    frame = conform(_cast_with_raw(frame))
    return frame.with_columns(pl.int_range(seq, seq + frame.height, dtype=pl.Int64).alias(SEQ))


def _rename(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    mapping = {s: t for s, t in columns.items() if s in frame.columns and s != t}
    if not mapping:
        return frame
    # An explicit mapping wins over a column that already carries the target name.
    clash = [t for t in mapping.values() if t in frame.columns and t not in mapping]
    return frame.drop(clash).rename(mapping)


def _is_nested(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.Struct | pl.List | pl.Array | pl.Object)


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """The value of column ``name`` as text, JSON for nested values."""
    col = pl.col(name)
    if dtype == pl.String:
        return col
    if isinstance(dtype, pl.Struct):
        return col.struct.json_encode()
    if isinstance(dtype, pl.List | pl.Array):
        # json_encode works on structs only: wrap, encode, then cut the wrapper off again.
        wrapped = pl.struct(col.alias("v")).struct.json_encode()
        return pl.when(col.is_not_null()).then(wrapped.str.slice(5, wrapped.str.len_chars() - 6))
    if dtype == pl.Binary:
        return col.bin.encode("hex")
    return col.cast(pl.String, strict=False)


def _integral(values: pl.Expr) -> pl.Expr:
    """Floats that hold a whole number, as Int64; anything else null (never truncated)."""
    return pl.when(values.is_finite() & (values == values.round(0))).then(
        values.cast(pl.Int64, strict=False)
    )


def _cast_value(name: str, dtype: pl.DataType, target: pl.DataType) -> pl.Expr:
    """Column ``name`` cast to ``target``; null where it does not cast."""
    col = pl.col(name)
    if _is_nested(dtype) or dtype == pl.Binary:
        return pl.lit(None, dtype=target)
    if target == pl.String:
        return col.cast(pl.String, strict=False)
    if dtype == pl.String:
        text = col.str.strip_chars()
        if target == pl.Int64:
            words = text.str.to_lowercase().replace_strict(
                {"true": 1, "false": 0}, default=None, return_dtype=pl.Int64
            )
            return pl.coalesce(
                text.cast(pl.Int64, strict=False),
                _integral(text.cast(pl.Float64, strict=False)),
                words,
            )
        return text.cast(target, strict=False)
    if target == pl.Int64 and dtype.is_float():
        return _integral(col)
    return col.cast(target, strict=False)


def _given(name: str, dtype: pl.DataType) -> pl.Expr:
    """The source gave a value (an empty or blank string counts as missing)."""
    col = pl.col(name)
    if dtype == pl.String:
        return col.is_not_null() & (col.str.strip_chars().str.len_bytes() > 0)
    return col.is_not_null()


def _quick_cast(name: str, dtype: pl.DataType, target: pl.DataType) -> pl.Expr:
    """The plain cast; where it loses values, :func:`_cast_value` decides (slower, careful)."""
    if _is_nested(dtype) or dtype == pl.Binary:
        return pl.lit(None, dtype=target)
    if target == pl.Int64 and dtype.is_float():
        return _integral(pl.col(name))
    return pl.col(name).cast(target, strict=False)


def _cast_with_raw(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast reading columns to their dtypes; keep the text of failed values in ``_raw_<field>``.

    A plain cast that keeps every value (null counts are free to compare) is the whole cost of
    a clean batch; only columns that lost values are cast again carefully and get ``_raw_``.
    """
    todo = {
        name: frame.schema[name] for name, target in READING_SCHEMA.items()
        if name in frame.columns and frame.schema[name] not in (target, pl.Null)
    }
    if not todo:
        return frame
    quick = frame.select(_quick_cast(n, d, READING_SCHEMA[n]).alias(n) for n, d in todo.items())
    lossy = [n for n in todo if quick[n].null_count() > frame[n].null_count()]
    if not lossy:
        return frame.with_columns(quick)
    values = {n: _cast_value(n, todo[n], READING_SCHEMA[n]) for n in lossy}
    failed = {n: _given(n, todo[n]) & values[n].is_null() for n in lossy}
    counts = frame.select(failed[n].sum().alias(n) for n in lossy).row(0, named=True)
    raws = [
        pl.when(failed[n]).then(_as_text(n, todo[n])).alias(RAW_PREFIX + n)
        for n in lossy if counts[n] and RAW_PREFIX + n not in frame.columns
    ]
    return frame.with_columns(
        *raws, *(values[n].alias(n) for n in lossy),
        *(quick[n] for n in todo if n not in values),
    )


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Stack frames whose columns may differ; columns of clashing types become text."""
    frames = [f for f in frames if f.width]
    if not frames:
        return pl.DataFrame()
    if len(frames) == 1:
        return frames[0]
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError:
        pass
    kinds: dict[str, set[str]] = {}
    for f in frames:
        for name, dtype in f.schema.items():
            kinds.setdefault(name, set()).add(str(dtype))
    clashing = {n for n, k in kinds.items() if len(k - {"Null"}) > 1}
    frames = [
        f.with_columns(_as_text(n, f.schema[n]).alias(n) for n in clashing if n in f.columns)
        for f in frames
    ]
    return pl.concat(frames, how="diagonal_relaxed")


def _blank(data: bytes) -> bool:
    # isspace stops at the first other byte: no copy of a big buffer, unlike strip().
    return not data or data.isspace()


def _error_rows(count: int, code: str) -> pl.DataFrame:
    return pl.DataFrame({LINE_ERROR: [code] * count}, schema={LINE_ERROR: pl.String})


def _parse_lines(data: bytes, parse: Callable[[bytes], pl.DataFrame], code: str) -> pl.DataFrame:
    """Parse whole lines with ``parse``; a line it rejects becomes one ``code`` error row.

    The whole buffer is tried first; a failing buffer is halved until the bad lines are found,
    so a few bad lines cost a few extra parses and the rest stays vectorised.
    """
    try:
        return parse(data)
    except pl.exceptions.PolarsError:
        pass
    frames: list[pl.DataFrame] = []
    _bisect(data, parse, code, frames)
    return _concat(frames)


def _line_ends(data: bytes) -> np.ndarray:
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    return ends


def _bisect(data: bytes, parse: Callable[[bytes], pl.DataFrame], code: str,
            out: list[pl.DataFrame]) -> None:
    ends = _line_ends(data)
    if len(ends) <= _SMALL_SEGMENT:
        start = 0
        for end in ends.tolist():
            line = data[start:end]
            start = end
            if not line.strip():
                continue
            try:
                out.append(parse(line))
            except pl.exceptions.PolarsError:
                out.append(_error_rows(1, code))
        return
    cut = int(ends[len(ends) // 2 - 1])
    for part in (data[:cut], data[cut:]):
        try:
            out.append(parse(part))
        except pl.exceptions.PolarsError:
            _bisect(part, parse, code, out)


def _reading_keys(columns: dict[str, str]) -> dict[str, pl.DataType]:
    """Source key -> reading dtype for every key that lands in a reading column."""
    keys = {r: d for r, d in READING_SCHEMA.items() if r not in columns}
    keys.update({s: READING_SCHEMA[r] for s, r in columns.items() if r in READING_SCHEMA})
    return keys


def _ndjson_parser(reading_keys: dict[str, pl.DataType]) -> Callable[[bytes], pl.DataFrame]:
    """Parses NDJSON with a schema inferred from every line, or from a sample of a big batch.

    Inferring over a million lines costs twice the parse; a sample of ``_SAMPLE_LINES`` lines
    spread over the batch finds the keys, and a value that does not fit the sampled types makes
    polars fail, which falls back to inferring from every line.
    """

    def parse(data: bytes, lines: int | None = None) -> pl.DataFrame:
        if _blank(data):
            return pl.DataFrame()
        lines = data.count(b"\n") + (not data.endswith(b"\n"))
        if lines > _SAMPLE_LINES:
            schema, added = _sampled_schema(data, lines, reading_keys)
            if schema is not None:
                try:
                    frame = pl.read_ndjson(data, schema=schema)
                except pl.exceptions.PolarsError:
                    pass
                else:
                    # Keys the sample lacked and no line had are absent, not null.
                    return frame.drop(k for k in added if frame[k].null_count() == frame.height)
        return pl.read_ndjson(data, infer_schema_length=None)

    return parse


def _sampled_schema(data: bytes, lines: int, reading_keys: dict[str, pl.DataType],
                    ) -> tuple[dict[str, pl.DataType] | None, list[str]]:
    """Types of 64 runs of lines spread over ``data``, widened so valid readings always fit."""
    blocks = 64
    span = max(1, len(data) * (_SAMPLE_LINES // blocks) // lines)
    parts = []
    for b in range(blocks):
        offset = b * max(0, len(data) - span) // (blocks - 1)
        start = 0 if offset == 0 else data.find(b"\n", offset) + 1
        if start <= 0 and offset:
            continue
        stop = data.rfind(b"\n", start, start + span) + 1
        if stop <= start:
            stop = data.find(b"\n", start) + 1 or len(data)
        parts.append(data[start:stop])
    try:
        sampled = pl.read_ndjson(b"\n".join(parts), infer_schema_length=None).schema
    except pl.exceptions.PolarsError:
        return None, []
    if any(_is_nested(d) for d in sampled.values()):
        # Explicit nested types would silently drop keys the sample did not show.
        return None, []
    schema: dict[str, pl.DataType] = {}
    for key, dtype in sampled.items():
        target = reading_keys.get(key)
        if dtype == pl.Null or target == pl.String:
            dtype = pl.String()
        elif target == pl.Float64 and dtype.is_integer():
            dtype = pl.Float64()
        schema[key] = dtype
    added = [k for k in reading_keys if k not in schema]
    # A String column takes any JSON value (numbers and objects as their text).
    schema.update({k: pl.String() for k in added})
    return schema, added


# --------------------------------------------------------------------------- sqlite
def _affinity(declared: str) -> str:
    """SQLite's column affinity for a declared type (https://sqlite.org/datatype3.html)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not t or "BLOB" in t:
        return "BLOB"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Column:
    source: str
    reading: str
    affinity: str

    @property
    def target(self) -> pl.DataType | None:
        return READING_SCHEMA.get(self.reading)

    @property
    def numeric(self) -> bool:
        return self.target is not None and self.target != pl.String


class SqliteSource:
    """Reads a table in ``(timestamp, id)`` order through ADBC (Arrow, no per-row Python).

    Each read is bounded by ``hi``, the largest id at its start, so every query of one read sees
    the same rows even while a writer appends. Rows with an id above the previous read's bound
    whose position the cursor already passed are late arrivals and lead the next batch.
    """

    def __init__(self, config: SourceConfig, path: Path) -> None:
        import adbc_driver_sqlite.dbapi as adbc

        self.replayable = True
        self.name = source_name(config)
        self._closed = False
        self._config = config
        self._path = path
        uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
        try:
            # Reads may run on the read-ahead thread (never two at once), hence no thread check.
            self._meta = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
            self._columns = self._inspect()
            self._conn = adbc.connect(uri, autocommit=True)
            cursor = self._conn.cursor()
            cursor.execute("PRAGMA busy_timeout = 30000")
            cursor.close()
        except sqlite3.Error as exc:
            raise self._error("sensor_source_open", exc) from None
        except OSError as exc:
            raise TransientError(
                "sensor_source_open", f"{path}: cannot open read-only ({type(exc).__name__})"
            ) from None
        by_reading = {c.reading: c for c in self._columns}
        self._id = by_reading["id"].source
        self._ts = by_reading["timestamp"].source
        self._robust: set[str] = set()
        """Columns seen mixing text and numbers: always read with numbers and text apart."""

    def _error(self, code: str, exc: sqlite3.Error) -> Exception:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            return ConfigError(
                "sensor_source_not_sqlite",
                f"source.path: {self._path} is not an SQLite database; point source.path at one "
                "or set source.kind",
            )
        return TransientError(code, f"{self._path}: SQLite failed ({type(exc).__name__})")

    # --- metadata ---------------------------------------------------------------------
    def _inspect(self) -> list[_Column]:
        table = self._config.table
        info = self._meta.execute(f"PRAGMA table_info({_quote_ident(table)})").fetchall()
        if not info:
            raise ConfigError(
                "sensor_source_table",
                f"source.table: table '{table}' not found in {self._path}; create it or set "
                "source.table to an existing table",
            )
        mapped = set(self._config.columns.values())
        columns = [
            _Column(row[1], self._config.columns.get(row[1], row[1]), _affinity(row[2] or ""))
            for row in info
            # A column named like a mapping target gives way to the column mapped onto it.
            if row[1] in self._config.columns or row[1] not in mapped
        ]
        readings = {c.reading for c in columns}
        for needed in ("id", "timestamp"):
            if needed not in readings:
                raise ConfigError(
                    "sensor_source_column",
                    f"source.columns: table '{table}' in {self._path} has no column for "
                    f"'{needed}'; map one with source.columns (e.g. {{\"ts\": \"{needed}\"}})",
                )
        id_col = next(c for c in columns if c.reading == "id")
        pk = [row for row in info if row[5]]
        if not (len(pk) == 1 and pk[0][1] == id_col.source and str(pk[0][2]).upper() == "INTEGER"):
            # Late-arrival detection relies on ids growing with insertion, as rowids do.
            log_event("sensor_source_id_not_rowid", kind="sqlite", code="id_not_rowid")
        if not self._has_order_index(columns):
            log_event("sensor_source_unindexed", kind="sqlite", code="no_timestamp_id_index")
        return columns

    def _has_order_index(self, columns: list[_Column]) -> bool:
        id_source = next(c.source for c in columns if c.reading == "id")
        ts_source = next(c.source for c in columns if c.reading == "timestamp")
        table = _quote_ident(self._config.table)
        for index in self._meta.execute(f"PRAGMA index_list({table})").fetchall():
            cols = [r[2] for r in self._meta.execute(
                f"PRAGMA index_info({_quote_ident(index[1])})").fetchall()]
            # An index on (timestamp) alone ends in the rowid, which is the id for rowid tables.
            if cols[:1] == [ts_source] and (cols[1:2] in ([id_source], [])):
                return True
        return False

    def _select_expr(self, column: _Column, *, robust: bool) -> str:
        q = "t." + _quote_ident(column.source)
        alias = _quote_ident(column.source)
        if robust and column.numeric:
            # Numbers stay numbers; text goes to a side column that polars casts or keeps raw.
            text = _quote_ident("__text__" + column.source)
            return (
                f"CASE WHEN typeof({q}) IN ('integer', 'real') THEN {q} END AS {alias}, "
                f"CASE typeof({q}) WHEN 'text' THEN {q} WHEN 'blob' THEN hex({q}) END AS {text}"
            )
        if column.affinity != "TEXT" and (robust or column.target == pl.String):
            return f"CAST({q} AS TEXT) AS {alias}"
        return f"{q} AS {alias}"

    # --- reading ----------------------------------------------------------------------
    def read(self, cursor: Cursor | None, limit: int) -> tuple[pl.DataFrame, Cursor]:
        state = {"ts": None, "id": None, "max_id": None, "seq": 0, **(cursor or {})}
        seq = int(state["seq"])
        try:
            row = self._meta.execute(
                f"SELECT max({_quote_ident(self._id)}) FROM {_quote_ident(self._config.table)}"
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._error("sensor_source_read", exc) from None
        hi = row[0] if row else None
        if hi is None or limit <= 0:
            return empty_readings(), state
        frames: list[pl.DataFrame] = []
        remaining = limit
        ts, last_id, max_id = state["ts"], state["id"], state["max_id"]
        positioned = last_id is not None
        new_max = hi
        if positioned and max_id is not None and max_id < hi:
            late = self._late(ts, last_id, max_id, hi, remaining)
            if late.height:
                frames.append(late)
                remaining -= late.height
                if remaining == 0:
                    # Possibly more late rows: only what was returned counts as seen.
                    new_max = int(late[self._id][-1])
        if remaining > 0:
            for part in self._ahead(ts, last_id, positioned, hi, remaining):
                if part.height:
                    frames.append(part)
                    remaining -= part.height
                    ts, last_id = part[self._ts][-1], int(part[self._id][-1])
        if max_id is not None:
            new_max = max(new_max, int(max_id))
        batch = _concat(frames) if frames else pl.DataFrame()
        next_cursor = {"ts": ts, "id": last_id, "max_id": new_max, "seq": seq + batch.height}
        if batch.height == 0:
            return empty_readings(), next_cursor
        return _finish_batch(batch, self._config, seq), next_cursor

    def _late(self, ts: Any, last_id: int, max_id: int, hi: int, limit: int) -> pl.DataFrame:
        i, t = "t." + _quote_ident(self._id), "t." + _quote_ident(self._ts)
        if ts is None:
            passed, params = f"{t} IS NULL AND {i} <= ?", [last_id]
        else:
            passed, params = f"({t} IS NULL OR ({t}, {i}) <= (?, ?))", [ts, last_id]
        return self._query(f"{i} > ? AND {i} <= ? AND {passed}", [max_id, hi, *params],
                           f"{i}", limit)

    def _ahead(self, ts: Any, last_id: int | None, positioned: bool, hi: int,
               limit: int) -> Iterator[pl.DataFrame]:
        """Rows after ``(ts, last_id)`` in (timestamp, id) order; null timestamps sort first."""
        i, t = "t." + _quote_ident(self._id), "t." + _quote_ident(self._ts)
        order = f"{t}, {i}"
        if ts is None:
            # Still in (or before) the null-timestamp rows: finish them, then the dated rows.
            where = f"{t} IS NULL AND {i} <= ?"
            params: list[Any] = [hi]
            if positioned:
                where, params = f"{where} AND {i} > ?", [hi, last_id]
            nulls = self._query(where, params, i, limit)
            yield nulls
            if nulls.height >= limit:
                return
            yield self._query(f"{t} IS NOT NULL AND {i} <= ?", [hi], order, limit - nulls.height)
            return
        yield self._query(f"({t}, {i}) > (?, ?) AND {i} <= ?", [ts, last_id, hi], order, limit)

    def _query(self, where: str, params: list[Any], order: str, limit: int) -> pl.DataFrame:
        table = self._fetch(where, params, order, limit)
        if table.height == 0:
            return table
        suspicious = {
            c.source for c in self._columns
            if c.source not in self._robust and c.affinity != "TEXT"
            and (c.numeric or c.target is None)
            and table.schema[c.source] in (pl.String, pl.Binary)
            # The driver types a column of nulls only as text: that is no mix.
            and table[c.source].null_count() < table.height
        }
        if suspicious:
            # The driver renders numbers as text (%e) when a column mixes text and numbers: read
            # such columns with numbers and text apart from now on. The query is bounded, so the
            # second run returns the same rows.
            self._robust |= suspicious
            log_event("sensor_source_mixed_types", kind="sqlite", count=len(suspicious))
            table = self._fetch(where, params, order, limit)
        robust = [c for c in self._columns if c.source in self._robust and c.numeric]
        if not robust:
            return table
        merged = table.with_columns(e for c in robust for e in self._merge_text(c, table.schema))
        empty_raws = [RAW_PREFIX + c.reading for c in robust
                      if merged[RAW_PREFIX + c.reading].null_count() == merged.height]
        return merged.drop([f"__text__{c.source}" for c in robust], *empty_raws)

    def _merge_text(self, column: _Column, schema: pl.Schema) -> list[pl.Expr]:
        """The numbers of ``column`` plus its text values cast; the text that fails, raw."""
        target = column.target
        assert target is not None
        text = f"__text__{column.source}"
        number = pl.col(column.source)
        if schema[column.source].is_integer() or target != pl.Int64:
            number = number.cast(target, strict=False)
        else:
            number = _integral(number.cast(pl.Float64, strict=False))
        value = pl.coalesce(number, _cast_value(text, pl.String(), target))
        failed = _given(text, pl.String()) & value.is_null()
        return [value.alias(column.source),
                pl.when(failed).then(pl.col(text)).alias(RAW_PREFIX + column.reading)]

    def _fetch(self, where: str, params: list[Any], order: str, limit: int) -> pl.DataFrame:
        import adbc_driver_manager

        select = ", ".join(self._select_expr(c, robust=c.source in self._robust)
                           for c in self._columns)
        sql = (f"SELECT {select} FROM {_quote_ident(self._config.table)} AS t "
               f"WHERE {where} ORDER BY {order} LIMIT ?")
        cursor = self._conn.cursor()
        try:
            # One Arrow batch per query, so the driver infers each column's type from all rows.
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(limit + 1)})
            cursor.execute(sql, [*params, limit])
            arrow = cursor.fetch_arrow_table()
        except (adbc_driver_manager.Error, OSError) as exc:
            raise TransientError(
                "sensor_source_read", f"{self._path}: read failed ({type(exc).__name__})"
            ) from None
        finally:
            cursor.close()
        frame = pl.from_arrow(arrow)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._conn.close()
        self._meta.close()


# --------------------------------------------------------------------------- csv / ndjson
@dataclass(frozen=True)
class _CsvLayout:
    data_start: int
    """Byte offset of the first data line (after BOM and header)."""
    schema: dict[str, pl.DataType]
    """All-text schema of a data line; the UCI layout starts with an index column."""


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, raw in enumerate(names):
        name = raw.strip() or f"column_{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


def _read_through_newline(fh: Any, start: int, size: int) -> bytes | None:
    """The bytes from ``start`` through the next newline; None when no newline follows yet."""
    fh.seek(start)
    parts: list[bytes] = []
    pos = start
    while pos < size:
        block = fh.read(min(_FIRST_BLOCK, size - pos))
        if not block:
            break
        cut = block.find(b"\n")
        if cut >= 0:
            parts.append(block[: cut + 1])
            return b"".join(parts)
        parts.append(block)
        pos += len(block)
    return None


class FileSource:
    """Reads whole lines of CSV or NDJSON files from a byte offset, file by file in name order.

    A last line without its newline may still be being written and waits for the next read;
    in a file that is followed by another one it counts as complete, as does an unterminated
    NDJSON line that already holds a whole JSON object.
    """

    def __init__(self, config: SourceConfig, path: Path) -> None:
        self.replayable = True
        self.name = source_name(config)
        self.parse_errors = 0
        """Records that could not be parsed at all, since this source was opened."""
        self._config = config
        self._kind = config.kind
        self._root = path
        self._layouts: dict[str, _CsvLayout] = {}
        self._parse_ndjson = _ndjson_parser(_reading_keys(config.columns))

    def _files(self) -> list[tuple[str, Path]]:
        if self._root.is_dir():
            suffix = f".{self._kind}"
            return sorted((p.name, p) for p in self._root.iterdir()
                          if p.suffix.lower() == suffix and p.is_file())
        if self._root.is_file():
            return [(self._root.name, self._root)]
        return []

    def read(self, cursor: Cursor | None, limit: int) -> tuple[pl.DataFrame, Cursor]:
        state = {"file": None, "offset": 0, "seq": 0, **(cursor or {})}
        seq = int(state["seq"])
        current, offset = state["file"], int(state["offset"])
        files = self._files()
        frames: list[pl.DataFrame] = []
        remaining = limit
        for index, (name, path) in enumerate(files):
            if remaining <= 0:
                break
            if current is not None and name < current:
                continue
            start = offset if name == current else 0
            has_next = index + 1 < len(files)
            frame, end, drained = self._read_file(path, start, remaining, has_next)
            current, offset = name, end
            if frame.height:
                frames.append(frame)
                remaining -= frame.height
            if not drained:
                break
        batch = _concat(frames) if frames else pl.DataFrame()
        next_cursor = {"file": current, "offset": offset, "seq": seq + batch.height}
        if batch.height == 0:
            return empty_readings(), next_cursor
        if LINE_ERROR in batch.columns:
            errors = int(batch[LINE_ERROR].is_not_null().sum())
            if errors:
                self.parse_errors += errors
                log_event("sensor_source_parse_errors", kind=self._kind, count=errors,
                          rows=batch.height)
        return _finish_batch(batch, self._config, seq), next_cursor

    def _read_file(self, path: Path, start: int, max_lines: int,
                   has_next: bool) -> tuple[pl.DataFrame, int, bool]:
        """Rows of up to ``max_lines`` lines from ``start``; the offset after them; whether
        the file is used up."""
        empty = pl.DataFrame()
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if start > size:
                # The file shrank: it was replaced. Its old content was read; do not re-read.
                log_event("sensor_source_file_shrunk", kind=self._kind, size_bytes=size)
                return empty, start, True
            layout: _CsvLayout | None = None
            if self._kind == "csv":
                layout = self._csv_layout(str(path), fh, size)
                if layout is None:
                    return empty, start if not has_next else size, has_next
                start = max(start, layout.data_start)
            elif start == 0 and size >= 3:
                fh.seek(0)
                if fh.read(3) == _BOM:
                    start = 3
            data, end, lines = _take_lines(fh, start, size, max_lines)
            if lines < max_lines and end < size:
                fh.seek(end)
                tail = fh.read(size - end)  # no newline in it: the last line, unterminated
                if has_next or (self._kind == "ndjson" and _is_json_object(tail)):
                    data, end, lines = data + tail + b"\n", size, lines + 1
            drained = end >= size
        if not data:
            return empty, end, drained
        if layout is not None:
            parse = _csv_parser(layout.schema)
            # The line count is known for the whole buffer; halves found by bisection recount.
            frame = _parse_lines(data, lambda d: parse(d, lines if d is data else None),
                                 CSV_PARSE)
        else:
            frame = _parse_lines(data, self._parse_ndjson, NDJSON_PARSE)
        return frame, end, drained

    def _csv_layout(self, key: str, fh: Any, size: int) -> _CsvLayout | None:
        """Header and layout of a CSV file; None while its first data line is incomplete."""
        cached = self._layouts.get(key)
        if cached is not None:
            return cached
        fh.seek(0)
        skip = 3 if fh.read(3) == _BOM else 0
        header = _read_through_newline(fh, skip, size)
        if header is None:
            return None
        first, at = b"", skip + len(header)
        while not first.strip():
            line = _read_through_newline(fh, at, size)
            if line is None:
                return None
            first, at = line, at + len(line)
        names = _unique_names(_csv_row(header))
        width = len(_csv_row(first))
        if width == len(names) + 1:
            # UCI layout: rows start with a quoted row index the header has no name for.
            names = [_UCI_INDEX, *names]
        layout = _CsvLayout(skip + len(header), {n: pl.String() for n in names})
        self._layouts[key] = layout
        return layout

    def close(self) -> None:
        self._layouts.clear()


def _csv_row(line: bytes) -> list[str]:
    """The fields of one CSV line (a header, or the first data line to count its fields)."""
    if _blank(line):
        return []
    try:
        frame = pl.read_csv(line, has_header=False, infer_schema=False, encoding="utf8-lossy",
                            truncate_ragged_lines=True)
    except pl.exceptions.PolarsError:
        # Not CSV polars accepts (a stray quote): fields are still what the commas separate.
        return line.decode("utf-8", "replace").rstrip("\r\n").split(",")
    return ["" if v is None else str(v) for v in frame.row(0)] if frame.height else []


def _csv_parser(schema: dict[str, pl.DataType]) -> Callable[[bytes, int | None], pl.DataFrame]:
    def read(data: bytes) -> pl.DataFrame:
        return pl.read_csv(data, has_header=False, schema=schema, missing_columns="insert",
                           encoding="utf8-lossy")

    def careful(data: bytes) -> pl.DataFrame:
        if b"\n\n" in data or b"\n\r\n" in data or data[:1] in (b"\n", b"\r"):
            # Blank lines are not records (polars would read them as all-null rows).
            data = re.sub(rb"(?m)^[ \t]*\r?\n", b"", data)
        if _blank(data):
            return pl.DataFrame(schema=schema)
        return read(data)

    def parse(data: bytes, lines: int | None = None) -> pl.DataFrame:
        # Two substring scans of a whole batch cost a fifth of its parse. Parse first: a blank
        # line (outside quotes) is an all-null row, and a quoted newline makes fewer rows than
        # lines, so one row per line and no all-null row mean ``careful`` would not have changed
        # the bytes. Anything else is parsed again by ``careful``, exactly as before.
        if _blank(data) or data[:1] in (b"\n", b"\r"):
            return careful(data)
        try:
            frame = read(data)
        except pl.exceptions.PolarsError:
            return careful(data)
        if lines is None:
            lines = data.count(b"\n") + (not data.endswith(b"\n"))
        if frame.height != lines or frame.select(
                pl.all_horizontal(pl.all().is_null()).any()).item():
            return careful(data)
        return frame
    return parse


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _take_lines(fh: Any, start: int, size: int, max_lines: int) -> tuple[bytes, int, int]:
    """Up to ``max_lines`` whole lines from ``start`` (bytes up to ``size`` only): the bytes, the
    offset after them and the number of lines."""
    fh.seek(start)
    parts: list[bytes] = []
    pos = complete = start
    lines = 0
    block_size = _FIRST_BLOCK
    while pos < size and lines < max_lines:
        block = fh.read(min(block_size, size - pos))
        if not block:
            break
        found = block.count(b"\n")
        if lines + found >= max_lines:
            newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            cut = int(newlines[max_lines - lines - 1]) + 1
            parts.append(block[:cut])
            complete = pos + cut
            lines = max_lines
            break
        parts.append(block)
        last = block.rfind(b"\n")
        if last >= 0:
            complete = pos + last + 1
        lines += found
        pos += len(block)
        block_size = min(block_size * 2, _MAX_BLOCK)
    data = b"".join(parts)[: complete - start]
    return data, complete, lines


# --------------------------------------------------------------------------- mqtt
class MqttSource:
    """Subscribes with a persistent session (fixed client id, clean session off, QoS 1).

    The broker queues messages for the session while the pipeline is down and delivers them on
    the next connect. A message is acknowledged when a read hands it out, so what still waits
    in memory at a crash or a close is delivered again on the next connect; only the batch being
    processed at a crash is lost. Mosquitto's defaults bound what it holds for a session that
    does not acknowledge: 20 in flight plus ``max_queued_messages`` (1000) queued, beyond which
    it drops. Raise those in mosquitto.conf for long outages or bursts between reads.
    The previous batch is kept so a read from its starting cursor returns it again.
    """

    def __init__(self, config: SourceConfig) -> None:
        import paho.mqtt.client as mqtt

        self.replayable = False
        self.name = source_name(config)
        self._closed = False
        self.parse_errors = 0
        """Messages (or list items) that were not JSON objects, since this source was opened."""
        self._config = config
        self._settings = settings = config.mqtt
        self._where = f"{settings.host}:{settings.port}"
        self._buffer: deque[Any] = deque()
        self._arrived = threading.Condition()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._refused: int | None = None
        self._last: tuple[int, int, pl.DataFrame] | None = None
        self._parse = _ndjson_parser(_reading_keys(config.columns))
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        try:
            client.connect(settings.host, settings.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise TransientError(
                "sensor_source_unreachable",
                f"MQTT broker {self._where} unreachable ({type(exc).__name__}); start it or fix "
                "source.mqtt.host / source.mqtt.port",
            ) from None
        client.loop_start()
        if not (self._connected.wait(10) and self._subscribed.wait(10)) or self._refused:
            client.loop_stop()
            client.disconnect()
            code = self._refused if self._refused is not None else "timeout"
            raise TransientError(
                "sensor_source_unreachable",
                f"MQTT broker {self._where} did not accept the session ({code})",
            )

    # Callbacks run on paho's network thread.
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._refused = int(reason.value)
            return
        self._connected.set()
        client.subscribe(self._settings.topic, qos=self._settings.qos)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._connected.clear()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            self._refused = int(refused[0].value)
        self._subscribed.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._arrived:
            self._buffer.append(message)
            self._arrived.notify()

    def read(self, cursor: Cursor | None, limit: int) -> tuple[pl.DataFrame, Cursor]:
        seq = int((cursor or {}).get("seq", 0))
        if self._last is not None and self._last[0] == seq:
            _, end, frame = self._last
            return frame, {"seq": end}
        lines: list[bytes] = []
        deadline = time.monotonic() + self._settings.poll_s
        full = False
        while not full:
            taken = []
            with self._arrived:
                while self._buffer and len(lines) < limit:
                    records = _message_lines(self._buffer[0].payload)
                    if lines and len(lines) + len(records) > limit:
                        break
                    taken.append(self._buffer.popleft())
                    lines.extend(records)
                full = len(lines) >= limit or bool(self._buffer)
                wait = deadline - time.monotonic()
                if not (full or taken or wait <= 0):
                    self._arrived.wait(wait)
            # Acknowledged once handed out, outside the lock (paho's thread takes it to deliver);
            # each ack lets the broker send the next message of its in-flight window.
            for message in taken:
                self._client.ack(message.mid, message.qos)
            if wait <= 0:
                break
        if not lines:
            if not self._connected.is_set():
                raise TransientError(
                    "sensor_source_unreachable", f"MQTT broker {self._where}: connection lost"
                )
            return empty_readings(), {"seq": seq}
        frame = _parse_lines(b"\n".join(lines) + b"\n", self._parse, MQTT_PARSE)
        if LINE_ERROR in frame.columns:
            errors = int(frame[LINE_ERROR].is_not_null().sum())
            self.parse_errors += errors
            log_event("sensor_source_parse_errors", kind="mqtt", count=errors, rows=frame.height)
        batch = _finish_batch(frame, self._config, seq)
        self._last = (seq, seq + batch.height, batch)
        return batch, {"seq": seq + batch.height}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()


_NOT_JSON = b"\x00"
"""A line no JSON parser accepts: stands for a payload that is not a JSON object."""


def _message_lines(payload: bytes) -> list[bytes]:
    """One NDJSON line per reading in an MQTT payload (a JSON object or a list of objects)."""
    body = payload.strip()
    if body.startswith(b"{") and b"\n" not in body and b"\r" not in body:
        return [body]
    try:
        value = json.loads(body)
    except ValueError:
        return [_NOT_JSON]
    items = value if isinstance(value, list) else [value]
    return [_object_line(item) for item in items]


def _object_line(item: Any) -> bytes:
    if not isinstance(item, dict):
        return _NOT_JSON
    try:
        # Python's json reads NaN and Infinity, which are not JSON: such an object is rejected.
        return json.dumps(item, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return _NOT_JSON
