"""Is the shared learner's time well spent? PPO epochs and batch size against env-step efficiency
and wall time.

The shared learner is busy nearly all the time (workers wait for it), so the wall time of a
shared run is the learner's. Fewer passes over each batch (``ppo.update_epochs``) or larger,
fewer updates (``training.min_batch_size``) make it faster; whether they cost learning per env
step is what this measures. Each shared setting runs the same evolution (open scene, workspace
goals, as in ``shared_vs_independent.py``) for each seed, next to one independent run per seed with
the default PPO settings as the reference. Per run: final QD-score, the archive re-evaluated with
the final policy, mean fitness of the last quarter of evaluations (how good the policy is on new
bodies), wall time, learner utilisation, samples/s, producer waits and lag; and the env steps and
wall time the shared run needed to reach that seed's independent final QD-score.

    python benchmarks/learner_settings.py [--seeds 0 1] [--evaluations 24] [--steps 10000]
    python benchmarks/learner_settings.py --steps 50000 --evaluations 64 --seeds 1 --settings default "4 epochs"

Writes results/learner_settings_<steps>.json (after every run, so a run that is cut off keeps what
it finished). Rows of other seeds already in that file (same evaluations and workers) are kept,
so seeds can be added one run at a time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, write_json
from shared_vs_independent import compare, env_only_rate, run_mode

#: Shared-mode settings measured: a name and the config sections that differ from the defaults.
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},  # 10 epochs, min batch 1000
    "4 epochs": {"ppo": {"update_epochs": 4}},
    "2 epochs": {"ppo": {"update_epochs": 2}},
    "10 epochs, min batch 4000": {"training": {"min_batch_size": 4000}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--evaluations", type=int, default=24)
    parser.add_argument("--steps", type=int, default=10_000, help="env steps of training per individual")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        help="shared-mode settings to run (default: all)")
    args = parser.parse_args()
    started = time.perf_counter()
    env_rate = env_only_rate(args.workers)
    name = f"learner_settings_{args.steps}"
    path = RESULTS / f"{name}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    if (previous.get("evaluations"), previous.get("workers")) != (args.evaluations, args.workers):
        previous = {}  # not comparable: start the file again
    rows: list[dict[str, Any]] = [r for r in previous.get("rows", []) if r["seed"] not in args.seeds]
    earlier_wall = previous.get("wall_s", 0.0) if rows else 0.0

    def save() -> None:
        rows.sort(key=lambda r: r["seed"])
        write_json(name, {
            "scene": "open", "evaluations": args.evaluations, "steps_per_individual": args.steps, "workers": args.workers,
            "seeds": sorted({r["seed"] for r in rows}), "env_only_steps_per_s": env_rate,
            "wall_s": round(earlier_wall + time.perf_counter() - started, 1), "rows": rows,
        })  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            reference = run_mode("independent", "open", args.steps, args.evaluations, args.workers, seed, Path(tmp))
            rows.append({"setting": "independent (reference)", **{k: v for k, v in reference.items() if k != "curve"}})
            save()
            for setting in args.settings:
                sections = SETTINGS[setting]
                shared = run_mode("shared", "open", args.steps, args.evaluations, args.workers, seed, Path(tmp), sections)
                comparison = compare(reference, shared)
                rows.append({"setting": setting, "sections": sections, **{k: v for k, v in shared.items() if k != "curve"},
                             **comparison})  # fmt: skip
                print(json.dumps({"setting": setting, "seed": seed, **comparison}), flush=True)
                save()


if __name__ == "__main__":
    main()
