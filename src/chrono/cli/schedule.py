"""Schedule the evidence pipeline over buckets in groups; with --execute, run it too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chrono.cli.errors import friendly_errors
from chrono.cli.run import read_passwords
from chrono.core.config import load_config
from chrono.core.logging import configure_logging
from chrono.evidence.pipeline import pipeline

MULTI_VALUE_SEED_FLAGS = frozenset({"--prefix", "--steps"})
"""Seed flags that took several values after one flag (``--prefix A B``)."""
SEED_RENAMES = {"--execute-step-functions": "--execute"}


def seed_args(argv: list[str]) -> list[str]:
    """The seed's ``schedule_pipeline.py`` arguments as ``chrono schedule`` arguments.

    Underscores in flag names become dashes (values are kept), ``--execute_step_functions``
    becomes ``--execute``, and ``--prefix A B`` becomes ``--prefix A --prefix B``.
    """
    out: list[str] = []
    repeat: str | None = None
    for arg in argv:
        if arg.startswith("--"):
            name, sep, value = arg.partition("=")
            name = SEED_RENAMES.get(name.replace("_", "-"), name.replace("_", "-"))
            out.append(name + sep + value)
            repeat = name if name in MULTI_VALUE_SEED_FLAGS and not sep else None
            if repeat is not None:
                out.pop()  # re-added before each value
            continue
        if repeat is not None:
            out.extend([repeat, arg])
        else:
            out.append(arg)
    return out


def schedule_command(
    source_bucket: Annotated[str, typer.Option(
        "--source-bucket", help="The production: a folder or s3://BUCKET/PREFIX.")],
    inventory_bucket: Annotated[str, typer.Option(
        "--inventory-bucket", help="Where groups.ndjson and files.ndjson are written.")],
    artifact_bucket: Annotated[str, typer.Option(
        "--artifact-bucket", help="Artifacts, blobs, events and per-group results.")],
    report_bucket: Annotated[str, typer.Option(
        "--report-bucket", help="Run reports and schedule summaries.")],
    mode: Annotated[str, typer.Option(
        "--mode", help="local (process pool here), dask (a Dask cluster) or aws.")] = "local",
    prefix: Annotated[list[str] | None, typer.Option(
        "--prefix", help="Only source keys starting with this (repeat the option).")] = None,
    execute: Annotated[bool, typer.Option(
        "--execute", help="Run the groups and the global phases; without it only schedule.")
    ] = False,
    overwrite_existing: Annotated[bool, typer.Option(
        "--overwrite-existing", help="Reprocess files whose artifacts already exist.")] = False,
    minimum_batch_size: Annotated[int, typer.Option(
        "--minimum-batch-size", min=1, help="Fewest files per group (families never split).")
    ] = 1000,
    max_concurrency: Annotated[int, typer.Option(
        "--max-concurrency", min=1, help="Most groups running at once.")] = 300,
    steps: Annotated[list[str] | None, typer.Option(
        "--steps", help=f"Run only these steps (repeat the option): {', '.join(pipeline.names)}; "
        "extraction is the fan-out over groups, the later steps run once after it.")] = None,
    skip_event_generation: Annotated[bool, typer.Option(
        "--skip-event-generation", help="Skip the events step.")] = False,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="Passwords to try on encrypted archives and PDFs, one a line.")
    ] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Dask scheduler (tcp://HOST:8786); default: a local cluster.")
    ] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="Database URL; default sqlite:///<artifact folder or its local mirror>/"
        "chrono.db.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Groups at once (local) or local Dask workers (default: cores).")
    ] = None,
    endpoint_url: Annotated[str | None, typer.Option(
        "--endpoint-url", help="S3 endpoint for s3:// buckets (MinIO, moto).")] = None,
    work_dir: Annotated[Path | None, typer.Option(
        "--work-dir", help="Local folder for staged sources and mirrors (default: "
        "TMPDIR/chrono-scale).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="chrono.yaml with settings to override the defaults.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    log_level: Annotated[str, typer.Option(
        help="Log level of the JSON log on stderr.")] = "WARNING",
) -> None:
    """Schedule the evidence pipeline in groups over buckets; --execute runs it (local, dask)."""
    from chrono.scale import Passwords, ScaleSettings, run_schedule
    from chrono.scale.settings import default_work_dir

    with friendly_errors():
        configure_logging(log_level)
        flat_steps = tuple(s for item in steps or [] for s in item.replace(",", " ").split())
        settings = ScaleSettings(
            source_url=source_bucket, inventory_url=inventory_bucket,
            artifact_url=artifact_bucket, report_url=report_bucket,
            prefixes=tuple(prefix or ()), overwrite=overwrite_existing,
            minimum_batch_size=minimum_batch_size, max_concurrency=max_concurrency,
            steps=flat_steps, skip_event_generation=skip_event_generation,
            passwords=Passwords(read_passwords(password_file)), scheduler=scheduler, db_url=db,
            workers=workers or os.cpu_count() or 1, endpoint_url=endpoint_url,
            config=load_config(config).evidence,
            work_dir=str(work_dir) if work_dir else default_work_dir(), show_progress=not quiet,
        )
        result = run_schedule(settings, mode, execute)
    console = Console(stderr=True)
    plan = result.schedule
    console.print(
        f"[bold green]scheduled[/] {plan.schedule_id or '(nothing to do)'}: "
        f"{len(plan.entries)} files, {plan.files_scheduled} in {len(plan.groups)} groups "
        f"-> {plan.groups_url}"
    )
    for g in result.groups:
        if g.status == "failed":
            console.print(f"  [bold red]group {g.group} failed[/]: {g.reason}"
                          + (f" ({g.detail})" if g.detail else ""))
    done = sum(1 for g in result.groups if g.status == "done")
    skipped = sum(1 for g in result.groups if g.status == "skipped")
    if result.groups:
        console.print(f"groups: {done} done, {skipped} already committed, "
                      f"{len(result.failed)} failed")
    if result.ledger is not None:
        console.print(f"[bold green]done[/] run {result.ledger.run_id}")
        for s in result.ledger.steps:
            console.print(f"  {s.name:<11} {s.seconds:7.2f}s  "
                          + " ".join(f"{k}={v}" for k, v in s.counts.items()))
    if result.failed:
        console.print("[bold red]some groups failed[/]; the global phases did not run. "
                      "Re-run the same command to pick up the unfinished groups.")
        raise typer.Exit(1)
