"""Process one scheduled group (the ECS task and Dask task entry): extract, publish, commit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from chrono.cli.errors import friendly_errors
from chrono.cli.run import read_passwords
from chrono.core.config import load_config
from chrono.core.logging import configure_logging


def worker_command(
    groups: Annotated[str, typer.Option(
        "--groups", help="The schedule's groups.ndjson (a path or s3://...), or its bucket.")],
    index: Annotated[int, typer.Option("--index", min=0, help="Which group to process.")],
    artifact_bucket: Annotated[str | None, typer.Option(
        "--artifact-bucket", help="Override the artifact bucket named in the group.")] = None,
    source_bucket: Annotated[str | None, typer.Option(
        "--source-bucket", help="Override the source bucket named in the group.")] = None,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="Passwords to try on encrypted archives and PDFs, one a line.")
    ] = None,
    endpoint_url: Annotated[str | None, typer.Option(
        "--endpoint-url", help="S3 endpoint for s3:// buckets (MinIO, moto).")] = None,
    overwrite_existing: Annotated[bool, typer.Option(
        "--overwrite-existing", help="Redo the group and its files even if committed.")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Extraction processes for this group (default: cores).")
    ] = None,
    work_dir: Annotated[Path | None, typer.Option(
        "--work-dir", help="Local folder for staged sources (default: TMPDIR/chrono-scale).")
    ] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="chrono.yaml with settings to override the defaults.")] = None,
    log_level: Annotated[str, typer.Option(
        help="Log level of the JSON log on stderr.")] = "WARNING",
) -> None:
    """Process group INDEX of a schedule; prints the outcome as JSON, exits 1 if it failed."""
    from chrono.scale import Passwords, WorkerSettings, process_group
    from chrono.scale.settings import default_work_dir

    with friendly_errors():
        configure_logging(log_level)
        groups_url = groups if groups.endswith(".ndjson") else groups.rstrip("/") + "/groups.ndjson"
        settings = WorkerSettings(
            source_url=source_bucket, artifact_url=artifact_bucket,
            overwrite=overwrite_existing, passwords=Passwords(read_passwords(password_file)),
            endpoint_url=endpoint_url, config=load_config(config).evidence,
            work_dir=str(work_dir) if work_dir else default_work_dir(),
            extraction_workers=workers or os.cpu_count() or 1,
        )
        outcome = process_group(groups_url, index, settings)
    typer.echo(json.dumps(outcome.to_dict(), sort_keys=True))
    if outcome.status == "failed":
        raise typer.Exit(1)
