"""Progress bars of a scale-out run, on stderr, redrawn on each advance.

No refresh thread runs behind these bars (``auto_refresh=False``): a process that forks while
another of its threads holds a lock can hang the child, and nothing here needs the thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress_bar(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` items; yields ``advance(n)``."""
    with Progress(
        TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=Console(stderr=True), auto_refresh=False,
        disable=not enabled or total <= 0,
    ) as bar:
        task = bar.add_task(label, total=total)
        bar.refresh()

        def advance(n: int = 1) -> None:
            bar.advance(task, n)
            bar.refresh()

        yield advance
