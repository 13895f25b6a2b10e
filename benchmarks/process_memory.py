"""Resident memory of a process, read from ``/proc/<pid>/status`` where Linux offers it.

Peak RSS comes from ``VmHWM``, the high-water mark of the process's own address space. ``getrusage``'s
``ru_maxrss`` is only the fallback: Linux carries it across ``execve``, so a benchmark child started
by a large parent (``subprocess`` forks, then execs) reports the parent's RSS at the fork as its own
peak; the render benchmark's 1M-Gaussian probe read 1950-2157 MB that way for a process that never
went past 1612 MB.
"""

from __future__ import annotations

import resource
import sys


def status_mb(field: str, pid: int | str = "self") -> float | None:
    """``field`` (``VmRSS``, ``VmHWM``, ...) of ``/proc/<pid>/status`` in MiB; None where unreadable."""
    key = field.encode() + b":"
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None


def current_rss_mb() -> float:
    """This process's resident set now (MiB); its peak where ``/proc`` is absent."""
    rss = status_mb("VmRSS")
    return rss if rss is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak resident set (MiB) since it was exec'd."""
    hwm = status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB on Linux
