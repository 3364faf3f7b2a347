"""Do the obstacle walls' heights change how an arm moves under its own motors?

Until 2026-12-07 the walls' colliding meshes reached 6 cm above and below the plane, and MuJoCo pushed a link that went
8 cm deep out along z, which a planar arm's hinges cannot follow (a base spun by hand at 25-40
rad/s went through a wall). Since then they are 1.5 m high (``scenes.WALL_COLLISION_HALF_HEIGHT``
times the max reach). This runs the same episodes (uniform random and bang-bang actions, several
bodies, obstacles scene) with both heights and records how far their joint angles ever differ,
their collision counts, and the fastest base turn the motors produced (rad/s): whether the
obstacles results measured on the low walls stand.

    python benchmarks/wall_heights.py [--episodes 25] [--out DIR]

Takes about 6 s on 2 cores at the defaults (``wall_s`` of ``results/wall_heights.json``). Writes
results/wall_heights.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import add_output_option, parse_args, positive_int, write_json
import morphelites.envs.scenes as scenes
from morphelites.envs.reach import ReachEnv
from morphelites.morphology import Morphology

#: The low walls' half-height (0.06 m) in units of the default space's max reach (1.5 m).
LOW = 0.06 / 1.5
BODIES = [
    Morphology(6, [0.25] * 6),
    Morphology(5, [0.2, 0.25, 0.2, 0.15, 0.25]),
    Morphology(4, [0.25] * 4),
    Morphology(6, [0.1, 0.25, 0.25, 0.25, 0.25, 0.25]),
]


def episode(half_height: float, body: Morphology, seed: int, actions: str) -> tuple[np.ndarray, int, float]:
    """One episode on walls of ``half_height`` (units of the max reach): joint angles per policy
    step (steps, joints) rad, the collisions counted, and the fastest base turn (rad/s)."""
    scenes.WALL_COLLISION_HALF_HEIGHT = half_height  # read when the scene is built
    env = ReachEnv(body, scene="obstacles")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    angles, fastest, info = [], 0.0, {"collisions": 0}
    for _ in range(env.config.max_episode_steps):
        size = env.action_space.shape[0]
        action = rng.uniform(-1.0, 1.0, size) if actions == "uniform" else rng.choice([-1.0, 1.0], size)
        _, _, terminated, truncated, info = env.step(action)
        angles.append(env.data.qpos.copy())
        fastest = max(fastest, abs(float(env.data.qvel[0])))
        if terminated or truncated:
            break
    env.close()
    return np.array(angles), int(info["collisions"]), fastest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=positive_int, default=25,
                        help="episodes per body and kind of actions, each on both wall heights (default: %(default)s)")
    add_output_option(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    started = time.perf_counter()
    tall = scenes.WALL_COLLISION_HALF_HEIGHT
    rows = []
    for body in BODIES:
        for actions in ("uniform", "bang-bang"):
            largest, differing, collisions, fastest = 0.0, 0, {"tall": 0, "low": 0}, 0.0
            for seed in range(args.episodes):
                a, tall_collisions, speed = episode(tall, body, seed, actions)
                b, low_collisions, _ = episode(LOW, body, seed, actions)
                steps = min(len(a), len(b))
                gap = float(np.abs(a[:steps] - b[:steps]).max()) if steps else 0.0
                largest = max(largest, gap)
                differing += int(gap > 1e-6 or len(a) != len(b))
                collisions["tall"] += tall_collisions
                collisions["low"] += low_collisions
                fastest = max(fastest, speed)
            rows.append({"body": body.to_dict(), "actions": actions, "episodes": args.episodes,
                         "largest_joint_angle_gap_rad": largest, "episodes_differing": differing,
                         "collisions": collisions, "fastest_base_turn_rad_s": round(fastest, 2)})  # fmt: skip
            print(rows[-1])
    scenes.WALL_COLLISION_HALF_HEIGHT = tall
    write_json("wall_heights", {"tall_half_height": tall, "low_half_height": LOW,
                                "wall_s": round(time.perf_counter() - started, 1), "rows": rows}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
