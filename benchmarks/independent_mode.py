"""Independent mode (one fresh PPO per body) on the default task, at two training budgets.

Runs ``MAPElitesEvolutionTrainer(use_shared_ppo=False)`` with the same seed, workers and number of
evaluated individuals at (a) the default 1500 env steps per individual and (b) a budget at which
per-body PPO actually learns (default 50k). Reports QD-score, coverage, mean and best elite
fitness, env steps, wall time and the peak memory of the process tree (sum of RSS of the main
process and its workers, sampled after every evaluation). Takes about 4.5 min on 2 cores at the
defaults (``results/independent_mode.json``: 21 s and 246 s for its two budgets). Writes
``results/independent_mode.json``.

    python benchmarks/independent_mode.py [--evaluations 64] [--budgets 1500 50000] [--workers 2] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import add_output_option, parse_args, positive_int, seed_int, write_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=positive_int, default=64,
                        help="individuals evaluated per run (default: %(default)s)")
    parser.add_argument("--budgets", type=positive_int, nargs="+", default=[1500, 50_000],
                        help="env steps of training per individual, one run each (default: 1500 50000)")
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--seed", type=seed_int, default=0, help="the runs' seed (default: %(default)s)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    # imported after the arguments are checked: a bad one is refused without waiting for torch
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for budget in args.budgets:
            out = Path(tmp) / f"independent-{budget}"
            start = time.perf_counter()
            summary = MAPElitesEvolutionTrainer(
                None, training_steps_per_individual=budget, max_workers=args.workers, use_shared_ppo=False,
                output_dir=str(out), evaluations=args.evaluations, seed=args.seed, quiet=True,
            ).run()  # fmt: skip
            results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
            row = {
                "training_steps_per_individual": budget,
                **{k: summary[k] for k in ("evaluations", "env_steps", "training_env_steps", "qd_score", "coverage",
                                           "best_fitness", "mean_elite_fitness", "elites", "cells", "peak_memory_mb")},
                "wall_s": round(time.perf_counter() - start, 1),
                "mean_success_rate_of_all_evaluated": sum(r["success_rate"] for r in results) / len(results),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row))
    write_json("independent_mode", {"workers": args.workers, "seed": args.seed, "scene": "open",
                                    "goal_sampling": "workspace", "rows": rows}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
