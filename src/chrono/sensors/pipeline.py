"""The steps of one sensor cycle, in order, on the same step framework as the evidence pipeline.

A :class:`Cycle` carries one batch from step to step; each step returns the counters it adds to
the run. Steps whose scenario is off still run when later steps need their results (validation
and windows always run, so switching scenarios never corrupts the state); they only skip writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from chrono.core.steps import Pipeline
from chrono.sensors.lineage import LineageInfo, add_lineage
from chrono.sensors.model import ANOMALOUS, SEQ
from chrono.sensors.notify import Notification, detect_incidents
from chrono.sensors.spec import validate
from chrono.sensors.windows import WindowUpdate, update_windows

if TYPE_CHECKING:
    from chrono.sensors.orchestrator import SensorOrchestrator

DUPLICATE_RULE = "duplicate_reading"


@dataclass
class Cycle:
    """One batch on its way through the steps."""

    run: SensorOrchestrator
    scenarios: tuple[str, ...]
    batch: pl.DataFrame
    cursor: dict[str, Any]
    part: str
    """File name part of this batch's outputs: its first and last ``_seq``."""
    lineage: LineageInfo | None
    raw: pl.DataFrame = field(default_factory=pl.DataFrame)
    valid: pl.DataFrame = field(default_factory=pl.DataFrame)
    errors: pl.DataFrame = field(default_factory=pl.DataFrame)
    windows: pl.DataFrame = field(default_factory=pl.DataFrame)
    late: pl.DataFrame = field(default_factory=pl.DataFrame)
    update: WindowUpdate | None = None
    notifications: list[Notification] = field(default_factory=list)

    def on(self, scenario: str) -> bool:
        return scenario in self.scenarios

    def streams(self) -> dict[str, pl.DataFrame]:
        return {"raw": self.raw, "schematized": self.valid, "errors": self.errors,
                "windows": self.windows, "late": self.late}


cycle_steps: Pipeline[Cycle] = Pipeline("sensor-cycle")


@cycle_steps.step("raw", inputs=("source",), outputs=("raw",))
def archive_raw(c: Cycle) -> dict[str, Any]:
    """Archive the batch as received (scenario ``raw``)."""
    c.raw = raw_view(c.batch)
    if c.on("raw"):
        c.run.writer.write_stream("raw", c.run.named_bucket("raw"), "raw", c.raw, c.part)
    return {"processed": c.batch.height, "batches": 1}


@cycle_steps.step("validate", inputs=("source",), outputs=("valid", "errors"))
def validate_batch(c: Cycle) -> dict[str, Any]:
    """Check every reading against the spec; invalid ones keep every failed rule."""
    result = validate(c.batch, c.run.spec)
    c.valid, c.errors = result.valid, result.invalid
    return {}


@cycle_steps.step("windows", inputs=("valid",), outputs=("windows", "late"))
def update_window_state(c: Cycle) -> dict[str, Any]:
    """Drop duplicates, route late readings, merge the rest into event-time windows."""
    update = update_windows(c.run.windows, c.valid)
    c.update = update
    if not update.duplicates.is_empty():
        c.valid = c.valid.join(update.duplicates.select(SEQ), on=SEQ, how="anti")
    c.errors = with_duplicates(c.errors, update.duplicates, c.run.spec.version)
    c.windows, c.late = update.windows, update.late
    if c.lineage is not None:
        c.valid, c.errors = add_lineage(c.valid, c.lineage), add_lineage(c.errors, c.lineage)
        c.windows, c.late = add_lineage(c.windows, c.lineage), add_lineage(c.late, c.lineage)
    return {"valid": c.valid.height, "invalid": c.errors.height,
            "duplicates": update.duplicates.height, "windows": c.windows.height,
            "late": c.late.height}


@cycle_steps.step("schematized", inputs=("valid", "errors"), outputs=("schematized", "error"))
def write_schematized(c: Cycle) -> dict[str, Any]:
    """Valid readings to the schematized bucket, the rest to error (scenario ``schematized``)."""
    if c.on("schematized"):
        w = c.run.writer
        w.write_stream("schematized", c.run.named_bucket("schematized"), "schematized", c.valid,
                       c.part)
        w.write_stream("error", c.run.named_bucket("error"), "errors", c.errors, c.part)
    return {}


@cycle_steps.step("route", inputs=("raw", "valid", "errors", "windows", "late"),
                  outputs=("archival", "aggregated"))
def route_streams(c: Cycle) -> dict[str, Any]:
    """Send streams to their destinations (scenario ``multi_destination``)."""
    if c.on("multi_destination"):
        c.run.route(c.streams(), c.part)
    return {}


@cycle_steps.step("notify", inputs=("valid",), outputs=("notifications",))
def notify_incidents(c: Cycle) -> dict[str, Any]:
    """Find incidents among anomalous readings; deliver them (scenario ``notification``)."""
    assert c.update is not None
    anomalous = c.valid.filter(pl.col(ANOMALOUS))
    notes, c.run.incidents = detect_incidents(
        c.run.incidents, anomalous, c.update.state.watermark, c.run.config.notification)
    c.run.notify(notes, c.on("notification"))
    return {"anomalies": anomalous.height}


@cycle_steps.step("commit", inputs=("windows", "notifications"), outputs=("checkpoint",))
def commit_checkpoint(c: Cycle) -> dict[str, Any]:
    """Commit cursor, window state and incident state together, after every output."""
    assert c.update is not None
    c.run.windows, c.run.cursor = c.update.state, c.cursor
    c.run.batches += 1
    c.run.commit_async()  # lands once every output of the batch has
    return {}


def raw_view(batch: pl.DataFrame) -> pl.DataFrame:
    """The batch as received: reading columns, plus the original text of values that did not
    parse (``_raw_x`` kept as ``raw_x``)."""
    raw_cols = [c for c in batch.columns if c.startswith("_raw_")]
    return batch.rename({c: c[1:] for c in raw_cols})


def with_duplicates(invalid: pl.DataFrame, duplicates: pl.DataFrame,
                    spec_version: str) -> pl.DataFrame:
    """Invalid readings plus duplicates, each duplicate with the ``duplicate_reading`` rule."""
    if duplicates.is_empty():
        return invalid
    error = pl.struct(
        pl.lit(DUPLICATE_RULE).alias("rule_id"), pl.lit("timestamp").alias("field"),
        pl.lit("same sensor_id and timestamp as an earlier reading").alias("message"),
    )
    dups = duplicates.with_columns(
        pl.concat_list(error).alias("errors"), pl.lit(spec_version).alias("spec_version"),
    )
    return pl.concat([invalid, dups], how="diagonal_relaxed")
