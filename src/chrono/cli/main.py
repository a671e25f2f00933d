"""``chrono``: the command line entry point."""

from __future__ import annotations

import typer

from chrono.core.memory import keep_freed_memory_env

keep_freed_memory_env()  # before anything imports polars: its allocator reads this once

from chrono.cli import (  # noqa: E402
    aws,
    buckets,
    devices,
    export,
    persons,
    run,
    sample,
    scenarios,
    schedule,
    sensors,
    serve,
    worker,
)

app = typer.Typer(
    name="chrono",
    help="Chrono turns messy evidence into a trustworthy timeline, and sensor readings into "
    "validated, windowed, alerting streams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run", help=run.__doc__)(run.run_command)
app.command("schedule", help=schedule.__doc__)(schedule.schedule_command)
app.command("worker", help=worker.__doc__)(worker.worker_command)
app.command("serve", help=serve.__doc__)(serve.serve_command)
app.add_typer(sample.app, name="sample")
app.command("export", help=export.__doc__)(export.export_command)
app.add_typer(persons.app, name="persons")
app.add_typer(devices.app, name="devices")
app.add_typer(sensors.app, name="sensors")
app.add_typer(scenarios.app, name="scenarios")
app.add_typer(buckets.app, name="buckets")
app.add_typer(aws.app, name="aws")

if __name__ == "__main__":
    app()
