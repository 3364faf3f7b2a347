"""PPO learns: a short real training run on the reaching task improves the evaluated policy."""

import numpy as np
import pytest

from morphelites.config import EnvConfig, PPOConfig
from morphelites.envs import ReachEnv
from morphelites.morphology import Morphology
from morphelites.policy import ActorCritic, reach_policy_spec
from morphelites.rollout import evaluate
from morphelites.train_ppo import train_policy

# they seed torch's global stream or set its thread count: given back after each test
pytestmark = pytest.mark.usefixtures("torch_state_restored")

BODY = Morphology(3, [0.2, 0.2, 0.15])
TASK = EnvConfig(goal_sampling="reachable")


def _train(steps: int, seed: int = 0):
    import torch

    # As a run's processes do (independent.py), before any torch work: when the model was built
    # under the default count (2 on two cores) and train_policy then set 1, the first training in
    # the process differed from later ones in its lowest bits (seen when this test ran alone).
    torch.set_num_threads(1)
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


def test_a_segment_keeps_the_final_observation_of_every_time_limit_truncation():
    # Episodes of 10 steps in 25-step segments: envs hit the time limit at steps 9 and 19 (unless
    # they reach the goal first). The learner needs those final observations to bootstrap them
    # with its own critic; the acting critic's value of them is kept too.
    import torch

    from morphelites.rollout import SegmentCollector

    torch.manual_seed(0)
    actor = ActorCritic(reach_policy_spec(6, hidden_dim=32)).numpy_twin()
    envs = [ReachEnv(BODY, env_config=EnvConfig(max_episode_steps=10)) for _ in range(2)]
    segment = SegmentCollector(envs, seed=0).collect(actor, 25, np.random.default_rng(0))
    cut = segment.truncated > 0
    assert cut.sum() >= 2 and np.all(segment.dones[cut] == 1)
    assert np.all(segment.final_obs[~cut] == 0) and np.all(segment.bootstrap[~cut] == 0)
    np.testing.assert_allclose(segment.bootstrap[cut], actor.value(segment.final_obs[cut]), atol=1e-6)  # batched apart
    # the final observation is the one the step returned, not the next episode's first
    assert not np.any(np.all(segment.final_obs[cut][:, None] == segment.obs[1:][cut[:-1]][None], axis=-1))


def test_a_budget_that_would_end_on_a_tiny_rollout_ends_on_a_longer_one_instead():
    # 4 envs x 8 steps per rollout, 8 minibatches: a last rollout of 1 step (4 transitions) would
    # leave minibatches of one transition; it is folded into the one before (9 steps, 36
    # transitions: 9 minibatches of 4).
    model = ActorCritic(reach_policy_spec(6, hidden_dim=16))
    envs = [ReachEnv(BODY, env_config=TASK) for _ in range(4)]
    config = PPOConfig(num_envs=4, num_steps=8, num_minibatches=8, update_epochs=1)
    result = train_policy(model, envs, config, 68, seed=0)
    assert result.env_steps == 68 and result.updates == 2
    assert [r["gradient_steps"] for r in result.history] == [8.0, 9.0]


def test_the_trained_policy_keeps_the_normaliser_statistics_its_last_update_trained_with():
    """Review (session 40): the normaliser folded in each rollout after its update, the last one
    too, so the policy evaluated and saved saw inputs its network never trained on; at the
    independent mode's 1,500 steps per body (one update) that was the whole of its statistics."""
    for budget, folds in ((32, 0), (64, 1)):  # one update of 4 envs x 8 steps; two
        model = ActorCritic(reach_policy_spec(6, hidden_dim=16))
        envs = [ReachEnv(BODY, env_config=TASK) for _ in range(4)]
        before = model.obs_rms.count
        result = train_policy(model, envs, PPOConfig(num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1), budget)
        assert result.updates == folds + 1
        assert model.obs_rms.count == pytest.approx(before + 32 * folds), "only the rollouts before the last update"
    # a run stopped after its first of three updates (Ctrl-C to `morphelites ppo`) keeps them too
    model = ActorCritic(reach_policy_spec(6, hidden_dim=16))
    envs = [ReachEnv(BODY, env_config=TASK) for _ in range(4)]
    before, asked = model.obs_rms.count, []
    stop_after_one = lambda: asked.append(1) or len(asked) > 1  # noqa: E731
    result = train_policy(model, envs, PPOConfig(num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1), 96,
                          should_stop=stop_after_one)  # fmt: skip
    assert result.updates == 1 and model.obs_rms.count == pytest.approx(before), "session 40's second review"


def test_a_truncated_episode_is_bootstrapped_in_the_serial_batch_and_an_ended_one_is_not():
    """Review (session 40): no test covered segment_to_batch's bootstrap. One env, 3 steps, gamma
    0.5, lambda 1: the episode is cut by the time limit after step 1 (bootstrap b) and ends at
    step 2 (the goal reached: no bootstrap)."""
    from morphelites.rollout import Segment
    from morphelites.train_ppo import segment_to_batch

    one = lambda *values: np.array(values, dtype=np.float32)[:, None]  # noqa: E731  (T=3, N=1)
    segment = Segment(obs=np.zeros((3, 1, 2), np.float32), actions=np.zeros((3, 1, 1), np.float32),
                      logprobs=one(0, 0, 0), values=one(1.0, 2.0, 3.0), rewards=one(1.0, 1.0, 1.0),
                      dones=one(0, 1, 1), bootstrap=one(0, 4.0, 0), truncated=one(0, 1, 0),
                      final_obs=np.zeros((3, 1, 2), np.float32), last_obs=np.zeros((1, 2), np.float32))  # fmt: skip
    batch = segment_to_batch(segment, last_values=np.array([10.0], np.float32), gamma=0.5, gae_lambda=1.0)
    # step 2: r = 1, ended: return 1; step 1: r + gamma * b = 1 + 2 = 3, cut; step 0: 1 + 0.5 * 3 = 2.5
    np.testing.assert_allclose(batch.returns, [2.5, 3.0, 1.0])
    np.testing.assert_allclose(batch.advantages, [2.5 - 1.0, 3.0 - 2.0, 1.0 - 3.0])
