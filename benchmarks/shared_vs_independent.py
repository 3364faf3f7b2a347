"""Shared PPO vs one PPO per body: the same evolution run in both modes, measured side by side.

Both modes get the same task, seed, workers, number of evaluated individuals and env steps per
individual, at each budget of the preset. For every run: QD-score against env steps and wall
time (from metrics.csv), final QD-score / coverage / mean elite fitness (and, in shared mode,
the archive re-evaluated with the final policy), peak memory of the whole process tree as the sum
of PSS (sampled every 0.5 s), env steps/s collected, learner samples/s and policy lag. Before the
runs, the env-only rate is measured with the same number of processes stepping ReachEnv with
random actions, so the bottleneck is visible. Then, per budget: the env steps and wall time each
mode needed to reach the independent run's final QD-score, and the ratios independent / shared
(see ``compare``: independent up to its first evaluation at that score, shared with the
experience of its individuals still in flight counted as well).

Wall times of two runs compare only on a machine of the same speed, and a shared (cloud) machine
changes speed. So every run is bracketed by a speed probe (one process stepping ReachEnv with
random actions for 2 s, before and after it; ``speed_probe_steps_per_s`` is their mean), and each
comparison reports shared's probe over independent's (``speed_probe_ratio``). Which mode runs
first alternates with the seed, so that a drift over a session does not always favour one mode.
Every run has a fresh process of its own (its main process is the one the evolution loop runs
in), so that no run inherits the imports, caches or memory of the runs before it.

Presets:
  quick  open scene, 24 evaluations, budgets 1500 and 10000 steps per individual
  long   open and obstacles scenes, 64 evaluations, budgets 1500 and 50000

Takes about 2 min on 2 cores with the quick preset (``wall_s`` of
``results/shared_vs_independent_quick.json``: 133 s), about 30 min per seed with the long one
(``results/shared_vs_independent_long.json``: 5,476 s for seeds 0-2).

    python benchmarks/shared_vs_independent.py --preset quick
    python benchmarks/shared_vs_independent.py --preset long --scenes open --budgets 50000

Writes results/shared_vs_independent_<preset>.json and results/shared_vs_independent_<preset>.png,
after every finished (scene, budget) pair, so a run that is cut off keeps what it finished.
``--scenes`` / ``--budgets`` / ``--seeds`` run part of a preset: the (scene, budget, seed) pairs
they produce replace the same pairs in the preset's JSON file and the others are kept, so more
seeds can be added one run at a time:

    python benchmarks/shared_vs_independent.py --preset long --budgets 1500 --seeds 1 2

Runs with another ``--workers`` than the file's do not compare with its runs: they start the
preset's file afresh.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import signal
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import psutil

import morphelites.config
from common import (add_output_option, comparable_or_empty, machine, parse_args, positive_int, read_results, seed_int,
                    write_json)  # fmt: skip

PRESETS = {
    "quick": {"scenes": ["open"], "evaluations": 24, "budgets": [1500, 10_000]},
    "long": {"scenes": ["open", "obstacles"], "evaluations": 64, "budgets": [1500, 50_000]},
}


def process_role(proc: psutil.Process, main: psutil.Process) -> str:
    """What a process of the run is, from its title (``morphelites: shared_ppo learner`` ...):
    ``main`` (the process ``main``, which runs the evolution loop), ``learner``, ``workers`` or
    ``other`` (e.g. multiprocessing's resource tracker)."""
    if proc.pid == main.pid:
        return "main"
    title = " ".join(proc.cmdline())
    if "learner" in title:
        return "learner"
    return "workers" if "worker" in title else "other"


class PssSampler:
    """Samples the sum of PSS over process ``root_pid`` (default: this one) and all its descendants;
    keeps the peak (MB) and, in ``peak_by_role_mb``, how that peak sample divides among the roles of
    :func:`process_role` (``main`` is the root)."""

    def __init__(self, interval_s: float = 0.5, root_pid: int | None = None) -> None:
        self.interval_s = interval_s
        self.root_pid = root_pid
        self.peak_mb = 0.0
        self.peak_by_role_mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
        except psutil.NoSuchProcess:
            return  # ended before the first sample
        while not self._stop.is_set():
            by_role: dict[str, float] = {}
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                tree = []
            for proc in tree:
                try:
                    role = process_role(proc, root)
                    by_role[role] = by_role.get(role, 0.0) + proc.memory_full_info().pss / 2**20
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            total = sum(by_role.values())
            if total > self.peak_mb:
                self.peak_mb, self.peak_by_role_mb = total, {k: round(v, 1) for k, v in sorted(by_role.items())}
            self._stop.wait(self.interval_s)


def _random_steps(seconds: float, queue: Any) -> None:
    import numpy as np

    from morphelites.envs import ReachEnv
    from morphelites.morphology import Morphology

    env = ReachEnv(Morphology(4, [0.2] * 4), seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 6))
        steps += 1
        if terminated or truncated:
            env.reset()
    queue.put(steps / (time.perf_counter() - start))


def env_only_rate(processes: int, seconds: float = 5.0) -> float:
    """Total env steps/s of ``processes`` processes stepping ReachEnv with random actions."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_random_steps, args=(seconds, queue)) for _ in range(processes)]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def speed_probe(seconds: float = 2.0) -> float:
    """Env steps/s of one process stepping ReachEnv with random actions: how fast the machine is
    at the moment, for comparing the wall times of runs made at different moments. (A child
    process: MuJoCo loaded into this one would count in every later run's peak memory.)"""
    return env_only_rate(1, seconds)


def _metrics(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def run_mode(mode: str, scene: str, budget: int, evaluations: int, workers: int, seed: int, tmp: Path,
             sections: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One evolution run in ``mode`` (``shared`` or ``independent``), in a fresh process, measured;
    ``sections`` are further config sections (e.g. ``{"ppo": {"update_epochs": 4}}``)."""
    sections = sections or {}
    tag = "-".join(f"{k}={v}" for section in sections.values() for k, v in section.items())
    out = tmp / f"{mode}-{scene}-{budget}-seed{seed}{'-' + tag if tag else ''}"
    settings = {**sections, "env": {"scene": scene, **sections.get("env", {})}}
    trainer_args = dict(training_steps_per_individual=budget, max_workers=workers, use_shared_ppo=mode == "shared",
                        output_dir=str(out), evaluations=evaluations, seed=seed, quiet=True)  # fmt: skip
    probe_before = speed_probe()
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    # A limit a benchmark raised in this process (memory_scaling oversubscribes) holds in the run's.
    limit = morphelites.config.MAX_WORKERS_PER_CORE
    child = ctx.Process(target=_run_in_child, args=(settings, trainer_args, limit, send), name=f"benchmark {mode} run")
    child.start()
    send.close()
    with PssSampler(root_pid=child.pid) as pss:
        try:
            outcome = receive.recv()
        except EOFError:
            outcome = {"error": "its process ended without a result"}
        child.join()
    if "error" in outcome:
        raise SystemExit(f"the {mode} run in {out} failed (exit code {child.exitcode}): {outcome['error']}")
    summary, wall = outcome["summary"], outcome["wall_s"]
    probes = [probe_before, speed_probe()]
    if summary.get("status") != "completed":  # Ctrl-C or a fault: its figures would not be comparable
        raise SystemExit(f"the {mode} run in {out} stopped early ({summary.get('status')}); nothing recorded for it")
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line]
    fitness = [line["fitness"] for line in results]
    quarter = fitness[-max(1, len(fitness) // 4):]
    curve = [{k: row[k] for k in ("evaluations", "env_steps", "training_env_steps", "transitions_written", "wall_s",
                                  "qd_score", "mean_elite_fitness") if k in row}
             for row in _metrics(out / "metrics.csv")]  # fmt: skip
    for point, bound in zip(curve, qd_ceilings(out, results)):  # one metrics row per evaluation, in the same order
        point["qd_ceiling"] = bound
    keep = ("evaluations", "env_steps", "training_env_steps", "qd_score", "coverage", "best_fitness", "mean_elite_fitness",
            "elites", "policy_updates", "samples_consumed", "mean_policy_lag", "max_policy_lag", "learner_utilisation",
            "segments_dropped_lag", "producer_waits", "qd_score_reevaluated", "mean_elite_fitness_reevaluated",
            "coverage_reevaluated", "peak_memory_mb")  # fmt: skip
    row = {"mode": mode, "scene": scene, "training_steps_per_individual": budget, "seed": seed, "wall_s": round(wall, 1),
           **{k: summary[k] for k in keep if k in summary}, "peak_pss_mb": round(pss.peak_mb, 1),
           "peak_pss_by_role_mb": pss.peak_by_role_mb, "mean_fitness_last_quarter": sum(quarter) / len(quarter),
           "env_steps_per_s": summary["env_steps"] / wall,
           "training_env_steps_per_s": summary["training_env_steps"] / wall, "curve": curve,
           "update_epochs": json.loads((out / "config.json").read_text())["settings"]["ppo"]["update_epochs"],
           # workers start with one OpenMP/OpenBLAS thread each (before: a thread per core in every process)
           "native_threads_limited": True,
           "speed_probe_steps_per_s": sum(probes) / 2, "speed_probes_steps_per_s": [round(p) for p in probes]}  # fmt: skip
    if "samples_consumed" in summary:
        row["learner_samples_per_s"] = summary["samples_consumed"] / wall
    row["elites_with_ceiling"] = elites_with_ceiling(out / "archive.csv")
    row["mean_elite_fitness_ceiling"] = summary["mean_elite_fitness_ceiling"]
    print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    return row


def _run_in_child(settings: dict[str, Any], trainer_args: dict[str, Any], max_workers_per_core: int, send: Any) -> None:
    """The body of :func:`run_mode`'s process: the run, timed from the trainer's construction to
    the end of ``run()`` (the imports before it are not counted); sends its summary and wall time
    (s), or the error.

    The run stops (as on SIGTERM: its workers end, its files are closed) when the benchmark's
    process dies; without that, killing a benchmark left its current run going on, orphaned."""
    from morphelites.parallel.pool import die_with_parent

    die_with_parent(signal.SIGTERM)  # the run handles it; workers' own parent-death signal is SIGKILL
    try:
        from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

        morphelites.config.MAX_WORKERS_PER_CORE = max_workers_per_core

        start = time.perf_counter()
        summary = MAPElitesEvolutionTrainer(settings, **trainer_args).run()
        send.send({"summary": summary, "wall_s": time.perf_counter() - start})
    except BaseException:  # the parent reports it; a Ctrl-C ends the run as "interrupted", not here
        send.send({"error": traceback.format_exc()})
        raise


def qd_ceilings(out: Path, results: list[dict[str, Any]]) -> list[float]:
    """After each evaluation of the run in ``out`` (``results``: its results.jsonl lines, in
    order), the most QD-score any controller could have had with the bodies evaluated so far
    (``ceiling_bound``); empty if a line lacks its fitness ceiling. Computed in a child process:
    pyribs and MuJoCo mapped into this one would lower every later run's PSS."""
    if any(line.get("fitness_ceiling") is None for line in results):
        return []
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_qd_ceilings, (json.loads((out / "config.json").read_text())["settings"],
                                         [line["genome"] for line in results], [line["fitness_ceiling"] for line in results]))  # fmt: skip


def _qd_ceilings(settings: dict[str, Any], genomes: list[list[float]], ceilings: list[float]) -> list[float]:
    from ceiling_bound import ceiling_qd_scores

    return ceiling_qd_scores(morphelites.config.Settings.from_dict(settings), genomes, ceilings)


def elites_with_ceiling(archive_csv: Path) -> list[dict[str, Any]]:
    """Each elite of a run's archive.csv: joint count, total length (m), fitness, and the fitness
    ceiling of its body (the most any policy could get on the run's evaluation goals)."""
    with open(archive_csv, newline="", encoding="utf-8") as handle:
        return [{"num_links": int(elite["num_links"]),
                 "total_length": round(sum(float(x) for x in elite["link_lengths"].split(";")), 6),
                 "fitness": float(elite["fitness"]), "ceiling": float(elite["fitness_ceiling"])}
                for elite in csv.DictReader(handle)]  # fmt: skip


def _final_wall_s(run: dict[str, Any]) -> float:
    """Seconds to the run's last evaluation (its whole wall time if its curve was not kept)."""
    return run["curve"][-1]["wall_s"] if run.get("curve") else run["wall_s"]


def _first_at(curve: list[dict[str, Any]], qd_score: float) -> dict[str, Any] | None:
    """The first point of a curve (metrics.csv rows, one per evaluation) at ``qd_score`` or above."""
    return next((point for point in curve if point["qd_score"] >= qd_score), None)


def in_flight_allowance(shared: dict[str, Any], workers: int, point: dict[str, Any] | None = None) -> tuple[int, bool]:
    """Env steps added to a point of a shared run's curve before it is compared, and whether they
    are exact.

    A point counts the steps of the evaluations finished by then, but the policy that scored them
    may also have learned from the individuals still in flight on the other workers: their
    experience reaches the learner as it is collected. Curves recorded since the buffer's counters
    were kept in them say exactly how much: the transitions written to the buffer by then minus the
    training steps the point's env steps already count (the finished evaluations', and those of any
    worker that died or was stopped). Older curves get at most a whole training budget
    per other worker, ``(workers - 1) * steps per individual``: an upper bound, which makes their
    env-steps ratios lower bounds. (Independent mode's individuals in flight change nothing until
    they finish.)"""
    if point is not None and "transitions_written" in point and "training_env_steps" in point:
        return max(0, int(point["transitions_written"] - point["training_env_steps"])), True
    return (workers - 1) * int(shared["training_steps_per_individual"]), False


def compare(independent: dict[str, Any], shared: dict[str, Any], workers: int) -> dict[str, Any]:
    """The env steps and wall time (s) each mode needed to reach independent's final QD-score,
    and the ratios independent / shared.

    Independent is charged up to the first point of its curve at its final QD-score (evaluations
    after its last improvement added nothing to it); shared up to the first point of its curve at
    that score, its env steps with the :func:`in_flight_allowance`. Where shared never reached it,
    ``env_steps_ratio_below`` / ``wall_time_ratio_below`` bound the ratios from above (shared's
    whole run in the denominator)."""
    # The curve's own last figure: metrics.csv keeps 6 significant digits, the summary all of them.
    target = independent["curve"][-1]["qd_score"] if independent.get("curve") else independent["qd_score"]
    own = _first_at(independent["curve"], target) if independent.get("curve") else None
    independent_steps = own["env_steps"] if own else independent["env_steps"]
    independent_wall = own["wall_s"] if own else _final_wall_s(independent)
    reached = _first_at(shared["curve"], target)
    allowance, exact = in_flight_allowance(shared, workers, reached or shared["curve"][-1])
    result: dict[str, Any] = {"independent_final_qd_score": target, "shared_final_qd_score": shared["qd_score"],
                              "independent_env_steps_to_reach": independent_steps,
                              "independent_wall_s_to_reach": independent_wall,
                              "shared_in_flight_allowance": allowance, "shared_in_flight_allowance_exact": exact,
                              "shared_reached_independent_final": reached is not None}  # fmt: skip
    if reached:
        steps = reached["env_steps"] + allowance
        result.update({
            "shared_env_steps_to_reach": steps, "shared_wall_s_to_reach": reached["wall_s"],
            "env_steps_ratio": independent_steps / max(steps, 1),
            "wall_time_ratio": independent_wall / max(reached["wall_s"], 1e-9),
        })  # fmt: skip
    else:
        last = shared["curve"][-1]
        result.update({"env_steps_ratio_below": independent_steps / max(last["env_steps"] + allowance, 1),
                       "wall_time_ratio_below": independent_wall / max(last["wall_s"], 1e-9)})  # fmt: skip
    result["memory_ratio_pss"] = shared["peak_pss_mb"] / max(independent["peak_pss_mb"], 1e-9)
    if "speed_probe_steps_per_s" in shared and "speed_probe_steps_per_s" in independent:  # runs since the probe
        result["speed_probe_ratio"] = shared["speed_probe_steps_per_s"] / independent["speed_probe_steps_per_s"]
    drifts = [max(probes) / min(probes) for run in (independent, shared)
              if len(probes := run.get("speed_probes_steps_per_s", [])) == 2 and min(probes) > 0]  # fmt: skip
    if drifts:  # the machine's speed changing within a run, which the two runs' mean probes can hide
        result["speed_probe_drift"] = max(drifts)
    return result


def comparisons_of(runs: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    """One :func:`compare` per (scene, budget, seed) that has a run of both modes, in that order."""
    by_pair: dict[tuple[str, int, int], dict[str, dict[str, Any]]] = {}
    for run in runs:
        by_pair.setdefault(_pair_key(run), {})[run["mode"]] = run
    return [{"scene": scene, "training_steps_per_individual": budget, "seed": seed,
             **compare(pair["independent"], pair["shared"], workers)}
            for (scene, budget, seed), pair in sorted(by_pair.items()) if set(pair) == {"independent", "shared"}]  # fmt: skip


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["scene"], r["training_steps_per_individual"]) for r in rows})
    colours = {"independent": "tab:blue", "shared": "tab:orange"}
    fig, axes = plt.subplots(len(keys), 2, figsize=(11, 3.6 * len(keys)), squeeze=False)
    for (scene, budget), (ax_steps, ax_wall) in zip(keys, axes):
        for r in rows:
            if (r["scene"], r["training_steps_per_individual"]) != (scene, budget):
                continue
            style = {"color": colours[r["mode"]], "label": f"{r['mode']}, seed {r['seed']}", "alpha": 0.85}
            qd = [p["qd_score"] for p in r["curve"]]
            ax_steps.plot([p["env_steps"] for p in r["curve"]], qd, **style)
            ax_wall.plot([p["wall_s"] for p in r["curve"]], qd, **style)
        ax_steps.set(title=f"{scene}, {budget} steps/individual", xlabel="env steps", ylabel="QD-score")
        ax_wall.set(title=f"{scene}, {budget} steps/individual", xlabel="wall time (s)", ylabel="QD-score")
        ax_steps.legend()
        ax_wall.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)  # pyplot keeps every figure until closed: ~13 MB per finished pair in a long session


def with_part_machines(previous: dict[str, Any]) -> dict[str, Any]:
    """A results file whose parts do not say on what machine, date and code each was measured
    (written before parts carried their own ``machine``): give each the file's ``machine``, that of
    its last session (exact for a file measured in one session)."""
    for part in previous.get("parts", []):
        part.setdefault("machine", previous.get("machine"))
    return previous


def _pair_key(row: dict[str, Any]) -> tuple[str, int, int]:
    return row["scene"], int(row["training_steps_per_individual"]), int(row["seed"])


def _with_seeds(previous: dict[str, Any]) -> dict[str, Any]:
    """A results file written before runs carried their own seed: give each run, comparison and
    part the file's single ``seed``."""
    if "seed" in previous:
        seed = previous.pop("seed")
        previous["seeds"] = [seed]
        for item in [*previous.get("runs", []), *previous.get("comparisons", [])]:
            item.setdefault("seed", seed)
        for part in previous.get("parts", []):
            part["pairs"] = [[*pair, seed] if len(pair) == 2 else pair for pair in part.get("pairs", [])]
    return previous


def kept_parts(parts: list[dict[str, Any]], runs: list[dict[str, Any]],
               replaced: set[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """The earlier sessions' ``parts`` of a results file, less the pairs rerun now (``replaced``):
    each keeps its other pairs, and its time less the replaced runs' wall times (its probes and
    plotting stay counted); a part left with no pair is dropped."""
    kept = []
    for part in parts:
        pairs = [pair for pair in part.get("pairs", []) if tuple(pair) not in replaced]
        if not pairs:
            continue
        own = {tuple(pair) for pair in part.get("pairs", [])}
        gone = sum(r["wall_s"] for r in runs if _pair_key(r) in replaced and _pair_key(r) in own)
        kept.append({**part, "pairs": pairs, "wall_s": round(max(0.0, part["wall_s"] - gone), 1)})
    return kept


def modes_in_order(seed: int) -> tuple[str, str]:
    """The order of a pair's runs: independent first for even seeds, shared first for odd ones."""
    return ("independent", "shared") if seed % 2 == 0 else ("shared", "independent")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick",
                        help="which preset to run, and whose file to add to (default: %(default)s)")
    parser.add_argument("--scenes", nargs="+", help="run only these scenes of the preset")
    parser.add_argument("--budgets", nargs="+", type=positive_int, help="run only these steps-per-individual budgets")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="worker processes per run (default: %(default)s); another count than the preset's file "
                             "holds starts that file afresh (its runs would not compare)")
    parser.add_argument("--seeds", "--seed", nargs="+", type=seed_int, default=[0],
                        help="run each (scene, budget) pair once per seed (default: 0)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parse_args(parser, argv)
    preset = PRESETS[args.preset]
    scenes = args.scenes or preset["scenes"]
    budgets = args.budgets or preset["budgets"]
    for name, chosen, allowed in (("scene", scenes, preset["scenes"]), ("budget", budgets, preset["budgets"])):
        if unknown := [c for c in chosen if c not in allowed]:
            parser.error(f"{name} {unknown} is not part of preset {args.preset!r} (it has {allowed})")
    path = args.out / f"shared_vs_independent_{args.preset}.json"
    previous = comparable_or_empty(read_results(path), {"workers": args.workers}, path)
    previous = with_part_machines(_with_seeds(previous)) if previous else None
    previous_runs, previous_parts = (previous or {}).get("runs", []), (previous or {}).get("parts", [])
    new_rows: list[dict[str, Any]] = []
    machine()  # taken now: what this session measures (see common.machine)
    started = time.perf_counter()
    env_rate = env_only_rate(args.workers)
    print(f"env-only rate with {args.workers} processes: {env_rate:.0f} steps/s", flush=True)
    finished: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for scene in scenes:
                for budget in budgets:
                    pair = {mode: run_mode(mode, scene, budget, preset["evaluations"], args.workers, seed, Path(tmp))
                            for mode in modes_in_order(seed)}  # fmt: skip
                    new_rows += pair.values()
                    print(json.dumps(compare(pair["independent"], pair["shared"], args.workers)), flush=True)
                    finished.append([scene, budget, seed])
                    # an earlier run of a pair is replaced only once its rerun has finished: a rerun
                    # cut short keeps the old runs of the pairs it did not reach
                    replaced = {(s, b, sd) for s, b, sd in finished}
                    rows = [r for r in previous_runs if _pair_key(r) not in replaced] + new_rows
                    _write(args.out, args.preset, preset, args.workers, env_rate, rows,
                           [*kept_parts(previous_parts, previous_runs, replaced),
                            {"pairs": finished, "wall_s": round(time.perf_counter() - started, 1),
                             "env_only_steps_per_s": env_rate, "machine": machine()}])  # fmt: skip


def _write(out: Path, preset_name: str, preset: dict[str, Any], workers: int, env_rate: float,
           rows: list[dict[str, Any]], parts: list[dict[str, Any]]) -> None:
    """Rewrite the preset's JSON and plot in ``out`` with everything finished so far (the
    comparisons recomputed from the runs)."""
    rows.sort(key=_pair_key)
    comparisons = comparisons_of(rows, workers)
    plot(rows, out / f"shared_vs_independent_{preset_name}.png")
    write_json(f"shared_vs_independent_{preset_name}", {
        "preset": preset_name, **preset, "workers": workers, "seeds": sorted({r["seed"] for r in rows}),
        "env_only_steps_per_s": env_rate, "wall_s": round(sum(p["wall_s"] for p in parts), 1),
        "parts": parts, "comparisons": comparisons, "runs": rows,
    }, out)  # fmt: skip


if __name__ == "__main__":
    main()
