"""Run the evidence pipeline: SOURCE_DIR in, artifacts, report and timeline database out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chrono.cli.errors import friendly_errors
from chrono.core.config import load_config
from chrono.core.errors import ConfigError
from chrono.core.logging import configure_logging
from chrono.evidence.context import EvidenceRun
from chrono.evidence.pipeline import pipeline, run_evidence


def read_passwords(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    if not path.is_file():
        raise ConfigError("password_file_missing", f"{path}: no such file")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return tuple(dict.fromkeys(line.rstrip("\r") for line in lines if line.strip()))


def run_command(
    source_dir: Annotated[Path, typer.Argument(help="Folder holding the production to process.")],
    artifact_dir: Annotated[Path, typer.Argument(
        help="Folder for artifacts, events, the run report and (by default) the database.")],
    steps: Annotated[list[str] | None, typer.Option(
        "--steps", help=f"Run only these steps (repeat the option); always in pipeline order: "
        f"{', '.join(pipeline.names)}.")] = None,
    overwrite_existing: Annotated[bool, typer.Option(
        "--overwrite-existing", help="Reprocess files whose artifacts already exist.")] = False,
    skip_event_generation: Annotated[bool, typer.Option(
        "--skip-event-generation", help="Skip the events step (artifacts only).")] = False,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="Passwords to try on encrypted archives and PDFs, one a line.")
    ] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="Database URL; default sqlite:///ARTIFACT_DIR/chrono.db. "
        "postgresql://user@host/db also works.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Extraction worker processes (default: number of cores).")
    ] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="chrono.yaml with settings to override the defaults.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    log_level: Annotated[str, typer.Option(
        help="Log level of the JSON log on stderr.")] = "WARNING",
) -> None:
    with friendly_errors():
        configure_logging(log_level)
        if not source_dir.is_dir():
            raise ConfigError("source_missing", f"{source_dir}: not a folder")
        cfg = load_config(config)
        flat_steps = [s for item in steps or [] for s in item.replace(",", " ").split()]
        run = EvidenceRun(
            source_dir=source_dir, artifact_dir=artifact_dir, config=cfg.evidence, db_url=db,
            passwords=read_passwords(password_file), workers=workers or os.cpu_count() or 1,
            overwrite=overwrite_existing, skip_event_generation=skip_event_generation,
            show_progress=not quiet,
        )
        ledger = run_evidence(run, flat_steps or None)
        counts = run.state.get("report_counts", {})
        console = Console(stderr=True)
        console.print(
            f"[bold green]done[/] run {ledger.run_id}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        for s in ledger.steps:
            console.print(f"  {s.name:<11} {s.seconds:7.2f}s  "
                          + " ".join(f"{k}={v}" for k, v in s.counts.items()))
        console.print(f"report: {run.artifact_dir / 'report.html'}")
