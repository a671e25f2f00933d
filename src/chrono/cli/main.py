"""``chrono``: the command line entry point."""

from __future__ import annotations

import typer

from chrono.cli import export, run, sample

app = typer.Typer(
    name="chrono",
    help="Chrono turns messy evidence into a trustworthy, deduplicated timeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run", help=run.__doc__)(run.run_command)
app.add_typer(sample.app, name="sample")
app.command("export", help=export.__doc__)(export.export_command)

if __name__ == "__main__":
    app()
