"""Is the shared learner's time well spent? PPO epochs and batch size against env-step efficiency
and wall time.

The shared learner is busy nearly all the time (workers wait for it), so the wall time of a
shared run is the learner's. Fewer passes over each batch (``ppo.update_epochs``) or larger,
fewer updates (``training.min_batch_size``) make it faster; whether they cost learning per env
step is what this measures. Each shared setting runs the same evolution (open scene unless
``--scene`` says otherwise, workspace goals, as in ``shared_vs_independent.py``) for each seed, next to one independent run per seed with
the default PPO settings as the reference. Per run: final QD-score, the archive re-evaluated with
the final policy, mean fitness of the last quarter of evaluations (how good the policy is on new
bodies), wall time, learner utilisation, samples/s, producer waits and lag; and the env steps and
wall time the shared run needed to reach that seed's independent final QD-score.

Settings of the independent mode (``independent, 4 epochs``) check the fairness of a comparison:
a setting that helps the shared learner may help per-body PPO as well, and the baseline must get
its best setting too. Each row records the env-only rate of its session (``env_only_steps_per_s``):
wall times compare only between rows of one machine speed.

    python benchmarks/learner_settings.py [--seeds 0 1] [--evaluations 24] [--steps 10000]
    python benchmarks/learner_settings.py --steps 50000 --evaluations 64 --seeds 1 --settings "10 epochs" "4 epochs"
    python benchmarks/learner_settings.py --steps 50000 --evaluations 64 --seeds 0 1 --settings "independent, 4 epochs"
    python benchmarks/learner_settings.py --steps 50000 --evaluations 64 --seeds 0 1 2 --study learning_rate --settings
        "independent (reference)" "4 epochs" "4 epochs, lr 1e-3" "independent, lr 1e-3"

Writes results/learner_settings_<steps>.json (``learner_settings_<scene>_<steps>.json`` for a
scene other than open, ``learner_settings_reachable_<steps>.json`` with ``--goals reachable``, ``learner_settings_<study>_<steps>.json`` with
``--study``; after every run, so a run that is cut off keeps what
it finished). A run replaces only the rows of the (seed, setting) pairs it runs; the others in
that file (same evaluations and workers) are kept, so seeds and settings can be added one run at a
time. The independent reference of a seed is run when it is asked for (``--settings
"independent (reference)"``), or when a shared setting needs it and the file has none. A shared
row is compared with every independent row of its seed (``against``), again on every save. Compare wall times only between rows measured
in the same session: machines differ.

Takes about 35 s per run on 2 cores at the defaults (``learner_settings_10000.json``: 60 runs in
2,095 s), so about 20 min for its 2 seeds of every shared setting and the reference; about 8 min
per run at ``--steps 50000 --evaluations 64`` (``learner_settings_baseline_updates_50000.json``:
14 runs in 6,909 s).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (add_output_option, comparable_or_empty, machine, merge_rerun, parse_args, positive_int, read_results,
                    seed_int, write_json)  # fmt: skip
from morphelites.config import GOAL_SAMPLINGS, SCENES, Settings
from morphelites.parallel.supervisor import sync_quota
from shared_vs_independent import compare, env_only_rate, run_mode


@dataclass(frozen=True)
class Setting:
    """A run of the benchmark: the mode, and the config sections that differ from the defaults."""

    mode: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)


REFERENCE = "independent (reference)"
#: Settings measured, by name (the names of earlier rows in the JSON files).
SETTINGS: dict[str, Setting] = {
    REFERENCE: Setting("independent"),  # at the defaults of its day: 10 epochs until 2026-11-25, 4 since
    "independent, 10 epochs": Setting("independent", {"ppo": {"update_epochs": 10}}),
    "independent, 4 epochs": Setting("independent", {"ppo": {"update_epochs": 4}}),
    # The baseline's chance at the "2 epochs" shared setting (2026-11-29, session 10).
    "independent, 2 epochs": Setting("independent", {"ppo": {"update_epochs": 2}}),
    # Shared settings name their epochs: the learner's default was 10 when the first rows were
    # measured and is 4 now (min_batch_size 1000 throughout unless named).
    "10 epochs": Setting("shared", {"ppo": {"update_epochs": 10}}),
    "4 epochs": Setting("shared", {"ppo": {"update_epochs": 4}}),
    "2 epochs": Setting("shared", {"ppo": {"update_epochs": 2}}),
    "10 epochs, min batch 4000": Setting("shared", {"ppo": {"update_epochs": 10}, "training": {"min_batch_size": 4000}}),
    # The learner's throughput levers after the thread fix (2026-11-25): a second torch thread,
    # minibatches of ~250 or ~500 transitions (independent PPO's 2048/8 = 256; the learner's
    # 1000/8 is 125), and both batch and minibatch of about independent PPO's size.
    "4 epochs, 2 learner threads": Setting("shared", {"ppo": {"update_epochs": 4, "torch_threads": 2}}),
    "4 epochs, 4 minibatches": Setting("shared", {"ppo": {"update_epochs": 4, "num_minibatches": 4}}),
    "4 epochs, 2 minibatches": Setting("shared", {"ppo": {"update_epochs": 4, "num_minibatches": 2}}),
    "4 epochs, min batch 2000": Setting("shared", {"ppo": {"update_epochs": 4}, "training": {"min_batch_size": 2000}}),
    # The network's width (2026-11-25, session 8): an update's cost is mostly the hidden layers'
    # matrix products (hidden_dim**2 per layer and transition), so a narrower policy is the
    # learner's largest lever. The baseline gets the same width (fairness).
    "4 epochs, hidden 128": Setting("shared", {"ppo": {"update_epochs": 4}, "model": {"hidden_dim": 128}}),
    "4 epochs, hidden 64": Setting("shared", {"ppo": {"update_epochs": 4}, "model": {"hidden_dim": 64}}),
    "independent, hidden 128": Setting("independent", {"model": {"hidden_dim": 128}}),
    "independent, hidden 64": Setting("independent", {"model": {"hidden_dim": 64}}),
    # The step size (2026-11-29, session 9): the shared learner sees every body's experience, so
    # a larger step might learn more per env step; the baseline gets the same step (fairness).
    "4 epochs, lr 1e-3": Setting("shared", {"ppo": {"update_epochs": 4, "learning_rate": 1e-3}}),
    "independent, lr 1e-3": Setting("independent", {"ppo": {"learning_rate": 1e-3}}),
    # Sync mode (lag 0) against the async default (2026-11-29, session 9). A sync update then took
    # one segment (update_interval transitions) from each busy worker, so with the default interval
    # its batch was workers*100; an interval of min_batch_size/workers gave it the async batch.
    "4 epochs, sync": Setting("shared", {"ppo": {"update_epochs": 4}, "training": {"sync": True}}),
    "4 epochs, sync, update interval 500": Setting("shared", {"ppo": {"update_epochs": 4},
                                                              "training": {"sync": True, "update_interval": 500}}),
    # The same segment length (T = 125 steps of K = 4 envs) without sync, to tell the lag's part
    # from the segment length's.
    "4 epochs, update interval 500": Setting("shared", {"ppo": {"update_epochs": 4}, "training": {"update_interval": 500}}),
    # Sync mode after sync workers learned to write ceil(min_batch_size / (workers*update_interval))
    # segments per version (2026-11-29, session 10): at the defaults the batch is min_batch_size, as
    # "4 epochs, sync, update interval 500" got by hand; the rows above wrote one segment per version.
    # Since then "4 epochs, sync" is this same config, as "independent, 4 epochs" is the reference's
    # (4 epochs became the default): the 10,000-step table of 2026-12-05 runs neither duplicate; the
    # names stay for the rows of older tables.
    "4 epochs, sync, segments per version": Setting("shared", {"ppo": {"update_epochs": 4}, "training": {"sync": True}}),
    # Decoupled PPO (2026-12-05, session 24): async mode's ratio clipped against the policy each
    # update starts from instead of the lagged behaviour policy. Sync mode (lag 0) learned more per
    # env step than async in the 10,000-step table; this asks whether async can have that at its speed.
    "4 epochs, clip against proximal": Setting("shared", {"ppo": {"update_epochs": 4}, "training": {"clip_against": "proximal"}}),
    # Advantages across segment ends (2026-12-06, session 31): the learner joins a batch's
    # consecutive segments of one env stream before GAE, instead of bootstrapping every T = 25
    # steps (morphelites/parallel/streams.py). Serial PPO's GAE runs over 128 steps.
    "4 epochs, joined segments": Setting("shared", {"ppo": {"update_epochs": 4}, "training": {"join_segments": True}}),
    # The baseline's number of updates (2026-12-07, session 39; found in review): per body,
    # independent PPO at the defaults makes 25 updates of 2,048 transitions in 50,000 steps, with a
    # learning rate annealed to 0 over them, where the shared learner makes 50 of 1,000 for the same
    # steps at a constant rate. The clip bounds how far one update moves the policy, so more epochs
    # or a larger rate (measured above) cannot stand in for more updates. 4 envs make batches of
    # 512 (98 updates at 50,000 steps) and keep the 128-step rollouts that GAE runs over.
    "independent, 4 envs": Setting("independent", {"ppo": {"num_envs": 4}}),
    "independent, 4 envs, constant lr": Setting("independent", {"ppo": {"num_envs": 4, "anneal_lr": False}}),
    # Whether the baseline gains further from still more updates: 196 of 256 at 50,000 steps.
    "independent, 2 envs": Setting("independent", {"ppo": {"num_envs": 2}}),
}
SHARED_SETTINGS = [name for name, setting in SETTINGS.items() if setting.mode == "shared"]


def _row_order(row: dict[str, Any]) -> tuple[int, int]:
    """Rows sort by seed, then in the order of SETTINGS (reference first)."""
    return row["seed"], list(SETTINGS).index(row["setting"])


def compare_with_independent_runs(rows: list[dict[str, Any]], workers: int) -> None:
    """Set every shared row's ``against``: one ``compare`` per independent row of its seed. Redone
    on every save, so that a rerun independent row updates the shared rows measured before it."""
    for row in rows:
        if row["mode"] == "shared" and row.get("curve"):
            row["against"] = {r["setting"]: compare(r, row, workers)
                              for r in rows if r["seed"] == row["seed"] and r["mode"] == "independent"}  # fmt: skip


def _study_name(text: str) -> str:
    """``--study``'s value, checked: it becomes part of a file name."""
    if not text.isidentifier() or not text.islower():
        raise argparse.ArgumentTypeError(f"{text!r}: use a lowercase word of letters, digits and _ (e.g. learning_rate)")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1],
                        help="run every setting once per seed (default: 0 1)")
    parser.add_argument("--evaluations", type=positive_int, default=24,
                        help="individuals evaluated per run (default: %(default)s); other evaluations than the file's "
                             "start its file afresh")
    parser.add_argument("--steps", type=positive_int, default=10_000,
                        help="env steps of training per individual (default: %(default)s); part of the file's name")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="worker processes per run (default: %(default)s); other workers than the file's start "
                             "its file afresh")
    parser.add_argument("--scene", choices=SCENES, default="open", help="the task's scene (default: %(default)s)")
    parser.add_argument("--goals", choices=GOAL_SAMPLINGS, default="workspace",
                        help="evaluation and training goals: the shared workspace (#2's task, default) or within each "
                             "body's reach (where every body's fitness ceiling is 1)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=SHARED_SETTINGS, metavar="SETTING",
                        help="settings to run, by name (default: every shared-mode one): "
                             + ", ".join(f'"{name}"' for name in SETTINGS))  # fmt: skip
    parser.add_argument("--study", type=_study_name, default=None,
                        help="a word naming a focused set of settings: its rows go to their own file, "
                             "learner_settings_<study>_<steps>.json, so that they neither mix with nor replace the "
                             "rows of the full table measured on other days")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    machine()  # taken now: what this session measures (see common.machine)
    started = time.perf_counter()
    env_rate = env_only_rate(args.workers)
    variant = [part for part, default in ((args.scene, "open"), (args.goals, "workspace")) if part != default]
    variant += [args.study] if args.study else []
    name = "_".join(["learner_settings", *variant, str(args.steps)])
    path = args.out / f"{name}.json"
    previous = comparable_or_empty(read_results(path), {"evaluations": args.evaluations, "workers": args.workers}, path)
    new_rows: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = list(previous.get("rows", []))  # the file's rows, with this session's merged in

    def save() -> None:
        merged, wall_s = merge_rerun(previous, new_rows, lambda r: (r["seed"], r["setting"]), time.perf_counter() - started)
        rows[:] = sorted(merged, key=_row_order)
        compare_with_independent_runs(rows, args.workers)
        write_json(name, {
            "scene": args.scene, "goals": args.goals, "study": args.study, "evaluations": args.evaluations, "steps_per_individual": args.steps, "workers": args.workers,
            "seeds": sorted({r["seed"] for r in rows}), "env_only_steps_per_s": env_rate,
            "wall_s": round(wall_s, 1), "rows": rows,
        }, args.out)  # fmt: skip

    def run(seed: int, setting: str, tmp: Path) -> dict[str, Any]:
        spec = SETTINGS[setting]
        sections = {**spec.sections, "env": {**spec.sections.get("env", {}), "goal_sampling": args.goals}}
        result = run_mode(spec.mode, args.scene, args.steps, args.evaluations, args.workers, seed, tmp, sections)
        row = {"setting": setting, "sections": spec.sections, **result, "env_only_steps_per_s": env_rate, "machine": machine()}
        if spec.sections.get("training", {}).get("sync"):
            settings = Settings.from_dict(spec.sections).validate()
            row["sync_segments_per_version"] = sync_quota(settings, args.workers)
        new_rows.append(row)
        save()
        return row

    with tempfile.TemporaryDirectory() as tmp:
        needs_reference = any(SETTINGS[s].mode == "shared" for s in args.settings)
        for seed in args.seeds:
            has_reference = any((r["seed"], r["setting"]) == (seed, REFERENCE) for r in rows)
            if REFERENCE in args.settings or (needs_reference and not has_reference):
                run(seed, REFERENCE, Path(tmp))
            for setting in args.settings:
                if setting == REFERENCE:
                    continue
                row = run(seed, setting, Path(tmp))
                if row["mode"] == "shared":
                    print(json.dumps({"setting": setting, "seed": seed, **row["against"]}), flush=True)


if __name__ == "__main__":
    main()
