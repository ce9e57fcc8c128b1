"""What the machine lets this process use: usable cores (affinity and cgroup quota), memory,
and the Unicode font searchable PDFs are written with."""

from __future__ import annotations

import functools
import glob
import math
import os
import resource
from pathlib import Path

__all__ = ["FONT_GLOBS", "font_path", "rss_mb", "usable_cpus"]


def _cgroup_cpu_limit() -> float | None:
    """CPU quota from cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_*``, in cores; None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if q > 0 and p > 0:
            return q / p
    except (OSError, ValueError):
        pass
    return None


def usable_cpus() -> int:
    """Cores this process may really use: CPU affinity, capped by any cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, math.floor(limit)))
    return max(1, n)


def rss_mb() -> tuple[float, float]:
    """Current and peak resident memory of this process, in MB (peak from ``getrusage``)."""
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        current = round(resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        current = peak
    return current, peak


# Where DejaVu Sans is looked for, in order, after $RYTHMIQ_PDF_FONT.
FONT_GLOBS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/**/DejaVuSans.ttf",
    "/usr/local/share/fonts/**/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
)


@functools.lru_cache(maxsize=1)
def font_path() -> str | None:
    """The DejaVu Sans file searchable PDFs use (``$RYTHMIQ_PDF_FONT`` first), or ``None``."""
    # A runtime bundle carries its own copy (the launcher sets the variable): Camber's base
    # image may have no fonts at all.
    given = os.environ.get("RYTHMIQ_PDF_FONT")
    if given and os.path.isfile(given):
        return given
    for pattern in FONT_GLOBS:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if os.path.isfile(path):
                return path
    return None
