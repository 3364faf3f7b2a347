"""Recompute the comparisons stored in ``results/*.json`` from the runs each file holds.

A comparison (``shared_vs_independent.compare``: the env steps and wall time each mode needed to
reach independent's final QD-score, and their ratios) is derived from the runs' recorded curves.
When its definition changes, this brings every stored comparison up to date without rerunning a
benchmark: the runs, their machine and date are kept as measured, and the run_length plots
(which draw the ratios) are redrawn.

    python benchmarks/recompare.py
"""

from __future__ import annotations

import argparse
import json

import learner_settings
import run_length
import shared_vs_independent
from common import RESULTS
from morphelites.runs.files import atomic_write_json


def main() -> None:
    # no options, but --help must not run it (it rewrites committed files)
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    for path in sorted(RESULTS.glob("shared_vs_independent_*.json")):
        data = json.loads(path.read_text())
        data["comparisons"] = shared_vs_independent.comparisons_of(data["runs"], data["workers"])
        atomic_write_json(path, data)
        print(f"rewrote {path.name}: {len(data['comparisons'])} comparisons")
    for path in sorted(RESULTS.glob("run_length_*.json")):
        data = json.loads(path.read_text())
        data["comparisons"] = run_length.comparisons_of(data["rows"], data["workers"])
        run_length.plot(data["rows"], data["comparisons"], RESULTS / data.get("plot", f"{path.stem}.png"))
        atomic_write_json(path, data)
        print(f"rewrote {path.name}: {len(data['comparisons'])} comparisons, and its plot")
    for path in sorted(RESULTS.glob("learner_settings_*.json")):
        data = json.loads(path.read_text())
        learner_settings.compare_with_independent_runs(data["rows"], data["workers"])
        atomic_write_json(path, data)
        print(f"rewrote {path.name}: the shared rows' comparisons")


if __name__ == "__main__":
    main()
