"""The actor-critic: masking of padded joints, and the numpy twin against torch."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from morphelites.envs import FEATURES_PER_JOINT, ReachEnv
from morphelites.morphology import Morphology
from morphelites.policy import ActorCritic, reach_policy_spec
from morphelites.policy_numpy import NumpyActorCritic

# they seed torch's global stream or set its thread count: given back after each test
pytestmark = pytest.mark.usefixtures("torch_state_restored")


def _reach_obs(num_links: int, n: int = 8, seed: int = 0) -> np.ndarray:
    env = ReachEnv(Morphology(num_links, [0.15] * num_links))
    rng = np.random.default_rng(seed)
    obs = []
    env.reset(seed=seed)
    for _ in range(n):
        o, *_ = env.step(rng.uniform(-1, 1, 6))
        obs.append(o)
    return np.stack(obs)


def _trained_looking_model() -> ActorCritic:
    """A model with non-trivial weights and normaliser, so agreement is not trivially zero."""
    torch.manual_seed(0)
    model = ActorCritic(reach_policy_spec(6, hidden_dim=32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.update_normaliser(np.concatenate([_reach_obs(3), _reach_obs(6, seed=1)]))
    return model


def test_log_prob_and_entropy_ignore_garbage_in_padded_slots():
    model = _trained_looking_model()
    obs = torch.as_tensor(_reach_obs(3))
    actions = torch.randn(obs.shape[0], 6)
    garbage_actions = actions.clone()
    garbage_actions[:, 3:] = torch.randn(obs.shape[0], 3) * 100
    garbage_obs = obs.clone()
    for j in range(3, 6):  # every feature of padded joints except their mask
        for f in set(range(FEATURES_PER_JOINT)) - {4}:
            garbage_obs[:, j * FEATURES_PER_JOINT + f] = torch.randn(obs.shape[0]) * 50
    lp, ent, val = model.evaluate_actions(obs, actions)
    lp2, ent2, val2 = model.evaluate_actions(garbage_obs, garbage_actions)
    torch.testing.assert_close(lp, lp2)
    torch.testing.assert_close(ent, ent2)
    torch.testing.assert_close(val, val2)
    # and a real joint's action does matter
    changed = actions.clone()
    changed[:, 0] += 1.0
    assert not torch.allclose(model.evaluate_actions(obs, changed)[0], lp)


def test_entropy_counts_only_real_joints():
    model = ActorCritic(reach_policy_spec(6, hidden_dim=16, init_log_std=0.0))
    obs3, obs6 = torch.as_tensor(_reach_obs(3, 1)), torch.as_tensor(_reach_obs(6, 1))
    per_joint = 0.5 + 0.5 * np.log(2 * np.pi)
    with torch.no_grad():
        assert abs(float(model.evaluate_actions(obs3, torch.zeros(1, 6))[1]) - 3 * per_joint) < 1e-5
        assert abs(float(model.evaluate_actions(obs6, torch.zeros(1, 6))[1]) - 6 * per_joint) < 1e-5


def test_numpy_twin_matches_torch_within_1e_5():
    model = _trained_looking_model()
    twin = model.numpy_twin()
    obs = np.concatenate([_reach_obs(3, seed=2), _reach_obs(5, seed=3), _reach_obs(6, seed=4)])
    rng = np.random.default_rng(0)
    actions = rng.normal(size=(len(obs), 6)).astype(np.float32)
    with torch.no_grad():
        t_obs = torch.as_tensor(obs)
        t_lp, _, t_val = model.evaluate_actions(t_obs, torch.as_tensor(actions))
        t_mean = model.mean_action(t_obs)
    np.testing.assert_allclose(twin.act(obs), t_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(twin.value(obs), t_val.numpy(), atol=1e-5)
    np.testing.assert_allclose(twin.log_prob(obs, actions), t_lp.numpy(), atol=1e-4, rtol=1e-5)
    sampled, logp, values = twin.step(obs, np.random.default_rng(1))
    with torch.no_grad():
        t_lp2, _, _ = model.evaluate_actions(t_obs, torch.as_tensor(sampled))
    np.testing.assert_allclose(logp, t_lp2.numpy(), atol=1e-4, rtol=1e-5)
    assert np.all(sampled[: len(_reach_obs(3)), 3:] == 0), "padded joints get no action"


def test_sampling_actions_without_a_seeded_stream_is_refused():
    """Found in review: act(deterministic=False) without rng drew from the OS's entropy, outside
    every seeded stream of a run."""
    twin = _trained_looking_model().numpy_twin()
    obs = _reach_obs(4)
    with pytest.raises(ValueError, match="pass rng"):
        twin.act(obs, deterministic=False)
    first, second = (twin.act(obs, deterministic=False, rng=np.random.default_rng(3)) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, twin.act(obs)), "sampled, not the mean"


def test_flat_weights_round_trip_between_models():
    model = _trained_looking_model()
    other = ActorCritic(model.spec)
    other.load_flat_weights(model.flat_weights())
    np.testing.assert_array_equal(other.flat_weights(), model.flat_weights())
    restored = ActorCritic.from_policy_state(model.policy_state())
    obs = _reach_obs(4)
    np.testing.assert_allclose(restored.numpy_twin().act(obs), model.numpy_twin().act(obs), atol=1e-7)
    assert NumpyActorCritic.from_flat(model.spec, model.flat_weights()).spec == model.spec


def test_acting_path_does_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from morphelites.policy_numpy import NumpyActorCritic\n"
        "from morphelites.rollout import evaluate, SegmentCollector\n"
        "from morphelites.envs import FEATURES_PER_JOINT, ReachEnv\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_normaliser_leaves_out_rows_that_blew_up_and_its_float32_copy_stays_finite():
    model = ActorCritic(reach_policy_spec(6, hidden_dim=16))
    obs = _reach_obs(6, n=20)
    blown = obs.copy()
    blown[4, 0], blown[9, 2], blown[11, 1] = 1e30, -1e19, np.nan
    model.update_normaliser(blown)
    reference = ActorCritic(reach_policy_spec(6, hidden_dim=16))
    reference.update_normaliser(np.delete(obs, [4, 9, 11], axis=0))
    np.testing.assert_array_equal(model.obs_rms.mean, reference.obs_rms.mean)
    np.testing.assert_array_equal(model.obs_rms.var, reference.obs_rms.var)
    assert model.obs_rms.count == reference.obs_rms.count
    assert np.all(np.isfinite(model.flat_weights()))


def test_inputs_are_clipped_only_while_the_observation_normaliser_is_on():
    """Left open since session 32: with ppo.normalize_obs off the raw observations were still
    clipped to ±10, unlike SB3's norm_obs=False or CleanRL without the wrapper: an ablation of the
    normaliser changed the inputs too. Both twins, and every place that builds a run's policy."""
    from morphelites.config import Settings
    from morphelites.parallel.supervisor import _shared_layout
    from morphelites.policy_numpy import INPUT_CLIP, PolicySpec

    obs = _reach_obs(3, n=4)
    feature = 0  # a real joint's first feature
    big = obs.copy()
    big[:, feature] = 1000.0
    at_clip = obs.copy()
    at_clip[:, feature] = INPUT_CLIP  # an untrained normaliser: mean 0, std 1
    for normalize_obs in (True, False):
        torch.manual_seed(0)
        model = ActorCritic(reach_policy_spec(6, hidden_dim=32, normalize_obs=normalize_obs))
        twin = model.numpy_twin()
        with torch.no_grad():
            torch_big = model.mean_action(torch.as_tensor(big)).numpy()
        np.testing.assert_allclose(twin.act(big), torch_big, atol=1e-5)
        clipped = np.allclose(twin.act(big), twin.act(at_clip), atol=1e-6)
        assert clipped == normalize_obs, f"normalize_obs={normalize_obs}: clipped={clipped}"
        settings = Settings.from_dict({"ppo": {"normalize_obs": normalize_obs}})
        spec = PolicySpec.from_dict(_shared_layout(settings, workers=2)[0].to_dict())
        assert spec.input_clip == (INPUT_CLIP if normalize_obs else None)
    # a spec stored before input_clip existed (every such policy clipped) still matches a default one
    assert "input_clip" not in reach_policy_spec(6).to_dict()
    assert "input_clip" in reach_policy_spec(6, normalize_obs=False).to_dict()


def test_independent_mode_and_ppo_build_their_policies_unclipped_with_the_normaliser_off(tmp_path, monkeypatch):
    """The other places a run builds its policy (review of the input_clip change): independent
    mode's per-body PPO and `morphelites ppo` (its policy.pt keeps the spec)."""
    import morphelites.independent as independent
    from morphelites.config import Settings
    from morphelites.individual import Individual
    from morphelites.ppo_run import PPORunRequest, run_ppo

    settings = Settings.from_dict({"ppo": {"normalize_obs": False, "num_envs": 2, "num_steps": 16},
                                   "evolution": {"training_steps_per_individual": 32, "eval_episodes": 1},
                                   "model": {"hidden_dim": 16}})  # fmt: skip
    built = []

    class Recorded(ActorCritic):
        def __init__(self, spec):
            built.append(spec)
            super().__init__(spec)

    monkeypatch.setattr(independent, "ActorCritic", Recorded)
    independent.train_and_evaluate(Individual(0, (0.5,) * 7, Morphology(3, [0.2, 0.2, 0.2])), settings)
    assert [spec.input_clip for spec in built] == [None]
    out = tmp_path / "ppo"
    run_ppo(PPORunRequest(settings, str(out), total_steps=32, bodies=(Morphology(3, [0.2, 0.2, 0.2]),), eval_episodes=1,
                          quiet=True))  # fmt: skip
    state = torch.load(out / "policy.pt", map_location="cpu", weights_only=False)["policy"]
    assert ActorCritic.from_policy_state(state).spec.input_clip is None


def test_a_saved_policy_loads_with_torch_loads_default_and_acts_as_before(tmp_path):
    """Review (session 40): policy.pt held the normaliser as numpy arrays, which torch.load's
    default (weights_only=True since torch 2.6) refuses; README says to load it that way."""
    import torch

    from morphelites.policy import ActorCritic
    from morphelites.policy_numpy import reach_policy_spec

    model = ActorCritic(reach_policy_spec(6, hidden_dim=16))
    obs = np.random.default_rng(0).normal(size=(20, model.spec.obs_dim))
    model.update_normaliser(obs)
    torch.save({"format": "morphelites-policy-1", "policy": model.policy_state(), "env_steps": 64}, tmp_path / "policy.pt")
    loaded = ActorCritic.from_policy_state(torch.load(tmp_path / "policy.pt")["policy"])
    np.testing.assert_allclose(loaded.numpy_twin().value(obs), model.numpy_twin().value(obs), rtol=1e-6)
    assert loaded.obs_rms.count == model.obs_rms.count


def test_the_rows_of_a_batch_s_features_give_exactly_the_outputs_of_those_rows():
    """The learner computes features once for a segment's steps and its bootstrap observations,
    then runs the actor on the steps' rows: that must equal evaluating those rows alone."""
    model = _trained_looking_model()
    obs = torch.as_tensor(np.concatenate([_reach_obs(3), _reach_obs(6, seed=1), _reach_obs(4, seed=2)]))
    actions = torch.randn(obs.shape[0], 6)
    rows = torch.tensor([1, 5, 9, 17, 22])
    x, mask = model.features(obs)
    with torch.no_grad():
        log_prob, entropy = model.log_prob_entropy(x[rows], mask[rows], actions[rows])
        expected = model.evaluate_actions(obs[rows], actions[rows])
        assert torch.equal(log_prob, expected[0]) and torch.equal(entropy, expected[1])
        assert torch.equal(model.critic_value(x[rows]), expected[2])
        # the learner's case: the first rows (a segment's steps), as a view
        steps = model.log_prob_entropy(x[:10], mask[:10], actions[:10])[0]
        assert torch.equal(steps, model.evaluate_actions(obs[:10], actions[:10])[0])
