"""`morphelites animate`: a GIF of a run's policy on a body, evaluated exactly as the run evaluates."""

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_json
from morphelites.animate import AnimationError, prepare_animation, render_animation
from morphelites.cli import main
from morphelites.config import EnvConfig
from morphelites.morphology import Morphology
from morphelites.policy import ActorCritic
from morphelites.rollout import evaluate
from morphelites.viz import animation_gif

TINY = {
    "evolution": {"eval_episodes": 3, "heatmap_every": 1, "checkpoint_every": 1, "num_initial_random": 2},
    "ppo": {"num_envs": 4, "num_steps": 32},
    "env": {"max_episode_steps": 40},
}


def _train(out: Path, shared: bool) -> Path:
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    summary = MAPElitesEvolutionTrainer(
        TINY, num_initial_random=2, training_steps_per_individual=256, enable_multiprocess=False,
        use_shared_ppo=shared, output_dir=str(out), evaluations=3, quiet=True,
    ).run()  # fmt: skip
    assert summary["status"] == "completed"
    return out


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("animate") / "shared", shared=True)


def _gif_frames_and_seconds(gif: Path | io.BytesIO) -> tuple[int, float]:
    image = Image.open(gif)
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        durations.append(image.info["duration"])
    return image.n_frames, sum(durations) / 1000


def test_animating_the_best_elite_replays_the_runs_final_reevaluation(shared_run):
    assert f"morphelites animate {shared_run}" in (shared_run / "training.log").read_text(), "the run says how"
    request = prepare_animation(shared_run, episodes=2, frame_size=64)
    with open(shared_run / "archive.csv", newline="") as handle:
        elites = list(csv.DictReader(handle))
    best = max(elites, key=lambda row: float(row["fitness"]))
    assert request.label == f"individual {best['individual_id']}"
    assert request.output == shared_run / "animations" / f"individual-{best['individual_id']}.gif"

    result = render_animation(request)

    frames, seconds = _gif_frames_and_seconds(result.path)
    assert frames >= 2 and seconds == pytest.approx(result.seconds, abs=0.05), "the end-of-episode pauses included"
    # Rendering changes nothing: the figures are those of the run's own final re-evaluation, which
    # used the same (final) policy, goals and seeds.
    with open(shared_run / "archive_reevaluated.csv", newline="") as handle:
        again = {row["individual_id"]: row for row in csv.DictReader(handle)}
    assert result.evaluation.fitness == pytest.approx(float(again[best["individual_id"]]["fitness"]), abs=1e-12)
    assert result.evaluation.policy_version == int(again[best["individual_id"]]["policy_version"]) == request.policy_version
    actor = ActorCritic.from_policy_state(request.policy_state).numpy_twin()
    plain = evaluate(actor, request.body, 3, request.eval_seed, body_space=request.settings.body_space,
                     env_config=request.settings.env, policy_version=request.policy_version)  # fmt: skip
    assert plain == result.evaluation


def test_the_best_elite_of_a_run_still_going_comes_from_results_jsonl(shared_run, tmp_path):
    """Review (session 38): the best elite came from archive.csv, which a run writes every
    heatmap_every evaluations: before the first, animate said the run had no elites."""
    copy = tmp_path / "going"
    shutil.copytree(shared_run, copy)
    best = prepare_animation(shared_run, episodes=1, frame_size=64).label
    (copy / "archive.csv").unlink()
    assert prepare_animation(copy, episodes=1, frame_size=64).label == best
    with open(shared_run / "archive.csv", newline="") as handle:
        assert best.removeprefix("individual ") in {row["individual_id"] for row in csv.DictReader(handle)}
    (copy / "results.jsonl").write_text("")
    with pytest.raises(AnimationError, match="has no evaluated individual yet"):
        prepare_animation(copy, episodes=1, frame_size=64)


def test_among_equally_fit_individuals_the_best_elite_is_the_one_archive_csv_lists(tmp_path):
    """Fitness 1.0 (every goal reached) ties often; a cell keeps the first of equals it took, in
    the archive's order, which need not be the file's or the ids' (review, session 38)."""
    from morphelites.animate import _best_elite
    from morphelites.runs import RunDirectory

    run = RunDirectory(tmp_path)
    (tmp_path / "archive.csv").write_text("individual_id,fitness\n7,1.0\n2,0.4\n")
    results = {5: {"fitness": 1.0}, 2: {"fitness": 0.4}, 7: {"fitness": 1.0}}  # file order: 5 came first
    assert _best_elite(run, results) == 7
    (tmp_path / "archive.csv").unlink()  # a run still going, before its first archive.csv: the first in the file
    assert _best_elite(run, results) == 5


def test_an_individual_or_any_body_can_be_chosen_and_the_cli_writes_where_asked(shared_run, tmp_path, capsys):
    lines = [json.loads(line) for line in (shared_run / "results.jsonl").read_text().splitlines()]
    first = lines[0]
    request = prepare_animation(shared_run, individual=first["id"], episodes=1, frame_size=32)
    assert request.body == Morphology.from_dict(first["body"]) and request.recorded["fitness"] == first["fitness"]

    out = tmp_path / "elsewhere" / "arm.gif"  # outside the run, which the other tests share
    code = main(["animate", str(shared_run), "--body", "0.25,0.2,0.1", "--episodes", "1", "--size", "48", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file() and Image.open(out).size == (48, 48)
    assert "body 0.25_0.2_0.1 (3 joints, 0.55 m)" in printed and "fitness" in printed


@pytest.mark.parametrize(
    "change, words",
    [
        ({"individual": 999}, "Individual 999 is not in"),
        ({"episodes": 4}, r"^--episodes \(episodes\) 4: .*choose 1 to 3 of them"),
        ({"episodes": 0}, r"^--episodes \(episodes\) 0: .*choose 1 to 3 of them"),
        ({"frame_size": 1000}, r"^--size \(frame_size\) 1000: .*16 to 640 pixels"),  # review (session 44): options named
        ({"output": "arm.png"}, "ending in .gif"),
        ({"body": Morphology(2, [0.2, 0.2])}, "does not fit the run's body space"),
        ({"body": Morphology(3, [0.2, 0.2, 0.2]), "individual": 0}, "not both"),
    ],
)
def test_bad_requests_are_refused_with_the_fix(shared_run, change, words):
    with pytest.raises(AnimationError, match=words) as refused:
        prepare_animation(shared_run, **change)
    assert "--config" not in str(refused.value), "animate has no --config: the run's body space is fixed"


def test_an_animation_too_large_for_memory_is_refused_before_anything_runs(shared_run, monkeypatch):
    """Review (session 38): every frame is held ~3 times while the GIF is built, so `--episodes 50
    --size 640` of a ppo run needed ~16 GB and ended in an out-of-memory kill without a word."""
    from morphelites import animate

    monkeypatch.setattr(animate, "MAX_ANIMATION_MB", 100)  # 3 episodes of 21 frames (40 steps) at 640 px: ~197 MB
    with pytest.raises(AnimationError, match=r"3 episodes at 640 px may take up to 63 frames and ~197 MB of memory while the GIF is built \(at most "
                                             r"100 MB\); draw fewer episodes \(--episodes\) or smaller frames"):
        prepare_animation(shared_run, episodes=3, frame_size=640)
    prepare_animation(shared_run, episodes=1, frame_size=640)


def test_runs_without_a_policy_to_animate_are_refused(tmp_path, shared_run, capsys):
    independent = _train(tmp_path / "independent", shared=False)
    with pytest.raises(AnimationError, match="independent-mode run: each body's PPO policy is dropped"):
        prepare_animation(independent)
    with pytest.raises(AnimationError, match="no config.json"):
        prepare_animation(tmp_path)
    with pytest.raises(AnimationError, match="not a directory"):
        prepare_animation(tmp_path / "missing")
    copy = tmp_path / "copy"  # the shared run with every learner checkpoint torn, then with none
    (copy / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "results.jsonl", "archive.csv"):
        (copy / name).write_bytes((shared_run / name).read_bytes())
    for checkpoint in (shared_run / "checkpoints").glob("learner-*.pkl"):
        (copy / "checkpoints" / checkpoint.name).write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(AnimationError, match="None of the learner checkpoints .* loads: .* truncated"):
        prepare_animation(copy)
    for checkpoint in (copy / "checkpoints").iterdir():
        checkpoint.unlink()
    with pytest.raises(AnimationError, match="holds no learner checkpoint"):
        prepare_animation(copy)
    assert main(["animate", str(independent)]) == 2
    assert "morphelites: error: " in capsys.readouterr().err
    assert not (independent / "animations").exists(), "nothing is written for a refused request"


def test_a_run_made_with_more_workers_than_this_machine_allows_is_animated(tmp_path, shared_run):
    """Seen in review: animate checked the stored worker count against this machine's cores, so a
    64-worker cluster run could not be animated on a laptop; animate starts no workers."""
    copy = tmp_path / "cluster"
    shutil.copytree(shared_run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["settings"]["evolution"].update(max_workers=1024, enable_multiprocess=True)
    (copy / "config.json").write_text(json.dumps(config))
    request = prepare_animation(copy, episodes=1, frame_size=32)
    assert request.policy_source.name.startswith("learner-")


def test_a_ppo_run_on_bodies_is_animated_from_its_policy_file(tmp_path):
    config = write_json(tmp_path / "tiny.json", {k: TINY[k] for k in ("ppo", "env")})
    out = tmp_path / "ppo"
    assert main(["ppo", "--body", "0.2,0.2,0.15", "--steps", "256", "--eval-episodes", "2", "--config", str(config),
                 "--output", str(out), "--quiet"]) == 0  # fmt: skip
    request = prepare_animation(out, frame_size=32)
    assert request.body == Morphology(3, [0.2, 0.2, 0.15]) and request.policy_source.name == "policy.pt"
    result = render_animation(request)
    per_body = json.loads((out / "summary.json").read_text())["per_body"][0]
    assert result.evaluation.fitness == pytest.approx(per_body["fitness"], abs=1e-12), "the run's own evaluation, again"
    with pytest.raises(AnimationError, match="A ppo run has no individuals"):
        prepare_animation(out, individual=0)
    stored = (out / "config.json").read_text()
    (out / "config.json").write_text(json.dumps({**json.loads(stored), "eval_episodes": "abc"}))
    with pytest.raises(AnimationError, match=r"config.json's eval_episodes \('abc'\) and eval_seed"):
        prepare_animation(out)  # a hand-edited file: named, not a bare "invalid literal for int()"
    (out / "config.json").write_text(stored)
    (out / "policy.pt").write_bytes((out / "policy.pt").read_bytes()[:200])
    with pytest.raises(AnimationError, match="policy.pt cannot be loaded"):
        prepare_animation(out)
    (out / "policy.pt").unlink()
    with pytest.raises(AnimationError, match="has no policy.pt"):
        prepare_animation(out)


def test_the_observer_sees_every_step_and_changes_nothing():
    from morphelites.policy_numpy import NumpyActorCritic, reach_policy_spec

    actor = NumpyActorCritic(reach_policy_spec(6, hidden_dim=16))
    body, env = Morphology(3, [0.2, 0.2, 0.15]), EnvConfig(max_episode_steps=12)
    seen: list[tuple[int, bool]] = []
    watched = evaluate(actor, body, 2, seed=5, env_config=env, on_step=lambda i, e, done: seen.append((i, done)))
    assert watched == evaluate(actor, body, 2, seed=5, env_config=env)
    for episode in (0, 1):
        mine = [done for i, done in seen if i == episode]
        assert mine[0] is False and mine[-1] is True and mine.count(True) == 1, "a reset, then steps; the last ends it"
    assert len(seen) - 2 == watched.env_steps, "one call per reset and one per env step"


def test_animation_gif_plays_each_frame_for_its_time_and_holds_each_ending():
    episodes = [[np.full((8, 10, 3), 40 * k, np.uint8) for k in range(4)], [np.full((8, 10, 3), 250, np.uint8)]]
    data = animation_gif(episodes, frame_s=0.04, captions=["one", "two"], hold_s=0.5)
    image = Image.open(io.BytesIO(data))
    assert image.format == "GIF" and image.size == (10, 8) and image.info.get("loop") == 0
    _, seconds = _gif_frames_and_seconds(io.BytesIO(data))
    assert seconds == pytest.approx(5 * 0.04 + 2 * 0.5)
    for bad, words in (({"frame_s": 0.01}, "at least 0.02"), ({"captions": ["x"]}, "one per episode")):
        with pytest.raises(ValueError, match=words):
            animation_gif(episodes, **{"frame_s": 0.04, **bad})
    with pytest.raises(ValueError, match="one size"):
        animation_gif([[np.zeros((8, 10, 3), np.uint8), np.zeros((9, 10, 3), np.uint8)]], 0.04)


def test_animation_gif_plays_in_real_time_when_frames_are_not_whole_hundredths():
    # frame_skip 3 gives 45 ms frames; GIF stores hundredths, and rounding each frame alone made
    # every frame 40 ms, 11% fast.
    episodes = [[np.full((8, 10, 3), 10 * k, np.uint8) for k in range(20)]]
    image = Image.open(io.BytesIO(animation_gif(episodes, frame_s=0.045, hold_s=0.0)))
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        durations.append(image.info["duration"])
    assert sum(durations) == 900 and set(durations) == {40, 50}

