"""Our PPO on standard Gymnasium MuJoCo tasks, to check it against the field's published results.

Trains the plain MLP actor-critic (no joint mask) with the project's default PPOConfig on
``Reacher-v5`` and ``InvertedPendulum-v5`` for 200k env steps per seed, then evaluates the
deterministic policy on 20 episodes. Published reference figures (with sources) are read from
``benchmarks/gym_references.json`` and copied next to ours. Takes about 3 min on 2 cores at the
defaults (``wall_s`` of ``results/gym_ppo.json``: 168 s, two runs at a time). Writes
``results/gym_ppo.json``.

    python benchmarks/gym_ppo.py [--steps 200000] [--seeds 0 1 2] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from common import add_output_option, parse_args, positive_int, seed_int, write_json
from morphelites.parallel.pool import one_native_thread_per_process

TASKS = ("Reacher-v5", "InvertedPendulum-v5")
REFERENCES = Path(__file__).resolve().parent / "gym_references.json"


def run_one(env_id: str, seed: int, steps: int) -> dict[str, Any]:
    import torch

    from morphelites.config import PPOConfig
    from morphelites.policy import ActorCritic
    from morphelites.policy_numpy import PolicySpec
    from morphelites.ppo_run import evaluate_gym_policy, make_gym_env
    from morphelites.train_ppo import train_policy

    config = PPOConfig()
    envs = [make_gym_env(env_id) for _ in range(config.num_envs)]
    spec = PolicySpec(envs[0].observation_space.shape[0], envs[0].action_space.shape[0], 256)
    torch.manual_seed(seed)
    model = ActorCritic(spec)
    start = time.perf_counter()
    result = train_policy(model, envs, config, steps, seed=seed)
    wall = time.perf_counter() - start
    returns = evaluate_gym_policy(model.numpy_twin(), env_id, 20, first_seed=10_000 + seed * 100)
    curve = [{"env_steps": int(h["env_steps"]), "episode_return": h["episode_return"]}
             for h in result.history if "episode_return" in h]  # fmt: skip
    return {
        "env_id": env_id, "seed": seed, "env_steps": result.env_steps, "wall_s": round(wall, 1),
        "eval_mean_return": float(np.mean(returns)), "eval_std_return": float(np.std(returns)),
        "train_return_last_10_updates": float(np.mean([c["episode_return"] for c in curve[-10:]])),
        "curve": curve[:: max(1, len(curve) // 50)],
    }  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive_int, default=200_000,
                        help="env steps of training per task and seed (default: %(default)s)")
    parser.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2],
                        help="one run per task and seed (default: 0 1 2)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="runs in parallel, one process each (default: %(default)s)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    jobs = [(task, seed, args.steps) for task in TASKS for seed in args.seeds]
    start = time.perf_counter()
    # fresh (spawned) processes with one BLAS/OpenMP thread each: parallel runs must not fight over the cores
    with one_native_thread_per_process(), ProcessPoolExecutor(args.workers, mp.get_context("spawn")) as pool:
        runs = list(pool.map(run_one, *zip(*jobs)))
    summary = {}
    for task in TASKS:
        finals = [r["eval_mean_return"] for r in runs if r["env_id"] == task]
        summary[task] = {"eval_mean_return_over_seeds": float(np.mean(finals)), "eval_std_over_seeds": float(np.std(finals)),
                         "per_seed": finals}  # fmt: skip
        print(f"{task}: {np.mean(finals):.2f} ± {np.std(finals):.2f} over seeds {args.seeds}")
    references = json.loads(REFERENCES.read_text()) if REFERENCES.exists() else {}
    write_json("gym_ppo", {"steps": args.steps, "parallel_runs": args.workers, "wall_s": round(time.perf_counter() - start, 1),
                           "summary": summary, "references": references, "runs": runs}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
