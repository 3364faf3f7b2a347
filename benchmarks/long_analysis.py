"""The figures behind the README's "why the targets are out of reach", from a stored
shared-vs-independent result: nothing is rerun.

For each scene at the largest budget of the file, per seed:

- *the 10× allowance*: a tenth of the env steps independent needed to reach its final QD-score,
  how many of the shared run's evaluations fit in it (its env steps with the experience in flight,
  as ``compare`` counts them), both modes' QD-scores after that many evaluations, and the mean
  fitness that many elites would need to sum to independent's final QD-score;
- the env-steps and wall-time ratios to independent's QD-score after k evaluations
  (``run_length.ratios_at``), at k = 8, 16, 32 and the whole run;
- *the ceiling within the allowance*: the most QD-score any controller could have had with the
  bodies the shared run had evaluated within that tenth (``ceiling_bound``): read from its curve
  (``qd_ceiling``) where it was recorded, else, while those bodies all belong to the random start
  (drawn before any result, so the same whatever the policy), from its random start drawn again
  from the seed, over every body that may have finished by then; and the same for any run of the
  seed, whatever its controller and timing (``ceiling_any_run``: at most a tenth over the
  training steps per individual evaluations can finish in it);
- the shared learner's load (busy share, samples/s, lag mean/max, dropped segments) and the two
  modes' collection rates (env steps/s) and wall times, whose ratio turns the env-step ratio into
  the wall-time ratio.

    python benchmarks/long_analysis.py [results/shared_vs_independent_long.json]

Takes a few seconds on 2 cores: it reruns no benchmark.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ceiling_bound import ceiling_qd_scores, confirmed_random_start
from common import RESULTS
from morphelites.config import Settings
from readme_tables import _spread
from run_length import ratios_at
from shared_vs_independent import in_flight_allowance

RATIO_POINTS = (8, 16, 32)


def evaluations_within(shared: dict[str, Any], workers: int, env_steps: float) -> int:
    """How many of the shared run's evaluations finished within ``env_steps``, each point of its
    curve charged its env steps plus the experience still in flight then."""
    count = 0
    for point in shared["curve"]:
        allowance, _ = in_flight_allowance(shared, workers, point)
        if point["env_steps"] + allowance > env_steps:
            break
        count = int(point["evaluations"])
    return count


def qd_after(run: dict[str, Any], evaluations: int) -> float:
    """A run's QD-score after ``evaluations`` evaluations (0 before the first)."""
    return run["curve"][evaluations - 1]["qd_score"] if evaluations > 0 else 0.0


def ceiling_within(independent: dict[str, Any], shared: dict[str, Any], scene: str, workers: int,
                   evaluations: int) -> dict[str, Any] | None:
    """The most QD-score any controller could have had after the shared run's first
    ``evaluations`` evaluations (see the module docstring), with where it comes from; None when
    neither the curve nor a confirmed random start gives it.

    Drawn again, the bound covers the random start's first ``evaluations + workers - 1`` bodies:
    when the k-th result arrives at most ``workers - 1`` other individuals are in flight, so the k
    finished ones are among those."""
    if evaluations < 1:
        return None
    point = shared["curve"][evaluations - 1]
    if "qd_ceiling" in point:
        return {"qd_ceiling": point["qd_ceiling"], "source": "the run's curve", "bodies": evaluations}
    return _random_start_bound(independent, shared, scene, evaluations + workers - 1)


def _random_start_bound(independent: dict[str, Any], shared: dict[str, Any], scene: str,
                        bodies: int) -> dict[str, Any] | None:
    """The ceiling QD-score of the seed's first ``bodies`` random-start bodies, drawn again under
    the seeding scheme the runs' recorded elites confirm; None past the random start or unconfirmed."""
    settings = Settings.from_dict({"env": {"scene": scene}})
    if bodies > settings.evolution.num_initial_random:
        return None
    elites = [*independent.get("elites_with_ceiling", ()), *shared.get("elites_with_ceiling", ())]
    start = confirmed_random_start(settings, int(shared["seed"]), elites)
    if start is None:
        return None
    scheme, genomes, ceilings = start
    bound = ceiling_qd_scores(settings, genomes[:bodies], ceilings[:bodies])[-1]
    return {"qd_ceiling": bound, "source": f"random start drawn again ({scheme})", "bodies": bodies}


def ceiling_any_run(independent: dict[str, Any], shared: dict[str, Any], scene: str, workers: int,
                    env_steps: float) -> dict[str, Any] | None:
    """The most QD-score any shared run of this seed could have had within ``env_steps``,
    whatever its controller and timing; None when the random start does not cover it.

    Every evaluation takes ``training_steps_per_individual`` env steps of training, so at most
    ``k = env_steps // training_steps_per_individual`` can have finished (a better controller ends
    evaluation episodes sooner, so it may finish more than this run did, never more than k). The
    k finished bodies are among the first ``k + workers - 1`` issued, the random start's while
    that many fit in it: drawn from the seed before any result, they are the same for any run."""
    most = int(env_steps // int(shared["training_steps_per_individual"]))
    bound = _random_start_bound(independent, shared, scene, most + workers - 1) if most >= 1 else None
    return None if bound is None else {**bound, "most_evaluations": most}


def analyse_pair(independent: dict[str, Any], shared: dict[str, Any], comparison: dict[str, Any], workers: int) -> dict[str, Any]:
    """The figures of one seed's pair (see the module docstring)."""
    tenth = comparison["independent_env_steps_to_reach"] / 10
    fits = evaluations_within(shared, workers, tenth)
    evaluations = len(independent["curve"])
    return {
        "seed": independent["seed"],
        "independent_steps_to_final": comparison["independent_env_steps_to_reach"],
        "independent_final_qd_score": comparison["independent_final_qd_score"],
        "tenth": tenth,
        "shared_evaluations_within_tenth": fits,
        "shared_qd_then": qd_after(shared, fits),
        "independent_qd_then": qd_after(independent, fits),
        "mean_fitness_needed": comparison["independent_final_qd_score"] / fits if fits else None,
        "ceiling_within_tenth": (ceiling_within(independent, shared, comparison["scene"], workers, fits)
                                 if "scene" in comparison else None),
        "ceiling_any_run": (ceiling_any_run(independent, shared, comparison["scene"], workers, tenth)
                            if "scene" in comparison else None),
        "ratios": {k: ratios_at(independent, shared, k, workers) for k in (*RATIO_POINTS, evaluations) if k <= evaluations},
        "learner_busy": shared.get("learner_utilisation"),
        "learner_samples_per_s": shared.get("learner_samples_per_s"),
        "lag_mean": shared.get("mean_policy_lag"),
        "lag_max": shared.get("max_policy_lag"),
        "dropped": shared.get("segments_dropped_lag"),
        "collection_rate_ratio": shared["env_steps_per_s"] / independent["env_steps_per_s"],
        "wall_s": (shared["wall_s"], independent["wall_s"]),
        "env_steps_ratio": comparison.get("env_steps_ratio"),
        "wall_time_ratio": comparison.get("wall_time_ratio"),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path, default=RESULTS / "shared_vs_independent_long.json",
                        help="a shared_vs_independent results file (default: the published long preset's)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    data = json.loads(args.path.read_text())
    workers, budget = data["workers"], max(data["budgets"])
    for scene in data["scenes"]:
        pairs = []
        for comparison in data["comparisons"]:
            if (comparison["scene"], comparison["training_steps_per_individual"]) != (scene, budget):
                continue
            runs = {r["mode"]: r for r in data["runs"] if (r["scene"], r["training_steps_per_individual"], r["seed"])
                    == (scene, budget, comparison["seed"])}  # fmt: skip
            pairs.append(analyse_pair(runs["independent"], runs["shared"], comparison, workers))
        if not pairs:
            continue
        print(f"== {scene}, {budget:,} steps per individual, {workers} workers ==")
        for p in pairs:
            needed = f"{p['mean_fitness_needed']:.2f}" if p["mean_fitness_needed"] else "-"
            print(f"seed {p['seed']}: independent reached its final QD after {p['independent_steps_to_final']:,.0f} env steps; "
                  f"a tenth is {p['tenth']:,.0f}: {p['shared_evaluations_within_tenth']} shared evaluations fit, "
                  f"QD then shared {p['shared_qd_then']:.2f} / independent {p['independent_qd_then']:.2f}; "
                  f"mean fitness needed over that many elites {needed}")  # fmt: skip
            final = p["independent_final_qd_score"]
            for bound, what, below in ((p["ceiling_within_tenth"], "with this run's bodies", "with these bodies"),
                                       (p["ceiling_any_run"], "in any run of this seed", "in any run")):  # fmt: skip
                if bound is None:
                    continue
                share = final / bound["qd_ceiling"]
                verdict = (f"below it: no controller could have met 10x {below}" if share > 1
                           else f"{share:.{1 if share > 0.995 else 0}%} of it needed")  # fmt: skip
                print(f"  the most QD-score any controller could have had then {what}: {bound['qd_ceiling']:.2f} over "
                      f"{bound['bodies']} bodies ({bound['source']}); independent's final {final:.2f}: {verdict}")  # fmt: skip
            ratios = "; ".join(f"k={k}: {r['env_steps_ratio']:.1f}x / {r['wall_time_ratio']:.1f}x" if r["env_steps_ratio"]
                               else f"k={k}: not reached" for k, r in p["ratios"].items())  # fmt: skip
            print(f"  env-steps / wall-time ratio to independent's QD after k evaluations: {ratios}")
            print(f"  learner busy {p['learner_busy']:.0%}, {p['learner_samples_per_s']:,.0f} samples/s, lag {p['lag_mean']:.2f}/"
                  f"{p['lag_max']:.0f}, dropped {p['dropped']:.0f}; env steps/s shared/independent "
                  f"{p['collection_rate_ratio']:.2f}; wall {p['wall_s'][0]:.0f} s / {p['wall_s'][1]:.0f} s")  # fmt: skip
        reached = [p for p in pairs if p["env_steps_ratio"] is not None]  # None: shared never reached the score
        print(f"summary ({len(reached)} of {len(pairs)} pairs reached independent's final QD-score): env steps ratio "
              f"{_spread([p['env_steps_ratio'] for p in reached], 'x')}, wall time ratio "
              f"{_spread([p['wall_time_ratio'] for p in reached], 'x')}, collection rate shared/independent "
              f"{_spread([p['collection_rate_ratio'] for p in pairs], digits=2)}, learner busy "
              f"{_spread([100 * p['learner_busy'] for p in pairs], '%', digits=0)}")  # fmt: skip


if __name__ == "__main__":
    main()
