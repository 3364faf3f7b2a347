"""Independent mode with and without ``evolution.parent_lag``: does a seed repeat a run, and at what cost?

For each seed, independent mode runs twice with parent lag 0 (the default: parents are drawn from
whatever results have arrived) and twice with parent lag N = the number of workers (parents of
individual k from the results of individuals 0 .. k-N-1, taken in id order), every run in a fresh
process, one after the other. Per run: wall time, QD-score, env steps, and with a parent lag the
seconds in which a free worker waited for an older result (``held_back_s``). Per pair of runs
with the same settings: whether they evaluated the same individuals (id, parent, genome and
fitness, to the bit) and wrote the same archive.csv; if not, the first id where they part and
how many individuals differ. Run it alone on
the machine: wall times are part of the answer. Takes about 8 min on 2 cores at the defaults, and
48 min at ``--steps 50000 --seeds 0 1`` (README, "Reproducible runs": the sessions of
``results/reproducible_runs_1500.json`` and ``_50000.json``). Writes
``results/reproducible_runs_<steps>.json``.

    python benchmarks/reproducible_runs.py [--steps 1500] [--evaluations 64] [--workers 2] [--seeds 0 1 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from common import add_output_option, parse_args, positive_int, seed_int, write_json
from shared_vs_independent import run_mode

KEPT = ("wall_s", "qd_score", "coverage", "elites", "mean_elite_fitness", "env_steps", "peak_pss_mb")


def individuals(out: Path) -> list[tuple[Any, ...]]:
    """What a run evaluated, in id order: (id, parent id, genome, fitness) per individual."""
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line]
    return sorted((r["id"], r["parent_id"], tuple(r["genome"]), r["fitness"]) for r in lines)


def compare(first: Path, second: Path) -> dict[str, Any]:
    """Whether two run directories hold the same individuals and archive; the first id that differs,
    and how many ids differ (in id, parent, genome or fitness, or held by one run only)."""
    a, b = individuals(first), individuals(second)
    parted = next((x[0] for x, y in zip(a, b) if x != y), None)
    if parted is None and len(a) != len(b):
        parted = min(len(a), len(b))
    return {"same_individuals": a == b, "first_differing_id": parted, "differing_individuals": sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b)),
            "same_archive_csv": (first / "archive.csv").read_bytes() == (second / "archive.csv").read_bytes()}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive_int, default=1500,
                        help="env steps of training per individual (default: %(default)s); part of the file's name")
    parser.add_argument("--evaluations", type=positive_int, default=64,
                        help="individuals evaluated per run (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="worker processes per run, and the parent lag of the lagged pair (default: %(default)s)")
    parser.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2],
                        help="four runs per seed: two pairs, without and with a parent lag (default: 0 1 2)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for lag in (0, args.workers):
                runs, dirs = [], []
                for repeat in (1, 2):
                    where = Path(tmp) / f"seed{seed}-lag{lag}-run{repeat}"
                    where.mkdir()
                    row = run_mode("independent", "open", args.steps, args.evaluations, args.workers, seed, where,
                                   sections={"evolution": {"parent_lag": lag}})  # fmt: skip
                    run_dir = next(where.iterdir())
                    summary = json.loads((run_dir / "summary.json").read_text())
                    runs.append({**{k: row[k] for k in KEPT}, "held_back_s": summary.get("held_back_s", 0.0)})
                    dirs.append(run_dir)
                pair = {"seed": seed, "parent_lag": lag, "runs": runs, **compare(*dirs)}
                print(json.dumps(pair), flush=True)
                pairs.append(pair)
    write_json(f"reproducible_runs_{args.steps}", {
        "training_steps_per_individual": args.steps, "evaluations": args.evaluations, "workers": args.workers,
        "seeds": args.seeds, "scene": "open", "mode": "independent", "pairs": pairs}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
