"""Generate synthetic sample data with ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from chrono.cli.errors import friendly_errors

app = typer.Typer(help="Generate synthetic sample data with ground truth.", no_args_is_help=True)


@app.command("evidence")
def sample_evidence(
    out_dir: Annotated[Path, typer.Argument(
        help="Where to write production/ (the SOURCE_DIR), passwords.txt and truth.json.")],
    size: Annotated[str, typer.Option(
        help="small (about a hundred files, a dozen scanned pages) or medium (2,000+ files).")
    ] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical files.")
    ] = 7,
) -> None:
    """Write a synthetic legal production with truth.json listing the expected events."""
    from chrono.evidence.sample import generate_production

    if size not in ("small", "medium"):
        raise typer.BadParameter("size must be small or medium", param_hint="--size")
    chosen: Literal["small", "medium"] = "small" if size == "small" else "medium"
    with friendly_errors():
        summary = generate_production(out_dir, size=chosen, seed=seed)
    Console(stderr=True).print(f"[bold green]wrote[/] {summary}")
