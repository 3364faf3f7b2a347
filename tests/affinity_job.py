"""A worker job that reports the cores its process may run on once torch has loaded (tests/test_cgroup_limits.py).
Imported by worker processes by its module name (they inherit this directory on sys.path)."""

import os


def cores_after_importing_torch() -> list[int]:
    import torch  # noqa: F401  # loads OpenMP, which binds the thread where OMP_PROC_BIND says so

    return sorted(os.sched_getaffinity(0))
