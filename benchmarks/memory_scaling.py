"""Peak memory of the whole process tree against the number of workers, shared vs independent mode.

The memory target of the shared mode (sum of PSS at most a third of the independent mode's) is
about workers: independent workers each import torch and hold a PPO, shared workers run a numpy
actor. With few workers the fixed part (the main process running the evolution loop, and in
shared mode the learner) dominates both sums. This runs the same short evolution (open scene,
1500 env steps per individual, two evaluations per worker so that every worker is busy) in both
modes at each worker count, samples the sum of PSS every 0.5 s, and records the peak and how that
peak sample divides among main process, learner, workers and other processes (by process title).
Memory does not depend on cores, so more workers than cores is fine here; the run's speed is not
what is measured. The config's guard against more than ``MAX_WORKERS_PER_CORE`` workers per core
(it protects users from runs that only switch) is lifted here for that reason (run_mode hands
the raised limit on to each run's own process).

    python benchmarks/memory_scaling.py                 # 2, 4, 8, 12, 16 and 32 workers
    python benchmarks/memory_scaling.py --workers 2 24

Takes about 7 min on 2 cores at the defaults (``wall_s`` of ``results/memory_scaling.json``: 426 s).
Writes results/memory_scaling.json; the worker counts it measures replace the same counts there,
the others are kept (with the same seed; another seed starts the file again).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (add_output_option, comparable_or_empty, machine, merge_rerun, parse_args, positive_int, read_results,
                    seed_int, write_json)  # fmt: skip
import morphelites.config
from shared_vs_independent import run_mode

BUDGET = 1500
SCENE = "open"


def per_worker_mb(row: dict[str, Any], workers: int) -> float:
    """PSS of the workers at the peak sample, per worker (MB)."""
    return row["peak_pss_by_role_mb"].get("workers", 0.0) / workers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", nargs="+", type=positive_int, default=[2, 4, 8, 12, 16, 32],
                        help="worker counts to measure, each in both modes (default: 2 4 8 12 16 32)")
    parser.add_argument("--seed", type=seed_int, default=0,
                        help="the runs' seed (default: %(default)s); another seed than the file's starts it afresh")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    # Oversubscription is the point here (see the module docstring); validation reads the
    # module-level limit at call time, and run_mode hands it on to the run's own process.
    morphelites.config.MAX_WORKERS_PER_CORE = max(morphelites.config.MAX_WORKERS_PER_CORE, max(args.workers))
    machine()  # taken now: what this session measures (see common.machine)
    started = time.perf_counter()
    stored = args.out / "memory_scaling.json"
    previous = comparable_or_empty(read_results(stored), {"seed": args.seed}, stored)
    for row in previous.get("rows", []):  # files before rows held their time
        row.setdefault("wall_s", round(row["independent"]["wall_s"] + row["shared"]["wall_s"], 1))
    new_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in sorted(set(args.workers)):
            row: dict[str, Any] = {"workers": workers}
            for mode in ("independent", "shared"):
                run = run_mode(mode, SCENE, BUDGET, 2 * workers, workers, args.seed, Path(tmp) / f"w{workers}")
                row[mode] = {"evaluations": run["evaluations"], "wall_s": run["wall_s"], "peak_pss_mb": run["peak_pss_mb"],
                             "peak_pss_by_role_mb": run["peak_pss_by_role_mb"],
                             "pss_per_worker_mb": round(per_worker_mb(run, workers), 1)}  # fmt: skip
            row["memory_ratio_pss"] = round(row["shared"]["peak_pss_mb"] / row["independent"]["peak_pss_mb"], 3)
            row["wall_s"] = round(row["independent"]["wall_s"] + row["shared"]["wall_s"], 1)
            row["machine"] = machine()
            new_rows.append(row)
            print(f"{workers} workers: PSS ratio shared/independent {row['memory_ratio_pss']:.2f}", flush=True)
            rows, wall_s = merge_rerun(previous, new_rows, lambda r: r["workers"], time.perf_counter() - started)
            write_json("memory_scaling", {
                "scene": SCENE, "training_steps_per_individual": BUDGET, "seed": args.seed,
                "wall_s": round(wall_s, 1), "rows": sorted(rows, key=lambda r: r["workers"]),
            }, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
