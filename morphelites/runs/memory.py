"""Memory of a run's process tree (this process + its workers), sampled with psutil."""

from __future__ import annotations

import os
import psutil

__all__ = ["ProcessTreeMemory"]


class ProcessTreeMemory:
    """Samples resident memory of this process and the given worker pids; remembers the peak.

    RSS double-counts shared pages (libraries, shared memory) across processes; ``pss=True``
    samples PSS instead (Linux), which splits shared pages fairly, at a higher cost per sample.
    """

    def __init__(self, pss: bool = False) -> None:
        self.pss = pss
        self.peak_mb = 0.0

    def sample(self, pids: dict[str, int]) -> dict:
        """Memory of this process ("main") and the named ``pids``:
        {"total_mb": ..., "per_process_mb": {"main": ..., "worker 0": ...}}; updates the peak."""
        named = {"main": os.getpid(), **pids}
        per_process = {}
        for name, pid in named.items():
            try:
                info = psutil.Process(pid).memory_full_info() if self.pss else psutil.Process(pid).memory_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            per_process[name] = (info.pss if self.pss else info.rss) / 2**20
        total = sum(per_process.values())
        self.peak_mb = max(self.peak_mb, total)
        return {"total_mb": total, "per_process_mb": per_process}
