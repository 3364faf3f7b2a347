"""Fitness ceilings: the most fitness any policy could get on a body, from geometry alone.

Not a fitness (fitness always comes from evaluating a policy, ``rollout.evaluate``): an upper
bound that tells how far a measured fitness is from what the task allows. With goals from the
shared workspace (``goal_sampling="workspace"``, the default) a short arm cannot reach the far
goals, so its fitness is capped well below 1 whatever its controller.

The bound, per evaluation goal g of the body (the same goals and reset poses as ``evaluate``,
``rollout.score_ceilings``; every EvalResult carries it as ``fitness_ceiling`` too):
- 1 if ``|g| <= L + success_radius`` (L: the arm's total length, its reach when straight): the
  goal may be reachable (joint limits or walls may still prevent it; then the bound is loose);
- otherwise the fingertip can get no closer than ``|g| - L``, so the goal scores at most
  ``PARTIAL_CREDIT * clip(1 - (|g| - L) / d0, 0, 1)``, d0 being the episode's initial distance.

The fitness ceiling is the mean over the goals, as in ``rollout.fitness_from_episodes``. It never
decreases with L (for fixed goals and start pose), so the ceiling of an archive cell is that of
its longest body.
"""

from __future__ import annotations

import math

import numpy as np

from morphelites.config import BodySpaceConfig, EnvConfig
from morphelites.morphology import LENGTH_DECIMALS, BodySpace, Morphology
from morphelites.rollout import evaluation_goals, score_ceilings

__all__ = ["goal_score_ceilings", "fitness_ceiling", "longest_body", "cell_ceilings"]


def goal_score_ceilings(
    morphology: Morphology,
    episodes: int,
    seed: int,
    scene: str | None = None,
    body_space: BodySpaceConfig | None = None,
    env_config: EnvConfig | None = None,
) -> np.ndarray:
    """Upper bounds (episodes,) of the per-goal scores of ``morphology`` on the evaluation goals
    of ``rollout.evaluate(policy, morphology, episodes, seed, ...)``; each in [0, 1]."""
    from morphelites.envs.reach import ReachEnv

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1 (one evaluation goal each), got {episodes}")
    env = ReachEnv(morphology, scene=scene, body_space=body_space, env_config=env_config)
    try:
        goals = evaluation_goals(env, episodes, seed)
        initial = np.array([env.reset(seed=seed + i, options={"goal": g})[1]["initial_distance"]
                            for i, g in enumerate(goals)])  # fmt: skip
        return score_ceilings(goals, initial, morphology.total_length, env.success_radius)
    finally:
        env.close()


def fitness_ceiling(
    morphology: Morphology,
    episodes: int,
    seed: int,
    scene: str | None = None,
    body_space: BodySpaceConfig | None = None,
    env_config: EnvConfig | None = None,
) -> float:
    """Upper bound, in [0, 1], of the fitness any policy gets on ``morphology`` (mean of
    :func:`goal_score_ceilings`)."""
    return float(goal_score_ceilings(morphology, episodes, seed, scene, body_space, env_config).mean())


def longest_body(space: BodySpace, num_links: int, max_total_length: float) -> Morphology | None:
    """The longest body with ``num_links`` links and total length at most ``max_total_length`` m
    (equal links), or None when even the shortest such body is longer."""
    low, high = space.length_bounds
    length = min(high, math.floor(max_total_length / num_links * 10**LENGTH_DECIMALS) / 10**LENGTH_DECIMALS)
    if length < low:
        return None
    return Morphology(num_links, [length] * num_links)


def cell_ceilings(
    space: BodySpace,
    length_edges: np.ndarray,
    episodes: int,
    seed: int,
    scene: str | None = None,
    env_config: EnvConfig | None = None,
) -> dict[tuple[int, int], float]:
    """Fitness ceiling of every reachable cell of a (num_links, total_length) archive.

    Args:
        space: the body space.
        length_edges: total-length bin edges (bins + 1,), metres, as the archive's.
        episodes, seed: the evaluation goals (``evolution.eval_episodes``, ``evolution.eval_seed``).

    Returns:
        {(num_links, length_bin): ceiling} for the cells some body of the space falls in; the
        ceiling of a cell is that of its longest equal-link body (just below the bin's upper edge).
        A body of unequal links and the same length starts from another pose, so its own ceiling
        can differ by up to ~2e-4 (1.5e-4 above it, measured on the 20 default goals of seed
        12345); per-body ceilings (``rollout.score_ceilings``) are exact.
    """
    edges = np.asarray(length_edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.isfinite(edges)) or not np.all(np.diff(edges) > 0):
        raise ValueError(f"length_edges must be at least 2 finite, increasing bin edges (metres), got {length_edges!r}")
    ceilings: dict[tuple[int, int], float] = {}
    last = len(edges) - 2
    for n in range(space.min_links, space.max_links + 1):
        for b in range(last + 1):
            # The top bin includes its upper edge; the others end a micrometre (the length
            # resolution of a body) short of it.
            top = float(edges[b + 1]) - (0.0 if b == last else 10.0**-LENGTH_DECIMALS)
            body = longest_body(space, n, top)
            if body is None or body.total_length < edges[b]:
                continue
            ceilings[(n, b)] = fitness_ceiling(body, episodes, seed, scene, space.config, env_config)
    return ceilings
