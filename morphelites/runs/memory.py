"""Memory of a run's processes (this one and the workers and learner it names), sampled with
psutil; other children (multiprocessing's resource tracker, ~12 MB) are not counted."""

from __future__ import annotations

import os
import psutil

__all__ = ["ProcessTreeMemory", "memory_metrics"]


class ProcessTreeMemory:
    """Samples resident memory of this process and the given worker pids; remembers the peak.

    RSS double-counts shared pages (libraries, shared memory) across processes; ``pss=True``
    samples PSS instead (Linux), which splits shared pages fairly, at a higher cost per sample.
    """

    def __init__(self, pss: bool = False, peak_mb: float = 0.0) -> None:
        """``peak_mb``: the peak so far (a resumed run continues the peak of its earlier sessions)."""
        self.pss = pss
        self.peak_mb = peak_mb

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


def memory_metrics(sample: dict, peak_mb: float) -> dict[str, float]:
    """metrics.csv's memory columns (MB) from a :meth:`ProcessTreeMemory.sample`: the whole tree,
    the main process, the learner (absent when there is none) and the largest worker, and the peak
    of the whole tree so far. Columns of processes that were not sampled are absent."""
    per_process = sample["per_process_mb"]
    workers = [mb for name, mb in per_process.items() if name.startswith("worker")]
    figures = {"rss_mb": sample["total_mb"], "rss_main_mb": per_process.get("main"),
               "rss_learner_mb": per_process.get("learner"), "rss_worker_max_mb": max(workers, default=None),
               "peak_memory_mb": peak_mb}  # fmt: skip
    return {name: round(mb, 1) for name, mb in figures.items() if mb is not None}
