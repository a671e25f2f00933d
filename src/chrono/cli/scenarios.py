"""``chrono scenarios``: which sensor scenarios run, who set them, and what the runs did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from chrono.cli.errors import friendly_errors
from chrono.sensors.scenarios import ScenarioStore

app = typer.Typer(help="Switch the sensor pipeline's scenarios at run time and see their history.",
                  no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="pipeline.yaml (its data_dir holds the scenario store).")]


def _store(config: Path | None) -> ScenarioStore:
    from chrono.sensors.config import load_pipeline_config

    cfg = load_pipeline_config(config)
    return ScenarioStore(cfg.scenario_store_path, default=tuple(cfg.scenarios.default))


@app.command("get")
def get_command(config: ConfigOption = None) -> None:
    """Show the active scenarios, who set them and when."""
    with friendly_errors():
        setting = _store(config).get()
    typer.echo(" ".join(setting.active))
    Console(stderr=True).print(f"set by {setting.set_by} at {setting.set_at.isoformat()}")


@app.command("set")
def set_command(
    names: Annotated[list[str], typer.Argument(
        metavar="SCENARIO",
        help="Scenarios to activate: raw schematized lineage multi_destination notification.")],
    by: Annotated[str, typer.Option("--by", help="Who is making the change (recorded).")],
    config: ConfigOption = None,
) -> None:
    """Activate exactly these scenarios; a running orchestrator picks them up next cycle."""
    with friendly_errors():
        setting = _store(config).set(names, by)
    typer.echo(" ".join(setting.active))


@app.command("history")
def history_command(
    limit: Annotated[int, typer.Option(min=1, help="How many changes to show.")] = 10,
    config: ConfigOption = None,
) -> None:
    """Past scenario changes, newest first."""
    with friendly_errors():
        rows = _store(config).history(limit)
    table = Table(title="scenario changes")
    for col in ("#", "set at", "by", "scenarios"):
        table.add_column(col)
    for s in rows:
        table.add_row(str(s.setting_id), s.set_at.isoformat(), s.set_by, " ".join(s.active))
    Console().print(table)


@app.command("stats")
def stats_command(
    config: ConfigOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Executions per status, counter totals and how often each scenario ran."""
    with friendly_errors():
        stats = _store(config).stats()
    if json_out:
        typer.echo(json.dumps(stats, default=str, sort_keys=True))
        return
    table = Table(title="scenario stats")
    table.add_column("key")
    table.add_column("value")
    for key, value in stats.items():
        table.add_row(key, json.dumps(value, default=str) if not isinstance(value, str) else value)
    Console().print(table)
