"""Helpers shared by the benchmark scripts: machine description and JSON output."""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Callable, Hashable

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def code_version() -> str | None:
    """The git commit of the code measured (short hash), with ``+changes`` when the package or
    the benchmarks differ from it; None outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
        changed = subprocess.run(["git", "status", "--porcelain", "--", "morphelites", "benchmarks/*.py"], cwd=REPO,
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if changed else "")


@functools.lru_cache(maxsize=None)
def _machine_at_start() -> tuple[tuple[str, Any], ...]:
    return tuple(_describe_machine().items())


def machine() -> dict[str, Any]:
    """What the figures were measured on, and when and on what code: taken at this process's first
    call (a benchmark's start), so that commits made while it runs do not relabel its results."""
    return dict(_machine_at_start())


def _describe_machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import psutil

    from morphelites.cgroup_limits import cgroup_memory_limit
    from morphelites.config import usable_cores

    # The cores the benchmark may use (its affinity, a container's quota), as the runs count them:
    # a benchmark under taskset or a job's allocation was labelled with the whole node's (review).
    usable, node = usable_cores(), os.cpu_count()
    # The same for memory: a container's or a job's limit, not the node's (review).
    node_memory = psutil.virtual_memory().total
    memory_gb, node_memory_gb = (round(min(node_memory, cgroup_memory_limit() or node_memory) / 2**30, 1),
                                 round(node_memory / 2**30, 1))  # fmt: skip
    return {
        "cpu": cpu,
        "cores": usable,
        **({"node_cores": node} if node != usable else {}),
        "memory_gb": memory_gb,
        **({"node_memory_gb": node_memory_gb} if node_memory_gb != memory_gb else {}),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": code_version(),
    }


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` (with the machine description added) and return its path."""
    from morphelites.runs.files import atomic_write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, {"machine": machine(), **data})
    print(f"wrote {path}")
    return path


def load_json(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


def merge_rerun(previous: dict[str, Any], new_rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Hashable],
                elapsed_s: float) -> tuple[list[dict[str, Any]], float]:
    """The rows of a results file after a partial rerun, and its script time (s).

    ``previous`` is the file as it was (its ``rows`` and ``wall_s``), ``new_rows`` the runs this
    session has finished, ``key`` what makes two rows the same run (e.g. seed and mode). An earlier
    row goes only once its rerun has finished, so a rerun that is cut off keeps every row it did
    not get to. The time is the earlier total less the replaced rows' wall times (the earlier
    sessions' probes and plotting stay counted; 0 once nothing earlier is kept), plus
    ``elapsed_s`` of this session. A kept row without a ``machine`` of its own takes the file's,
    which was its session's or a later one's.
    """
    replaced = {key(row) for row in new_rows}
    earlier = previous.get("rows", [])
    # rows of files written before rows recorded their session: the file's machine is theirs (the
    # file is about to be written with this session's)
    kept = [{"machine": previous["machine"], **row} if "machine" in previous else row
            for row in earlier if key(row) not in replaced]  # fmt: skip
    gone = sum(row.get("wall_s", 0.0) for row in earlier if key(row) in replaced)
    earlier_s = max(0.0, previous.get("wall_s", 0.0) - gone) if kept else 0.0
    return kept + new_rows, earlier_s + elapsed_s
