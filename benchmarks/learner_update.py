"""What one PPO update costs the learner, by batch size, minibatch count and torch threads.

The shared learner is the bottleneck of a shared run on 2 cores; its time goes into
``PPOUpdater.update`` (the reach policy of the default body space: 54 inputs, 6 actions, two
hidden layers of 256 in actor and critic). This times that call alone, on random data of the
policy's shapes, in this one process (nothing else running), so the cost per gradient step and
per transition can be read off: it tells whether bigger minibatches or more threads could help.

    python benchmarks/learner_update.py [--threads 1 2] [--repeats 5] [--out DIR]

Takes about 10 s of updates on 2 cores at the defaults, besides importing torch (the rows of
``results/learner_update.json``: 14 cases of 1 + 5 updates, 9.7 s). Writes results/learner_update.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import add_output_option, parse_args, positive_int, write_json
from morphelites.config import EVOLUTION_UPDATE_EPOCHS, PPOConfig
from morphelites.policy import ActorCritic
from morphelites.policy_numpy import reach_policy_spec
from morphelites.ppo import Batch, PPOUpdater

#: (batch transitions, minibatches per epoch): the learner's default (1,000 / 8) and neighbours.
CASES = ((1000, 8), (1000, 4), (1000, 2), (2000, 8), (2000, 4), (4000, 8), (4000, 4))


def random_batch(spec, size: int, rng: np.random.Generator) -> Batch:
    """A batch (``size`` transitions) of the policy's shapes; mask entries 1 (all joints real)."""
    obs = rng.normal(size=(size, spec.obs_dim)).astype(np.float32)
    obs[:, list(spec.mask_indices)] = 1.0
    actions = rng.normal(size=(size, spec.action_dim)).astype(np.float32)
    columns = [rng.normal(size=size).astype(np.float32) for _ in range(4)]
    columns[0] -= 3.0  # behaviour log-probs
    return Batch(obs, actions, *columns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2],
                        help="torch thread counts to time every case with (default: 1 2)")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed updates per case, after one warm-up update (default: %(default)s)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    spec = reach_policy_spec(6)
    rng = np.random.default_rng(0)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size, minibatches in CASES:
            torch.manual_seed(0)
            updater = PPOUpdater(ActorCritic(spec), PPOConfig(update_epochs=EVOLUTION_UPDATE_EPOCHS,
                                                              num_minibatches=minibatches))  # fmt: skip
            batch = random_batch(spec, size, rng)
            updater.update(batch)  # warm-up
            start = time.perf_counter()
            for _ in range(args.repeats):
                stats = updater.update(batch)
            seconds = (time.perf_counter() - start) / args.repeats
            steps = stats["gradient_steps"]
            rows.append({"torch_threads": threads, "batch": size, "minibatches": minibatches,
                         "minibatch_size": size // minibatches, "epochs": EVOLUTION_UPDATE_EPOCHS,
                         "update_ms": seconds * 1000, "ms_per_gradient_step": seconds * 1000 / steps,
                         "samples_per_s": size / seconds})  # fmt: skip
            print(f"threads {threads}, batch {size}, {minibatches} minibatches of {size // minibatches}: "
                  f"{seconds * 1000:.0f} ms per update, {seconds * 1000 / steps:.2f} ms per gradient step, "
                  f"{size / seconds:,.0f} samples/s")  # fmt: skip
    # Cost of one gradient step = fixed + per_transition * minibatch size (least squares, 1 thread).
    one = [r for r in rows if r["torch_threads"] == min(args.threads)]
    per_transition, fixed = np.polyfit([r["minibatch_size"] for r in one], [r["ms_per_gradient_step"] for r in one], 1)
    print(f"one gradient step ({min(args.threads)} thread(s)): {fixed:.2f} ms + {per_transition * 1000:.1f} us per transition")
    write_json("learner_update", {"obs_dim": spec.obs_dim, "action_dim": spec.action_dim, "hidden_dim": spec.hidden_dim,
                                  "repeats": args.repeats, "rows": rows,
                                  "fit_one_thread": {"fixed_ms_per_step": fixed, "ms_per_transition": per_transition}},
               args.out)  # fmt: skip


if __name__ == "__main__":
    main()
