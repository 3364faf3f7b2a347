"""Fitness ceilings (morphelites/ceiling.py): upper bounds that real controllers never beat and a
straight arm pointed at an out-of-reach goal attains."""

from __future__ import annotations

import math

import numpy as np
import pytest

from morphelites.ceiling import cell_ceilings, fitness_ceiling, goal_score_ceilings, longest_body
from morphelites.config import EnvConfig
from morphelites.envs.reach import ReachEnv
from morphelites.evolution.measures import measure_specs
from morphelites.morphology import BodySpace, Morphology
from morphelites.rollout import evaluate, evaluation_goals, fitness_from_episodes

EPISODES, SEED = 12, 12345


def _point_straight_at_goal(env: ReachEnv, goal: np.ndarray, seed: int) -> float:
    """Score of one episode of a PD controller that turns the base toward the goal and holds the
    other joints straight: the closest a fingertip gets to a goal beyond the arm's reach."""
    n = env.morphology.num_links
    _, info = env.reset(seed=seed, options={"goal": goal})
    initial = info["initial_distance"]
    target = np.zeros(n)
    target[0] = math.atan2(goal[1], goal[0])
    for _ in range(env.config.max_episode_steps):
        error = target - env.data.qpos[:n]
        error[0] = (error[0] + math.pi) % (2 * math.pi) - math.pi  # the base turns freely
        action = np.zeros(env.action_space.shape)
        action[:n] = np.clip(5.0 * error - 0.5 * env.data.qvel[:n], -1.0, 1.0)
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return fitness_from_episodes(np.array([info["success"]]), np.array([info["distance"]]), np.array([initial]))


@pytest.mark.parametrize("scene", ["open", "obstacles"])
def test_a_straight_arm_attains_the_ceiling_of_every_goal_out_of_reach(scene: str) -> None:
    body = Morphology(3, [0.12, 0.15, 0.10])
    env = ReachEnv(body, scene=scene)
    goals = evaluation_goals(env, EPISODES, SEED)
    ceilings = goal_score_ceilings(body, EPISODES, SEED, scene=scene)
    beyond = np.linalg.norm(goals, axis=1) > body.total_length + env.success_radius
    assert beyond.sum() >= EPISODES // 2, "the test needs goals out of reach"
    scores = np.array([_point_straight_at_goal(env, g, SEED + i) for i, g in enumerate(goals)])
    env.close()
    assert np.all(scores <= ceilings + 1e-9)
    if scene == "open":  # walls may block the straight arm; in the open it reaches the bound
        np.testing.assert_allclose(scores[beyond], ceilings[beyond], atol=2e-3)
    assert np.all(ceilings[~beyond] == 1.0)
    assert np.all((ceilings[beyond] >= 0.0) & (ceilings[beyond] <= 0.5))


class _ZeroTorque:
    def act(self, obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.zeros((obs.shape[0], BodySpace().max_links))


def test_evaluated_fitness_never_exceeds_the_ceiling_it_reports() -> None:
    body = Morphology(4, [0.2, 0.1, 0.15, 0.1])
    result = evaluate(_ZeroTorque(), body, episodes=EPISODES, seed=SEED)  # type: ignore[arg-type]
    assert result.fitness_ceiling == pytest.approx(fitness_ceiling(body, EPISODES, SEED), abs=1e-12)
    assert result.fitness <= result.fitness_ceiling < 1.0


def test_the_longest_arm_and_reachable_goals_have_ceiling_one() -> None:
    space = BodySpace()
    longest = Morphology(space.max_links, [space.length_bounds[1]] * space.max_links)
    assert fitness_ceiling(longest, EPISODES, SEED) == 1.0
    short = Morphology(3, [0.1, 0.1, 0.1])
    assert fitness_ceiling(short, EPISODES, SEED) < 0.7
    assert fitness_ceiling(short, EPISODES, SEED, env_config=EnvConfig(goal_sampling="reachable")) == 1.0


def test_cell_ceilings_cover_the_reachable_cells_and_grow_with_length() -> None:
    space = BodySpace()
    spec = measure_specs(space, ("num_links", "total_length"), 10)[1]
    edges = np.linspace(spec.low, spec.high, spec.bins + 1)
    ceilings = cell_ceilings(space, edges, EPISODES, SEED)
    low, high = space.length_bounds
    for n in range(space.min_links, space.max_links + 1):
        bins = sorted(b for (m, b) in ceilings if m == n)
        # exactly the bins that some n-link body's total length falls in
        expected = [b for b in range(spec.bins) if edges[b] <= n * high and n * low < edges[b + 1]]
        assert bins == expected, n
        values = [ceilings[(n, b)] for b in bins]
        assert values == sorted(values), n
    assert longest_body(space, 3, 0.2) is None  # shorter than three minimum links
    body = longest_body(space, 4, 0.7)
    assert body is not None and body.total_length <= 0.7


def test_bad_arguments_are_named() -> None:
    """Seen in review: 0 episodes raised numpy's 'need at least one array to stack', and one edge
    or falling edges gave an empty dict without a word."""
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        fitness_ceiling(Morphology(3, [0.2, 0.2, 0.2]), 0, SEED)
    for edges in (np.array([0.3]), np.array([0.9, 0.6, 0.3]), np.array([[0.3, 0.6]]), np.array([0.3, np.nan])):
        with pytest.raises(ValueError, match="length_edges must be at least 2 finite, increasing bin edges"):
            cell_ceilings(BodySpace(), edges, EPISODES, SEED)
