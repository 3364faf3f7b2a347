"""The real entry point, end to end with tiny budgets, and its refusals of bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, refuse_with_a_quota, start_morphelites
from morphelites.cli import main


def test_ppo_on_a_body_writes_a_complete_run_directory(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("ppo", "--steps", "2048", "--num-envs", "4", "--eval-episodes", "3", "--output", str(out), "--quiet",
                     "--body", "0.2,0.2,0.15", "--body", '{"link_lengths": [0.1, 0.1, 0.1, 0.1]}')  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("config.json", "training.log", "metrics.csv", "summary.json", "policy.pt"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG", "the learning curves"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 2048 and summary["status"] == "completed"
    assert len(summary["per_body"]) == 2 and 0 <= summary["eval_fitness"] <= 1
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("env_steps,") and len(rows) == 1 + 4
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["model"]["observation_dim"] == 8 * 6 + 6
    assert config["settings"]["ppo"]["update_epochs"] == 10, "single-policy training's default, recorded"
    # Review (session 44): the evolution section's eval_episodes/eval_seed contradicted the run's own
    assert set(config["settings"]) == {"body_space", "env", "model", "ppo"}, "only the sections a ppo run reads"
    assert (config["eval_episodes"], config["eval_seed"]) == (3, 10_000)


def test_ppo_on_a_gymnasium_task(run_cli, tmp_path):
    out = tmp_path / "gym"
    result = run_cli("ppo", "--env", "InvertedPendulum-v5", "--steps", "1024", "--num-envs", "2", "--eval-episodes", "2",
                     "--output", str(out), "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"] == "InvertedPendulum-v5" and summary["eval_episodes"] == 2 and summary["updates"] == 4
    # +1 per step upright. The bar is what doing nothing gets on the same evaluation episodes
    # (zero force keeps the pole up 19-35 steps), measured here, not a figure from an earlier run.
    import gymnasium as gym
    import numpy as np

    config = json.loads((out / "config.json").read_text())
    assert set(config["settings"]) == {"model", "ppo"}, "a Gymnasium task reads neither env nor body_space"
    idle = []
    for i in range(config["eval_episodes"]):
        env = gym.make("InvertedPendulum-v5")
        env.reset(seed=config["eval_seed"] + i)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
            total, done = total + reward, terminated or truncated
        idle.append(total)
        env.close()
    assert summary["eval_mean_return"] > 2 * max(idle), (summary, idle)
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--body", "0.2,0.9,0.2"], "link_lengths[1] is 0.9 m, outside the allowed range"),
        (["--body", "0.2,abc"], "comma-separated link lengths"),
        (["--body", "0.2,0.2"], "num_links is 2, outside"),
        (["--scene", "forest"], "env.scene is 'forest'"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--num-envs", "0"], "ppo.num_envs is 0"),
        (["--env", "NoSuchEnv-v0"], "NoSuchEnv"),
        (["--env", "CartPole-v1"], "Discrete action space"),
        (["--config", "/nonexistent/config.json"], "does not exist"),
        (["--mixed", "3", "--body", "0.2,0.2,0.2"], "either --body or --mixed"),
        (["--mixed", "5", "--num-envs", "4"], "5 bodies but 4 envs (ppo.num_envs): each env trains on one body"),
        # Seen in review: a traceback (RecursionError) and exit 1
        (["--body", '{"a": ' + "[" * 5000 + "]" * 5000 + "}"], "is not valid JSON"),
        # Seen in review: a huge --mixed drew all its bodies first, and hung
        (["--mixed", "100000000"], "100000000 bodies but 16 envs"),
        (["--mixed", "5000"], "Give at most 4096 bodies (ppo.num_envs goes up to 4096)"),  # was: --num-envs 5000
        (["--mixed", "20"], "Give --num-envs 20 or more, or fewer bodies"),
        (["--body", "0.2,0.2,0.2", "--body", "0.1,0.1,0.1", "--num-envs", "1"], "2 bodies but 1 envs"),
        (["--env", ""], "--env is empty"),
        (["--env", "Pendulum-v1", "--mixed", "0"], "cannot be combined with --body or --mixed"),
        (["--steps", "many"], "invalid int value"),
        # Seen in review: a traceback after the run directory was made, or memory running out after training
        (["--steps", "100000000000000000000000"], "more than 10,000,000,000,000"),
        (["--eval-episodes", "100000000"], "--eval-episodes is 100,000,000, more than 100,000"),
        (["--env", ":Reacher-v5"], "--env ':Reacher-v5' could not be made (ValueError"),
        # Found in review: an empty --config (a job script's unset variable) meant the defaults
        (["--config", ""], "--config is empty"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(capsys, tmp_path, args, words):
    out = tmp_path / "never"
    assert _main_exit_code("ppo", "--output", str(out), *args) == 2
    assert words in capsys.readouterr().err
    assert not out.exists()


def _main_exit_code(*argv: str) -> int:
    """Exit code of the CLI's main() run in this process (argparse errors raise SystemExit)."""
    try:
        return main(list(argv))
    except SystemExit as stop:
        return int(stop.code)


def test_a_non_empty_output_directory_is_never_overwritten(run_cli, tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    result = run_cli("ppo", "--output", str(tmp_path), "--steps", "10")
    assert result.returncode == 2
    assert "already holds files" in result.stderr and "--output" in result.stderr
    assert "--resume" not in result.stderr, "morphelites ppo has no --resume"
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_bad_json_config_file(run_cli, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"ppo": {"learning_rat": 0.001}}')
    result = run_cli("ppo", "--config", str(bad), "--output", str(tmp_path / "x"))
    assert result.returncode == 2 and "Did you mean 'learning_rate'" in result.stderr


@pytest.mark.parametrize("argv, suggestion", [
    (["animate", "run", "--indivdual", "3"], "Did you mean --individual?"),  # one of a mutually exclusive pair
    (["train", "--resume-if-exits"], "Did you mean --resume-if-exists?"),  # (a prefix would be taken as an abbreviation)
    (["ppo", "--num-evns", "4"], "Did you mean --num-envs?"),
    # Seen in review: "unrecognized arguments: --quiet. Did you mean --quiet?"
    (["--quiet", "train"], "--quiet belongs after the subcommand: morphelites train --quiet"),
    # Found in review: `train --steps N` was taken as --steps-per-individual N (ppo's --steps is a total).
    (["train", "--steps", "300000"], "Options are not abbreviated: did you mean --steps-per-individual?"),
    (["train", "--max", "3"], "did you mean --max-env-steps or --max-wall-time?"),
    (["train", "--serial", "--workers", "2"], "argument --workers: not allowed with argument --serial"),
    # Found in review: "argument command: invalid choice: '2'"
    (["--workers", "2", "train"], "--workers belongs after the subcommand: morphelites train --workers"),
    # Review (session 44): these said "Remove it, or put it after the right subcommand" / "give them" /
    # "give the option a value" (a value was given: one starting with '-' reads as an option)
    (["ppo", "--workers", "2"], "It is an option of `morphelites train`, not of `morphelites ppo`."),
    (["train", "--size", "3"], "It is an option of `morphelites animate`, not of `morphelites train`."),
    ([], "the following arguments are required: command; give a subcommand: train, ppo or animate."),
    (["ppo", "--body", "-0.2,0.2"], "one that starts with '-' goes after '=', e.g. --output=-run1"),
    # ... and before the subcommand it was "argument command: invalid choice: '5'"
    (["--steps", "5", "train"], "It is an option of `morphelites ppo`, not of `morphelites train`."),
    (["--size", "3", "train"], "It is an option of `morphelites animate`, not of `morphelites train`."),
    (["--step", "5", "train"], "Options are not abbreviated: did you mean --steps-per-individual?"),  # review: "invalid choice"
    (["--steps", "5"], "--steps comes after a subcommand: morphelites train|ppo|animate --steps"),
    (["animate", "run", "--quiet"], "It is an option of `morphelites ppo` and `morphelites train`, not of `morphelites animate`."),
])  # fmt: skip
def test_a_mistyped_option_gets_the_closest_option_of_its_subcommand(capsys, argv, suggestion):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert suggestion in capsys.readouterr().err


def test_help_before_a_subcommand_is_still_help(capsys):
    """The check of options given before the subcommand lets --help through."""
    assert _main_exit_code("--help") == 0 and "{ppo,train,animate}" in capsys.readouterr().out


def test_an_output_path_that_cannot_be_looked_at_is_bad_input_not_a_traceback(capsys, tmp_path):
    """Found in review: a name too long (or a folder on the path one may not enter) raised OSError
    from the directory checks: a traceback and exit 1."""
    out = str(tmp_path / ("a" * 300))
    for argv in (["train", "--output", out], ["train", "--resume-if-exists", "--output", out],
                 ["train", "--resume", "--output", out], ["ppo", "--output", out + "/run"]):  # fmt: skip
        assert _main_exit_code(*argv) == 2, argv
        err = capsys.readouterr().err
        assert "Cannot use output directory" in err and "File name too long" in err, (argv, err)
    assert not any(tmp_path.iterdir())


def test_train_refuses_an_empty_config_path_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "run"
    assert _main_exit_code("train", "--config", "", "--output", str(out)) == 2
    assert "--config is empty" in capsys.readouterr().err and not out.exists()


def test_ppo_checks_only_the_types_of_the_sections_it_does_not_use(capsys, tmp_path):
    """Found in review: ppo refused a fixed 3 x 0.2 m arm (the archive's total-length axis would
    not vary) and 64 workers (with advice to use --workers, which ppo has not), right after
    saying it ignores those sections."""
    from morphelites.config import ConfigError, Settings

    fixed = {"body_space": {"min_links": 3, "max_links": 3, "min_link_length": 0.2, "max_link_length": 0.2},
             "evolution": {"max_workers": 1024}}  # fmt: skip
    Settings.from_dict(fixed).validate("ppo")
    with pytest.raises(ConfigError):
        Settings.from_dict(fixed).validate("train")
    with pytest.raises(ConfigError, match="evolution.max_workers"):
        Settings.from_dict({"evolution": {"max_workers": "many"}}).validate("ppo")  # types still checked


def test_serial_runs_are_not_refused_for_a_worker_count_they_do_not_start():
    """Found in review: a cluster's config (max_workers 64) refused --serial on a laptop, with advice
    to use --workers, which --serial excludes."""
    from morphelites.config import ConfigError, Settings

    cluster = {"evolution": {"max_workers": 1024}}
    Settings.from_dict({"evolution": {**cluster["evolution"], "enable_multiprocess": False}}).validate()
    with pytest.raises(ConfigError, match="workers per core"):
        Settings.from_dict(cluster).validate()


def test_ppo_says_which_config_sections_it_does_not_use(capsys, tmp_path):
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"ppo": {"num_envs": 2}, "evolution": {"evaluations": 8}, "training": {"buffer_size": 4096}}))
    only_ppo = tmp_path / "ppo.json"
    only_ppo.write_text(json.dumps({"ppo": {"num_envs": 2}}))
    # --steps 0 stops the command after the config is read, before anything is written
    assert _main_exit_code("ppo", "--config", str(both), "--output", str(tmp_path / "never"), "--steps", "0") == 2
    err = capsys.readouterr().err
    assert f"morphelites: note: {both}: `morphelites ppo` does not use the evolution and training sections (only " \
           f"`morphelites train` does); ignoring them." in err  # fmt: skip
    assert _main_exit_code("ppo", "--config", str(only_ppo), "--output", str(tmp_path / "never"), "--steps", "0") == 2
    assert "note:" not in capsys.readouterr().err
    reach = tmp_path / "reach.json"  # review (session 38): --env ignored these without a word
    reach.write_text(json.dumps({"env": {"max_episode_steps": 1000}, "body_space": {"max_links": 5}}))
    assert _main_exit_code("ppo", "--env", "Pendulum-v1", "--config", str(reach), "--output", str(tmp_path / "never"),
                           "--steps", "0") == 2  # fmt: skip
    assert f"morphelites: note: {reach}: `morphelites ppo --env` does not use the env and body_space sections (they " \
           f"set up the reaching task of our bodies); ignoring them." in capsys.readouterr().err  # fmt: skip
    assert _main_exit_code("ppo", "--config", str(reach), "--output", str(tmp_path / "never"), "--steps", "0") == 2
    assert "note:" not in capsys.readouterr().err


def test_ppo_env_checks_the_reach_task_sections_it_ignores_for_their_types_only(capsys, tmp_path):
    """Review (session 44): `ppo --env` said it ignored the env and body_space sections, then
    refused the run over their values (env.frame_skip 0, min_links above max_links). Now they
    are checked as the evolution and training sections are for ppo: types only."""
    from morphelites.config import ConfigError, Settings

    odd = {"env": {"frame_skip": 0}, "body_space": {"min_links": 3, "max_links": 2}}
    config = tmp_path / "odd.json"
    config.write_text(json.dumps(odd))
    # --steps 0 is refused right after the config: the first error is the one the config left
    assert _main_exit_code("ppo", "--env", "Pendulum-v1", "--config", str(config), "--output", str(tmp_path / "never"),
                           "--steps", "0") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "error: --steps must be at least 1, got 0" in err, err
    assert _main_exit_code("ppo", "--config", str(config), "--output", str(tmp_path / "never"), "--steps", "0") == 2
    assert "error: body_space.min_links (3) is larger" in capsys.readouterr().err, "our reaching task still needs them right"
    assert Settings.from_dict(odd).validate("ppo", reach_task=False).env.frame_skip == 0
    with pytest.raises(ConfigError, match="env.frame_skip"):  # a wrong type is still refused
        Settings.from_dict({"env": {"frame_skip": "4"}}).validate("ppo", reach_task=False)
    with pytest.raises(ValueError, match="reach_task=False is for command 'ppo'"):
        Settings().validate("train", reach_task=False)


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_ctrl_c_while_the_libraries_load_exits_130_without_a_traceback(monkeypatch, capsys, tmp_path):
    from morphelites import cli

    def interrupted(args):
        raise KeyboardInterrupt  # a Ctrl-C during the seconds that pyribs, matplotlib and mujoco take to import

    monkeypatch.setattr(cli, "_train_trainer", interrupted)
    assert main(["train", "--output", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == "morphelites: interrupted\n"


#: The two stop signals, with the exit code, summary.json status and training.log name of each.
_BY_CTRL_C_AND_SIGTERM = pytest.mark.parametrize(
    "sig, code, status, name",
    [(signal.SIGINT, 130, "interrupted", "Ctrl-C"), (signal.SIGTERM, 143, "terminated", "SIGTERM")],
    ids=["ctrl-c", "sigterm"],
)


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
@pytest.mark.parametrize(
    "sig, code, status, name",
    [(signal.SIGINT, 130, "interrupted", "Ctrl-C"), (signal.SIGTERM, 143, "terminated", "SIGTERM"),
     # a closed terminal and a scheduler's warning, seen in review to kill ppo outright: the same handler as
     # SIGTERM's (test_ppo_handles_every_stop_signal_alike), so `make test` runs SIGTERM's whole run only
     pytest.param(signal.SIGHUP, 143, "terminated", "SIGHUP", marks=pytest.mark.slow),
     pytest.param(signal.SIGUSR1, 143, "terminated", "SIGUSR1", marks=pytest.mark.slow)],
    ids=["ctrl-c", "sigterm", "sighup", "sigusr1"],
)
def test_ctrl_c_or_sigterm_stops_ppo_after_the_update_under_way_with_its_counts_and_evaluates_that_policy(
        tmp_path, sig, code, status, name):  # fmt: skip
    out = tmp_path / "run"
    proc = _start_ppo(tmp_path, "--steps", "10000000", "--eval-episodes", "2")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_metric_rows(out)) < 2:
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    rows = _metric_rows(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == status and summary["updates"] == len(rows) >= 2
    assert summary["env_steps"] == int(float(rows[-1]["env_steps"])) == 256 * len(rows), "the counts of the updates made"
    assert 0 <= summary["eval_fitness"] <= 1, "the policy as it stopped is evaluated"
    assert (out / "policy.pt").is_file()
    assert f"{name}: stopped after update {len(rows)}" in (out / "training.log").read_text()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
@_BY_CTRL_C_AND_SIGTERM
def test_a_signal_during_ppos_final_evaluation_cuts_it_short_and_summary_json_keeps_the_training_counts(
        tmp_path, sig, code, status, name):  # fmt: skip
    out = tmp_path / "run"
    proc = _start_ppo(tmp_path, "--steps", "256", "--eval-episodes", "2000")  # one update; the evaluation takes ~40 s
    deadline = time.monotonic() + 120
    log = out / "training.log"
    # the line the run writes once a signal cuts the evaluation short (policy.pt appears a little
    # earlier, and a signal before the line skips the evaluation instead)
    while time.monotonic() < deadline and not (log.exists() and "Final evaluation:" in log.read_text()):
        time.sleep(0.05)
    proc.send_signal(sig)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert time.monotonic() - sent < 15, "the evaluation is cut short, not run to its end"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == status and summary["evaluation"] == "cut short"
    assert summary["env_steps"] == 256 and summary["updates"] == 1, "the training counts"
    assert not [key for key in summary if key.startswith("eval_")] and "per_body" not in summary
    assert f"{name} during the final evaluation: stopped it" in (out / "training.log").read_text()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
@pytest.mark.parametrize("times", [1, 2], ids=["once", "twice"])
@_BY_CTRL_C_AND_SIGTERM
def test_a_signal_while_ppo_sets_up_its_run_ends_it_with_a_summary_and_trains_nothing(tmp_path, sig, code, status, name,
                                                                                      times):  # fmt: skip
    out = tmp_path / "run"
    # The signal comes once the run directory holds config.json, while the metrics writer is made
    # (TensorBoard's import takes a moment there): before, SIGTERM killed the process on the spot and
    # left a directory without summary.json; twice (session 37's review), exit 130 and no summary.json.
    script = (f"import os, signal, sys\n"
              f"import morphelites.ppo_run as ppo_run\n"
              f"from morphelites.cli import main\n"
              f"real = ppo_run.MetricsWriter\n"
              f"def signalled(*args, **kwargs):\n"
              f"    for _ in range({times}):\n"
              f"        os.kill(os.getpid(), {int(sig)})\n"
              f"    return real(*args, **kwargs)\n"
              f"ppo_run.MetricsWriter = signalled\n"
              f"sys.exit(main(['ppo', '--quiet', '--num-envs', '2', '--steps', '100000', '--output', {str(out)!r}]))\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == code, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == status and summary["evaluation"] == "not started"
    assert summary["env_steps"] == 0 and summary["updates"] == 0
    assert not (out / "policy.pt").exists() and not _metric_rows(out)
    said = (f"{name} before training started: nothing was trained or evaluated" if times == 1 else
            f"A second stop signal ({name}) while the run was set up")  # fmt: skip
    assert said in (out / "training.log").read_text()
    from morphelites.animate import AnimationError, prepare_animation

    with pytest.raises(AnimationError, match="was stopped .* before training started, so there is no policy"):
        prepare_animation(out)


def _policy_weights(out):
    import torch

    from morphelites.policy import ActorCritic

    state = torch.load(out / "policy.pt", map_location="cpu", weights_only=False)["policy"]
    return ActorCritic.from_policy_state(state).flat_weights()


def test_ppo_under_one_seed_trains_the_same_policy_twice(tmp_path, torch_state_restored):
    """The initial weights come from --seed too (they did not: two runs started from different
    random weights)."""
    import numpy as np
    import torch

    runs = [tmp_path / "a", tmp_path / "b"]
    torch.set_num_threads(2)
    torch.manual_seed(11)
    caller_rng = torch.get_rng_state()
    for out in runs:
        assert main(["ppo", "--quiet", "--steps", "256", "--num-envs", "2", "--eval-episodes", "1", "--seed", "3",
                     "--output", str(out)]) == 0  # fmt: skip
    # From Python the run's process is the caller's: its torch threads and random stream are given back.
    assert torch.get_num_threads() == 2 and torch.equal(torch.get_rng_state(), caller_rng)
    first, second = (_policy_weights(out) for out in runs)
    assert first.size and np.array_equal(first, second)
    assert json.loads((runs[0] / "summary.json").read_text())["eval_fitness"] == json.loads(
        (runs[1] / "summary.json").read_text())["eval_fitness"]


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_second_ctrl_c_saves_the_policy_the_last_update_left_not_the_live_model(tmp_path, monkeypatch,
                                                                                torch_state_restored):  # fmt: skip
    """Seen in review: after a second signal policy.pt held the live model, whose normaliser had
    by then folded in the next rollout (or which was half-way through an update): statistics its
    weights never trained with. Two signals come 10 env steps into the second rollout; policy.pt
    must be the policy of a run that stopped after its one update (--steps 256): same weights,
    same normaliser."""
    import numpy as np
    import torch

    from morphelites.envs.reach import ReachEnv

    args = ["ppo", "--quiet", "--num-envs", "2", "--eval-episodes", "1", "--seed", "5"]
    assert main([*args, "--steps", "256", "--output", str(tmp_path / "one_update")]) == 0
    real_step, steps = ReachEnv.step, [0]

    def step(self, action):
        steps[0] += 1
        if steps[0] == 256 + 10:  # 2 envs x 128 steps a rollout: 10 steps into the second
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, action)

    monkeypatch.setattr(ReachEnv, "step", step)
    out = tmp_path / "stopped"
    assert main([*args, "--steps", "100000", "--output", str(out)]) == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 1 and summary["evaluation"] == "cut short"
    saved, reference = (torch.load(run / "policy.pt")["policy"] for run in (out, tmp_path / "one_update"))
    for key, value in reference["obs_rms"].items():
        assert np.array_equal(np.asarray(saved["obs_rms"][key]), np.asarray(value)), f"normaliser {key}"
    assert np.array_equal(_policy_weights(out), _policy_weights(tmp_path / "one_update"))


@pytest.mark.parametrize("refused", ["config.json", "tensorboard/"])
def test_ppo_whose_first_writes_are_refused_is_a_clear_error_and_the_same_command_then_runs(tmp_path, monkeypatch, capsys,
                                                                                             refused):  # fmt: skip
    """Seen in review: an OSError in ppo's set-up (a disk quota, which the start check's free-space
    test cannot see) came out as a traceback (exit 1), and the files set-up had made (training.log,
    or config.json when tensorboard/ was refused) then made every retry onto that --output refused
    as a directory that holds files but no run, or a ppo run that is never overwritten."""
    import morphelites.ppo_run as ppo_run
    from morphelites.runs.run_dir import RunDirectory

    owner, name = (RunDirectory, "write_config") if refused == "config.json" else (ppo_run, "MetricsWriter")
    refuse_with_a_quota(monkeypatch, owner, name, refused)
    out = tmp_path / "run"
    args = ["ppo", "--quiet", "--steps", "64", "--num-envs", "2", "--eval-episodes", "1", "--output", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Cannot write to the run directory" in err and "Disk quota exceeded" in err and "Traceback" not in err
    assert not (out / "config.json").exists() and not (out / "training.log").exists()
    monkeypatch.undo()
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_an_oserror_of_ppos_set_up_that_is_not_a_write_is_not_called_one(tmp_path, monkeypatch):
    """A second review: the set-up's OSError handler took in making the envs too (Gymnasium's
    MujocoEnv raises OSError for a missing model file; too many open files is one), reported it as
    a disk or quota problem and dropped its traceback. It is raised as it is; what the set-up had
    made is removed all the same (a third review), so the same command runs once the cause is gone."""
    import morphelites.ppo_run as ppo_run

    def no_env(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(ppo_run, "ReachEnv", no_env)
    out = tmp_path / "run"
    args = ["ppo", "--quiet", "--steps", "64", "--num-envs", "2", "--eval-episodes", "1", "--output", str(out)]
    with pytest.raises(OSError, match="Too many open files"):
        main(args)
    assert not (out / "training.log").exists() and not (out / "config.json").exists()
    monkeypatch.undo()
    assert main(args) == 0


def test_without_a_body_ppo_trains_the_default_one_that_fits_the_configs_body_space(tmp_path):
    # Seen in review: the default body had links of 0.175 m whatever the space, and a space of
    # 0.2-0.3 m links refused it as if the user had given it.
    config = tmp_path / "space.json"
    config.write_text(json.dumps({"body_space": {"min_link_length": 0.2, "max_link_length": 0.3}}))
    out = tmp_path / "run"
    assert main(["ppo", "--quiet", "--steps", "64", "--num-envs", "2", "--eval-episodes", "1", "--config", str(config),
                 "--output", str(out)]) == 0  # fmt: skip
    assert json.loads((out / "config.json").read_text())["bodies"] == [{"num_links": 3, "link_lengths": [0.25] * 3,
                                                                        "total_length": 0.75}]  # fmt: skip


def test_a_second_ppo_onto_the_same_new_output_started_at_the_same_moment_is_refused(tmp_path, monkeypatch, capsys):
    """Both pass the check of an empty --output; the first to lock it runs. Here the other one has
    already written its config.json when this one gets the lock."""
    from morphelites.runs import RunDirectory

    out = tmp_path / "run"
    prepare = RunDirectory.prepare

    def raced(self, *args, **kwargs):
        prepared = prepare(self, *args, **kwargs)
        (out / "config.json").write_text(json.dumps({"command": "ppo", "settings": {}}))  # the other run's
        return prepared

    monkeypatch.setattr(RunDirectory, "prepare", raced)
    assert main(["ppo", "--quiet", "--steps", "64", "--num-envs", "2", "--eval-episodes", "1", "--output", str(out)]) == 2
    assert "`morphelites ppo` run" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text()) == {"command": "ppo", "settings": {}}, "the other run's is kept"
    assert RunDirectory(out).in_use_by() is None, "the lock is let go"


def test_ppo_that_cannot_write_its_directory_stops_with_a_clear_error_and_a_failed_summary(tmp_path, monkeypatch, capsys):
    """A full disk mid-run (here an OSError from the metrics writer's third row): exit 1 with a
    message that says what to do, no traceback, summary.json with status failed, and what was
    written before kept."""
    import morphelites.ppo_run as ppo_run

    real_write, calls = ppo_run.MetricsWriter.write, []

    def write(self, record):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_write(self, record)

    monkeypatch.setattr(ppo_run.MetricsWriter, "write", write)
    out = tmp_path / "run"
    assert main(["ppo", "--quiet", "--steps", "2048", "--num-envs", "2", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "morphelites: error: Could not write to the run directory" in err and "No space left on device" in err
    assert "Free disk space" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert len(_metric_rows(out)) == 2, "the rows written before the failure are kept"
    from morphelites.animate import AnimationError, prepare_animation

    with pytest.raises(AnimationError, match="failed before it could write one"):
        prepare_animation(out)


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_ppo_whose_curves_cannot_be_drawn_keeps_its_completed_summary(tmp_path, monkeypatch, capsys):
    """Seen in review (session 37): an OSError from curves.png, drawn after summary.json, went to
    the disk-full path, which replaced the finished run's summary with a bare "failed" one."""
    import morphelites.ppo_run as ppo_run

    def no_room(run, title):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ppo_run, "_write_curves", no_room)
    out = tmp_path / "run"
    assert main(["ppo", "--quiet", "--steps", "256", "--num-envs", "2", "--eval-episodes", "1", "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == 256 and "eval_fitness" in summary
    assert "Could not draw curves.png (OSError" in (out / "training.log").read_text()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_ppo_that_raises_mid_run_writes_a_failed_summary_and_the_traceback_then_raises(tmp_path, monkeypatch):
    """Seen in review (session 37): only an OSError got a summary.json; any other exception (a
    Gymnasium task's env that raises, a bug) left config.json alone and no traceback in the log."""
    import morphelites.ppo_run as ppo_run
    from morphelites.config import Settings
    from morphelites.morphology import Morphology
    from morphelites.runs import RunDirectory

    def broken(*args, **kwargs):
        raise FloatingPointError("simulated: a task's step raised")

    monkeypatch.setattr(ppo_run, "train_policy", broken)
    out = tmp_path / "run"
    request = ppo_run.PPORunRequest(Settings.from_dict({"ppo": {"num_envs": 2}}), str(out), total_steps=256,
                                    bodies=(Morphology(3, [0.2, 0.2, 0.2]),), quiet=True)  # fmt: skip
    with pytest.raises(FloatingPointError, match="simulated"):
        ppo_run.run_ppo(request)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "FloatingPointError: simulated: a task's step raised" in summary["error"]
    log = (out / "training.log").read_text()
    assert "Unexpected error; the run stops." in log and "Traceback" in log
    assert RunDirectory(out).in_use_by() is None, "the lock is let go"


def test_ppo_from_python_records_the_epochs_it_uses_and_refuses_a_body_outside_the_space(tmp_path):
    """Seen in review (session 37): run_ppo() from Python left update_epochs null in config.json
    (the CLI fills it in) and trained a body the CLI refuses."""
    import morphelites.ppo_run as ppo_run
    from morphelites.config import Settings
    from morphelites.morphology import Morphology

    settings = Settings.from_dict({"ppo": {"num_envs": 2}})
    assert settings.ppo.update_epochs is None
    out = tmp_path / "run"
    request = ppo_run.PPORunRequest(settings, str(out), total_steps=64, bodies=(Morphology(3, [0.2, 0.2, 0.2]),),
                                    eval_episodes=1, quiet=True)  # fmt: skip
    assert ppo_run.run_ppo(request)["status"] == "completed"
    recorded = json.loads((out / "config.json").read_text())["settings"]["ppo"]["update_epochs"]
    assert isinstance(recorded, int) and recorded >= 1
    too_long = ppo_run.PPORunRequest(settings, str(tmp_path / "other"), total_steps=64,
                                     bodies=(Morphology(3, [0.2, 0.2, 50.0]),), quiet=True)  # fmt: skip
    with pytest.raises(ValueError, match="outside"):
        ppo_run.run_ppo(too_long)
    assert not (tmp_path / "other").exists(), "refused before the run directory is made"


def test_ppo_progress_counts_up_to_the_steps_it_really_trains_and_shows_no_nan_before_an_episode_ends(tmp_path):
    out = tmp_path / "run"
    proc = _start_ppo(tmp_path, "--steps", "10", "--num-envs", "4", "--eval-episodes", "1")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 12, "--steps 10 is 3 steps of each of 4 envs"
    log = (out / "training.log").read_text()
    assert "for 12 env steps (--steps 10 rounded up to a whole step of every env)" in log
    assert "steps 12/12  return n/a  success n/a" in log and "return nan" not in log


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_ppo_restores_the_signal_handlers_it_replaced():
    from morphelites.ppo_run import _StopSignals

    def mine(signum, frame):  # pragma: no cover - never called
        pass

    before = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _StopSignals():
            assert signal.getsignal(signal.SIGINT) is not mine and signal.getsignal(signal.SIGTERM) is not mine
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _start_ppo(tmp_path, *args: str) -> subprocess.Popen:
    """``morphelites ppo --quiet`` into tmp_path/run, in a subprocess, with 2 envs of 128 steps a rollout
    (256 env steps an update) unless ``args`` say otherwise."""
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"ppo": {"num_steps": 128}}))
    return start_morphelites("ppo", "--quiet", "--num-envs", "2", "--config", str(config), "--output", str(tmp_path / "run"),
                             *args)  # fmt: skip


def _metric_rows(out) -> list[dict[str, str]]:
    path = out / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_takes_its_mode_from_the_config_unless_mode_is_given(tmp_path):
    """Found in review: a config's evolution.use_shared_ppo = false (e.g. an independent run's
    settings, saved as the CLI's own message suggests) started a shared run without a word."""
    from morphelites.cli import _train_trainer, build_parser

    config = tmp_path / "independent.json"
    config.write_text(json.dumps({"evolution": {"use_shared_ppo": False}}))

    def mode(*options: str) -> str:
        args = build_parser().parse_args(["train", "--config", str(config), "--serial", "--quiet", *options])
        return _train_trainer(args).mode

    assert mode("--output", str(tmp_path / "a")) == "independent"
    assert mode("--output", str(tmp_path / "b"), "--mode", "shared") == "shared", "the option still decides"
    config.write_text("{}")
    assert mode("--output", str(tmp_path / "c")) == "shared", "the default"
    # the guide's aliases (DESIGN.md: names scripts rely on)
    assert mode("--output", str(tmp_path / "d"), "--train") == "independent"
    config.write_text(json.dumps({"evolution": {"use_shared_ppo": False}}))
    assert mode("--output", str(tmp_path / "e"), "--train-shared") == "shared"


def test_a_ctrl_c_while_the_command_line_module_loads_exits_130_without_a_traceback(tmp_path):
    """Seen in review: a Ctrl-C in the command's first ~0.3 s (numpy loading) printed a traceback.
    The interrupt is raised here as the module is imported, where a real one would land."""
    from importlib.metadata import entry_points

    assert entry_points(group="console_scripts")["morphelites"].value == "morphelites.console:console_main"
    script = (
        "import sys\n"
        "class Interrupting:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'morphelites.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupting())\n"
        "from morphelites.console import console_main\n"
        "sys.exit(console_main())\n"
    )
    result = subprocess.run([sys.executable, "-c", script, "train"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert (result.returncode, result.stderr) == (130, "morphelites: interrupted\n")


def test_a_resume_to_the_default_directory_of_the_other_mode_names_the_one_that_holds_the_run(tmp_path, monkeypatch,
                                                                                               capsys):
    """Seen in review: after an independent run started from a config file, a plain --resume looked
    in the shared default and said to drop --resume, which would have started a new shared run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "map_elites_results").mkdir()
    (tmp_path / "map_elites_results" / "config.json").write_text('{"mode": "independent", "settings": {}}')
    assert main(["train", "--resume", "--evaluations", "3"]) == 2
    error = capsys.readouterr().err
    assert "map_elites_shared_ppo_results (the default for a shared run) holds no run, but map_elites_results does" in error
    assert "Give --output map_elites_results (or --mode independent)" in error
    assert not (tmp_path / "map_elites_shared_ppo_results").exists()


_LOSES_A_CTRL_C = {
    # Python drops an exception raised in a finalizer: the Ctrl-C was printed as "Exception ignored" and lost
    "dropped in a finalizer": "weakref.finalize(Thing(), lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))",
    # a library turns it into its own error (numpy's C extension reports an ImportError)
    "turned into another error": (
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(0.2)\n"
        "except KeyboardInterrupt:\n"
        "    raise ValueError('not a valid PEP 3118 buffer format string')"),
}


@pytest.mark.parametrize("how", list(_LOSES_A_CTRL_C))
def test_a_ctrl_c_that_python_or_a_library_would_lose_while_the_command_starts_still_stops_it(tmp_path, how):
    """Found in review: a Ctrl-C handled inside a finalizer during the imports was dropped and the
    run went on to its end (seen once for real), and one a library turned into another error gave a
    traceback or a false input error. The command remembers it."""
    body = "\n".join("        " + line for line in _LOSES_A_CTRL_C[how].splitlines())
    script = (
        "import os, signal, sys, time, weakref\n"
        "class Thing: pass\n"
        "class Interrupting:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name != 'morphelites.cli':\n"
        "            return None\n"
        "        sys.meta_path.remove(self)\n"
        f"{body}\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupting())\n"
        "from morphelites.console import console_main\n"
        "sys.exit(console_main())\n"
    )
    # without the interrupt this command would stop at once on its bad input (exit 2)
    result = subprocess.run([sys.executable, "-c", script, "train", "--evaluations", "0", "--output", str(tmp_path / "r")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert (result.returncode, result.stderr) == (130, "morphelites: interrupted\n")


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_stop_signal_ignored_as_the_command_starts_stays_ignored():
    """Review: ``nohup`` ignores SIGHUP and a shell script's background job SIGINT, and the run's
    handlers replaced that: a nohup'd run stopped when the terminal closed, a background run on a
    Ctrl-C meant for the script's foreground command. Python itself leaves an ignored SIGINT so."""
    from morphelites import early_interrupt
    from morphelites.parallel.pool import STOP_SIGNALS, stop_signals_to_handle
    from morphelites.ppo_run import _StopSignals

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        assert stop_signals_to_handle() == [s for s in STOP_SIGNALS if s != signal.SIGHUP]
        with _StopSignals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        early_interrupt.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


_PPO_IMPORTS_UNDER_THE_HANDLER = """import signal, sys
late = []
def hook(event, args):
    handler = signal.getsignal(signal.SIGINT)
    if event == "import" and args[0] not in sys.modules and getattr(handler, "__qualname__", "").startswith("_StopSignals"):
        late.append(args[0])
sys.addaudithook(hook)
from morphelites.cli import main
code = main(["ppo", "--steps", "64", "--eval-episodes", "1", "--quiet", "--output", sys.argv[1]])
print(code, sorted({name.split(".")[0] for name in late if name in sys.modules}))
"""


def test_ppo_imports_no_simulator_optimiser_tensorboard_or_torch_module_while_a_second_signal_raises():
    """As the serial evolution run (review): a second Ctrl-C inside a first import of mujoco, of
    torch._dynamo and sympy (the first Adam step), TensorBoard's writer or torch.save's modules
    leaves them half made for the rest of the Python process. Only the drawing modules, imported
    while signals are held, may come later."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run([sys.executable, "-c", _PPO_IMPORTS_UNDER_THE_HANDLER, os.path.join(scratch, "run")],
                              capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    code, late = done.stdout.strip().split(" ", 1)
    assert code == "0"
    assert not {"torch", "sympy", "mujoco", "tensorboard"} & set(eval(late)), late


def test_ppo_handles_every_stop_signal_alike():
    """SIGHUP and SIGUSR1/2 stop ppo as SIGTERM does: one handler for all of them, the status and
    name by the signal (their whole runs are `make test-faults`' ones)."""
    from morphelites.parallel.pool import STOP_SIGNALS
    from morphelites.ppo_run import _StopSignals

    with _StopSignals() as stop:
        handlers = {signal.getsignal(s) for s in STOP_SIGNALS}
        assert len(handlers) == 1 and getattr(next(iter(handlers)), "__func__", None) is _StopSignals._on_signal
        os.kill(os.getpid(), signal.SIGUSR1)
        assert (stop.status, stop.name) == ("terminated", "SIGUSR1")


def test_help_states_the_defaults_config_py_has_and_where_else_a_value_comes_from(capsys):
    """Review (session 44): --help had copies of config.py's defaults (wrong once a --config or a
    resumed run gave the value), --seed had no help, and --steps-per-individual's rounding and
    --max-env-steps' overshoot were not said."""
    from morphelites.config import EvolutionConfig, PPOConfig

    assert _main_exit_code("train", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    defaults = EvolutionConfig()
    for option, value in (("--evaluations", defaults.evaluations), ("--initial-random", defaults.num_initial_random),
                          ("--steps-per-individual", defaults.training_steps_per_individual), ("--seed", defaults.seed)):
        help_text = text.split(f"{option} {option[2:].upper().replace('-', '_')} ", 1)[1]
        assert help_text.split(")")[0].endswith(f"(default {value}, or the --config file's, or a resumed run's"), option
    assert "rounded up to whole segments in shared mode" in text and "come on top (default: no limit" in text
    assert _main_exit_code("ppo", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"environments stepped together (default {PPOConfig().num_envs}, or the --config file's ppo.num_envs)" in text
    assert "seed of training and of --mixed's bodies (default 0)" in text
