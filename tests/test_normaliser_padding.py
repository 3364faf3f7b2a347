"""benchmarks/normaliser_padding.py: how pooled normaliser statistics scale the real values of
joints that only some transitions have, read back from the statistics alone."""

import sys
from pathlib import Path

import numpy as np
import pytest

from morphelites.normalization import RunningMeanStd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from normaliser_padding import real_value_scales  # noqa: E402

# Three joints of 3 features each (two values, then the 0/1 mask).
MASK_INDICES = (2, 5, 8)
GATE_JOINT = (0, 0, 0, 1, 1, 1, 2, 2, 2)


def _padded_observations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Joint 0 always present, joint 1 in ~30% of the rows, joint 2 never; padded entries 0."""
    obs = np.zeros((n, 9))
    present = rng.random(n) < 0.3
    obs[:, 0:2] = rng.normal([0.5, -2.0], [1.0, 0.3], size=(n, 2))
    obs[:, 2] = 1.0
    obs[present, 3:5] = rng.normal([1.5, 0.2], [0.5, 2.0], size=(present.sum(), 2))
    obs[present, 5] = 1.0
    return obs


def test_real_value_scales_match_the_normalised_real_values_themselves():
    obs = _padded_observations(np.random.default_rng(3), 20_000)
    rms = RunningMeanStd((9,))
    for chunk in np.array_split(obs, 40):  # folded in batches, as the learner does
        rms.update(chunk)
    rows = real_value_scales(rms.mean, rms.var, MASK_INDICES, GATE_JOINT)

    normalised = (obs - rms.mean) / np.sqrt(rms.var + 1e-8)
    present = obs[:, 5] > 0.5
    real = normalised[present][:, 3:5]
    # abs 1e-6: the normaliser starts from a count of 1e-4 at mean 0
    assert rows[1]["share_present"] == pytest.approx(present.mean(), abs=1e-6)
    assert rows[1]["max_offset"] == pytest.approx(np.max(np.abs(real.mean(axis=0))), abs=1e-6)
    assert rows[1]["max_spread"] == pytest.approx(np.max(real.std(axis=0)), abs=1e-6)
    assert rows[1]["max_offset"] > 0.5 and rows[1]["max_spread"] > 1.5  # pooling with zeros shows

    assert rows[0]["share_present"] == pytest.approx(1.0)
    assert rows[0]["max_offset"] == pytest.approx(0.0, abs=1e-6) and rows[0]["max_spread"] == pytest.approx(1.0)
    assert rows[2] == {"joint": 2, "share_present": 0.0, "max_offset": None, "max_spread": None}


@pytest.mark.parametrize("record", [False, True])
def test_looking_at_a_run_writes_the_committed_results_only_when_asked(tmp_path, monkeypatch, capsys, record):
    """Seen in review: README offers the script for a look at one's own run, and every look
    overwrote benchmarks/results/normaliser_padding.json, the evidence behind README's figures."""
    import normaliser_padding

    from morphelites.parallel import learner
    from morphelites.policy import ActorCritic, reach_policy_spec

    model = ActorCritic(reach_policy_spec(3, hidden_dim=8))
    model.update_normaliser(np.abs(np.random.default_rng(0).normal(size=(50, model.spec.obs_dim))).astype(np.float32))
    state = {"policy": model.policy_state(), "version": 7, "samples_consumed": 5000}
    state["policy"]["obs_rms"] = {k: np.asarray(v) for k, v in state["policy"]["obs_rms"].items()}
    monkeypatch.setattr(learner, "newest_learner_checkpoint", lambda folder: (tmp_path / "learner-7.pkl", state))
    written = []
    monkeypatch.setattr(normaliser_padding, "write_json", lambda name, data: written.append((name, data)))
    assert normaliser_padding.main([str(tmp_path), *(["--record"] if record else [])]) == 0
    assert "policy version 7, 5,000 samples" in capsys.readouterr().out
    assert [name for name, _ in written] == (["normaliser_padding"] if record else [])
