"""Env throughput: ReachEnv steps/s with random actions vs the raw ``mj_step`` rate.

For 3- and 6-joint arms: (a) ``ReachEnv.step`` with uniform random actions (resets included),
(b) bare ``mujoco.mj_step`` on the same compiled model, reported both as physics steps/s and as
the policy-step equivalent (physics steps/s / frame_skip), so the Python overhead of the env is
visible. Single process, single thread. Takes about 20 s on 2 cores (four figures of
``--seconds`` each: two bodies, two rates). Writes ``results/env_throughput.json``.

    python benchmarks/env_throughput.py [--seconds 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

from common import add_output_option, parse_args, positive_float, write_json
from morphelites.config import EnvConfig
from morphelites.envs import ReachEnv
from morphelites.morphology import Morphology


def env_rate(body: Morphology, seconds: float) -> float:
    env = ReachEnv(body, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(4096, env.action_space.shape[0])).astype(np.float32)
    steps, start = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:  # one batch at least, however short the time
        for a in actions[:512]:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        steps += 512
    return steps / (time.perf_counter() - start)


def raw_rate(body: Morphology, seconds: float) -> float:
    env = ReachEnv(body, seed=0)
    model, data = env.model, env.data
    data.ctrl[:] = 0.5
    steps, start = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:  # one batch at least, however short the time
        for _ in range(2000):
            mujoco.mj_step(model, data)
        steps += 2000
    return steps / (time.perf_counter() - start)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=positive_float, default=5.0,
                        help="measuring time per figure, in seconds (default: %(default)s)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    frame_skip = EnvConfig().frame_skip
    rows = []
    for body in (Morphology(3, [0.175] * 3), Morphology(6, [0.175] * 6)):
        env_sps = env_rate(body, args.seconds)
        physics_sps = raw_rate(body, args.seconds)
        rows.append(
            {
                "joints": body.num_links,
                "env_steps_per_s": round(env_sps),
                "mj_step_per_s": round(physics_sps),
                "mj_step_policy_equivalent_per_s": round(physics_sps / frame_skip),
                "env_overhead_fraction": round(1 - env_sps / (physics_sps / frame_skip), 3),
            }
        )
        print(rows[-1])
    write_json("env_throughput", {"frame_skip": frame_skip, "seconds_per_figure": args.seconds, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
