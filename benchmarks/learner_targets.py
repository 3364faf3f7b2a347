"""Which targets should the shared learner use: GAE with the current critic's values, GAE with
the behaviour critic's values, or V-trace?

Runs the same small shared-mode evolution (reachable goals so that learning shows within
minutes) with ``training.value_targets`` set to ``current_critic``, ``behaviour`` and
``vtrace``, for a few seeds, and reports the mean fitness the final policy gives the elites (re-evaluated), the
mean fitness of the last quarter of evaluations, policy updates and lag. Writes
``results/learner_targets.json``. Takes about 12 min on 2 cores at the defaults (its 15 runs took
713 s in ``results/learner_targets.json``).

    python benchmarks/learner_targets.py [--seeds 0 1 2 3 4] [--evaluations 24] [--steps 10000] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from common import add_output_option, parse_args, positive_int, seed_int, write_json

TARGETS = ("current_critic", "behaviour", "vtrace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="one run per choice of targets and seed (default: 0 1 2 3 4)")
    parser.add_argument("--evaluations", type=positive_int, default=24,
                        help="individuals evaluated per run (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=10_000,
                        help="env steps of training per individual (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes per run (default: %(default)s)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    # imported after the arguments are checked: a bad one is refused without waiting for torch
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for targets in TARGETS:
            for seed in args.seeds:
                out = Path(tmp) / f"{targets}-{seed}"
                start = time.perf_counter()
                summary = MAPElitesEvolutionTrainer(
                    {"env": {"goal_sampling": "reachable"}, "evolution": {"eval_episodes": 10},
                     "training": {"value_targets": targets}},
                    training_steps_per_individual=args.steps, max_workers=args.workers, use_shared_ppo=True,
                    output_dir=str(out), evaluations=args.evaluations, seed=seed, quiet=True,
                ).run()  # fmt: skip
                results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
                quarter = max(1, len(results) // 4)
                rows.append({
                    "value_targets": targets, "seed": seed, "wall_s": round(time.perf_counter() - start, 1),
                    "mean_elite_fitness_reevaluated": summary.get("mean_elite_fitness_reevaluated"),
                    "mean_fitness_last_quarter": float(np.mean([r["fitness"] for r in results[-quarter:]])),
                    "policy_updates": summary.get("policy_updates"), "mean_policy_lag": summary.get("mean_policy_lag"),
                })  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    means = {t: float(np.mean([r["mean_elite_fitness_reevaluated"] for r in rows if r["value_targets"] == t]))
             for t in TARGETS}  # fmt: skip
    write_json("learner_targets", {"evaluations": args.evaluations, "steps_per_individual": args.steps,
                                   "workers": args.workers, "seeds": args.seeds, "mean_by_targets": means, "rows": rows},
               args.out)  # fmt: skip


if __name__ == "__main__":
    main()
