"""Scale-out of the evidence pipeline: schedule groups, process them anywhere, merge, finish.

``schedule`` writes ``groups.ndjson``; a mode (``local``, ``dask``; ``aws`` in its own module)
runs :func:`process_group` for every group; :func:`run_global_phases` merges the groups' results
and runs events, upload, dedupe, persons, devices and mapping once.
"""

from chrono.scale.modes import (
    ExecutionResult,
    Mode,
    get_mode,
    mode_names,
    register_mode,
    run_schedule,
)
from chrono.scale.phases import run_global_phases
from chrono.scale.schedule import Schedule, load_schedule, schedule
from chrono.scale.settings import Passwords, ScaleSettings, WorkerSettings
from chrono.scale.worker import GroupOutcome, marker_key, process_group

__all__ = [
    "ExecutionResult", "GroupOutcome", "Mode", "Passwords", "ScaleSettings", "Schedule",
    "WorkerSettings", "get_mode", "load_schedule", "marker_key", "mode_names", "process_group",
    "register_mode", "run_global_phases", "run_schedule", "schedule",
]
