"""How much fitness does the task allow? The fitness ceiling of every archive cell.

With goals from the shared workspace (the default, and the task of the shared-vs-independent
benchmark), a short arm cannot reach the far goals, so no policy gets it near fitness 1. This
script computes, for the default body space and archive (joint count x 10 total-length bins) and
the default evaluation goals (20 goals, seed 12345), the fitness ceiling of each cell
(``morphelites/ceiling.py``: a geometric upper bound, attained only if every reachable goal is
reached and the arm stretches straight toward every other one). From them:

- the ceiling of the mean elite fitness of a full archive (every cell an elite);
- the ceiling of the mean elite fitness of any archive with k elites: the mean of the k highest
  cell ceilings (an archive of k elites holds k different cells).

No policy is trained or evaluated here. Takes a few seconds on 2 cores, most of them imports (the
computing itself: 0.2 s, ``wall_s`` of ``results/fitness_ceiling.json``).

    python benchmarks/fitness_ceiling.py [--out DIR]

Writes results/fitness_ceiling.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import add_output_option, parse_args, write_json
from morphelites.ceiling import cell_ceilings
from morphelites.config import EvolutionConfig
from morphelites.evolution.measures import measure_specs
from morphelites.morphology import BodySpace

SCENES = ("open", "obstacles")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    start = time.perf_counter()
    space = BodySpace()
    evolution = EvolutionConfig()
    specs = {s.name: s for s in measure_specs(space, ("num_links", "total_length"), evolution.continuous_bins)}
    length = specs["total_length"]
    edges = np.linspace(length.low, length.high, length.bins + 1)
    scenes = {}
    for scene in SCENES:
        ceilings = cell_ceilings(space, edges, evolution.eval_episodes, evolution.eval_seed, scene=scene)
        ranked = np.sort(np.array(list(ceilings.values())))[::-1]
        scenes[scene] = {
            "cells": [{"num_links": n, "length_bin": b, "length_range_m": [round(edges[b], 3), round(edges[b + 1], 3)],
                       "ceiling": c} for (n, b), c in sorted(ceilings.items())],  # fmt: skip
            "reachable_cells": len(ceilings),
            "full_archive_mean_ceiling": float(ranked.mean()),
            # mean_ceiling_by_elites[k - 1]: the most mean elite fitness an archive of k elites can have
            "mean_ceiling_by_elites": [float(ranked[:k].mean()) for k in range(1, len(ranked) + 1)],
        }
        print(f"{scene}: {len(ceilings)} cells, full archive at most {ranked.mean():.3f}; "
              f"k elites at most: {', '.join(f'{k}: {ranked[:k].mean():.3f}' for k in (1, 5, 8, 10, 15, 20))}")  # fmt: skip
    write_json("fitness_ceiling", {
        "body_space": {"min_links": space.min_links, "max_links": space.max_links,
                       "link_length_m": list(space.length_bounds)},
        "archive": {"measures": ["num_links", "total_length"], "length_bins": length.bins},
        "eval_episodes": evolution.eval_episodes, "eval_seed": evolution.eval_seed, "goal_sampling": "workspace",
        "scenes": scenes, "wall_s": round(time.perf_counter() - start, 1),
    }, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
