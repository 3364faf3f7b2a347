"""PPO learns: a short real training run on the reaching task improves the evaluated policy."""

import numpy as np

from morphelites.config import EnvConfig, PPOConfig
from morphelites.envs import ReachEnv
from morphelites.morphology import Morphology
from morphelites.policy import ActorCritic, reach_policy_spec
from morphelites.rollout import evaluate
from morphelites.train_ppo import train_policy

BODY = Morphology(3, [0.2, 0.2, 0.15])
TASK = EnvConfig(goal_sampling="reachable")


def _train(steps: int, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    model = ActorCritic(reach_policy_spec(6, hidden_dim=64))
    before = evaluate(model.numpy_twin(), BODY, episodes=16, seed=99, env_config=TASK)
    envs = [ReachEnv(BODY, env_config=TASK) for _ in range(8)]
    result = train_policy(model, envs, PPOConfig(num_envs=8, num_steps=256), steps, seed=seed)
    after = evaluate(model.numpy_twin(), BODY, episodes=16, seed=99, env_config=TASK)
    return before, after, result


def test_ppo_improves_the_evaluated_policy_on_the_reaching_task():
    before, after, result = _train(40_960)
    assert result.env_steps == 40_960 and result.updates == 20
    assert after.mean_return > before.mean_return + 20, (before, after)
    assert after.fitness > before.fitness + 0.15, (before, after)
    assert after.final_distance < 0.7 * before.final_distance
    returns = [r["episode_return"] for r in result.history if "episode_return" in r]
    assert np.mean(returns[-5:]) > np.mean(returns[:5]) + 20


def test_training_is_reproducible_under_a_seed():
    _, a, ra = _train(4_096, seed=3)
    _, b, rb = _train(4_096, seed=3)
    assert a == b
    assert [r["policy_loss"] for r in ra.history] == [r["policy_loss"] for r in rb.history]
