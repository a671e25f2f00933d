"""Export events, documents, persons or devices, one record per line (JSON lines or CSV)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from chrono.cli.errors import friendly_errors
from chrono.core.errors import ConfigError
from chrono.db.schema import ensure_schema, make_engine
from chrono.evidence.export import KINDS, iter_records, write_records


def export_command(
    kind: Annotated[str, typer.Argument(help=f"What to export: {', '.join(KINDS)}.")],
    db: Annotated[str, typer.Option("--db", help="Database URL, e.g. sqlite:///out/chrono.db.")],
    format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")
    ] = None,
) -> None:
    with friendly_errors():
        if kind not in KINDS:
            raise ConfigError("export_kind", f"unknown kind {kind}; choose {', '.join(KINDS)}")
        if format not in ("jsonl", "csv"):
            raise ConfigError("export_format", "format must be jsonl or csv")
        engine = make_engine(db)
        ensure_schema(engine)
        records = iter_records(engine, kind)
        if out is None:
            write_records(records, sys.stdout, format)
        else:
            with out.open("w", encoding="utf-8", newline="") as fh:
                write_records(records, fh, format)
        engine.dispose()
