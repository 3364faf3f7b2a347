"""Render the README's benchmark tables from ``results/*.json`` (between the BENCHMARKS markers).

    python benchmarks/readme_tables.py          # rewrites the block in README.md
    python benchmarks/readme_tables.py --print  # prints it instead
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- BENCHMARKS:START -->", "<!-- BENCHMARKS:END -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(data: dict[str, Any], steps_reach_env: bool = True) -> str:
    """The machine, date and commit of a results file; ``steps_reach_env`` False for a benchmark
    that never steps ReachEnv (so the env fix cannot have changed it)."""
    m = data["machine"]
    commit = f", commit {m['commit']}" if m.get("commit") else ""  # recorded since 2026-11-30
    env = ", before the env fix" if steps_reach_env and m["date"] < ENV_FIX else ""
    cores = f"{m['cores']} of {m['node_cores']} cores" if m.get("node_cores") else f"{m['cores']} cores"  # usable of the node's
    memory = f"{m['memory_gb']} of {m['node_memory_gb']} GB" if m.get("node_memory_gb") else f"{m['memory_gb']} GB"
    return f"{m['cpu']}, {cores}, {memory}, Python {m['python']}; {m['date']}{commit}{env}"


#: When the shared learner's value targets changed (commits 41eb1b6 and 273ced9; README, Benchmarks).
LEARNER_CHANGE = "2026-11-30 05:53 UTC"
#: When ReachEnv began reading positions after the physics substeps (commit 46ef3a5; README, Benchmarks).
ENV_FIX = "2026-12-06 08:08 UTC"


def _measured(data: dict[str, Any]) -> str:
    """When and on what code a results file was measured, for the targets table."""
    m = data["machine"]
    day = m["date"].split()[0]
    if m.get("commit"):
        when = f"{day}, commit {m['commit']}"
    else:
        when = f"{day}, before the learner change" if m["date"] < LEARNER_CHANGE else day
    return when + (", before the env fix" if m["date"] < ENV_FIX else "")


def _measured_pairs(data: dict[str, Any], scene: str, budget: int) -> str:
    """:func:`_measured` of the sessions (``parts``) of a shared_vs_independent file that ran
    ``scene`` at ``budget``; the file's own where its parts do not say (written before they did)."""
    parts = [part for part in data.get("parts", []) if "machine" in part
             and any(pair[0] == scene and int(pair[1]) == budget for pair in part["pairs"])]  # fmt: skip
    if not parts:
        return _measured(data)
    return " and ".join(dict.fromkeys(_measured(part) for part in parts))


def _row_machines(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The machines of a results file's sessions, one per session, oldest row first: each row's own
    where rows record it (run_length, learner_settings, memory_scaling since 2026-12-07), else the
    file's (rows written before then are dated by the file's last session, which may be later)."""
    machines = [row.get("machine", data["machine"]) for row in data.get("rows", [])] or [data["machine"]]
    return list({(m["date"], m.get("commit")): m for m in machines}.values())


def _machine_rows(data: dict[str, Any], steps_reach_env: bool = True) -> str:
    """:func:`_machine` of every session whose rows a results file holds."""
    return " and ".join(dict.fromkeys(_machine({"machine": m}, steps_reach_env) for m in _row_machines(data)))


def _measured_rows(data: dict[str, Any]) -> str:
    """:func:`_measured` of every session whose rows a results file holds."""
    return " and ".join(dict.fromkeys(_measured({"machine": m}) for m in _row_machines(data)))


def _part_label(part: dict[str, Any]) -> str:
    """What one session of a shared_vs_independent file ran: ``open at 50,000, obstacles at 1,500``."""
    pairs = dict.fromkeys((pair[0], int(pair[1])) for pair in part["pairs"])
    return ", ".join(f"{scene} at {budget:,}" for scene, budget in pairs)


def _env(data: dict[str, Any]) -> list[str]:
    lines = [f"**Env throughput** (`benchmarks/env_throughput.py`; {_machine(data)}; one process, frame_skip {data['frame_skip']})", "",
             "| joints | ReachEnv steps/s (random actions) | mj_step/s | mj_step rate / frame_skip | env overhead |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        lines.append(f"| {r['joints']} | {r['env_steps_per_s']:,} | {r['mj_step_per_s']:,} | "
                     f"{r['mj_step_policy_equivalent_per_s']:,} | {r['env_overhead_fraction']:.0%} |")  # fmt: skip
    return lines


def _learning(data: dict[str, Any]) -> list[str]:
    lines = [f"**Learning on the open scene** (`benchmarks/learning_reach.py`; {_machine(data)}; {data['parallel_runs']} runs "
             f"in parallel, {data['wall_s']:.0f} s in all; goals within each body's reach; curves: "
             "`benchmarks/results/learning_reach.png`)", "",
             "| task | seed | env steps | final eval success | target | reached target at (env steps) | training wall time |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    if not all(r.get("training_wall_excludes_evaluations") for r in data["runs"]):
        # runs of learning_reach.py before 2026-12-06 timed the curve's evaluations with the training,
        # and not apart: what share of those times they are was not recorded
        lines[0] = lines[0][:-1] + "; the training wall times include the curve's periodic evaluations)"
    for r in data["runs"]:
        task = "3-joint arm" if r["kind"] == "single" else f"one policy, {len(r['bodies'])} bodies of 3-6 joints"
        reached = f"{r['steps_to_target']:,}" if r["steps_to_target"] else "missed"
        lines.append(f"| {task} | {r['seed']} | {r['env_steps']:,} | {r['final_success_rate']:.2f} | ≥ {r['target']} | "
                     f"{reached} | {r['wall_s_training']:.0f} s |")  # fmt: skip
    return lines


def _gym(data: dict[str, Any]) -> list[str]:
    lines = [f"**PPO on Gymnasium tasks** (`benchmarks/gym_ppo.py`; {_machine(data, steps_reach_env=False)}; {data['steps']:,} env steps per seed, "
             "deterministic evaluation over 20 episodes; references from `benchmarks/gym_references.json`)", "",
             "| task | ours: mean return over seeds (per seed) | published references |", "|---|---|---|"]  # fmt: skip
    refs = data.get("references", {})
    for task, s in data["summary"].items():
        family = task.split("-")[0]
        entries = refs.get(family, [])
        picked = [r for r in entries if r.get("env_steps") == 200_000][:1]  # same budget as ours (read off a curve)
        picked += [r for r in entries if r.get("env_steps") == 1_000_000 and r.get("std") is not None][:2]
        ref_text = "; ".join(
            f"{r['implementation'].split(' (')[0]} {r['version']}: {r['mean_return']}"
            f"{' ± ' + str(r['std']) if r.get('std') is not None else ''} at {r['env_steps']:,} steps" for r in picked
        ) or "see gym_references.json"  # fmt: skip
        per_seed = ", ".join(f"{x:.1f}" for x in s["per_seed"])
        lines.append(f"| {task} | {s['eval_mean_return_over_seeds']:.1f} ± {s['eval_std_over_seeds']:.1f} ({per_seed}) | {ref_text} |")
    return lines


def _transport(data: dict[str, Any]) -> list[str]:
    shape = data["segment_shape"]
    lines = [f"**Experience transport** (`benchmarks/experience_transport.py`; {_machine(data, steps_reach_env=False)}; segments of "
             f"{shape['T']}×{shape['K']} steps, one producer process)", "", "| transport | segments/s | transitions/s |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {r['transport']} | {r['segments_per_s']:,} | {r['transitions_per_s']:,} |" for r in data["rows"]]
    return lines


def _independent(data: dict[str, Any]) -> list[str]:
    lines = [f"**Independent mode** (`benchmarks/independent_mode.py`; {_machine(data)}; {data['workers']} workers, seed "
             f"{data['seed']}, open scene, goals from the shared workspace)", "",
             "| env steps per individual | evaluations | QD-score | coverage | mean elite fitness | best fitness | "
             "mean success of all evaluated | env steps | wall time | peak memory (sum of RSS) |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        lines.append(f"| {r['training_steps_per_individual']:,} | {r['evaluations']} | {r['qd_score']:.2f} | {r['coverage']:.0%} | "
                     f"{r['mean_elite_fitness']:.3f} | {r['best_fitness']:.3f} | {r['mean_success_rate_of_all_evaluated']:.3f} | "
                     f"{r['env_steps']:,} | {r['wall_s']:.0f} s | {r['peak_memory_mb']:.0f} MB |")  # fmt: skip
    return lines


def _reproducible(data: dict[str, Any]) -> list[str]:
    lines = [f"**Reproducible runs** (`benchmarks/reproducible_runs.py`; {_machine(data)}; independent mode, open scene, "
             f"{data['workers']} workers, {data['evaluations']} evaluations of {data['training_steps_per_individual']:,} "
             "env steps; each setting run twice per seed, every run in a fresh process, one after the other)", "",
             "| seed | parent lag | QD-score, run 1 / run 2 | wall time, run 1 / run 2 | a free worker waited, run 1 / "
             "run 2 | same individuals (to the bit) | same archive.csv |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for pair in data["pairs"]:
        first, second = pair["runs"]
        same = "yes" if pair["same_individuals"] else (
            f"no: {pair['differing_individuals']} of {data['evaluations']} differ, the first id {pair['first_differing_id']}")  # fmt: skip
        lag = f"{pair['parent_lag']}{' (default)' if pair['parent_lag'] == 0 else ''}"
        waited = f"{first['held_back_s']:.1f} s / {second['held_back_s']:.1f} s" if pair["parent_lag"] else "–"
        lines.append(f"| {pair['seed']} | {lag} | {first['qd_score']:.2f} / {second['qd_score']:.2f} | "
                     f"{first['wall_s']:.0f} s / {second['wall_s']:.0f} s | {waited} | {same} | "
                     f"{'yes' if pair['same_archive_csv'] else 'no'} |")  # fmt: skip
    return lines


def _seeds(data: dict[str, Any]) -> str:
    seeds = data.get("seeds", [data.get("seed")])
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


def _spread(values: list[float], unit: str = "", digits: int = 1) -> str:
    """``mean (min–max)`` of per-seed figures, the one figure, or "–" for none."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{unit}"
    return f"{sum(values) / len(values):.{digits}f}{unit} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def _env_only_rates(data: dict[str, Any]) -> str:
    """The env-only rate of a shared_vs_independent file: one figure, or, for a file measured in
    several sessions (``parts``; its machine date is the last one's), the range over them."""
    head = f"env-only rate of {data['workers']} processes with random actions"
    parts = data.get("parts", [])
    rates = [part["env_only_steps_per_s"] for part in parts]
    if len(rates) < 2:
        return f"{head}: {data['env_only_steps_per_s']:,.0f} steps/s"
    if all("machine" in part for part in parts):
        each = "; ".join(f"{_part_label(part)}: {part['machine']['date']}"
                         f"{', commit ' + part['machine']['commit'] if part['machine'].get('commit') else ''}, "
                         f"{part['env_only_steps_per_s']:,.0f} steps/s" for part in parts)  # fmt: skip
        return f"measured in {len(rates)} sessions, the date above is the last one's; {head}, by session: {each}"
    return f"measured in {len(rates)} parts, the date is the last one's; {head}: {min(rates):,.0f}–{max(rates):,.0f} steps/s"


def _shared(data: dict[str, Any]) -> list[str]:
    lines = [f"**Shared vs independent, preset `{data['preset']}`** (`benchmarks/shared_vs_independent.py --preset "
             f"{data['preset']}`; {_machine(data)}; {data['workers']} workers, {_seeds(data)}, {data['evaluations']} "
             f"evaluations per run, {data['wall_s']:.0f} s in all; {_env_only_rates(data)}; plots: "
             f"`benchmarks/results/shared_vs_independent_{data['preset']}.png`)", "",
             "| scene | steps/individual | seed | mode | PPO epochs | QD-score | re-evaluated QD | coverage | mean elite fitness | "
             "its ceiling (share reached) | env steps | wall time | env steps/s | learner samples/s | lag mean/max | peak PSS |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    ceiling = _load("fitness_ceiling")
    for r in data["runs"]:
        reeval = f"{r['qd_score_reevaluated']:.2f}" if "qd_score_reevaluated" in r else "–"
        lag = f"{r['mean_policy_lag']:.2f}/{r['max_policy_lag']:.0f}" if "mean_policy_lag" in r else "–"
        samples = f"{r['learner_samples_per_s']:,.0f}" if "learner_samples_per_s" in r else "–"
        lines.append(f"| {r['scene']} | {r['training_steps_per_individual']:,} | {r.get('seed', data.get('seed'))} | {r['mode']} | "
                     f"{r['update_epochs']} | {r['qd_score']:.2f} | {reeval} | {r['coverage']:.0%} | {r['mean_elite_fitness']:.3f} | "
                     f"{_elite_ceiling(r, ceiling)} | {r['env_steps']:,} | {r['wall_s']:.0f} s | {r['env_steps_per_s']:,.0f} | {samples} | {lag} | {r['peak_pss_mb']:.0f} MB |")  # fmt: skip
    lines += ["", "Env steps and wall time to reach independent's final QD-score: independent's up to the first evaluation "
              "of its curve at that score, shared's up to the first of its own, its env steps plus the experience of "
              "the individuals still in flight, which its policy may already have learned from: measured (transitions "
              "written to the buffer by then, less the training steps its env steps already count) where the curve recorded "
              "it, marked \"in flight measured\", else (workers − 1) × steps per individual (an upper bound, so that "
              "env steps ratio is a lower bound).", "",
              "| scene | steps/individual | seed | independent reached its final QD-score after | shared reached it | "
              "env steps ratio | wall time ratio | machine speed, shared/independent | memory ratio (PSS, shared/independent) |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    by_pair: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for c in data["comparisons"]:
        by_pair.setdefault((c["scene"], c["training_steps_per_individual"]), []).append(c)
        own = f"{int(c['independent_env_steps_to_reach']):,} env steps / {c['independent_wall_s_to_reach']:.0f} s"
        measured = ", in flight measured" if c.get("shared_in_flight_allowance_exact") else ""
        reached = (f"yes, after {int(c['shared_env_steps_to_reach']):,} env steps{measured} / {c['shared_wall_s_to_reach']:.0f} s"
                   if c["shared_reached_independent_final"] else "no")  # fmt: skip
        steps_ratio = f"{c['env_steps_ratio']:.1f}×" if "env_steps_ratio" in c else "–"
        wall_ratio = f"{c['wall_time_ratio']:.1f}×" if "wall_time_ratio" in c else "–"
        lines.append(f"| {c['scene']} | {c['training_steps_per_individual']:,} | {c.get('seed', data.get('seed'))} | {own} | "
                     f"{reached} | {steps_ratio} | {wall_ratio} | {_speed(c)} | {c['memory_ratio_pss']:.2f} |")  # fmt: skip
    several = {pair: cs for pair, cs in by_pair.items() if len(cs) > 1}
    if several:
        lines += ["", "| scene | steps/individual | seeds | shared reached independent's final QD-score | env steps ratio, "
                  "mean (min–max) | wall time ratio, mean (min–max) | QD-score shared / independent, mean (min–max) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for (scene, budget), cs in sorted(several.items()):
            reached = [c for c in cs if c["shared_reached_independent_final"]]
            steps = _spread([c["env_steps_ratio"] for c in reached], "×") if reached else "–"
            comparable = [c for c in reached if not _wall_not_comparable(c)]
            wall = _spread([c["wall_time_ratio"] for c in comparable], "×") if comparable else "–"
            if len(comparable) < len(reached):
                wall += f" ({len(comparable)} of {len(reached)} pairs; the others' machine speed changed)"
            qd = _spread([c["shared_final_qd_score"] / max(c["independent_final_qd_score"], 1e-9) for c in cs], "×")
            lines.append(f"| {scene} | {budget:,} | {len(cs)} | {len(reached)} of {len(cs)} | {steps} | {wall} | {qd} |")
    return lines


def _learner_update(data: dict[str, Any]) -> list[str]:
    fit = data["fit_one_thread"]
    lines = [f"**Learner update cost** (`benchmarks/learner_update.py`; {_machine(data, steps_reach_env=False)}; one process, nothing else "
             f"running; policy {data['obs_dim']}→{data['hidden_dim']}→{data['hidden_dim']}→{data['action_dim']} (actor and "
             f"critic), {data['rows'][0]['epochs']} epochs on random data; one gradient step at 1 thread ≈ "
             f"{fit['fixed_ms_per_step']:.2f} ms + {fit['ms_per_transition'] * 1000:.1f} µs per transition)", "",
             "| torch threads | batch | minibatches (size) | ms per update | ms per gradient step | samples/s |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        lines.append(f"| {r['torch_threads']} | {r['batch']:,} | {r['minibatches']} ({r['minibatch_size']}) | "
                     f"{r['update_ms']:.0f} | {r['ms_per_gradient_step']:.2f} | {r['samples_per_s']:,.0f} |")  # fmt: skip
    return lines


CEILING_ELITE_COUNTS = (1, 5, 8, 10, 13, 15, 20)


def _ceiling(data: dict[str, Any]) -> list[str]:
    counts = [k for k in CEILING_ELITE_COUNTS if k <= min(s["reachable_cells"] for s in data["scenes"].values())]
    lines = [f"**Fitness ceiling** (`benchmarks/fitness_ceiling.py`; {data['eval_episodes']} evaluation goals, seed "
             f"{data['eval_seed']}, from the shared workspace; archive of joint count × {data['archive']['length_bins']} "
             "total-length bins; no policy involved: the most fitness any controller can get, from geometry)", "",
             "| scene | cells some body falls in | most mean elite fitness of a full archive | most mean elite fitness of an "
             f"archive of k elites: {', '.join(f'k = {k}' for k in counts)} |", "|---|---|---|---|"]  # fmt: skip
    for scene, s in data["scenes"].items():
        by_k = " / ".join(f"{s['mean_ceiling_by_elites'][k - 1]:.2f}" for k in counts)
        lines.append(f"| {scene} | {s['reachable_cells']} | {s['full_archive_mean_ceiling']:.2f} | {by_k} |")
    return lines


def _elite_ceiling(row: dict[str, Any], ceiling: dict[str, Any] | None) -> str:
    """The ceiling of a run's mean elite fitness: that of its elites' bodies (and the share of it
    the run reached) where the row has them, else the bound for its number of elites (``≤``),
    else a dash."""
    if "mean_elite_fitness_ceiling" in row:
        return f"{row['mean_elite_fitness_ceiling']:.2f} ({row['mean_elite_fitness'] / row['mean_elite_fitness_ceiling']:.0%})"
    scene = (ceiling or {}).get("scenes", {}).get(row["scene"])
    if scene is None or not row.get("elites"):
        return "–"
    by_elites = scene["mean_ceiling_by_elites"]
    return f"≤ {by_elites[min(int(row['elites']), len(by_elites)) - 1]:.2f}"


def _memory(data: dict[str, Any]) -> list[str]:
    lines = [f"**Memory against workers** (`benchmarks/memory_scaling.py`; {_machine_rows(data)}; {data['scene']} scene, "
             f"{data['training_steps_per_individual']:,} steps per individual, two evaluations per worker, "
             f"{data['wall_s']:.0f} s in all; peak of the sum of PSS over the process tree, and how that peak sample "
             "divides: main process / learner / workers; more workers than cores is fine here, as memory does not "
             "depend on cores)", "",
             "| workers | independent: peak PSS (main / workers) | per worker | shared: peak PSS (main / learner / workers) "
             "| per worker | ratio shared/independent |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        ind, sh = r["independent"], r["shared"]
        ind_roles, sh_roles = ind["peak_pss_by_role_mb"], sh["peak_pss_by_role_mb"]
        lines.append(f"| {r['workers']} | {ind['peak_pss_mb']:,.0f} MB ({ind_roles.get('main', 0):,.0f} / "
                     f"{ind_roles.get('workers', 0):,.0f}) | {ind['pss_per_worker_mb']:.0f} MB | {sh['peak_pss_mb']:,.0f} MB "
                     f"({sh_roles.get('main', 0):,.0f} / {sh_roles.get('learner', 0):,.0f} / {sh_roles.get('workers', 0):,.0f}) "
                     f"| {sh['pss_per_worker_mb']:.0f} MB | {_pss_ratio(r):.2f} |")  # fmt: skip
    return lines


def _targets(data: dict[str, Any]) -> list[str]:
    lines = [f"**Learner value targets** (`benchmarks/learner_targets.py`; {_machine(data)}; shared mode, {data['workers']} "
             f"workers, {data['evaluations']} evaluations of {data['steps_per_individual']:,} steps, reachable goals)", "",
             "| targets (`training.value_targets`) | seed | elites re-evaluated with the final policy: mean fitness | last quarter of evaluations: "
             "mean fitness | policy updates | mean lag |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        lines.append(f"| {r['value_targets']} | {r['seed']} | {r['mean_elite_fitness_reevaluated']:.3f} | "
                     f"{r['mean_fitness_last_quarter']:.3f} | {r['policy_updates']:.0f} | {r['mean_policy_lag']:.2f} |")  # fmt: skip
    targets = list(dict.fromkeys(r["value_targets"] for r in data["rows"]))
    if len(data["rows"]) > len(targets):  # several seeds: their mean and range per choice
        lines += ["", "| targets | seeds | elites re-evaluated: mean fitness, mean (min–max) | last quarter: mean fitness, "
                  "mean (min–max) |", "|---|---|---|---|"]  # fmt: skip
        for target in targets:
            rows = [r for r in data["rows"] if r["value_targets"] == target]
            lines.append(f"| {target} | {len(rows)} | {_spread([r['mean_elite_fitness_reevaluated'] for r in rows], digits=3)} | "
                         f"{_spread([r['mean_fitness_last_quarter'] for r in rows], digits=3)} |")  # fmt: skip
    return lines


def _figure(row: dict[str, Any], key: str, pattern: str) -> str:
    """``row[key]`` formatted with ``pattern``, or "–" where the row has no such figure."""
    return pattern.format(row[key]) if row.get(key) is not None else "–"


def _speed(comparison: dict[str, Any]) -> str:
    """Shared's speed probe over independent's (see shared_vs_independent.py), marked where the
    machine's speed differed by 10% or more between the two runs, or within one of them (its
    probes before and after); "not probed" for runs made before the probe."""
    if "speed_probe_ratio" not in comparison:
        return "not probed"
    ratio = comparison["speed_probe_ratio"]
    if _factor(ratio) >= _SPEED_TOLERANCE:
        return f"{ratio:.2f} (differs: wall time ratio not comparable)"
    if _factor(comparison.get("speed_probe_drift", 1.0)) >= _SPEED_TOLERANCE:
        return (f"{ratio:.2f} (changed {comparison['speed_probe_drift']:.2f}× within a run: wall time ratio not "
                "comparable)")  # fmt: skip
    return f"{ratio:.2f}"


#: A machine speed that changes by this factor or more, between a pair's runs or within one,
#: makes the pair's wall times not comparable.
_SPEED_TOLERANCE = 1.1 - 1e-9


def _factor(ratio: float) -> float:
    """How many times faster one side of ``ratio`` is than the other, either way round."""
    return max(ratio, 1 / ratio)


def _speeds_differ(comparison: dict[str, Any]) -> bool:
    """Whether the machine was 10% or more faster for one run of a pair than for the other
    (either way round: the probe ratio is shared's speed over independent's), or changed that
    much within one of them (its probes before and after, ``speed_probe_drift``): the two runs'
    mean speeds alone can hide a slowdown that hit both (seen in review: independent's probes
    20,457 then 11,874 steps/s, shared's 10,549 then 20,840, a ratio of means of 0.97)."""
    ratio = comparison.get("speed_probe_ratio")
    if ratio is None:
        return False
    return _factor(ratio) >= _SPEED_TOLERANCE or _factor(comparison.get("speed_probe_drift", 1.0)) >= _SPEED_TOLERANCE


def _wall(row: dict[str, Any]) -> str:
    """Wall time, starred if measured before worker processes ran native libraries single-threaded
    (the processes then fought over the cores: see :func:`_thread_handicaps`)."""
    return f"{row['wall_s']:.0f} s" + ("" if row.get("native_threads_limited") else "*")


def _thread_handicaps(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """By mode, how many times as long the runs measured before worker processes ran native
    libraries single-threaded took as their twins measured after: the rows of one results file with
    the same seed, mode and settings (a setting named or at its default alike), at env-only rates
    within 10% of each other (else the machine's speed could make the difference)."""
    def twin_key(row: dict[str, Any]) -> tuple[Any, ...]:
        named = frozenset((section, key, value) for section, values in row["sections"].items()
                          for key, value in values.items() if (section, key) != ("ppo", "update_epochs"))  # fmt: skip
        return row["seed"], row["mode"], row["update_epochs"], named

    after: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if row.get("native_threads_limited"):
            after.setdefault(twin_key(row), row)
    handicaps: dict[str, list[float]] = {}
    for row in rows:
        twin = None if row.get("native_threads_limited") else after.get(twin_key(row))
        if twin and _factor(row["env_only_steps_per_s"] / twin["env_only_steps_per_s"]) < _SPEED_TOLERANCE:
            handicaps.setdefault(row["mode"], []).append(row["wall_s"] / twin["wall_s"])
    return handicaps


def _star_note(rows: list[dict[str, Any]]) -> str:
    """What a learner-settings table's ``*`` says: measured with a thread per core in every process,
    and, where the file holds twins measured after the fix (:func:`_thread_handicaps`), how much
    longer those runs took; "" where no row is starred."""
    if all(row.get("native_threads_limited") for row in rows):
        return ""
    slower = "; ".join(f"{mode} runs took {_range(ratios)}× as long as the same settings' runs after the fix"
                       for mode, ratios in sorted(_thread_handicaps(rows).items()))  # fmt: skip
    return ("; * measured while every worker ran a BLAS/OpenMP thread per core, so the processes fought over the cores"
            + (f" ({slower})" if slower else "") + ": those wall times do not compare")


def _range(values: list[float]) -> str:
    """``min–max`` of figures to one decimal, or the one figure."""
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return low if low == high else f"{low}–{high}"


def _pss_ratio(row: dict[str, Any]) -> float:
    """Peak PSS shared / independent of a memory_scaling row, from the peaks: the stored ratio is
    rounded to 3 digits, and rounding it again misprints (0.575 of 0.5753 prints 0.57) and
    misjudges (0.3334 would read 0.333, met)."""
    return row["shared"]["peak_pss_mb"] / row["independent"]["peak_pss_mb"]


def _round_up(bound: float) -> str:
    """An upper bound to one decimal, rounded up so that it stays a bound (5.34 reads 5.4, not 5.3)."""
    return f"{math.ceil(bound * 10 - 1e-9) / 10:.1f}"


def _wall_not_comparable(comparison: dict[str, Any], shared: dict[str, Any] | None = None,
                         independent: dict[str, Any] | None = None) -> str | None:  # fmt: skip
    """Why a pair's wall-time ratio does not compare, or None where it does: the one rule of every
    table. The machine's speed changed between the pair's runs or within one (the probes, see
    :func:`_speeds_differ`); with the two runs' rows at hand, also when they come from different
    sessions (``machine`` date or commit), whose env-only rates differ by 10% or more, or one of
    which ran before worker processes ran native libraries single-threaded."""
    if _speeds_differ(comparison):
        return "machine speed changed"
    if shared is None or independent is None:
        return None
    if _factor(independent["env_only_steps_per_s"] / shared["env_only_steps_per_s"]) >= _SPEED_TOLERANCE:
        return "other machine speed"
    if _session(shared) != _session(independent):
        return "other session"
    if not (shared.get("native_threads_limited") and independent.get("native_threads_limited")):
        return "thread handicap"
    return None


def _session(row: dict[str, Any]) -> tuple[Any, Any]:
    """The session a result row was measured in: its machine's start date and commit."""
    machine = row.get("machine", {})
    return machine.get("date"), machine.get("commit")


def _wall_ratio(comparison: dict[str, Any], shared: dict[str, Any], independent: dict[str, Any]) -> str:
    """The wall-time ratio of a comparison where it compares (:func:`_wall_not_comparable`);
    otherwise why it is left out."""
    if "wall_time_ratio" not in comparison:
        return "–"
    why = _wall_not_comparable(comparison, shared, independent)
    return f"– ({why})" if why else f"{comparison['wall_time_ratio']:.1f}×"


#: The setting name of each seed's reference independent run in learner_settings.py.
REFERENCE = "independent (reference)"


#: PPO settings that only per-body PPO reads (shared mode's learner takes its batches from the
#: buffer at a constant rate): an independent run that differs from a shared one only in these
#: is the baseline at another setting of its own, and the pairing is shown.
_INDEPENDENT_ONLY = frozenset({("ppo", "num_envs"), ("ppo", "num_steps"), ("ppo", "anneal_lr")})


def _learning_settings(row: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The PPO and network settings a run learned with (the experience flow, ``training.*``, left
    out: independent mode has none, and the settings only independent mode reads), with the PPO
    epochs it used."""
    chosen = {(section, key): value for section in ("ppo", "model") for key, value in row["sections"].get(section, {}).items()
              if (section, key) not in _INDEPENDENT_ONLY}  # fmt: skip
    return chosen | {("ppo", "update_epochs"): row["update_epochs"]}


def _setting_label(row: dict[str, Any]) -> str:
    """``shared, ppo.update_epochs=4`` / ``independent, defaults``: the mode and what differs; for
    sync mode also the segments each worker wrote per version (one in rows from before that was
    a setting, which do not record it)."""
    changed = [f"{section}.{key}={value}" for section, values in row["sections"].items() for key, value in values.items()]
    label = f"{row['mode']}, " + (", ".join(changed) if changed else f"defaults ({row['update_epochs']} epochs)")
    if row["sections"].get("training", {}).get("sync"):
        quota = row.get("sync_segments_per_version", 1)
        label += f" ({quota} segment{'s' if quota != 1 else ''} per version)"
    return label


def _learner_settings(data: dict[str, Any]) -> list[str]:
    goals = data.get("goals", "workspace")
    goals = "workspace goals" if goals == "workspace" else "goals within each body's reach (`--goals reachable`)"
    star = _star_note(data["rows"])
    study = f", study `{data['study']}`" if data.get("study") else ""
    lines = [f"**Learner settings{study}** (`benchmarks/learner_settings.py`; {_machine_rows(data)}; {data['scene']} scene, {goals}, "
             f"{data['workers']} workers, {data['evaluations']} evaluations of {data['steps_per_individual']:,} steps, "
             f"{data['wall_s']:.0f} s in all; each row's env-only rate tells its machine's speed: compare wall times only "
             f"between rows of one speed{star})", "",
             "| setting | seed | PPO epochs | QD-score | re-evaluated QD | elites | mean elite fitness | mean fitness, last "
             "quarter | wall time | env steps/s | env-only rate | learner samples/s | learner busy | policy updates | "
             "lag mean |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        figure = functools.partial(_figure, r)
        lines.append(f"| {_setting_label(r)} | {r['seed']} | {r['update_epochs']} | {r['qd_score']:.2f} | "
                     f"{figure('qd_score_reevaluated', '{:.2f}')} | {r['elites']:.0f} | {r['mean_elite_fitness']:.3f} | "
                     f"{r['mean_fitness_last_quarter']:.3f} | {_wall(r)} | {r['env_steps_per_s']:,.0f} | "
                     f"{r['env_only_steps_per_s']:,.0f} | {figure('learner_samples_per_s', '{:,.0f}')} | "
                     f"{figure('learner_utilisation', '{:.0%}')} | {figure('policy_updates', '{:,.0f}')} | "
                     f"{figure('mean_policy_lag', '{:.2f}')} |")  # fmt: skip
    by_name = {(r["seed"], r["setting"]): r for r in data["rows"]}
    lines += ["", "Each shared run against its seed's reference independent run (the defaults of its day) and against "
              "the independent runs with the same PPO and network settings (those only per-body PPO reads, "
              "`ppo.num_envs`, `ppo.num_steps` and `ppo.anneal_lr`, aside); every pairing is in the JSON (`against`). "
              "Env steps and wall times to reach a QD-score are read as under Shared vs independent.",
              "", "| seed | shared | against | independent final QD-score | shared reached it after | env steps ratio | "
              "wall time ratio |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        for name, c in r.get("against", {}).items():
            other = by_name[(r["seed"], name)]
            if name != REFERENCE and _learning_settings(other) != _learning_settings(r):
                continue
            reached = f"{int(c['shared_env_steps_to_reach']):,} env steps" if c["shared_reached_independent_final"] else "–"
            steps = f"{c['env_steps_ratio']:.1f}×" if "env_steps_ratio" in c else "–"
            lines.append(f"| {r['seed']} | {_setting_label(r)} | {_setting_label(other)} | "
                         f"{c['independent_final_qd_score']:.2f} | {reached} | {steps} | {_wall_ratio(c, r, other)} |")  # fmt: skip
    return lines


#: Issue #4's targets: env steps and wall time to reach independent's final QD-score (at least
#: this many times fewer), shared mean elite fitness on the open scene, PSS ratio shared/independent.
TARGET_FEWER, TARGET_FITNESS, TARGET_MEMORY_RATIO = 10.0, 0.9, 1 / 3


def _run_length(data: dict[str, Any]) -> list[str]:
    """``benchmarks/run_length.py``: both modes over a longer run, and the ratios at each eighth of it."""
    rates = sorted({r["env_only_steps_per_s"] for r in data["rows"]})
    rate = f"{rates[0]:,.0f}" if len(rates) == 1 else f"{rates[0]:,.0f}–{rates[-1]:,.0f}"
    shared_evaluations = data.get("shared_evaluations", data["evaluations"])
    if shared_evaluations == data["evaluations"]:
        length, not_reached = f"{data['evaluations']} evaluations per run", "not reached"
    else:
        length = (f"independent {data['evaluations']} evaluations, shared stopped after {shared_evaluations} "
                  "(the comparison reads its curve only up to independent's QD-score)")  # fmt: skip
        not_reached = f"not reached in {shared_evaluations} evaluations"
    plot = data.get("plot", f"run_length_{data['steps_per_individual']}.png")
    lines = [f"**Shared vs independent over a longer run** (`benchmarks/run_length.py`; {_machine_rows(data)}; {data['scene']} "
             f"scene, {data['goals']} goals, {data['steps_per_individual']:,} steps per body, {data['workers']} workers, "
             f"{_seeds(data)}, {length}, {data['wall_s']:.0f} s in all; env-only rate "
             f"of {data['workers']} processes with random actions: {rate} steps/s; plot: `benchmarks/results/{plot}`)", "",
             "| seed | mode | QD-score | re-evaluated QD | elites | mean elite fitness | its ceiling (share reached) | "
             "env steps | wall time | env steps/s | peak PSS |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    ceiling = _load("fitness_ceiling")
    for r in data["rows"]:
        reeval = f"{r['qd_score_reevaluated']:.2f}" if "qd_score_reevaluated" in r else "–"
        lines.append(f"| {r['seed']} | {r['mode']} | {r['qd_score']:.2f} | {reeval} | {r['elites']:.0f} | "
                     f"{r['mean_elite_fitness']:.3f} | {_elite_ceiling(r, ceiling)} | {r['env_steps']:,} | {r['wall_s']:.0f} s | "
                     f"{r['env_steps_per_s']:,.0f} | {r['peak_pss_mb']:.0f} MB |")  # fmt: skip
    lines += ["", "| seed | independent's evaluations | its QD-score then | its env steps to reach it | shared's env steps to reach it | "
              "env steps ratio | wall time ratio |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in data["comparisons"]:
        for p in c["by_evaluations"]:
            if p["env_steps_ratio"] is None:
                to_reach, steps_ratio, wall_ratio = not_reached, "–", "–"
            else:
                to_reach = f"{int(p['shared_env_steps_to_reach']):,}"
                steps_ratio, wall_ratio = f"{p['env_steps_ratio']:.1f}×", f"{p['wall_time_ratio']:.1f}×"
                if _speeds_differ(c):  # the pair's machine speed: these are the same two runs
                    wall_ratio += " (machine speed changed: not comparable)"
            lines.append(f"| {c['seed']} | {p['evaluations']} | {p['independent_qd_score']:.2f} | "
                         f"{int(p['independent_env_steps']):,} | {to_reach} | {steps_ratio} | {wall_ratio} |")  # fmt: skip
    return lines


def _met(passed: list[bool]) -> str:
    """``yes`` / ``no`` / ``on k of n seeds`` (``–`` with nothing measured)."""
    if not passed:
        return "–"
    if all(passed):
        return "yes"
    return "no" if not any(passed) else f"on {sum(passed)} of {len(passed)} seeds"


def _ratio_target(key: str, what: str, where: str, comparisons: list[dict[str, Any]], measured_on: str) -> str:
    """A row of the targets table for one ratio (``key`` of each comparison) over seeds: mean
    (min–max) where shared reached independent's final QD-score on every seed, else each seed's
    figure, a seed where it never did named with the most its ratio could be (``<key>_below``,
    shared's whole run in the denominator) and not counted as met (said to be undecided where that
    bound is at the target or above). A wall-time ratio of a pair that does not compare
    (:func:`_wall_not_comparable`) is left out of the figure and of the verdict, which covers the
    seeds left ("–" with none); the row names the seeds left out, and says when the machine speed
    was not probed."""
    if not comparisons:  # a file whose first pair is still running
        return (f"| ≥ {TARGET_FEWER:.0f}× {what} to reach independent's final QD-score | {where} | no pair of runs yet "
                f"| – | {measured_on} |")  # fmt: skip
    notes = []
    figure = lambda c: (f"{c[key]:.1f}×" if c["shared_reached_independent_final"]  # noqa: E731
                        else f"not reached (below {_round_up(c[key + '_below'])}×)")  # fmt: skip
    counted = comparisons
    if key == "wall_time_ratio":
        why = {c["seed"]: c.get("wall_not_comparable") or _wall_not_comparable(c) for c in comparisons}
        counted = [c for c in comparisons if not why[c["seed"]]]
        if len(counted) < len(comparisons):
            notes.append("left out, not comparable: " + "; ".join(f"seed {c['seed']} {figure(c)} ({why[c['seed']]})"
                                                                  for c in comparisons if why[c["seed"]]))  # fmt: skip
        if not all("speed_probe_ratio" in c for c in comparisons):
            notes.append("machine speed not probed")
    if not counted:
        measured = "–"
    elif all(c["shared_reached_independent_final"] for c in counted):
        measured = _spread([c[key] for c in counted], "×")
        measured += f" on seed{'s' if len(counted) > 1 else ''} {', '.join(str(c['seed']) for c in counted)}" \
            if len(counted) < len(comparisons) else ""
    else:
        measured = "; ".join(f"seed {c['seed']}: {figure(c)}" for c in counted)
    if notes:
        measured += f" ({'; '.join(notes)})"
    # judged on the seeds counted: a pair left out tells nothing either way ("–" with none left)
    passed = [c["shared_reached_independent_final"] and c[key] >= TARGET_FEWER for c in counted]
    # never reached, but its bound does not rule the target out: shared stopped too early to tell
    undecided = [str(c["seed"]) for c in counted
                 if not c["shared_reached_independent_final"] and c[key + "_below"] >= TARGET_FEWER]  # fmt: skip
    met = _met(passed) + (" (comparable seeds only)" if counted and len(counted) < len(comparisons) else "")
    met += (f"; undecided on seed{'s' if len(undecided) > 1 else ''} {', '.join(undecided)} (shared stopped "
            f"before reaching the score)" if undecided else "")  # fmt: skip
    return (f"| ≥ {TARGET_FEWER:.0f}× {what} to reach independent's final QD-score | {where} | "
            f"{measured} | {met} | {measured_on} |")


#: The two ratio targets of #4: the comparison's key, and what the row calls it.
_RATIOS = (("env_steps_ratio", "fewer env steps"), ("wall_time_ratio", "less wall time"))


def _fitness_target(where: str, shared_runs: list[dict[str, Any]], ceiling: dict[str, Any] | None,
                    measured_on: str) -> str:  # fmt: skip
    """A row of the targets table for the shared runs' mean elite fitness, each with its elites' ceiling."""
    figures = ", ".join(f"{r['mean_elite_fitness']:.2f} (ceiling {_elite_ceiling(r, ceiling)})" for r in shared_runs)
    return (f"| shared mean elite fitness ≥ {TARGET_FITNESS} | {where} | {figures} | "
            f"{_met([r['mean_elite_fitness'] >= TARGET_FITNESS for r in shared_runs])} | {measured_on} |")


def _stronger_baseline_targets(budget: int) -> list[str]:
    """Rows of the targets table against each independent setting of the learner-settings study
    ``baseline_updates`` (more PPO updates per body than the default), where the file exists: the
    shared runs at the defaults compared with the baseline at each of its settings, seed by seed."""
    lines = []
    for name in (f"learner_settings_baseline_updates_{budget}", f"learner_settings_obstacles_baseline_updates_{budget}"):
        study = _load(name)
        if study is not None:
            lines += _baseline_study_targets(study)
    return lines


def _baseline_study_targets(study: dict[str, Any]) -> list[str]:
    """:func:`_stronger_baseline_targets`' rows of one scene's file of the study."""
    lines = []
    by_name = {(r["seed"], r["setting"]): r for r in study["rows"]}
    shared = [r for r in study["rows"] if r["mode"] == "shared" and r["setting"] == "4 epochs" and r.get("against")]
    baselines = list(dict.fromkeys(name for r in shared for name in r["against"]))
    for key, what in _RATIOS:
        for name in baselines:
            comparisons = [{**r["against"][name], "seed": r["seed"],
                            "wall_not_comparable": _wall_not_comparable(r["against"][name], r, by_name.get((r["seed"], name)))}
                           for r in shared if name in r["against"]]  # fmt: skip
            seeds = [str(c["seed"]) for c in comparisons]
            where = (f"{study['scene']}, against {name} (learner settings, study `baseline_updates`, "
                     f"{study['evaluations']} evaluations, seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)})")  # fmt: skip
            lines.append(_ratio_target(key, what, where, comparisons, _measured_rows(study)))
    return lines


def _issue4_targets(long: dict[str, Any]) -> list[str]:
    """Issue #4's targets against what the `long` preset (its larger budget), the memory scaling and
    the reachable-goals learner settings measured; every figure is in the tables below."""
    budget = max(long["budgets"])
    lines = [f"**Issue #4's targets at a glance** (from the tables below: the `long` preset at {budget:,} steps per "
             f"body, {long['workers']} workers, seeds {', '.join(map(str, long['seeds']))}, {long['evaluations']} evaluations per run, "
             "unless the row says otherwise; per seed, or mean (min–max) over seeds; the env steps and wall time each mode "
             "needed are read from its curve as under Shared vs independent below)", "",
             "| target | scene, task | measured | met | measured on |", "|---|---|---|---|---|"]  # fmt: skip
    comparisons = [c for c in long["comparisons"] if c["training_steps_per_individual"] == budget]
    longer = _load(f"run_length_{budget}")
    # run_length_<budget>_<evaluations>.json: runs of another length, in order of length
    others = sorted((data for path in RESULTS.glob(f"run_length_{budget}_*.json") if (data := _load(path.stem)) is not None),
                    key=lambda data: data["evaluations"])  # fmt: skip
    for key, what in _RATIOS:
        for scene in long["scenes"]:
            lines.append(_ratio_target(key, what, scene, [c for c in comparisons if c["scene"] == scene],
                                       _measured_pairs(long, scene, budget)))  # fmt: skip
    for data in (d for d in (longer, *others) if d is not None):
        shared_evaluations = data.get("shared_evaluations", data["evaluations"])
        stopped = "" if shared_evaluations == data["evaluations"] else f"; shared stopped after {shared_evaluations}"
        where = f"{data['scene']}, {data['evaluations']} evaluations (longer run, {_seeds(data)}{stopped})"
        for key, what in _RATIOS:
            lines.append(_ratio_target(key, what, where, data["comparisons"], _measured_rows(data)))
    lines += _stronger_baseline_targets(budget)
    ceiling = _load("fitness_ceiling")
    shared = [r for r in long["runs"] if r["mode"] == "shared" and r["training_steps_per_individual"] == budget
              and r["scene"] == "open"]  # fmt: skip
    lines.append(_fitness_target("open, workspace goals (#2's task)", shared, ceiling, _measured_pairs(long, "open", budget)))
    if longer is not None:
        lines.append(_fitness_target(f"{longer['scene']}, workspace goals, {longer['evaluations']} evaluations (longer run)",
                                     [r for r in longer["rows"] if r["mode"] == "shared"], ceiling, _measured_rows(longer)))  # fmt: skip
    reachable = _load(f"learner_settings_reachable_{budget}")
    if reachable is not None:
        rows = [r for r in reachable["rows"] if r["mode"] == "shared" and r["setting"] == "4 epochs"]
        figures = ", ".join(f"{r['mean_elite_fitness']:.2f}" for r in rows)
        lines.append(f"| shared mean elite fitness ≥ {TARGET_FITNESS} | {reachable['scene']}, goals within each body's "
                     f"reach (learner settings) | {figures} | "
                     f"{_met([r['mean_elite_fitness'] >= TARGET_FITNESS for r in rows])} | {_measured_rows(reachable)} |")  # fmt: skip
    for scene in long["scenes"]:
        ratios = [c["memory_ratio_pss"] for c in comparisons if c["scene"] == scene]
        lines.append(f"| peak PSS shared ≤ ⅓ of independent, {long['workers']} workers | {scene} | "
                     f"{_spread(ratios, digits=2)} | {_met([r <= TARGET_MEMORY_RATIO for r in ratios])} | "
                     f"{_measured_pairs(long, scene, budget)} |")  # fmt: skip
    memory = _load("memory_scaling")
    if memory is not None:
        by_workers = ", ".join(f"{_pss_ratio(r):.2f} at {r['workers']}" for r in memory["rows"])
        enough = [r["workers"] for r in memory["rows"] if _pss_ratio(r) <= TARGET_MEMORY_RATIO]
        lines.append(f"| peak PSS shared ≤ ⅓ of independent, by workers | {memory['scene']} (memory against workers: "
                     f"{memory['training_steps_per_individual']:,} steps per body, two evaluations per worker) | "
                     f"{by_workers} | {f'from {min(enough)} workers' if enough else 'no'} | {_measured_rows(memory)} |")  # fmt: skip
    return lines


def render() -> str:
    blocks = []
    long = _load("shared_vs_independent_long")
    if long is not None:
        blocks.append("\n".join(_issue4_targets(long)))
    for name, function in (("env_throughput", _env), ("learning_reach", _learning), ("gym_ppo", _gym),
                           ("experience_transport", _transport), ("independent_mode", _independent),
                           ("shared_vs_independent_quick", _shared), ("shared_vs_independent_long", _shared),
                           ("fitness_ceiling", _ceiling), ("memory_scaling", _memory),
                           ("learner_update", _learner_update), ("learner_targets", _targets),
                           *((path.stem, _run_length) for path in sorted(RESULTS.glob("run_length_*.json"))),
                           *((path.stem, _reproducible) for path in sorted(RESULTS.glob("reproducible_runs_*.json"))),
                           *((path.stem, _learner_settings) for path in sorted(RESULTS.glob("learner_settings_*.json"),
                                                                               key=lambda p: int(p.stem.rsplit("_", 1)[1])))):  # fmt: skip
        data = _load(name)
        if data is not None:
            blocks.append("\n".join(function(data)))
    return "\n\n".join(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true", help="print instead of rewriting README.md")
    args = parser.parse_args()
    block = render()
    if args.print:
        print(block)
        return
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{block}\n{END}{tail}")
    print("README.md benchmark block rewritten")


if __name__ == "__main__":
    main()
