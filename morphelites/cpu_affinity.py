"""The cores this process may run on, kept across a library's load that binds it to fewer.

OpenMP (scikit-learn's, with pyribs; torch's) pins the loading process to the first of its cores
where OMP_PROC_BIND, OMP_PLACES or GOMP_CPU_AFFINITY is set, as cluster job scripts often do. The
main process then counted one usable core (a default of one worker, larger --workers refused) and
every process it started inherited that one core (found in review).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["cores_kept"]


@contextlib.contextmanager
def cores_kept() -> Iterator[None]:
    """Give this process back the cores it may run on when the block is done (Linux; elsewhere
    there is no affinity to keep)."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        yield
    finally:
        if cores is not None and os.sched_getaffinity(0) != cores:
            os.sched_setaffinity(0, cores)
