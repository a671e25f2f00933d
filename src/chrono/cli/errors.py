"""How the CLI turns Chrono errors into a readable message and an exit code."""

from __future__ import annotations

import sys
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
    except Exception as exc:
        kind = _database_error(exc)
        if kind is None:
            raise
        # Neither the URL (it may hold a password) nor the driver's text (it may quote row
        # values) is shown: the error's type says what went wrong.
        Console(stderr=True).print(
            f"[bold red]error[/] database_unavailable: the database given with --db cannot be "
            f"opened or reached ({kind}); check the URL, that the folder exists and the server "
            "runs")
        raise typer.Exit(2) from None


def _database_error(exc: BaseException) -> str | None:
    """The SQLAlchemy error class name when ``exc`` means the database cannot be used at all."""
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None:
        return None
    if isinstance(exc, errors.OperationalError | errors.InterfaceError | errors.ArgumentError):
        orig = getattr(exc, "orig", None)
        return type(orig).__name__ if orig is not None else type(exc).__name__
    return None


def guarded(func: Callable[[], None]) -> None:
    with friendly_errors():
        func()
