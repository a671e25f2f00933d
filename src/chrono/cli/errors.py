"""How the CLI turns Chrono errors into a readable message and an exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from chrono.core.errors import ChronoError


@contextmanager
def friendly_errors() -> Iterator[None]:
    try:
        yield
    except ChronoError as exc:
        Console(stderr=True).print(f"[bold red]error[/] {exc.code}: {exc.detail}")
        raise typer.Exit(2) from None


def guarded(func: Callable[[], None]) -> None:
    with friendly_errors():
        func()
