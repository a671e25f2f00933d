"""Crash points: a test hook that kills the whole run with SIGKILL at a named place in the code.

Crash-safety tests set ``CHRONO_CRASH_AT=<point>:<n>`` (for example ``upload.batch:2``) in the
environment of a run started in its own process group; the ``n``-th time one process passes
:func:`crash_point` with that name, it sends SIGKILL to its process group, as ``kill -9`` of the
run would (the coordinator, the group processes, the extraction pool and any local Dask workers
die together). Passes are counted per process. Unset, a call is one comparison: the variable is
read once, at import, so production runs pay nothing. Never set it outside tests.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "CHRONO_CRASH_AT"

_point, _, _nth = os.environ.get(CRASH_ENV, "").partition(":")
_TARGET = _point or None
_NTH = int(_nth) if _nth.isdigit() else 1
_passes = 0


def crash_point(name: str) -> None:
    """Kill this process group here when ``CHRONO_CRASH_AT`` names ``name`` and this is the
    chosen pass; otherwise do nothing."""
    if name != _TARGET:
        return
    global _passes
    _passes += 1
    if _passes == _NTH:
        os.killpg(os.getpgrp(), signal.SIGKILL)
