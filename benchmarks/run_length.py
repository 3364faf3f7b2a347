"""Does the shared mode's advantage grow with the length of a run?

#4's targets compare the env steps and wall time the shared mode needs to reach the independent
mode's *final* QD-score. In the `long` preset's 64-evaluation runs that ratio grew as the runs
went on (read off their curves at 8, 16, ... 64 evaluations), so the figure at 64 might say as
much about the run's length as about the modes. This benchmark runs both
modes for more evaluations (256 by default, 50,000 env steps of training per body, open scene,
#2's workspace goals, 2 workers, the defaults otherwise) and reports the ratio at every eighth of
the run: for independent's QD-score after k evaluations, the env steps and wall time shared
needed to reach it, against independent's own.

    python benchmarks/run_length.py [--seeds 0 1] [--evaluations 256] [--steps 50000]
    python benchmarks/run_length.py --seeds 2 --evaluations 512 --shared-evaluations 96

The comparison reads shared's curve only up to where it passes independent's QD-score, so
``--shared-evaluations`` may stop the shared run earlier than the independent one to save time:
nothing in the shared mode depends on the planned length of its run (the learner does not anneal
its learning rate, variation does not look at the budget), so its first evaluations are those a
longer run would make. A ratio whose QD-score the shorter shared run never reached is reported as
not reached.

Writes results/run_length_<steps>.json (run_length_<steps>_<evaluations>.json for another number
of evaluations than 256) and its plot after every run, so a run cut off keeps what it finished.
A run replaces the rows of its (seed, mode) pairs and keeps the other seeds' rows (same
evaluations, shared evaluations, workers and scene; other ones start the file again), so seeds
can be added one session at a time; a seed is compared only once both its modes come from one
session (each row records its machine, date and commit), and wall times only between rows of one
session. A seed's two runs alternate in order (independent first for even seeds), as in
shared_vs_independent.py.

Takes about 1 hour per seed on 2 cores at the defaults (``results/run_length_50000.json``: 4 seeds
in 13,685 s), so about 2 hours for the default seeds 0 and 1; about as long with ``--evaluations 512
--shared-evaluations 96`` (``results/run_length_50000_512.json``: 3 seeds in 9,873 s).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (add_output_option, comparable_or_empty, machine, merge_rerun, parse_args, positive_int, read_results,
                    seed_int, write_json)  # fmt: skip
from morphelites.config import SCENES
from shared_vs_independent import compare, env_only_rate, modes_in_order, run_mode

MODES = ("independent", "shared")
DEFAULT_EVALUATIONS = 256


def ratios_at(independent: dict[str, Any], shared: dict[str, Any], evaluations: int, workers: int) -> dict[str, Any]:
    """The comparison #4's targets use (``compare``), with independent's run cut after
    ``evaluations`` evaluations: the env steps and wall time (s) each mode needed to reach
    independent's QD-score at that point, and the ratios independent / shared (``None`` where
    shared never reached it; then ``env_steps_ratio_below`` / ``wall_time_ratio_below`` bound
    them from above, with shared's whole run in the denominator)."""
    point = independent["curve"][evaluations - 1]
    cut = {"qd_score": point["qd_score"], "curve": independent["curve"][:evaluations], "peak_pss_mb": independent["peak_pss_mb"]}
    result = compare(cut, shared, workers)
    return {
        "evaluations": evaluations,
        "independent_qd_score": point["qd_score"],
        "independent_env_steps": result["independent_env_steps_to_reach"],
        "independent_wall_s": result["independent_wall_s_to_reach"],
        "shared_env_steps_to_reach": result.get("shared_env_steps_to_reach"),
        "shared_wall_s_to_reach": result.get("shared_wall_s_to_reach"),
        "env_steps_ratio": result.get("env_steps_ratio"),
        "wall_time_ratio": result.get("wall_time_ratio"),
        **{key: result[key] for key in ("env_steps_ratio_below", "wall_time_ratio_below") if key in result},
    }


def session_of(row: dict[str, Any]) -> tuple[Any, Any]:
    """The session a row was measured in: its machine record's date and commit (None, None for
    rows from before rows recorded their machine, all of one session per file)."""
    machine = row.get("machine") or {}
    return machine.get("date"), machine.get("commit")


def comparisons_of(rows: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    """Per seed with a run of both modes, measured in one session: ``compare`` over the whole
    runs, and ``by_evaluations``, :func:`ratios_at` every eighth of independent's run. A seed whose
    two rows come from different sessions (a rerun cut off between its modes) is left out: its
    runs may differ in code and machine speed."""
    comparisons = []
    for seed in sorted({r["seed"] for r in rows}):
        pair = {r["mode"]: r for r in rows if r["seed"] == seed}
        if set(pair) == set(MODES) and session_of(pair["independent"]) == session_of(pair["shared"]):
            comparisons.append({"seed": seed, **compare(pair["independent"], pair["shared"], workers),
                                "by_evaluations": [ratios_at(pair["independent"], pair["shared"], k, workers)
                                                   for k in checkpoints(len(pair["independent"]["curve"]))]})  # fmt: skip
    return comparisons


def checkpoints(evaluations: int, parts: int = 8) -> list[int]:
    """Evaluation counts at which the ratios are read: every ``parts``-th of the run, the end included."""
    return sorted({max(1, round(evaluations * i / parts)) for i in range(1, parts + 1)})


def plot(rows: list[dict[str, Any]], comparisons: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_qd, ax_ratio) = plt.subplots(1, 2, figsize=(11, 3.8))
    colours = {"independent": "tab:blue", "shared": "tab:orange"}
    seeds = sorted({row["seed"] for row in rows})
    for row in rows:
        ax_qd.plot([p["env_steps"] for p in row["curve"]], [p["qd_score"] for p in row["curve"]],
                   color=colours[row["mode"]], linestyle=("-", "--", ":", "-.")[seeds.index(row["seed"]) % 4],
                   alpha=0.85, label=f"{row['mode']}, seed {row['seed']}")  # fmt: skip
    unreached_labelled = False
    for comparison in comparisons:
        points = [p for p in comparison["by_evaluations"] if p["env_steps_ratio"] is not None]
        x = [p["evaluations"] for p in points]
        steps_line, = ax_ratio.plot(x, [p["env_steps_ratio"] for p in points], marker="o",
                                    label=f"env steps, seed {comparison['seed']}")  # fmt: skip
        wall_line, = ax_ratio.plot(x, [p["wall_time_ratio"] for p in points], marker="s", linestyle="--",
                                   label=f"wall time, seed {comparison['seed']}")  # fmt: skip
        # Where shared never reached independent's score the line would just stop: a hollow
        # triangle at the most the ratio could be says "not reached, below this" instead.
        for key, line in (("env_steps_ratio", steps_line), ("wall_time_ratio", wall_line)):
            unreached = [p for p in comparison["by_evaluations"] if p[key] is None and f"{key}_below" in p]
            if unreached:
                ax_ratio.plot([p["evaluations"] for p in unreached], [p[f"{key}_below"] for p in unreached], "v",
                              markerfacecolor="none", color=line.get_color(),
                              label=None if unreached_labelled else "not reached (the most the ratio could be)")  # fmt: skip
                unreached_labelled = True
    ax_ratio.axhline(10, color="grey", linewidth=0.8, linestyle=":")
    ax_qd.set(xlabel="env steps", ylabel="QD-score", title="QD-score against env steps")
    ax_ratio.set(xlabel="independent's evaluations", ylabel="independent / shared",
                 title="to reach independent's QD-score after k evaluations")  # fmt: skip
    ax_qd.legend()
    if comparisons:
        ax_ratio.legend(fontsize="small", framealpha=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1],
                        help="one run of each mode per seed (default: 0 1)")
    parser.add_argument("--evaluations", type=positive_int, default=DEFAULT_EVALUATIONS,
                        help="individuals evaluated per independent run (default: %(default)s); part of the file's name")
    parser.add_argument("--shared-evaluations", type=positive_int, default=None,
                        help="stop the shared runs after this many evaluations (default: --evaluations)")
    parser.add_argument("--steps", type=positive_int, default=50_000,
                        help="env steps of training per individual (default: %(default)s); part of the file's name")
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes per run (default: %(default)s)")
    parser.add_argument("--scene", choices=SCENES, default="open", help="the task's scene (default: %(default)s)")
    parser.add_argument("--keep-runs", type=Path, default=None, metavar="DIR",
                        help="write the runs' directories into DIR and keep them (default: a temporary directory, "
                             "deleted at the end), e.g. for normaliser_padding.py on a shared run's checkpoint")  # fmt: skip
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parse_args(parser, argv)
    shared_evaluations = args.shared_evaluations or args.evaluations
    if shared_evaluations > args.evaluations:
        parser.error(f"--shared-evaluations ({shared_evaluations}) cannot exceed --evaluations ({args.evaluations})")
    name = f"run_length_{args.steps}" + ("" if args.evaluations == DEFAULT_EVALUATIONS else f"_{args.evaluations}")
    path = args.out / f"{name}.json"
    previous = read_results(path)
    if previous:  # files from before the option: the shared runs were as long as the independent ones
        previous.setdefault("shared_evaluations", previous.get("evaluations"))
    previous = comparable_or_empty(previous, {"evaluations": args.evaluations, "shared_evaluations": shared_evaluations,
                                              "workers": args.workers, "scene": args.scene}, path)  # fmt: skip
    new_rows: list[dict[str, Any]] = []
    machine()  # taken now: what this session measures (see common.machine)
    started = time.perf_counter()
    env_rate = env_only_rate(args.workers)
    print(f"env-only rate with {args.workers} processes: {env_rate:.0f} steps/s", flush=True)

    def save() -> None:
        rows, wall_s = merge_rerun(previous, new_rows, lambda r: (r["seed"], r["mode"]), time.perf_counter() - started)
        rows.sort(key=lambda r: (r["seed"], MODES.index(r["mode"])))
        comparisons = comparisons_of(rows, args.workers)
        plot(rows, comparisons, args.out / f"{name}.png")
        write_json(name, {
            "scene": args.scene, "goals": "workspace", "evaluations": args.evaluations, "shared_evaluations": shared_evaluations,
            "steps_per_individual": args.steps, "workers": args.workers, "seeds": sorted({r["seed"] for r in rows}),
            "plot": f"{name}.png",
            "wall_s": round(wall_s, 1), "comparisons": comparisons, "rows": rows,
        }, args.out)  # fmt: skip

    if args.keep_runs is not None:
        args.keep_runs.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(str(args.keep_runs)) if args.keep_runs is not None else tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for mode in modes_in_order(seed):  # alternating, so that a drift of the machine's speed hits both modes
                evaluations = shared_evaluations if mode == "shared" else args.evaluations
                row = run_mode(mode, args.scene, args.steps, evaluations, args.workers, seed, Path(tmp))
                new_rows.append({**row, "env_only_steps_per_s": env_rate, "machine": machine()})
                save()


if __name__ == "__main__":
    main()
