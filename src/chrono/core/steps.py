"""Steps and pipelines: a step is a named function over a run context, registered once.

A :class:`Pipeline` holds its steps in the seed's order. ``select`` picks a subset by name and
always returns it in pipeline order, so ``--steps upload inventory`` runs inventory first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from chrono.core.errors import ConfigError
from chrono.core.logging import log_event

Ctx = TypeVar("Ctx")


@dataclass(frozen=True)
class Step(Generic[Ctx]):
    """One stage of a pipeline."""

    name: str
    func: Callable[[Ctx], dict[str, Any]]
    """Does the work; returns the step's counters (plain numbers and short codes)."""
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    description: str


@dataclass
class StepRecord:
    name: str
    seconds: float
    counts: dict[str, Any]
    status: str = "ok"


class Pipeline(Generic[Ctx]):
    """An ordered set of uniquely named steps."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._steps: list[Step[Ctx]] = []

    def register(self, step: Step[Ctx]) -> Step[Ctx]:
        if any(s.name == step.name for s in self._steps):
            raise ValueError(f"step {step.name!r} registered twice in {self.name}")
        self._steps.append(step)
        return step

    def step(
        self, name: str, *, inputs: Iterable[str] = (), outputs: Iterable[str] = ()
    ) -> Callable[[Callable[[Ctx], dict[str, Any]]], Callable[[Ctx], dict[str, Any]]]:
        """Decorator form of :meth:`register`; the docstring's first line is the description."""

        def wrap(func: Callable[[Ctx], dict[str, Any]]) -> Callable[[Ctx], dict[str, Any]]:
            doc = (func.__doc__ or "").strip().splitlines()
            self.register(Step(name, func, tuple(inputs), tuple(outputs), doc[0] if doc else ""))
            return func

        return wrap

    @property
    def steps(self) -> list[Step[Ctx]]:
        return list(self._steps)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._steps]

    def select(self, names: Iterable[str] | None) -> list[Step[Ctx]]:
        if not names:
            return self.steps
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in self.names]
        if unknown:
            raise ConfigError(
                "unknown_step",
                f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(self.names)}",
            )
        return [s for s in self._steps if s.name in wanted]

    def run(
        self,
        ctx: Ctx,
        names: Iterable[str] | None = None,
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> list[StepRecord]:
        records: list[StepRecord] = []
        for step in self.select(names):
            started = time.perf_counter()
            log_event("step_start", step=step.name)
            counts = step.func(ctx)
            rec = StepRecord(step.name, round(time.perf_counter() - started, 3), counts)
            log_event("step_done", step=step.name, seconds=rec.seconds, **_numeric(counts))
            records.append(rec)
            if on_step:
                on_step(rec)
        return records


def _numeric(counts: dict[str, Any]) -> dict[str, Any]:
    return {f"{k}_count": v for k, v in counts.items() if isinstance(v, int | float)}


@dataclass
class RunLedger:
    """What one run did: its id, the steps it ran with counters and timings, and its status."""

    run_id: str
    pipeline: str
    started_at: str
    finished_at: str | None = None
    status: str = "running"
    steps: list[StepRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "steps": [
                {"name": s.name, "seconds": s.seconds, "status": s.status, "counts": s.counts}
                for s in self.steps
            ],
        }
