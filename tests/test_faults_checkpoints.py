"""Issue #5, promise 8: corrupt or foreign checkpoints.

Every kind of bad checkpoint (truncated, random bytes, empty, not a dict, another kind or version of
checkpoint, another body space, another policy shape) gives a CheckpointError that names the file
and what is wrong; resuming skips such files with a warning and uses the newest intact one.
Checkpoints are real files written by a real run (evolution) or the real learner (shared mode).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from conftest import read_results
from morphelites.config import Settings
from morphelites.runs.checkpoints import CheckpointError, list_checkpoints, load_checkpoint, matching

pytestmark = pytest.mark.faults

EVOLUTION_FORMAT = "morphelites-evolution-1"
LEARNER_FORMAT = "morphelites-learner-1"
TINY = {
    "evolution": {"eval_episodes": 2, "heatmap_every": 100, "checkpoint_every": 2, "num_initial_random": 2},
    "ppo": {"num_envs": 2, "num_steps": 32},
    "env": {"max_episode_steps": 20},
}
SHARED_TINY = {
    "training": {"buffer_size": 2000, "min_batch_size": 400, "update_interval": 100},
    "model": {"hidden_dim": 32},
}


# ---------------------------------------------------------------------------- real checkpoints


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny serial independent run of 3 evaluations: evolution-00000002 and -00000003."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    out = tmp_path_factory.mktemp("evolution") / "run"
    summary = MAPElitesEvolutionTrainer(
        TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
        use_shared_ppo=False, output_dir=str(out), evaluations=3, quiet=True,
    ).run()  # fmt: skip
    assert summary["status"] == "completed"
    assert [p.name for p in list_checkpoints(out / "checkpoints", "evolution")] == ["evolution-00000002.pkl", "evolution-00000003.pkl"]
    return out


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, free to damage."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _run_body_space_check(run: Path) -> Callable[[dict[str, Any]], str | None]:
    """The check the trainer applies on resume: the checkpoint's body space is the run's."""
    settings = json.loads((run / "config.json").read_text())["settings"]
    return matching("body space", settings["body_space"], "settings", "body_space")


@contextmanager
def _learner(checkpoint_dir: Path, resume: bool = False, counters_floor: dict[str, int] | None = None,
             version_floor: int = 0, **sections: dict[str, Any]) -> Iterator[Any]:
    """A real SharedPPOTrainer in this process, on freshly created shared memory."""
    from morphelites.parallel.learner import LearnerOptions, SharedPPOTrainer
    from morphelites.parallel.supervisor import create_shared_state

    data = {**SHARED_TINY, **sections, "model": {**SHARED_TINY["model"], **sections.get("model", {})}}
    settings = Settings.from_dict(data).validate()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    weights, buffer, handles = create_shared_state(settings, 1, False, 2)
    learner = None
    try:
        learner = SharedPPOTrainer(LearnerOptions(settings, handles, str(checkpoint_dir), resume=resume, max_policy_lag=2,
                                                  counters_floor=counters_floor, version_floor=version_floor))  # fmt: skip
        yield learner
    finally:
        if learner is not None:
            learner.close()
        buffer.close()
        weights.close()


def _learner_checkpoint(learner: Any, updates: int, shift: float) -> Path:
    """Write a learner checkpoint at ``updates`` whose policy differs from the others by ``shift``."""
    import torch

    with torch.no_grad():
        learner.model.log_std.add_(shift)
    learner.updates, learner.version = updates, updates + 1
    path = learner.checkpoint()
    assert path is not None
    return path


def _log_std(learner: Any) -> list[float]:
    return learner.model.log_std.detach().tolist()


# ---------------------------------------------------------------------------- damaging a checkpoint


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    state = pickle.loads(path.read_bytes())
    change(state)
    path.write_bytes(pickle.dumps(state))


# ---------------------------------------------------------------------------- one message per kind of damage


@pytest.mark.parametrize(
    "damage, words",
    [
        (_truncate, ["is unreadable", "truncated"]),
        (lambda p: p.write_bytes(os.urandom(4096)), ["is unreadable", "not a checkpoint at all"]),
        (lambda p: p.write_bytes(b""), ["is empty (0 bytes)"]),
        (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), ["is not a morphelites checkpoint", "holds a list, not a dict"]),
        (lambda p: p.write_bytes(pickle.dumps({"epoch": 3})), ["is not a morphelites checkpoint", "without a 'format' field"]),
        (lambda p: _rewrite(p, lambda s: s.update(format="something-else")),
         ["is not a morphelites checkpoint (format 'something-else'; expected 'morphelites-evolution-1')"]),
        (lambda p: _rewrite(p, lambda s: s.update(format="morphelites-evolution-2")),
         ["written by another version of morphelites (format 'morphelites-evolution-2'; this version reads "
          "'morphelites-evolution-1')", "Resume with the morphelites version that wrote it"]),
        (lambda p: _rewrite(p, lambda s: s["settings"]["body_space"].update(max_links=4)),
         ["does not fit this run: its body space differs from this run's (max_links: checkpoint 4, this run 6)"]),
        (lambda p: _rewrite(p, lambda s: s["settings"].pop("body_space")),
         ["does not fit this run: it has no settings.body_space"]),
        (lambda p: _rewrite(p, lambda s: s.pop("settings")),
         ["is incomplete: it has no 'settings' field, which every 'morphelites-evolution-1' checkpoint holds"]),
        (lambda p: _rewrite(p, lambda s: [s.pop("variation"), s.pop("wall_s")]),
         ["is incomplete: it has no 'variation', 'wall_s' fields", "it was edited"]),
    ],
    ids=["truncated", "random-bytes", "empty", "list", "no-format", "foreign-format", "other-version",
         "other-body-space", "no-body-space", "no-settings", "no-variation"],
)  # fmt: skip
def test_every_kind_of_bad_evolution_checkpoint_is_named_and_explained(run_copy, damage, words):
    from morphelites.evolution.resume import CHECKPOINT_FIELDS

    path = list_checkpoints(run_copy / "checkpoints", "evolution")[-1]
    load_checkpoint(path, EVOLUTION_FORMAT, _run_body_space_check(run_copy), CHECKPOINT_FIELDS)  # intact before the damage
    damage(path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, EVOLUTION_FORMAT, _run_body_space_check(run_copy), CHECKPOINT_FIELDS)
    message = str(caught.value)
    assert str(path) in message
    for phrase in words:
        assert phrase in message
    assert "--resume" in message, "the message says what to do"


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda s: s.update(next_id="seven"), "its contents cannot be loaded (ValueError: "),
        (lambda s: s["pending"].append({"id": 99}), "its contents cannot be loaded (KeyError: "),
        (lambda s: s["variation"].update(rng={"bit_generator": "nothing"}), "its contents cannot be loaded"),
        (lambda s: s["variation"].update(operator=[1, 2]), "its variation operator is a list, not a pyribs operator"),
        (lambda s: s.update(parent_sampling={"bit_generator": "PCG64", "state": "garbage"}), "its contents cannot be loaded"),
        (lambda s: s.update(held_back_s="long"), "its contents cannot be loaded (ValueError: "),
    ],
    ids=["next-id", "pending-individual", "rng-state", "operator", "parent-sampling", "held-back"],
)  # fmt: skip
def test_evolution_resume_skips_a_checkpoint_whose_contents_cannot_be_loaded(run_copy, damage, words):
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    older, newest = list_checkpoints(run_copy / "checkpoints", "evolution")
    _rewrite(newest, damage)
    summary = MAPElitesEvolutionTrainer(
        TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
        use_shared_ppo=False, output_dir=str(run_copy), evaluations=4, quiet=True, resume=True,
    ).run()  # fmt: skip
    assert summary["status"] == "completed" and len(read_results(run_copy)) == 4
    log = (run_copy / "training.log").read_text()
    assert f"Skipping a checkpoint: Checkpoint {newest} does not fit this run: {words}" in log
    assert f"Resumed from {older.name}" in log


def test_a_run_recorded_before_fitness_ceilings_resumes_with_those_ceilings_unknown(run_copy):
    """results.jsonl lines written before evaluations carried ``fitness_ceiling`` replay as
    unknown (NaN in archive.csv, null mean in summary.json), not as 0 or a crash."""
    import csv
    import math

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    old_lines = [{k: v for k, v in line.items() if k != "fitness_ceiling"} for line in read_results(run_copy)]
    (run_copy / "results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in old_lines))
    summary = MAPElitesEvolutionTrainer(
        TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
        use_shared_ppo=False, output_dir=str(run_copy), evaluations=4, quiet=True, resume=True,
    ).run()  # fmt: skip
    assert summary["status"] == "completed"
    new_line = read_results(run_copy)[-1]
    assert new_line["id"] == 3 and 0.0 <= new_line["fitness"] <= new_line["fitness_ceiling"] <= 1.0
    with open(run_copy / "archive.csv", newline="") as handle:
        ceilings = {int(e["individual_id"]): float(e["fitness_ceiling"]) for e in csv.DictReader(handle)}
    old_elites = [c for i, c in ceilings.items() if i < 3]
    assert old_elites and all(math.isnan(c) for c in old_elites)
    if new_line["status"] == "not added":
        assert 3 not in ceilings
    else:  # the new elite's ceiling is known, beside the old ones that are not
        assert ceilings[3] == pytest.approx(new_line["fitness_ceiling"])
    assert json.loads((run_copy / "summary.json").read_text())["mean_elite_fitness_ceiling"] is None


def test_a_learner_checkpoint_under_an_evolution_name_is_named_as_such(run_copy, tmp_path):
    with _learner(tmp_path / "learner") as learner:
        learner_file = _learner_checkpoint(learner, updates=1, shift=0.0)
    path = list_checkpoints(run_copy / "checkpoints", "evolution")[-1]
    shutil.copyfile(learner_file, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, EVOLUTION_FORMAT, _run_body_space_check(run_copy))
    message = str(caught.value)
    assert str(path) in message
    assert ("is a learner checkpoint (format 'morphelites-learner-1'), not an evolution checkpoint "
            "('morphelites-evolution-1'); it was copied or renamed into the wrong place") in message  # fmt: skip


@pytest.mark.parametrize(
    "other, words",
    [
        ({"model": {"hidden_dim": 16}}, "hidden_dim: checkpoint 16, this run 32"),
        ({"body_space": {"max_links": 4}}, "action_dim: checkpoint 4, this run 6"),
    ],
    ids=["hidden_dim", "max_links"],
)
def test_a_learner_checkpoint_of_another_policy_shape_is_named_and_explained(tmp_path, other, words):
    with _learner(tmp_path / "other", **other) as learner:
        path = _learner_checkpoint(learner, updates=1, shift=0.0)
    with _learner(tmp_path / "run") as learner:
        fits = matching("policy shape", learner.options.handles.spec, "policy", "spec")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, LEARNER_FORMAT, fits)
    message = str(caught.value)
    assert str(path) in message and "does not fit this run: its policy shape differs from this run's" in message
    assert words in message


def test_a_learner_checkpoint_from_before_input_clip_is_restored_and_goes_on_with_this_runs_clip(tmp_path):
    """Seen in review (session 37): a learner checkpoint written before PolicySpec.input_clip existed
    has no such key (every such policy clipped at ±10); a ppo.normalize_obs=False run resumed from it
    refused it as of another shape and started from a fresh policy. The clip is no shape: the
    checkpoint is restored, the run goes on with its own clip, and the run's log says so."""
    checkpoints = tmp_path / "checkpoints"
    with _learner(checkpoints) as learner:
        path = _learner_checkpoint(learner, updates=3, shift=0.25)
        trained = _log_std(learner)
    assert "input_clip" not in pickle.loads(path.read_bytes())["policy"]["spec"], "as older versions wrote it"
    with _learner(checkpoints, resume=True, ppo={"normalize_obs": False}) as learner:
        assert learner.restored_from == path.name and learner.updates == 3
        assert _log_std(learner) == pytest.approx(trained)
        assert learner.model.spec.input_clip is None
        assert learner.restored_event()["notes"] == [
            f"{path.name}'s policy clipped its inputs to ±10.0 (written by a version of morphelites that clipped them "
            "also with ppo.normalize_obs off); it goes on unclipped, as this run's settings say."]
    with _learner(checkpoints, resume=True) as learner:
        assert learner.restored_from == path.name and learner.restored_event()["notes"] == []


def test_an_evolution_checkpoint_under_a_learner_name_is_named_as_such(finished_run, tmp_path):
    path = tmp_path / "learner-00000001.pkl"
    shutil.copyfile(list_checkpoints(finished_run / "checkpoints", "evolution")[-1], path)
    with pytest.raises(CheckpointError, match="is an evolution checkpoint .* not a learner checkpoint"):
        load_checkpoint(path, LEARNER_FORMAT)


# ---------------------------------------------------------------------------- falling back


def test_evolution_resume_falls_back_to_the_newest_intact_checkpoint(run_copy, tmp_path):
    from morphelites.runs.recorder import EvolutionRecorder
    from morphelites.runs.run_dir import RunDirectory

    older, newest = list_checkpoints(run_copy / "checkpoints", "evolution")
    _truncate(newest)
    recorder = EvolutionRecorder(RunDirectory(run_copy), quiet=True)
    try:
        path, state = recorder.latest_checkpoint(EVOLUTION_FORMAT, _run_body_space_check(run_copy))
        assert path == older and state["completed"] == 2
        _rewrite(older, lambda s: s["settings"]["body_space"].update(min_link_length=0.05))
        assert recorder.latest_checkpoint(EVOLUTION_FORMAT, _run_body_space_check(run_copy)) is None
    finally:
        recorder.close()
    log = (run_copy / "training.log").read_text()
    assert f"Skipping a checkpoint: Checkpoint {newest} is unreadable" in log
    assert "Falling back to an older checkpoint (1 left)." in log
    assert "Using evolution-00000002.pkl, the newest usable checkpoint (1 newer one(s) skipped)." in log
    assert f"Checkpoint {older} does not fit this run: its body space differs from this run's (min_link_length" in log
    assert "None of the 2 evolution checkpoint(s)" in log and "resuming from results.jsonl alone" in log


def test_learner_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, capsys):
    checkpoints = tmp_path / "checkpoints"
    with _learner(checkpoints) as learner:
        older = _learner_checkpoint(learner, updates=1, shift=0.25)
        older_log_std = _log_std(learner)
        newest = _learner_checkpoint(learner, updates=2, shift=0.5)
    _truncate(newest)
    with _learner(checkpoints, resume=True) as learner:
        assert learner.restored_from == older.name and learner.updates == 1
        assert _log_std(learner) == pytest.approx(older_log_std)
        assert len(learner.skipped_checkpoints) == 1
        assert f"Checkpoint {newest} is unreadable" in learner.skipped_checkpoints[0]
        assert learner.skipped_checkpoints[0].endswith("Trying an older one.")
    assert capsys.readouterr().err == "", "the run logs the skip reasons once (training.log); the learner does not print them"


def test_a_resumed_learner_goes_on_with_its_minibatch_stream_and_skipped_step_count(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    with _learner(checkpoints) as learner:
        learner.updater.rng.permutation(100)  # shuffles of earlier updates
        learner.updater.skipped_steps = 3
        _learner_checkpoint(learner, updates=1, shift=0.25)
        expected = learner.updater.rng.permutation(100)
    with _learner(checkpoints, resume=True) as learner:
        assert learner.updater.skipped_steps == 3
        assert np.array_equal(learner.updater.rng.permutation(100), expected), "not the seed's first shuffle again"
    older = checkpoints / "older"
    older.mkdir()
    with _learner(older) as learner:  # a checkpoint written before these fields existed still loads
        path = _learner_checkpoint(learner, updates=1, shift=0.25)
    _rewrite(path, lambda s: (s.pop("minibatch_rng"), s.pop("skipped_steps")))
    with _learner(older, resume=True) as learner:
        assert learner.restored_from == path.name and learner.updater.skipped_steps == 0


def test_learner_resume_skips_a_checkpoint_missing_a_field_it_reads(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    with _learner(checkpoints) as learner:
        older = _learner_checkpoint(learner, updates=1, shift=0.25)
        older_log_std = _log_std(learner)
        newest = _learner_checkpoint(learner, updates=2, shift=0.5)
    _rewrite(newest, lambda s: s.pop("optimizer"))
    with _learner(checkpoints, resume=True) as learner:
        assert learner.restored_from == older.name and learner.updates == 1
        assert _log_std(learner) == pytest.approx(older_log_std)
        [reason] = learner.skipped_checkpoints
    assert f"Checkpoint {newest} is incomplete: it has no 'optimizer' field" in reason and "Trying an older one." in reason


def _misshape_first_moments(state: dict[str, Any]) -> None:
    """Give the first parameter Adam moment estimates of another shape (Adam itself would not notice)."""
    import torch

    state["optimizer"]["state"][0] = {"step": torch.tensor(1.0), "exp_avg": torch.zeros(1), "exp_avg_sq": torch.zeros(1)}


def _poison_first_weight(state: dict[str, Any]) -> None:
    """Put a NaN into the first policy tensor (an edited or damaged file; the learner writes none)."""
    next(iter(state["policy"]["state_dict"].values())).view(-1)[0] = float("nan")


def _poison_first_moments(state: dict[str, Any]) -> None:
    """Give the first parameter moment estimates of the right shape, one of them inf."""
    import torch

    from morphelites.policy import ActorCritic

    shape = next(ActorCritic.from_policy_state(state["policy"]).parameters()).shape
    state["optimizer"]["state"][0] = {"step": torch.tensor(1.0), "exp_avg": torch.zeros(shape),
                                      "exp_avg_sq": torch.full(shape, float("inf"))}  # fmt: skip


@pytest.mark.parametrize(
    "damage, words",
    [
        (_misshape_first_moments, "its optimizer state exp_avg of parameter 0 has shape (1,), not"),
        (lambda s: s["policy"]["state_dict"].clear(), "its contents cannot be loaded (RuntimeError: "),
        (lambda s: s.update(version="seven"), "its contents cannot be loaded (ValueError: "),
        (_poison_first_weight, "its policy weights or observation statistics are not all finite"),
        (lambda s: s["policy"]["obs_rms"]["var"].__setitem__(0, np.nan), "its contents cannot be loaded (ValueError: normaliser state is not all finite"),
        (_poison_first_moments, "its optimizer state exp_avg_sq of parameter 0 is not all finite"),
        (lambda s: s.update(minibatch_rng={"bit_generator": "MT19937"}), "its contents cannot be loaded ("),
        # Seen in review: these loaded, then stalled learning (every update skipped or undone) or
        # crashed every learner start, instead of falling back to the older checkpoint.
        (lambda s: s["return_rms"].update(var=np.nan), "its contents cannot be loaded (ValueError: normaliser state is not all finite"),
        (lambda s: s["policy"]["obs_rms"].update(count=np.nan), "its contents cannot be loaded (ValueError: normaliser state is not all finite"),
        (lambda s: s["policy"]["obs_rms"].update(count=-5.0), "its contents cannot be loaded (ValueError: normaliser state has a negative variance or a count of -5.0, not above 0"),
        (lambda s: s["policy"]["obs_rms"].update(var=s["policy"]["obs_rms"]["var"][:3]), "its contents cannot be loaded (ValueError: normaliser state has shapes"),
        (lambda s: s["return_rms"].update(var=np.ones(3)), "its contents cannot be loaded (ValueError: normaliser state has shapes"),
    ],
    ids=["optimizer-moment-shape", "empty-weights", "version-not-a-number", "nan-weight", "nan-normaliser", "inf-moment",
         "minibatch-rng", "nan-reward-statistics", "nan-normaliser-count", "negative-normaliser-count",
         "normaliser-var-shape", "reward-statistics-shape"],
)
def test_learner_resume_skips_a_checkpoint_whose_contents_cannot_be_loaded(tmp_path, damage, words):
    checkpoints = tmp_path / "checkpoints"
    with _learner(checkpoints) as learner:
        older = _learner_checkpoint(learner, updates=1, shift=0.25)
        older_log_std = _log_std(learner)
        newest = _learner_checkpoint(learner, updates=2, shift=0.5)
    _rewrite(newest, damage)
    with _learner(checkpoints, resume=True) as learner:
        assert learner.restored_from == older.name and learner.updates == 1
        assert _log_std(learner) == pytest.approx(older_log_std)
        [reason] = learner.skipped_checkpoints
    assert f"Checkpoint {newest} does not fit this run: {words}" in reason and "Trying an older one." in reason


def test_a_resumed_learner_numbers_an_older_checkpoints_weights_past_every_recorded_version(tmp_path):
    """After a hard stop between two checkpoints the run's files name versions the checkpoint
    never saw; its weights are not theirs, so they get a number of their own."""
    checkpoints = tmp_path / "checkpoints"
    with _learner(checkpoints) as learner:
        _learner_checkpoint(learner, updates=2, shift=0.25)  # version 3
    with _learner(checkpoints, resume=True, version_floor=7) as learner:
        assert learner.restored_version == 3 and learner.version == 8 and learner.weights.version == 8
    with _learner(checkpoints, resume=True, version_floor=3) as learner:  # nothing recorded past the checkpoint
        assert learner.version == 3 and learner.weights.version == 3


def test_a_restarted_learner_continues_the_work_counters_of_the_one_it_replaces(tmp_path):
    from morphelites.parallel.learner import LAG_TOTALS

    checkpoints = tmp_path / "checkpoints"
    with _learner(checkpoints) as learner:
        path = _learner_checkpoint(learner, updates=2, shift=0.25)
        checkpoint_log_std = _log_std(learner)
        learner.samples_consumed = 2000
        learner.lag_sum, learner.lag_count, learner.max_lag_seen = 6, 4, 3
        learner.checkpoint()
    with _learner(checkpoints, resume=True) as learner:  # a resumed run: the lag figures go on from the checkpoint's
        assert (learner.lag_sum, learner.lag_count, learner.max_lag_seen) == (6, 4, 3)
        assert learner.stats()["mean_policy_lag"] == 1.5 and learner.stats()["max_policy_lag"] == 3
        assert set(LAG_TOTALS.values()) <= set(learner.stats()), "what a supervisor carries over to a restart"
    reached = {"updates": 5, "samples_consumed": 5000, "skipped_updates": 1,  # 3 updates lost with the dead learner
               "lag_sum": 20, "lag_count": 10, "max_lag_seen": 4}  # fmt: skip
    with _learner(checkpoints, resume=True, counters_floor=reached) as learner:
        assert learner.restored_from == path.name and learner.restored_updates == 2
        assert _log_std(learner) == pytest.approx(checkpoint_log_std), "the policy is the checkpoint's"
        assert (learner.updates, learner.samples_consumed, learner.skipped_updates) == (5, 5000, 1)
        assert (learner.lag_sum, learner.lag_count, learner.max_lag_seen) == (20, 10, 4)
        assert learner.lost_updates == 3
        learner.updates += 4  # it goes on, and dies before its next checkpoint
        reached = {"updates": learner.updates}
    with _learner(checkpoints, resume=True, counters_floor=reached) as learner:  # the same checkpoint again
        assert learner.restored_updates == 2 and learner.lost_updates == 9 - 2
    with _learner(checkpoints, resume=True, counters_floor={"updates": 1, "samples_consumed": 10}) as learner:
        assert (learner.updates, learner.samples_consumed) == (2, 2000), "a lower floor changes nothing"
        assert learner.lost_updates == 0


def test_a_restarted_learner_reports_utilisation_over_the_whole_run_not_since_its_own_start(tmp_path):
    """A learner that was busy 90 of its 100 s, then died: its successor, idle so far, reports
    about 90%, not 0%, and the times a supervisor carries over to the next restart."""
    from morphelites.parallel.learner import LEARNER_TIME_KEYS, SharedPPOTrainer

    with _learner(tmp_path / "checkpoints") as fresh:
        assert fresh.stats()["learner_busy_s"] == 0.0 and fresh.stats()["learner_utilisation"] == 0.0
        restarted = SharedPPOTrainer(dataclasses.replace(fresh.options, time_floor_s=(90.0, 100.0)))
        try:
            stats = restarted.stats()
        finally:
            restarted.close()
    assert stats["learner_busy_s"] == 90.0 and 100.0 <= stats["learner_active_s"] < 110.0
    assert 0.8 < stats["learner_utilisation"] <= 0.9
    assert set(LEARNER_TIME_KEYS) <= set(stats), "what a supervisor carries over to a restart"


def test_learner_with_no_usable_checkpoint_starts_from_a_fresh_policy(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    with _learner(checkpoints, model={"hidden_dim": 16}) as learner:
        other_shape = _learner_checkpoint(learner, updates=1, shift=0.0)
    with _learner(checkpoints) as learner:
        fresh_log_std = _log_std(learner)
        corrupt = _learner_checkpoint(learner, updates=2, shift=1.0)
    corrupt.write_bytes(os.urandom(256))
    with _learner(checkpoints, resume=True) as learner:
        assert learner.restored_from is None and learner.updates == 0
        assert _log_std(learner) == pytest.approx(fresh_log_std)
        newer, oldest = learner.skipped_checkpoints
    assert str(corrupt) in newer and newer.endswith("Trying an older one.")
    assert str(other_shape) in oldest and "hidden_dim: checkpoint 16, this run 32" in oldest
    assert oldest.endswith("No older one is left: starting from a fresh policy.")


# ---------------------------------------------------------------------------- end to end


def test_resume_after_the_newest_checkpoint_was_truncated_completes_from_the_older_one(tmp_path, run_cli):
    out = tmp_path / "run"
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    base = ["train", "--mode", "independent", "--serial", "--quiet", "--output", str(out)]
    first = run_cli(*base, "--evaluations", "3", "--initial-random", "2", "--steps-per-individual", "64", "--config", str(config))
    assert first.returncode == 0, first.stderr
    older, newest = list_checkpoints(out / "checkpoints", "evolution")
    _truncate(newest)

    resumed = run_cli("train", "--resume", "--serial", "--quiet", "--output", str(out), "--evaluations", "5")
    assert resumed.returncode == 0, resumed.stderr
    ids = [r["id"] for r in read_results(out)]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    log = (out / "training.log").read_text()
    assert f"Checkpoint {newest} is unreadable" in log
    assert f"Resumed from {older.name}" in log
