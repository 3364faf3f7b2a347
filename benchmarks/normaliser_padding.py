"""What the shared policy's observation normaliser does to the joints that only some bodies have.

Observations are padded to the body space's most joints, and the padded entries are zeros. The
running mean and variance of each observation entry (``ActorCritic.obs_rms``) are taken over
every transition, padded ones included, so for a joint that only a share ``p`` of the transitions
have, the statistics mix its real values with zeros. The policy zeroes padded features after
normalising them (the joint mask gates them), so the zeros never reach the network; what the
pooling changes is the scale of the *real* values: normalised with the pooled statistics, they
are no longer centred at 0 with spread 1.

The normaliser's statistics alone tell by how much: the joint's mask entry (1 or 0) has mean
``p``, and the real values' mean and variance follow from the pooled ones,
``mean_real = mean / p`` and ``var_real = (var + mean^2) / p - mean_real^2``. Per joint, this
prints ``p`` and, over the joint's features, the largest offset ``(mean_real - mean) / std`` and
the largest spread ``std_real / std`` of its real values in normalised units (a normaliser
masked to real values would give 0 and 1).

    python benchmarks/normaliser_padding.py RUN_DIR            # a shared run's directory (or its checkpoints/)
    python benchmarks/normaliser_padding.py RUN_DIR --record   # also write results/normaliser_padding.json

Reads the newest learner checkpoint that loads and runs nothing. Takes a few seconds on 2 cores
(imports and one checkpoint). Only with ``--record`` does it write
results/normaliser_padding.json, the file behind README's figures: looking at your own run must
not overwrite them (found in review).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from common import write_json


def real_value_scales(mean: np.ndarray, var: np.ndarray, mask_indices: tuple[int, ...],
                      gate_joint: tuple[int, ...]) -> list[dict[str, Any]]:  # fmt: skip
    """Per joint, the share of transitions that have it and how its real values come out of the
    pooled normalisation.

    Args:
        mean, var: the normaliser's running statistics, shape (obs_dim,).
        mask_indices: for each joint, the observation index of its 0/1 mask entry.
        gate_joint: for each observation index, the joint whose mask gates it (-1: none).
    Returns:
        One dict per joint: ``joint``, ``share_present`` (p), ``max_offset`` and ``max_spread``
        over the joint's gated features other than its mask (normalised units; 0 and 1 when
        p = 1), or None for both when no transition had the joint.
    """
    mean, var = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    std = np.sqrt(var + 1e-8)  # as the policy normalises
    rows = []
    for joint, mask_index in enumerate(mask_indices):
        p = float(mean[mask_index])
        features = [i for i, j in enumerate(gate_joint) if j == joint and i != mask_index]
        if p <= 0.0:
            rows.append({"joint": joint, "share_present": p, "max_offset": None, "max_spread": None})
            continue
        mean_real = mean[features] / p
        var_real = np.maximum((var[features] + mean[features] ** 2) / p - mean_real**2, 0.0)
        offsets = (mean_real - mean[features]) / std[features]
        spreads = np.sqrt(var_real) / std[features]
        rows.append({"joint": joint, "share_present": p, "max_offset": float(np.max(np.abs(offsets))),
                     "max_spread": float(np.max(spreads))})  # fmt: skip
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a shared run's directory, or its checkpoints/ folder")
    parser.add_argument("--record", action="store_true",
                        help="write results/normaliser_padding.json (README's figures come from it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from morphelites.parallel.learner import newest_learner_checkpoint
    from morphelites.policy_numpy import PolicySpec
    from morphelites.runs.checkpoints import CheckpointError

    folder = args.run_dir / "checkpoints" if (args.run_dir / "checkpoints").is_dir() else args.run_dir
    try:
        path, state = newest_learner_checkpoint(folder)
    except CheckpointError as error:
        print(f"normaliser_padding: {error}", file=sys.stderr)
        return 2
    spec = PolicySpec.from_dict(state["policy"]["spec"])
    if spec.mask_indices is None or spec.gate_joint is None:
        print(f"normaliser_padding: the policy in {path} has no joint mask (not a padded body policy)", file=sys.stderr)
        return 2
    rms = state["policy"]["obs_rms"]
    rows = real_value_scales(rms["mean"], rms["var"], spec.mask_indices, spec.gate_joint)
    print(f"{path} (policy version {state['version']}, {state['samples_consumed']:,} samples)")
    print("joint  share of transitions  largest offset  largest spread   (real values, normalised units)")
    for row in rows:
        if row["max_offset"] is None:
            print(f"{row['joint']:5d}  {row['share_present']:20.3f}  never present")
        else:
            print(f"{row['joint']:5d}  {row['share_present']:20.3f}  {row['max_offset']:14.2f}  "
                  f"{row['max_spread']:14.2f}")
    if args.record:
        write_json("normaliser_padding", {"checkpoint": str(path), "policy_version": int(state["version"]),
                                          "samples_consumed": int(state["samples_consumed"]), "joints": rows})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
