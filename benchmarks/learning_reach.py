"""Learning benchmark on the open reaching scene.

Part ``single``: one 3-joint arm, several seeds, up to 300k env steps each; target: evaluation
success >= 0.9 within 300k steps. Part ``mixed``: one policy trained on a mixed set of 3-6 joint
bodies for 1M steps; target: mean evaluation success over the bodies >= 0.8. In both parts
evaluation goals lie within each body's own reach (``goal_sampling="reachable"``): in the shared
workspace a 3-joint arm cannot reach the outer goals at all. Evaluation: deterministic policy,
50 fixed goals per body (20 per body in ``mixed``), every 20,000 env steps (100,000 in
``mixed``); each point of a curve keeps the success rate of every body too
(``success_rate_by_body``, in the order of ``bodies``), so a mixed run that misses its target
shows which bodies hold it back.

Runs go two at a time (one process each, one torch thread each). Takes about 12 min on 2 cores at
the defaults (``wall_s`` of ``results/learning_reach.json``: 720 s for 3 single and 3 mixed
runs). Writes ``results/learning_reach.json`` and ``results/learning_reach.png``.

    python benchmarks/learning_reach.py [--part single|mixed|all] [--seeds 0 1 2] [--mixed-seeds 0 1 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from common import add_output_option, int_in_range, parse_args, positive_int, seed_int, write_json
from morphelites.config import PPOConfig
from morphelites.parallel.pool import one_native_thread_per_process

SINGLE_BODY = [0.2, 0.2, 0.15]


def run_one(kind: str, seed: int, steps: int, eval_every: int, mixed_count: int) -> dict[str, Any]:
    """Train one policy and evaluate it along the way; returns the curve and the final figures."""
    import torch

    from morphelites.config import EnvConfig, PPOConfig
    from morphelites.envs import ReachEnv
    from morphelites.morphology import BodySpace, Morphology
    from morphelites.policy import ActorCritic, reach_policy_spec
    from morphelites.ppo_run import mixed_bodies
    from morphelites.rollout import evaluate
    from morphelites.train_ppo import train_policy

    task = EnvConfig(goal_sampling="reachable")
    config = PPOConfig()
    if kind == "single":
        bodies = [Morphology(3, SINGLE_BODY)]
        episodes = 50
    else:
        bodies = list(mixed_bodies(BodySpace(), mixed_count, seed))
        episodes = 20
    torch.manual_seed(seed)
    model = ActorCritic(reach_policy_spec(6))
    envs = [ReachEnv(bodies[i % len(bodies)], env_config=task) for i in range(config.num_envs)]
    curve: list[dict[str, float]] = []
    # train_policy's wall_s runs on through on_update, so it holds the evaluations made there;
    # they are taken out of the training wall time (evaluation is not training).
    eval_in_loop_s, training_wall_s = [0.0], [0.0]

    def evaluate_now(env_steps: int, wall_s: float) -> float:
        """Evaluate the policy now (a point of the curve at ``wall_s`` s of training); returns the seconds it took."""
        start = time.perf_counter()
        actor = model.numpy_twin()
        results = [evaluate(actor, b, episodes, seed=1000, env_config=task) for b in bodies]
        curve.append({"env_steps": env_steps, "train_wall_s": round(wall_s, 1),
                      "success_rate": float(np.mean([r.success_rate for r in results])),
                      "fitness": float(np.mean([r.fitness for r in results])),
                      "success_rate_by_body": [r.success_rate for r in results]})  # fmt: skip
        return time.perf_counter() - start

    next_eval = [eval_every]

    def on_update(record: dict[str, float]) -> None:
        training_wall_s[0] = record["wall_s"] - eval_in_loop_s[0]
        if record["env_steps"] >= next_eval[0]:
            next_eval[0] += eval_every
            eval_in_loop_s[0] += evaluate_now(int(record["env_steps"]), training_wall_s[0])

    evaluate_now(0, 0.0)
    start = time.perf_counter()
    result = train_policy(model, envs, config, steps, seed=seed, on_update=on_update)
    if curve[-1]["env_steps"] != result.env_steps:
        evaluate_now(result.env_steps, training_wall_s[0])
    target = 0.9 if kind == "single" else 0.8
    reached = next((p for p in curve if p["success_rate"] >= target), None)
    return {
        "kind": kind, "seed": seed, "bodies": [b.to_dict() for b in bodies], "env_steps": result.env_steps,
        "wall_s_total": round(time.perf_counter() - start, 1), "wall_s_training": round(training_wall_s[0], 1),
        "training_wall_excludes_evaluations": True,
        "final_success_rate": curve[-1]["success_rate"], "final_fitness": curve[-1]["fitness"], "target": target,
        "steps_to_target": reached["env_steps"] if reached else None,
        "wall_s_to_target": reached["train_wall_s"] if reached else None, "curve": curve,
    }  # fmt: skip


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Success rate against env steps, one panel per kind of run, saved to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["kind"] for r in results}, reverse=True)
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for r in (r for r in results if r["kind"] == kind):
            xs = [p["env_steps"] for p in r["curve"]]
            ax.plot(xs, [p["success_rate"] for p in r["curve"]], marker="o", ms=3, label=f"seed {r['seed']}")
        target = 0.9 if kind == "single" else 0.8
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target}")
        title = "3-joint arm" if kind == "single" else "one policy, mixed 3-6 joint bodies"
        ax.set(title=title, xlabel="env steps", ylabel="evaluation success rate", ylim=(0, 1.02))
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["single", "mixed", "all"], default="all",
                        help="the 3-joint arm's runs, the mixed policy's, or both (default: %(default)s)")
    parser.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2],
                        help="seeds of the 3-joint arm's runs (default: 0 1 2)")
    parser.add_argument("--single-steps", type=positive_int, default=300_000,
                        help="env steps of each 3-joint run (default: %(default)s)")
    parser.add_argument("--mixed-steps", type=positive_int, default=1_000_000,
                        help="env steps of each mixed run (default: %(default)s)")
    envs = PPOConfig().num_envs
    parser.add_argument("--mixed-bodies", type=int_in_range(1, envs, f" (each body trains in an env of its own, and "
                                                                     f"ppo.num_envs is {envs})"), default=16,
                        help="bodies in the mixed set (joint counts cycle 3..6; default: %(default)s)")
    parser.add_argument("--mixed-seeds", type=seed_int, nargs="+", default=[0, 1, 2],
                        help="seeds of the mixed runs (default: 0 1 2)")
    parser.add_argument("--workers", type=positive_int, default=2, help="runs in parallel (default: %(default)s)")
    parser.add_argument("--name", default="learning_reach",
                        help="write NAME.json and NAME.png (default: %(default)s; another name keeps the README's "
                             "table, e.g. for extra seeds)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    jobs = []
    if args.part in ("single", "all"):
        jobs += [("single", s, args.single_steps, 20_000, 0) for s in args.seeds]
    if args.part in ("mixed", "all"):
        jobs += [("mixed", s, args.mixed_steps, 100_000, args.mixed_bodies) for s in args.mixed_seeds]
    start = time.perf_counter()
    # fresh (spawned) processes with one BLAS/OpenMP thread each: parallel runs must not fight over the cores
    with one_native_thread_per_process(), ProcessPoolExecutor(args.workers, mp.get_context("spawn")) as pool:
        results = list(pool.map(run_one, *zip(*jobs)))
    for r in results:
        print(f"{r['kind']:6s} seed {r['seed']}: final success {r['final_success_rate']:.3f} after {r['env_steps']} steps "
              f"({r['wall_s_training']:.0f} s training); target {r['target']} reached at {r['steps_to_target']}")  # fmt: skip
    plot(results, args.out / f"{args.name}.png")
    write_json(args.name, {"parallel_runs": args.workers, "wall_s": round(time.perf_counter() - start, 1), "runs": results},
               args.out)


if __name__ == "__main__":
    main()
