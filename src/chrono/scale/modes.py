"""Modes: ways to run ``process_group`` for every group, followed by ``run_global_phases``.

A mode is a :class:`Mode` subclass registered once under its name (:func:`register_mode`; a
second mode of the same name raises). ``local`` runs groups in a process pool on this machine,
``dask`` submits one task per group to a Dask distributed cluster. Modes that need more than
the core install live in their own module, imported on first use (``aws``:
``chrono.scale.aws``); a subclass only has to implement :meth:`Mode.run_groups`, and may
override :meth:`Mode.execute` when its platform runs the global phases itself.

Every mode reports each group's outcome as it lands; a failed group (index and reason code) does
not stop the others, and the global phases run only once every group is committed, so a re-run
picks up where this one stopped.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import pickle
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from chrono.core.errors import ConfigError, TransientError
from chrono.core.logging import log_event
from chrono.core.steps import RunLedger
from chrono.scale.phases import run_global_phases
from chrono.scale.progress import progress_bar
from chrono.scale.schedule import Schedule, schedule
from chrono.scale.settings import ScaleSettings, WorkerSettings
from chrono.scale.worker import GroupOutcome, process_group, remove_orphaned_folders
from chrono.storage.buckets import open_bucket

MAX_ATTEMPTS = 2
"""Tries of a group whose process died (the pool breaks), before it is failed."""

_MODES: dict[str, type[Mode]] = {}
_PLUGIN_MODULES = {"aws": "chrono.scale.aws"}
"""Modes in optional modules: name -> module that registers it when imported."""


@dataclass
class ExecutionResult:
    """What ``chrono schedule`` did: the schedule, each group's outcome, the global run."""

    schedule: Schedule
    mode: str
    groups: list[GroupOutcome] = field(default_factory=list)
    ledger: RunLedger | None = None
    """The global phases' run; ``None`` when they did not run (not executed, or groups failed)."""

    @property
    def failed(self) -> list[GroupOutcome]:
        return [g for g in self.groups if g.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule.schedule_id, "mode": self.mode,
            "groups_url": self.schedule.groups_url,
            "files": len(self.schedule.entries), "files_scheduled": self.schedule.files_scheduled,
            "groups": [g.to_dict() for g in self.groups],
            "failed_groups": [g.group for g in self.failed],
            "run_id": self.ledger.run_id if self.ledger else None,
            "status": self.ledger.status if self.ledger else (
                "failed" if self.failed else "scheduled"),
        }


class Mode(ABC):
    """A way to run groups; :meth:`execute` adds the global phases."""

    name: ClassVar[str]

    def __init__(self, settings: ScaleSettings) -> None:
        self.settings = settings

    @abstractmethod
    def run_groups(self, plan: Schedule, done: Callable[[GroupOutcome], None]
                   ) -> list[GroupOutcome]:
        """Run ``process_group`` for every group of ``plan``; call ``done`` as each ends."""

    def execute(self, plan: Schedule) -> ExecutionResult:
        """Fan out (when the extraction step is selected), then the global phases when every
        group is committed; a summary lands in the report bucket either way."""
        result = ExecutionResult(plan, self.name)
        if self.settings.runs_fan_out and plan.groups:
            with progress_bar("groups", len(plan.groups), self.settings.show_progress) as advance:
                def done(outcome: GroupOutcome) -> None:
                    advance(1)
                    if outcome.status == "failed":
                        log_event("group_failed", group=outcome.group, reason_code=outcome.reason)

                result.groups = sorted(self.run_groups(plan, done), key=lambda g: g.group)
        try:
            if not result.failed and self.settings.global_steps:
                result.ledger = run_global_phases(self.settings, plan)
        finally:
            _write_summary(self.settings, result)
        return result


def _write_summary(settings: ScaleSettings, result: ExecutionResult) -> None:
    reports = open_bucket(settings.report_url, endpoint_url=settings.endpoint_url)
    summary = {**result.to_dict(), "written_at": datetime.now(UTC).isoformat()}
    key = f"schedules/{result.schedule.schedule_id or 'empty'}.json"
    reports.put_bytes(key, json.dumps(summary, sort_keys=True).encode("utf-8"))


def register_mode(cls: type[Mode]) -> type[Mode]:
    """Class decorator: make ``cls`` available as ``--mode cls.name``."""
    if cls.name in _MODES:
        raise ValueError(f"mode {cls.name!r} registered twice")
    _MODES[cls.name] = cls
    return cls


def mode_names() -> list[str]:
    return sorted(set(_MODES) | set(_PLUGIN_MODULES))


def get_mode(name: str, settings: ScaleSettings) -> Mode:
    """The mode called ``name``, importing its module when it lives in one of its own."""
    module = _PLUGIN_MODULES.get(name)
    if name not in _MODES and module is not None:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise ConfigError(
                "mode_unavailable", f"{name} mode arrives with the AWS issue; use local or dask"
            ) from None
    if name not in _MODES:
        raise ConfigError("mode_unknown", f"unknown mode {name}; choose {', '.join(mode_names())}")
    return _MODES[name](settings)


def run_schedule(settings: ScaleSettings, mode: str = "local", execute: bool = False
                 ) -> ExecutionResult:
    """Schedule (always), then, with ``execute``, run every group and the global phases."""
    runner = get_mode(mode, settings)  # an unknown mode fails before any hashing
    plan = schedule(settings)
    if not execute:
        return ExecutionResult(plan, mode)
    # Group folders of a run killed on this machine; a re-run may schedule no group to do it.
    remove_orphaned_folders(Path(settings.work_dir) / "groups")
    return runner.execute(plan)


@register_mode
class LocalMode(Mode):
    """Groups in a pool of ``workers`` processes on this machine (at most ``max_concurrency``);
    each group's extraction gets an equal share of the cores."""

    name = "local"

    def run_groups(self, plan: Schedule, done: Callable[[GroupOutcome], None]
                   ) -> list[GroupOutcome]:
        s = self.settings
        parallel = max(1, min(s.workers, s.max_concurrency, len(plan.groups)))
        worker = s.worker_settings(extraction_workers=max(1, s.workers // parallel))
        queue, attempts = list(plan.indices), dict.fromkeys(plan.indices, 0)
        outcomes: list[GroupOutcome] = []
        # Group processes start from a small server process: a fork of this one would inherit
        # its threads and its multiprocessing state (a running forkserver it does not own).
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["chrono.scale.worker", "chrono.evidence.extract.registry"])
        while queue:
            pool = ProcessPoolExecutor(max_workers=parallel, mp_context=context)
            futures: dict[Future[GroupOutcome], int] = {
                pool.submit(process_group, plan.groups_url, index, worker): index
                for index in queue
            }
            queue, broken, pending = [], False, set(futures)
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        index = futures[fut]
                        try:
                            outcome = fut.result()
                        except BrokenProcessPool:
                            # A group process died (OOM kill, segfault); which one is unknown.
                            broken = True
                            attempts[index] += 1
                            if attempts[index] < MAX_ATTEMPTS:
                                queue.append(index)
                                continue
                            outcome = GroupOutcome(index, "failed", "worker_crashed",
                                                   "group process died")
                        outcomes.append(outcome)
                        done(outcome)
            finally:
                pool.shutdown(wait=not broken, cancel_futures=True)
        return outcomes


def run_group_task(groups_url: str, index: int, settings: WorkerSettings) -> GroupOutcome:
    """One Dask task: the group in this process, or in a child interpreter when this process is
    a daemon (a ``dask worker`` started without ``distributed.worker.daemon: False``), since a
    daemon may not start the extraction pool's processes."""
    if not multiprocessing.current_process().daemon:
        return process_group(groups_url, index, settings)
    proc = subprocess.run(
        [sys.executable, "-m", "chrono.scale.worker"],
        input=pickle.dumps((groups_url, index, settings)), capture_output=True, check=False,
    )
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        return GroupOutcome(index, "failed", "worker_error", f"worker exit {proc.returncode}")
    return GroupOutcome(**json.loads(lines[-1]))


@register_mode
class DaskMode(Mode):
    """One task per group on a Dask distributed cluster: ``scheduler`` when given, else a
    LocalCluster of ``workers`` single-threaded processes; at most ``max_concurrency`` tasks are
    submitted at a time, more as others finish."""

    name = "dask"

    def run_groups(self, plan: Schedule, done: Callable[[GroupOutcome], None]
                   ) -> list[GroupOutcome]:
        import dask
        from distributed import Client, LocalCluster, as_completed

        s = self.settings
        worker = s.worker_settings(extraction_workers=1)
        outcomes: list[GroupOutcome] = []
        # Worker processes that are not daemons may start the extraction pool.
        with dask.config.set({"distributed.worker.daemon": False}):
            cluster = None
            try:
                if s.scheduler:
                    client = Client(s.scheduler, timeout="20s")
                else:
                    cluster = LocalCluster(
                        n_workers=s.workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, env={"OMP_THREAD_LIMIT": "1"},
                    )
                    client = Client(cluster)
            except OSError:
                if cluster is not None:
                    cluster.close()
                raise TransientError(
                    "scheduler_unreachable", "no Dask scheduler answered at --scheduler"
                ) from None
            try:
                todo = iter(plan.indices)
                by_key: dict[str, int] = {}

                def submit(index: int) -> Any:
                    key = f"chrono-group-{plan.schedule_id}-{index}"
                    by_key[key] = index
                    return client.submit(run_group_task, plan.groups_url, index, worker,
                                         key=key, pure=False)

                first = [submit(i) for _, i in zip(range(s.max_concurrency), todo, strict=False)]
                running = as_completed(first)
                for fut in running:
                    index = by_key[fut.key]
                    try:
                        outcome = fut.result()
                    except Exception as exc:  # the task never returned: its worker died
                        reason = ("worker_killed" if type(exc).__name__ == "KilledWorker"
                                  else "worker_error")
                        outcome = GroupOutcome(index, "failed", reason, type(exc).__name__)
                    fut.release()
                    outcomes.append(outcome)
                    done(outcome)
                    following = next(todo, None)
                    if following is not None:
                        running.add(submit(following))
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
        return outcomes


__all__ = [
    "DaskMode", "ExecutionResult", "LocalMode", "Mode", "get_mode", "mode_names",
    "register_mode", "run_group_task", "run_schedule",
]
