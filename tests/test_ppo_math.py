"""GAE and the PPO loss against answers computed by hand."""

import copy

import numpy as np
import pytest
import torch

from morphelites.config import PPOConfig
from morphelites.policy import ActorCritic
from morphelites.policy_numpy import PolicySpec, reach_policy_spec
from morphelites.ppo import PROXIMAL_WEIGHT_CAP, Batch, PPOUpdater, compute_gae, compute_vtrace, linear_schedule, ppo_loss

# they seed torch's global stream or set its thread count: given back after each test
pytestmark = pytest.mark.usefixtures("torch_state_restored")


def test_gae_matches_hand_computation_across_an_episode_end():
    # One env, 3 steps; the episode ends after step 1 (index 1), so step 2 starts a new one.
    gamma, lam = 0.9, 0.8
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    dones = np.array([[0.0], [1.0], [0.0]])
    last_value = np.array([2.0])
    # deltas: d2 = 3 + .9*2 - 1.5 = 3.3 ; d1 = 2 + 0 - 1 = 1 ; d0 = 1 + .9*1 - .5 = 1.4
    # advantages: A2 = 3.3 ; A1 = 1 (episode ended) ; A0 = 1.4 + .9*.8*1 = 2.12
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma, lam)
    np.testing.assert_allclose(adv[:, 0], [2.12, 1.0, 3.3], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [2.62, 2.0, 4.8], rtol=1e-6)


def test_gae_with_lambda_one_is_discounted_return_minus_value():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(6, 2))
    values = rng.normal(size=(6, 2))
    adv, _ = compute_gae(rewards, values, np.zeros((6, 2)), np.zeros(2), 0.95, 1.0)
    discounted = np.array([[sum(0.95**k * rewards[t + k, n] for k in range(6 - t)) for n in range(2)] for t in range(6)])
    np.testing.assert_allclose(adv, discounted - values, rtol=1e-5, atol=1e-5)


def test_vtrace_matches_hand_computation_with_truncated_importance_weights():
    # rho = min(1, [2, 0.5]) = [1, 0.5]; c = lambda * rho with lambda 1.
    rewards, values, last = np.array([[1.0], [2.0]]), np.array([[0.5], [1.0]]), np.array([2.0])
    log_rhos = np.log(np.array([[2.0], [0.5]]))
    adv, targets = compute_vtrace(rewards, values, np.zeros((2, 1)), last, log_rhos, 0.9, 1.0)
    # deltas: d1 = .5 (2 + .9*2 - 1) = 1.4 ; d0 = 1 + .9*1 - .5 = 1.4 ; v1 = 1 + 1.4 ; v0 = .5 + 1.4 + .9*1.4
    np.testing.assert_allclose(targets[:, 0], [3.16, 2.4], rtol=1e-6)
    # advantages: a1 = .5 (2 + .9*2 - 1) ; a0 = 1 + .9*v1 - .5
    np.testing.assert_allclose(adv[:, 0], [2.66, 1.4], rtol=1e-6)


def test_vtrace_on_policy_targets_are_the_gae_returns():
    rng = np.random.default_rng(1)
    rewards, values = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    dones = (rng.random((7, 3)) < 0.2).astype(float)
    last = rng.normal(size=3)
    _, gae_returns = compute_gae(rewards, values, dones, last, 0.99, 0.95)
    _, targets = compute_vtrace(rewards, values, dones, last, np.zeros((7, 3)), 0.99, 0.95)
    np.testing.assert_allclose(targets, gae_returns, rtol=1e-5, atol=1e-5)


def _vtrace_by_definition(rewards, values, dones, last, log_rhos, gamma, lam, rho_bar, c_bar):
    """V-trace written out as Espeholt et al. (2018) define it (their eq. 1), one sum per step
    instead of a recursion: v_s = V(x_s) + sum_{t>=s} gamma^(t-s) (prod_{s<=i<t} c_i) delta_t,
    delta_t = rho_t (r_t + gamma V(x_{t+1}) - V(x_t)), c_i = lam * min(c_bar, ratio_i), with the
    sum stopping at an episode end; the policy-gradient advantage is
    rho_s (r_s + gamma v_{s+1} - V(x_s)). Shapes (T, N); ``last`` (N,)."""
    T, N = rewards.shape
    ratios = np.exp(log_rhos)
    rho, c = np.minimum(rho_bar, ratios), lam * np.minimum(c_bar, ratios)
    targets, advantages = np.zeros((T, N)), np.zeros((T, N))
    for n in range(N):
        following = [values[t + 1, n] if t + 1 < T else last[n] for t in range(T)]
        delta = [rho[t, n] * (rewards[t, n] + gamma * (1 - dones[t, n]) * following[t] - values[t, n]) for t in range(T)]
        for s in range(T):
            total, weight = 0.0, 1.0
            for t in range(s, T):
                total += weight * delta[t]
                if dones[t, n]:
                    break
                weight *= gamma * c[t, n]
            targets[s, n] = values[s, n] + total
    for n in range(N):
        for s in range(T):
            next_target = 0.0 if dones[s, n] else (targets[s + 1, n] if s + 1 < T else last[n])
            advantages[s, n] = rho[s, n] * (rewards[s, n] + gamma * next_target - values[s, n])
    return advantages, targets


@pytest.mark.parametrize("rho_bar, c_bar", [(1.0, 1.0), (2.0, 0.5)])
def test_vtrace_matches_its_definition_off_policy_across_episode_ends(rho_bar, c_bar):
    rng = np.random.default_rng(7)
    T, N = 12, 4
    rewards, values, last = rng.normal(size=(T, N)), rng.normal(size=(T, N)), rng.normal(size=N)
    dones = (rng.random((T, N)) < 0.2).astype(float)
    log_rhos = rng.normal(scale=0.8, size=(T, N))  # ratios from ~0.1 to ~10: both truncations bite
    assert (np.exp(log_rhos) > max(rho_bar, c_bar)).any() and dones.any()
    expected_adv, expected_targets = _vtrace_by_definition(rewards, values, dones, last, log_rhos, 0.99, 0.95,
                                                           rho_bar, c_bar)  # fmt: skip
    adv, targets = compute_vtrace(rewards, values, dones, last, log_rhos, 0.99, 0.95, rho_bar=rho_bar, c_bar=c_bar)
    np.testing.assert_allclose(targets, expected_targets, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv, expected_adv, rtol=1e-5, atol=1e-5)


def test_linear_schedule():
    assert linear_schedule(1e-3, 0.0) == pytest.approx(1e-3)
    assert linear_schedule(1e-3, 0.5) == pytest.approx(5e-4)
    assert linear_schedule(1e-3, 1.5) == 0.0


def _seeded_model() -> tuple[PolicySpec, ActorCritic]:
    """A small policy (5 inputs, 2 actions) with weights drawn from torch seed 0."""
    torch.manual_seed(0)
    spec = PolicySpec(obs_dim=5, action_dim=2, hidden_dim=16)
    return spec, ActorCritic(spec)


def _random_batch(spec: PolicySpec, model: ActorCritic, n: int = 64) -> Batch:
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(n, spec.obs_dim)).astype(np.float32)
    twin = model.numpy_twin()
    actions, logprobs, values = twin.step(obs, rng)
    advantages = rng.normal(size=n).astype(np.float32)
    return Batch(obs, actions, logprobs, advantages, advantages + values, values)


def _loss(model: ActorCritic, t: list[torch.Tensor], config: PPOConfig, **options):
    """:func:`ppo_loss` of a whole batch ``t`` (Batch's columns as tensors) under ``model``."""
    return ppo_loss(*model.evaluate_actions(t[0], t[1]), *t[2:], config, **options)


def test_loss_at_the_behaviour_policy_has_unit_ratio_and_zero_kl():
    spec, model = _seeded_model()
    batch = _random_batch(spec, model)
    t = [torch.as_tensor(a) for a in batch]
    config = PPOConfig(norm_adv=False)
    loss, stats = _loss(model, t, config)
    # ratio == 1 everywhere, so the clipped surrogate is -mean(advantages) and nothing is clipped
    assert float(stats["policy_loss"]) == pytest.approx(-float(batch.advantages.mean()), abs=1e-5)
    assert float(stats["approx_kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(stats["clip_fraction"]) == 0.0
    assert float(stats["value_loss"]) == pytest.approx(0.5 * float(np.mean(batch.advantages**2)), rel=1e-4)


def test_update_moves_the_policy_towards_positive_advantages():
    spec, model = _seeded_model()
    batch = _random_batch(spec, model, n=256)
    updater = PPOUpdater(model, PPOConfig(num_envs=1, num_steps=256, num_minibatches=4, update_epochs=4), seed=0)
    before = model.numpy_twin().log_prob(batch.obs, batch.actions)
    stats = updater.update(batch)
    after = model.numpy_twin().log_prob(batch.obs, batch.actions)
    gain = np.mean((after - before) * np.sign(batch.advantages))
    assert gain > 0, "log-probs of good actions should rise relative to bad ones"
    assert stats["gradient_steps"] == 16
    assert stats["skipped_steps"] == 0


def _reference_update(model: ActorCritic, batch: Batch, config: PPOConfig, seed: int) -> None:
    """PPO epochs written out plainly: torch's default Adam, the loss of raw-observation
    minibatches through :func:`ppo_loss` (features computed per minibatch)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    rng = np.random.default_rng(seed)
    t = [torch.as_tensor(a) for a in batch]
    size = len(batch.obs)
    minibatch = size // config.num_minibatches
    for _ in range(config.update_epochs):
        order = torch.from_numpy(rng.permutation(size))
        for start in range(0, size - minibatch + 1, minibatch):
            idx = order[start : start + minibatch]
            obs, actions, *rest = (column[idx] for column in t)
            loss, _ = ppo_loss(*model.evaluate_actions(obs, actions), *rest, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()


def test_an_update_gives_bit_for_bit_the_weights_of_plain_ppo_epochs():
    """The updater computes the networks' inputs once per batch and steps Adam with foreach:
    both only to save time, so the weights must be exactly those of the plain loop."""
    torch.manual_seed(0)
    spec = reach_policy_spec(6, hidden_dim=32)
    model = ActorCritic(spec)
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(256, spec.obs_dim)).astype(np.float32)
    obs[:, list(spec.mask_indices)] = rng.integers(0, 2, size=(256, len(spec.mask_indices)))  # padded joints too
    model.update_normaliser(obs)
    actions, logprobs, values = model.numpy_twin().step(obs, rng)
    advantages = rng.normal(size=256).astype(np.float32)
    batch = Batch(obs, actions, logprobs, advantages, advantages + values, values)
    config = PPOConfig(num_envs=1, num_steps=256, num_minibatches=4, update_epochs=3)
    reference = copy.deepcopy(model)
    PPOUpdater(model, config, seed=5).update(batch)
    _reference_update(reference, batch, config, seed=5)
    assert not np.array_equal(model.flat_weights(), ActorCritic(spec).flat_weights())
    np.testing.assert_array_equal(model.flat_weights(), reference.flat_weights())


def test_an_optimiser_state_loaded_from_a_checkpoint_keeps_stepping_with_foreach():
    """A checkpoint's state says which Adam implementation saved it (None for torch's default, as
    earlier versions wrote); loading it must not switch the updater back to the slow loop."""
    spec, model = _seeded_model()
    batch = _random_batch(spec, model)
    config = PPOConfig(num_envs=1, num_steps=64, num_minibatches=2, update_epochs=1)
    first = PPOUpdater(model, config, seed=0)
    first.update(batch)
    state = copy.deepcopy(first.optimizer.state_dict())  # as torch.load gives it: tensors of its own
    state["param_groups"][0]["foreach"] = None
    resumed = PPOUpdater(copy.deepcopy(model), config, seed=0)
    resumed.rng = copy.deepcopy(first.rng)
    resumed.load_optimizer_state(state)
    assert resumed.optimizer.param_groups[0]["foreach"] is True
    first.update(batch)
    resumed.update(batch)
    np.testing.assert_array_equal(resumed.model.flat_weights(), first.model.flat_weights())


def test_non_finite_loss_is_skipped_and_weights_stay_finite():
    spec = PolicySpec(obs_dim=5, action_dim=2, hidden_dim=16)
    model = ActorCritic(spec)
    batch = _random_batch(spec, model, n=64)
    poisoned = batch._replace(advantages=np.full_like(batch.advantages, np.nan))
    updater = PPOUpdater(model, PPOConfig(num_envs=1, num_steps=64, num_minibatches=2, update_epochs=1), seed=0)
    before = model.flat_weights()
    stats = updater.update(poisoned)
    assert stats["skipped_steps"] == 2
    np.testing.assert_array_equal(model.flat_weights(), before)


def test_the_updater_reports_every_minibatch_step_so_a_watched_process_can_beat():
    spec = PolicySpec(obs_dim=5, action_dim=2, hidden_dim=16)
    model = ActorCritic(spec)
    calls = []
    updater = PPOUpdater(model, PPOConfig(num_envs=1, num_steps=64, num_minibatches=4, update_epochs=3), seed=0,
                         on_minibatch=lambda: calls.append(1))  # fmt: skip
    updater.update(_random_batch(spec, model, n=64))
    assert len(calls) == 3 * 4


def test_the_updater_makes_ten_passes_by_default_as_morphelites_ppo_does():
    spec, model = _seeded_model()
    config = PPOConfig(num_envs=1, num_steps=64, num_minibatches=4)
    assert config.update_epochs is None, "unset: the single-policy default applies"
    stats = PPOUpdater(model, config, seed=0).update(_random_batch(spec, model, n=64))
    assert stats["gradient_steps"] == 10 * 4


def _lagged_batch(spec: PolicySpec, n: int = 256) -> Batch:
    """A batch acted by another policy than the learner's, as shared mode's lagged data is."""
    torch.manual_seed(1)
    behaviour = ActorCritic(spec)
    with torch.no_grad():
        behaviour.log_std.fill_(-1.0)  # sharper than the learner's: a KL far above any target_kl
    return _random_batch(spec, behaviour, n)


def test_target_kl_limits_the_drift_of_the_update_not_the_lag_of_the_data():
    spec, model = _seeded_model()
    batch = _lagged_batch(spec)
    t = [torch.as_tensor(a) for a in batch]
    _, stats = _loss(model, t, PPOConfig())
    assert float(stats["approx_kl"]) > 0.1, "the test needs data far from the learner's policy"
    config = PPOConfig(num_envs=1, num_steps=256, num_minibatches=4, update_epochs=4, target_kl=0.015)
    stats = PPOUpdater(model, config, seed=0).update(batch)
    assert stats["gradient_steps"] == 16, "a lag the update did not cause must not stop it"


def test_target_kl_stops_the_update_once_it_has_moved_the_policy_that_far():
    spec, model = _seeded_model()
    batch = _random_batch(spec, model, n=256)
    config = PPOConfig(num_envs=1, num_steps=256, num_minibatches=4, update_epochs=4, target_kl=1e-9)
    stats = PPOUpdater(model, config, seed=0).update(batch)
    # The first minibatch sees the starting weights (KL 0) and steps; the second sees the moved ones.
    assert stats["gradient_steps"] == 2


def test_clipping_against_the_proximal_policy_is_standard_ppo_on_unlagged_data():
    spec, model = _seeded_model()
    batch = _random_batch(spec, model)
    t = [torch.as_tensor(a) for a in batch]
    standard, _ = _loss(model, t, PPOConfig())
    decoupled, stats = _loss(model, t, PPOConfig(), start_logprobs=t[2], clip_against_start=True)
    assert decoupled.item() == pytest.approx(standard.item(), abs=1e-6)
    assert float(stats["proximal_weight"]) == pytest.approx(1.0) and float(stats["proximal_weight_capped"]) == 0.0


def test_clipping_against_the_proximal_policy_weights_lagged_data_and_clips_around_the_update_start():
    spec, model = _seeded_model()
    batch = _lagged_batch(spec)
    t = [torch.as_tensor(a) for a in batch]
    with torch.no_grad():
        start, _, _ = model.evaluate_actions(t[0], t[1])
    config = PPOConfig(norm_adv=False)
    _, behaviour_stats = _loss(model, t, config, start_logprobs=start)
    assert float(behaviour_stats["clip_fraction"]) > 0.3, "the test needs data far from the learner's policy"
    _, stats = _loss(model, t, config, start_logprobs=start, clip_against_start=True)
    # At the update's start the ratio is 1: nothing clipped, and the surrogate is the advantages
    # weighted by pi_start / pi_behaviour, capped.
    weights = np.minimum(np.exp(start.numpy().astype(np.float64) - batch.logprobs), PROXIMAL_WEIGHT_CAP)
    assert float(stats["clip_fraction"]) == 0.0 and float(stats["approx_kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(stats["policy_loss"]) == pytest.approx(-np.mean(weights * batch.advantages), rel=1e-4)
    assert 0.0 < float(stats["proximal_weight_capped"]) < 1.0, "some weights are capped, not all"
    assert float(stats["proximal_weight"]) == pytest.approx(weights.mean(), rel=1e-5)
    with pytest.raises(ValueError, match="start_logprobs"):
        _loss(model, t, config, clip_against_start=True)


def test_an_update_clipped_against_the_proximal_policy_moves_it_towards_positive_advantages():
    spec, model = _seeded_model()
    batch = _lagged_batch(spec)
    config = PPOConfig(num_envs=1, num_steps=256, num_minibatches=4, update_epochs=4)
    before = model.numpy_twin().log_prob(batch.obs, batch.actions)
    stats = PPOUpdater(model, config, seed=0, clip_against="proximal").update(batch)
    after = model.numpy_twin().log_prob(batch.obs, batch.actions)
    assert np.mean((after - before) * np.sign(batch.advantages)) > 0
    assert stats["gradient_steps"] == 16 and 0.0 < stats["proximal_weight"] <= PROXIMAL_WEIGHT_CAP
    with pytest.raises(ValueError, match="behaviour, proximal"):
        PPOUpdater(model, config, clip_against="proxmal")


def test_a_batch_smaller_than_the_minibatches_need_is_cut_into_fewer_not_into_single_transitions():
    # 4 transitions and 8 minibatches: two minibatches of two per epoch, never eight of one or none
    # (one transition's advantage cannot be normalised and would enter the loss raw).
    spec, model = _seeded_model()
    config = PPOConfig(num_envs=1, num_steps=64, num_minibatches=8, update_epochs=3)
    stats = PPOUpdater(model, config, seed=0).update(_random_batch(spec, model, n=4))
    assert stats["gradient_steps"] == 3 * 2
    stats = PPOUpdater(model, config, seed=0).update(_random_batch(spec, model, n=1))
    assert stats["gradient_steps"] == 3 * 1, "a single transition still trains (a one-step budget)"


@pytest.mark.parametrize(("total", "envs", "steps", "least", "expected"),
                         [(1500, 16, 128, 16, [94]), (50_000, 16, 128, 16, [128] * 24 + [53]),
                          (2049, 16, 128, 16, [128, 1]), (68, 4, 8, 8, [8, 9]), (72, 4, 8, 8, [8, 8, 2]),
                          (64, 4, 8, 8, [8, 8]), (3, 4, 8, 8, [1])])  # fmt: skip
def test_a_short_last_rollout_is_folded_into_the_one_before(total, envs, steps, least, expected):
    from morphelites.train_ppo import rollout_plan

    full, last = rollout_plan(total, envs, steps, least)
    lengths = [steps] * full + [last]
    assert lengths == expected
    assert sum(lengths) * envs >= total > (sum(lengths) - 1) * envs, "the budget is spent to a whole step of every env"


def test_a_last_rollout_under_a_quarter_of_a_batch_is_folded_so_no_minibatch_is_a_pair():
    """Seen in review: only a last rollout under two transitions per minibatch was folded, so
    `morphelites ppo --steps 20496` ended with 8 minibatches of 2 (advantages +-0.71 whatever they were)."""
    from morphelites.config import PPOConfig
    from morphelites.train_ppo import least_last_rollout, rollout_plan

    config = PPOConfig(num_envs=16, num_steps=128, num_minibatches=8)
    assert least_last_rollout(16, config) == 512
    assert rollout_plan(20_496, 16, 128, least_last_rollout(16, config)) == (9, 129)
    assert rollout_plan(20_480 + 512, 16, 128, least_last_rollout(16, config)) == (10, 32), "a quarter is kept"
    assert least_last_rollout(1, PPOConfig(num_envs=1, num_steps=8, num_minibatches=8)) == 16, "the floor"


def test_the_rollout_plan_of_the_largest_budget_is_two_numbers():
    from morphelites.train_ppo import rollout_plan

    assert rollout_plan(10**13, 16, 128, 16) == (10**13 // 2048 - 1, 128 + 10**13 % 2048 // 16)


def test_rewards_are_scaled_by_the_spread_of_the_discounted_return_and_clipped():
    """RewardScaler (per-body PPO) and scale_rewards (the shared learner) divide by the running
    std of the discounted return and clip to ±REWARD_CLIP."""
    from morphelites.normalization import REWARD_CLIP, RewardScaler, scale_rewards

    rng = np.random.default_rng(0)
    scaler = RewardScaler(num_envs=4, gamma=0.0)  # gamma 0: the return is the reward itself
    for _ in range(2000):
        rewards = rng.normal(0.0, 3.0, size=4)
        scaled = scaler(rewards, np.zeros(4))
    assert scaler.scale == pytest.approx(3.0, rel=0.05)
    np.testing.assert_allclose(scaled, rewards / scaler.scale)  # none of these reaches the clip (±30 raw)
    np.testing.assert_allclose(scale_rewards(np.array([3.0, -6.0, 300.0]), 9.0), [1.0, -2.0, REWARD_CLIP], rtol=1e-6)
    constant = RewardScaler(num_envs=1, gamma=0.0)
    for _ in range(100):  # a return that never varies: its std is ~0, and every reward hits the clip
        last = constant(np.array([1.0]), np.array([0.0]))
    assert last[0] == REWARD_CLIP
