"""The reading as every sensor component sees it: column names and polars dtypes.

Readings travel between components as :class:`polars.DataFrame` batches. The columns below are
the ``sensor_readings`` table of common edge generators; a source fills missing ones with nulls and
keeps extra ones. Columns starting with ``_`` are internal: they steer processing and are never
written to a bucket.
"""

from __future__ import annotations

import polars as pl

READING_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "timestamp": pl.String(),
    "sensor_id": pl.String(),
    "temperature": pl.Float64(),
    "humidity": pl.Float64(),
    "pressure": pl.Float64(),
    "vibration": pl.Float64(),
    "voltage": pl.Float64(),
    "status_code": pl.Int64(),
    "anomaly_flag": pl.Int64(),
    "anomaly_type": pl.String(),
    "firmware_version": pl.String(),
    "model": pl.String(),
    "manufacturer": pl.String(),
    "location": pl.String(),
    "latitude": pl.Float64(),
    "longitude": pl.Float64(),
    "original_timezone": pl.String(),
}
"""Columns of a reading as received, in table order."""

METRICS: tuple[str, ...] = ("temperature", "humidity", "pressure", "vibration", "voltage")
"""Numeric measurements that windows aggregate."""

ANOMALY_TYPES: tuple[str, ...] = ("spike", "trend", "pattern", "missing_data", "noise")

SEQ = "_seq"
"""Arrival order (Int64): strictly increasing within a source, across batches and restarts."""
EVENT_TIME = "_event_time"
"""The parsed ``timestamp`` as ``Datetime("us", "UTC")``; added by validation to valid rows."""
ANOMALOUS = "_anomalous"
"""Boolean: the reading is flagged by the sensor or breaks an anomaly threshold of the spec."""
LINEAGE = "lineage"
"""Nested struct added by the lineage scenario (written to buckets, unlike ``_`` columns)."""


def empty_readings() -> pl.DataFrame:
    """A zero-row batch with the reading schema and a ``_seq`` column."""
    return pl.DataFrame(schema={**READING_SCHEMA, SEQ: pl.Int64()})


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast known columns to the reading schema, adding missing ones as nulls; extras kept.

    Values that cannot be cast become null (the validator then reports them missing or wrong).
    """
    exprs = []
    for name, dtype in READING_SCHEMA.items():
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype, strict=False))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    extras = [c for c in frame.columns if c not in READING_SCHEMA]
    return frame.select(*exprs, *extras)


def public_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop internal ``_`` columns before a batch is written anywhere."""
    return frame.select([c for c in frame.columns if not c.startswith("_")])
