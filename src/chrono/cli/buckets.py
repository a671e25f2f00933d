"""``chrono buckets``: create the sensor pipeline's buckets (folders or S3) from pipeline.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from chrono.cli.errors import friendly_errors

app = typer.Typer(help="Create the raw, schematized, error, archival and aggregated buckets.",
                  no_args_is_help=True)


@app.command("create")
def create_command(
    config: Annotated[Path | None, typer.Option(
        "--config", help="pipeline.yaml naming the buckets (default: folders under data_dir).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (what would be created or changed); touch nothing.")
    ] = False,
) -> None:
    """Create every bucket named in pipeline.yaml; safe to repeat.

    Local buckets become folders; s3:// buckets are created with versioning, default encryption
    and lifecycle rules. A bucket already there shows as exists; settings already in place are
    left as they are."""
    from chrono.sensors.config import load_pipeline_config
    from chrono.storage.buckets import create_buckets

    with friendly_errors():
        cfg = load_pipeline_config(config)
        actions = create_buckets(cfg.all_buckets(), endpoint_url=cfg.endpoint_url,
                                 dry_run=dry_run)
    table = Table(title="bucket plan (dry run)" if dry_run else "buckets")
    for col in ("bucket", "url", "action", "detail"):
        table.add_column(col)
    for a in actions:
        table.add_row(a.bucket, a.url, a.action, a.detail)
    Console().print(table)
