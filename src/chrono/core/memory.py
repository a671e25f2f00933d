"""Allocator settings for batch loops: keep freed memory for the next batch instead of handing it
back to the kernel and faulting it in again.

A sensor cycle allocates the same large buffers every batch (the CSV bytes, parsed columns,
encoded files). By default glibc maps every buffer over 32 MiB afresh and unmaps it on free, and
polars' jemalloc returns freed pages soon after, so each batch pays hundreds of thousands of page
faults (a third of the run's CPU time was kernel time). Keeping freed memory trades a resident
set at the run's peak for that time. Both settings are process-wide, so only entry points that
run batch loops (``chrono sensors run``, ``bench/sensors.py``) apply them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

JEMALLOC_ENV = "_RJEM_MALLOC_CONF"
"""The variable polars' bundled jemalloc reads, once, when polars is first imported."""
JEMALLOC_CONF = "dirty_decay_ms:10000,muzzy_decay_ms:10000"
"""Keep freed pages for ten seconds (several batches) before returning them."""

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4


def keep_freed_memory_env() -> None:
    """Set the jemalloc setting unless the user set one; effective only before polars loads."""
    if "polars" not in sys.modules:
        os.environ.setdefault(JEMALLOC_ENV, JEMALLOC_CONF)


def keep_freed_memory() -> bool:
    """Make glibc serve large buffers from its heap and keep the heap (Linux with glibc only);
    True when the settings were applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    return all((
        mallopt(_M_MMAP_MAX, 0),
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1),
        mallopt(_M_TOP_PAD, 64 << 20),
    ))
