"""``chrono sensors``: simulate edge readings, run the sensor pipeline, render the Bacalhau job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from chrono.cli.errors import friendly_errors
from chrono.core.logging import configure_logging
from chrono.core.memory import keep_freed_memory

app = typer.Typer(help="The sensor pipeline: simulate readings, run it, deploy it to edge nodes.",
                  no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="pipeline.yaml (default: $CHRONO_PIPELINE_CONFIG, else ./pipeline.yaml "
    "if present, else built-in defaults).")]


@app.command("simulate")
def simulate_command(
    db: Annotated[Path, typer.Option("--db", help="SQLite file to write (table sensor_readings).")
    ] = Path("sensor_data.db"),
    sensors: Annotated[int, typer.Option(min=1, help="Number of sensors.")] = 50,
    minutes: Annotated[int, typer.Option(min=1, help="Minutes of readings (event time).")] = 60,
    anomaly_rate: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Approximate share of anomalous readings.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical data.")
    ] = 0,
    interval_s: Annotated[int, typer.Option(min=1, help="Seconds between a sensor's readings.")
    ] = 5,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing sensor_readings table.")
    ] = False,
) -> None:
    """Write simulated sensor readings and the ground truth they were planted with.

    The sensor_readings table holds anomalies and invalid, duplicate, out-of-order and late rows;
    DB.truth.json next to the database names each of them by id. An existing table is refused
    unless --overwrite is given."""
    from chrono.sensors.simulate import simulate

    with friendly_errors():
        summary = simulate(db, sensors=sensors, minutes=minutes, anomaly_rate=anomaly_rate,
                           seed=seed, interval_s=interval_s, overwrite=overwrite)
    Console(stderr=True).print(
        f"[bold green]wrote[/] {summary.rows} readings to {summary.db_path} "
        f"({summary.valid} valid, {summary.invalid} invalid, {summary.duplicates} duplicates, "
        f"{summary.late} late, {summary.incidents} incidents); truth: {summary.truth_path}"
    )


def counters_table(summary: Any) -> Table:
    """The live/final table of a run's counters, one row per counter."""
    table = Table(title=f"sensor run {summary.run_id[:8]} ({summary.status})")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name, value in summary.counts.items():
        table.add_row(name, str(value))
    return table


@app.command("run")
def run_command(
    config: ConfigOption = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Process what the source holds now, flush windows and incidents, stop.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Compute everything, write nothing; print what would be written.")
    ] = False,
    max_cycles: Annotated[int | None, typer.Option(
        "--max-cycles", min=1, help="Stop after this many cycles (continuous mode).")] = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="No live counters table on stderr.")] = False,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the run summary as JSON on stdout instead of a table.")] = False,
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], typer.Option(
        case_sensitive=False, help="Level of the JSON log on stderr.")] = "WARNING",
) -> None:
    """Run the sensor pipeline with the active scenarios (see `chrono scenarios`)."""
    from chrono.sensors.config import load_pipeline_config
    from chrono.sensors.orchestrator import SensorOrchestrator

    configure_logging(log_level)
    out = Console()
    with friendly_errors():
        cfg = load_pipeline_config(config)
        live: Live | None = None
        if not quiet:
            live = Live(console=Console(stderr=True), auto_refresh=False, transient=False)

        def refresh(summary: Any) -> None:
            if live is not None:
                live.update(counters_table(summary), refresh=True)

        keep_freed_memory()  # a batch loop: reuse freed buffers instead of faulting them in
        orchestrator = SensorOrchestrator(cfg, dry_run=dry_run, on_cycle=refresh)
        if live is not None:
            live.start()
        try:
            summary = orchestrator.run(once=once, max_cycles=max_cycles)
        finally:
            if live is not None:
                # The last cycle's frame predates the flush and the final status: redraw it.
                refresh(orchestrator.summary)
                live.stop()
    if json_out:
        out.print_json(json.dumps(summary.to_dict()))
        return
    out.print(counters_table(summary))
    if dry_run:
        plan = Table(title="dry run: would write")
        for col in ("sink", "bucket", "key"):
            plan.add_column(col, overflow="fold")  # a plan with elided keys is no plan
        plan.add_column("rows", justify="right")
        for p in summary.planned:
            plan.add_row(p["sink"], p["bucket_url"], p["key"], str(p["rows"]))
        out.print(plan)
        for nid in summary.would_notify:
            out.print(f"would notify {nid}")


@app.command("bacalhau-job")
def bacalhau_job_command(
    config: ConfigOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the job YAML here.")] = None,
    continuous: Annotated[bool, typer.Option(
        "--continuous", help="The job runs the orchestrator continuously instead of --once.")
    ] = False,
    container_config: Annotated[str | None, typer.Option(
        "--container-config", help="Path of pipeline.yaml inside the job's container "
        "(default: DATA_PATH/pipeline.yaml, DATA_PATH being bacalhau.data_path).")] = None,
) -> None:
    """Print the Bacalhau job spec that runs the orchestrator on edge nodes."""
    from chrono.sensors.bacalhau import bacalhau_job_spec, render_job_yaml
    from chrono.sensors.config import load_pipeline_config

    with friendly_errors():
        cfg = load_pipeline_config(config)
        path = container_config or f"{cfg.bacalhau.data_path}/pipeline.yaml"
        text = render_job_yaml(bacalhau_job_spec(cfg.bacalhau, pipeline_config_path=path,
                                                 once=not continuous))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        Console(stderr=True).print(f"[bold green]wrote[/] {out}")
