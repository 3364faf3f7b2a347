"""evaluate(): the fitness definition, determinism, and the figures it reports."""

import numpy as np
import pytest

from morphelites.config import EnvConfig
from morphelites.envs import FEATURES_PER_JOINT
from morphelites.morphology import Morphology
from morphelites.policy import ActorCritic, reach_policy_spec
from morphelites.ppo_run import evaluate_gym_policy
from morphelites.rollout import evaluate, fitness_from_episodes

BODY = Morphology(3, [0.2, 0.2, 0.15])


def test_fitness_formula_by_hand():
    # reached, half the distance closed, moved away
    assert fitness_from_episodes([True, False, False], [0.0, 0.5, 2.0], [1.0, 1.0, 1.0]) == pytest.approx((1 + 0.25 + 0) / 3)
    assert fitness_from_episodes([True, True], [0.01, 0.02], [1.0, 0.3]) == 1.0
    assert fitness_from_episodes([False], [0.0], [1.0]) == 0.5, "an unreached goal earns at most 0.5"


class _JacobianTranspose:
    """A hand-written controller, no network: torque = J^T (goal - tip), minus damping."""

    def act(self, obs, deterministic=True, rng=None):
        F = FEATURES_PER_JOINT
        actions = np.zeros((len(obs), 6), dtype=np.float32)
        for b, o in enumerate(obs):
            tip, error = o[-6:-4], o[-2:]
            lengths = o[3 : 6 * F : F]
            for j in range(3):
                lever = tip - o[j * F + 5 : j * F + 7]
                torque = lever[0] * error[1] - lever[1] * error[0]
                gear = lengths[j:].sum()  # motors are geared by the arm length outboard
                actions[b, j] = np.clip((20 * torque - 0.5 * o[j * F + 2]) / gear, -1, 1)
        return actions


def test_same_policy_body_and_seed_give_the_same_result():
    policy = ActorCritic(reach_policy_spec(6, hidden_dim=32)).numpy_twin()
    a = evaluate(policy, BODY, episodes=6, seed=7)
    b = evaluate(policy, BODY, episodes=6, seed=7)
    c = evaluate(policy, BODY, episodes=6, seed=8)
    assert a == b
    assert a != c
    assert a.episodes == 6 and a.env_steps > 0 and 0.0 <= a.fitness <= 1.0


def test_a_competent_controller_scores_high_on_reachable_goals_and_lower_on_the_workspace():
    reachable = evaluate(_JacobianTranspose(), BODY, episodes=12, seed=0, env_config=EnvConfig(goal_sampling="reachable"))
    workspace = evaluate(_JacobianTranspose(), BODY, episodes=12, seed=0)
    assert reachable.success_rate >= 0.75 and reachable.fitness >= 0.75
    assert 0.0 < reachable.path_efficiency <= 1.0
    assert reachable.final_distance < workspace.final_distance
    assert workspace.success_rate < reachable.success_rate, "a 0.55 m arm cannot reach the whole 1.5 m workspace"


def test_evaluation_goals_do_not_depend_on_the_body_in_the_shared_workspace():
    from morphelites.envs import ReachEnv
    from morphelites.rollout import evaluation_goals

    short = evaluation_goals(ReachEnv(Morphology(3, [0.1] * 3)), 5, seed=3)
    long = evaluation_goals(ReachEnv(Morphology(6, [0.25] * 6)), 5, seed=3)
    np.testing.assert_array_equal(short, long)


class _ConstantAction:
    """Acts ``value`` in every action dimension, whatever it sees."""

    def __init__(self, value: float, act_dim: int) -> None:
        self.value, self.act_dim = value, act_dim

    def act(self, obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.full((len(obs), self.act_dim), self.value, dtype=np.float32)


def test_a_gymnasium_task_is_evaluated_with_the_action_clipping_it_was_trained_with():
    # Reacher's control cost is computed on the action as given: unclipped, a mean action of 1.5
    # would be charged for torque the clipped training env never applied.
    beyond = evaluate_gym_policy(_ConstantAction(1.5, 2), "Reacher-v5", episodes=2, first_seed=3)
    at_bound = evaluate_gym_policy(_ConstantAction(1.0, 2), "Reacher-v5", episodes=2, first_seed=3)
    assert len(beyond) == 2 and beyond == at_bound


@pytest.mark.parametrize("arguments", [{"episodes": 0}, {"episodes": 2.0}, {"episodes": True}, {"seed": -1}, {"seed": 1.5}])
def test_bad_episodes_or_seed_are_named(arguments):
    """Seen in review: numpy's or SeedSequence's own errors, and episodes=True taken as one."""
    actor = ActorCritic(reach_policy_spec(6, 16)).numpy_twin()
    name = next(iter(arguments))
    with pytest.raises(ValueError, match=f"{name} must be a whole number >= {1 if name == 'episodes' else 0}, got"):
        evaluate(actor, Morphology(3, [0.2, 0.2, 0.2]), **{"episodes": 2, "seed": 0, **arguments})


def test_an_episode_cut_by_max_steps_keeps_its_last_info():
    """Found in review: an episode that run_episodes cut (an env without a time limit as short as
    max_steps) got an empty info, so evaluate() would fail on it with a KeyError."""
    from morphelites.envs.reach import ReachEnv
    from morphelites.rollout import run_episodes

    actor = ActorCritic(reach_policy_spec(6, 16)).numpy_twin()
    envs = [ReachEnv(BODY, env_config=EnvConfig(max_episode_steps=1000)) for _ in range(2)]
    records = run_episodes(actor, envs, [0, 1], [{"goal": (1.4, 0.0)}] * 2, max_steps=5)  # out of reach: never ends
    assert [r.length for r in records] == [5, 5]
    for record, env in zip(records, envs):
        assert record.info["distance"] == pytest.approx(float(np.linalg.norm(env.fingertip() - env.goal)))


def test_many_episodes_run_in_batches_with_the_result_of_running_them_all_at_once(monkeypatch):
    """Seen in review (session 37): evaluate() built one MuJoCo env per episode, all at once
    (~0.7 MB each; eval_episodes may be 100,000). Now at most EPISODES_AT_ONCE live at a time, and a
    controller whose actions do not depend on the batch gets exactly the same result."""
    import morphelites.rollout as rollout
    from morphelites.envs import ReachEnv

    live, most, watched = [0], [0], set()

    class CountedEnv(ReachEnv):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            live[0] += 1
            most[0] = max(most[0], live[0])

        def close(self):
            live[0] -= 1
            super().close()

    config = EnvConfig(max_episode_steps=15)
    monkeypatch.setattr(rollout, "EPISODES_AT_ONCE", 8)
    batched = evaluate(_JacobianTranspose(), BODY, episodes=21, seed=3, env_config=config, make_env=CountedEnv,
                       on_step=lambda i, env, done: watched.add(i))  # fmt: skip
    assert most[0] == 8 and live[0] == 0, "8 at a time, every one closed"
    assert watched == set(range(21)), "on_step numbers the episodes across batches"
    monkeypatch.setattr(rollout, "EPISODES_AT_ONCE", 64)
    assert batched == evaluate(_JacobianTranspose(), BODY, episodes=21, seed=3, env_config=config)
    assert batched.episodes == 21
