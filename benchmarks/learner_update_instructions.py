"""Instructions one PPO update of the shared learner executes, counted by valgrind's callgrind,
for one or more checkouts of morphelites: a before/after figure that a busy or throttled machine
does not blur, as wall time on a shared 2-core VM does.

The update is ``benchmarks/learner_update.py``'s default case: ``PPOUpdater.update`` on 1,000
random transitions of the default body space's policy (54 inputs, 6 actions, two hidden layers of
256), 8 minibatches, 4 epochs, 1 torch thread. Each checkout runs twice under callgrind, once with
one warm-up update and once with ``--updates`` more; the difference divided by ``--updates`` is
the count per update (imports and set-up cancel out).

    python benchmarks/learner_update_instructions.py [--checkout DIR ...] [--updates 4] [--out DIR]

Needs valgrind. Takes minutes per checkout on 2 cores (two runs under callgrind); the committed
run did not record how many, so the file records its ``wall_s`` since. Writes
results/learner_update_instructions.json.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_output_option, parse_args, positive_int, write_json

#: Run in the checkout's own code (PYTHONPATH), with its learner_update.random_batch.
_CHILD = """
import sys
import numpy as np
import torch
sys.path.insert(0, sys.argv[1] + "/benchmarks")
from learner_update import random_batch
from morphelites.config import EVOLUTION_UPDATE_EPOCHS, PPOConfig
from morphelites.policy import ActorCritic
from morphelites.policy_numpy import reach_policy_spec
from morphelites.ppo import PPOUpdater
torch.set_num_threads(1)
spec = reach_policy_spec(6)
torch.manual_seed(0)
updater = PPOUpdater(ActorCritic(spec), PPOConfig(update_epochs=EVOLUTION_UPDATE_EPOCHS, num_minibatches=8))
batch = random_batch(spec, 1000, np.random.default_rng(0))
for _ in range(1 + int(sys.argv[2])):
    updater.update(batch)
"""


def count_instructions(checkout: Path, updates: int) -> int:
    """Instructions (callgrind's "Collected") of importing, building and 1 + ``updates`` updates."""
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/callgrind.out", sys.executable, "-c",
             _CHILD, str(checkout), str(updates)],
            env={**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run in {checkout} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return int(found.group(1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, nargs="+", default=[Path(__file__).resolve().parents[1]],
                        help="morphelites checkouts to count (default: this one)")
    parser.add_argument("--updates", type=positive_int, default=4,
                        help="updates counted after the warm-up one (default: %(default)s)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    started = time.perf_counter()
    if shutil.which("valgrind") is None:
        print("learner_update_instructions: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    rows = []
    for checkout in args.checkout:
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None  # fmt: skip
        base, more = count_instructions(checkout, 0), count_instructions(checkout, args.updates)
        per_update = (more - base) / args.updates
        rows.append({"checkout": str(checkout), "commit": commit, "instructions_per_update": per_update})
        print(f"{checkout} ({commit}): {per_update / 1e9:.3f} G instructions per update", flush=True)
    write_json("learner_update_instructions", {"updates_counted": args.updates, "batch": 1000, "minibatches": 8,
                                               "torch_threads": 1, "wall_s": round(time.perf_counter() - started, 1),
                                               "rows": rows}, args.out)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
