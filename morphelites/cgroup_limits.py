"""The CPU quota and memory limit of this process's cgroup: Docker's ``--cpus`` / ``--memory``, a
Kubernetes limit, a systemd ``CPUQuota`` / ``MemoryMax``, a Slurm job's cgroup. Such a quota leaves
the CPU affinity at the whole node, so a default of "75% of the cores" read from the affinity alone
would start 48 workers in a 2-CPU container on a 64-core node (``config.usable_cores``); and the
machine's memory as ``/proc/meminfo`` tells it is the node's, not what the job may use (the
benchmarks' machine description).

Both cgroup versions are read: v2's ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD") and ``memory.max``
(bytes or "max"), v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: none) and
``memory.limit_in_bytes`` (a huge number: none), in the process's own cgroup and every one above it
(a parent's limit binds its children too), with the mount's root as the fallback a container sees
when its cgroup path names the host's hierarchy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

__all__ = ["cgroup_cpu_limit", "cgroup_memory_limit"]


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The whole CPUs this process's cgroup quota allows (quota / period, rounded down, at least 1),
    or None where no quota applies or none can be read (not Linux, no cgroup file system)."""
    limits = _limits("cpu", ("cpu", "cpu,cpuacct"), lambda d: _v2_quota(d / "cpu.max"), _v1_quota, root, self_cgroup)
    return max(1, math.floor(min(limits))) if limits else None


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The bytes of memory this process's cgroup may use (the smallest limit on it or above it),
    or None where no limit applies or none can be read."""
    limits = _limits("memory", ("memory",), lambda d: _bytes(d / "memory.max"), lambda d: _bytes(d / "memory.limit_in_bytes"),
                     root, self_cgroup)  # fmt: skip
    return int(min(limits)) if limits else None


#: v1 writes "no limit" as the largest page count in bytes (9223372036854771712 with 4 KiB pages).
_NO_V1_MEMORY_LIMIT = 2**62


def _limits(controller: str, v1_mounts: tuple[str, ...], read_v2: Callable[[Path], float | None],
            read_v1: Callable[[Path], float | None], root: Path, self_cgroup: Path) -> list[float]:
    """Every limit of ``controller`` found on this process's cgroups and those above them: v2's
    unified hierarchy read by ``read_v2``, v1's (mounted as the controllers' names or one of
    ``v1_mounts``) by ``read_v1``; [] where /proc/self/cgroup cannot be read."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return []
    limits: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: one unified hierarchy
            limits += [q for d in _dirs(root, path) if (q := read_v2(d)) is not None]
        elif controller in controllers.split(","):
            for mount in dict.fromkeys((root / controllers, *(root / name for name in v1_mounts))):
                limits += [q for d in _dirs(mount, path) if (q := read_v1(d)) is not None]
    return limits


def _dirs(mount: Path, path: str) -> list[Path]:
    """The cgroup's directory under ``mount`` and every directory above it up to ``mount``."""
    relative = [p for p in path.strip("/").split("/") if p and p != ".."]
    return [mount.joinpath(*relative[:depth]) for depth in range(len(relative), -1, -1)]


def _v2_quota(cpu_max: Path) -> float | None:
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _bytes(path: Path) -> int | None:
    """A memory limit file's bytes; None for "max", v1's no-limit figure, or a file that cannot be read."""
    try:
        text = path.read_text().strip()
        limit = None if text == "max" else int(text)
    except (OSError, ValueError):
        return None
    return None if limit is None or limit <= 0 or limit >= _NO_V1_MEMORY_LIMIT else limit
