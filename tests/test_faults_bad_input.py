"""Bad input, tried systematically (issue #5, promise 10): every case exits with code 2 and a
one-paragraph message naming what is wrong and how to fix it, writes nothing and starts no process.

The cases run ``morphelites.cli.main`` in this process (fast); one runs the real console command.
"""

from __future__ import annotations

import json
import multiprocessing.process
import os
import shlex
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from morphelites.cli import main
from morphelites.runs import RunDirectory

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]

# (id, command line (shell words) with {cfg} for a config file written from `setup` when it is a dict or list,
#  {out} for the output directory and {tmp} for the test's directory; setup: config contents, a name from
#  SETUPS, or None; words the message must contain: the culprit and the fix)
T = "train --config {cfg} --output {out}"
#: A whole results.jsonl line as a run writes it (individual 0).
_RECORD = json.dumps({
    "id": 0, "parent_id": None, "genome": [0.5] * 7, "body": {"num_links": 3, "link_lengths": [0.2, 0.2, 0.2]},
    "fitness": 0.1, "success_rate": 0.0, "mean_return": -50.0, "final_distance": 0.4, "path_efficiency": 0.2,
    "collisions": 0.0, "policy_version": 1, "fitness_ceiling": 0.8, "training_steps": 1500, "eval_env_steps": 400,
}) + "\n"  # fmt: skip
CASES = [
    # wrong types
    ("string-for-int", T, {"training": {"buffer_size": "big"}}, ["training.buffer_size", "whole number", "without quotes"]),
    ("bool-for-int", T, {"evolution": {"evaluations": True}}, ["evolution.evaluations", "whole number", "without quotes"]),
    ("list-for-float", T, {"ppo": {"learning_rate": [0.1]}}, ["ppo.learning_rate", "[0.1]", "JSON number"]),
    ("null-for-float", T, {"ppo": {"gamma": None}}, ["ppo.gamma", "None", "JSON number"]),
    ("string-for-bool", T, {"training": {"sync": "yes"}}, ["training.sync", "'yes'", "true or false without quotes"]),
    ("string-for-list", T, {"evolution": {"measures": "num_links"}}, ["evolution.measures", "must be a list", "square brackets"]),
    ("section-not-object", T, {"ppo": 3}, ["ppo", "JSON object", "e.g."]),
    ("config-not-object", T, [1, 2], ["object", "sections", "e.g."]),
    ("config-empty-list", T, [], ["object", "list", "e.g."]),
    ("word-for-int-option", "train --workers many --output {out}", None, ["--workers", "'many'", "whole number", "--help"]),
    # out of range
    ("negative-learning-rate", T, {"ppo": {"learning_rate": -1.0}}, ["ppo.learning_rate", "-1.0", "set it to"]),
    ("gamma-above-1", T, {"ppo": {"gamma": 1.5}}, ["ppo.gamma", "1.5", "set it to"]),
    ("zero-buffer", T, {"training": {"buffer_size": 0}}, ["training.buffer_size", "set it to"]),
    ("zero-eval-episodes", T, {"evolution": {"eval_episodes": 0}}, ["evolution.eval_episodes", "set it to"]),
    ("negative-ipc-timeout", T, {"training": {"ipc_timeout": -5}}, ["training.ipc_timeout", "-5", "give 5 to 86400 s"]),
    ("negative-learner-restarts", T, {"training": {"max_learner_restarts": -1}}, ["training.max_learner_restarts", "set it to"]),
    ("zero-learner-checkpoint-every", T, {"training": {"learner_checkpoint_every": 0}}, ["learner_checkpoint_every", "set it to"]),
    ("negative-eval-seed", T, {"evolution": {"eval_seed": -3}}, ["evolution.eval_seed", "-3", "set it to"]),
    ("too-many-links", T, {"body_space": {"max_links": 50}}, ["body_space.max_links", "50", "set it to"]),
    ("zero-workers", "train --workers 0 --output {out}", None, ["--workers 0", "max_workers", "set it to"]),
    ("zero-evaluations", "train --evaluations 0 --output {out}", None, ["--evaluations 0", "evolution.evaluations", "set it to"]),
    ("zero-steps", "train --steps-per-individual 0 --output {out}", None, ["--steps-per-individual", "set it to"]),
    ("negative-wall-time", "train --max-wall-time -1 --output {out}", None, ["--max-wall-time", "max_wall_s", "set it to"]),
    ("negative-seed", "train --seed -1 --output {out}", None, ["--seed -1", "evolution.seed", "set it to"]),
    ("ppo-negative-seed", "ppo --seed -1 --output {out}", None, ["--seed", "-1", "--seed 0"]),
    ("ppo-zero-eval-episodes", "ppo --eval-episodes 0 --output {out}", None, ["--eval-episodes", "positive whole number"]),
    # inconsistent
    ("shared-memory-too-small", T, {"training": {"buffer_size": 1_000_000_000}},
     ["training.buffer_size", "MB of shared memory", "/dev/shm", "Lower training.buffer_size", "--shm-size"]),
    ("batch-above-buffer", T, {"training": {"buffer_size": 500, "min_batch_size": 1000}}, ["min_batch_size", "buffer_size", "raise"]),
    ("observation-dim-disagrees", T, {"model": {"observation_dim": 10}}, ["observation_dim", "54", "Remove"]),
    ("min-links-above-max", T, {"body_space": {"min_links": 5, "max_links": 3}}, ["min_links", "max_links", "set min_links <= max_links"]),
    ("minibatches-above-batch", "train --mode independent --config {cfg} --output {out}",
     {"ppo": {"num_envs": 2, "num_steps": 4, "num_minibatches": 16}}, ["num_minibatches", "lower"]),
    ("too-many-workers", "train --workers 1000 --output {out}", None, ["1000", "cores", "Use --workers"]),
    ("two-modes", "train --train --train-shared --output {out}", None, ["--train-shared", "--train", "only one"]),
    # unknown keys, with a did-you-mean
    ("unknown-key", T, {"training": {"buffer_sise": 10}}, ["buffer_sise", "Did you mean", "buffer_size"]),
    ("unknown-section", T, {"trainig": {}}, ["trainig", "Did you mean", "training"]),
    ("a-run-config-json", T, {"command": "train", "mode": "shared", "settings": {"ppo": {}}}, ["run's config.json", "jq .settings"]),
    ("unknown-evolution-key", T, {"evolution": {"evaluatons": 3}}, ["evaluatons", "Did you mean 'evaluations'"]),
    ("unknown-option", "train --wokers 2 --output {out}", None, ["--wokers", "Did you mean --workers"]),
    ("bad-emitter", T, {"evolution": {"emitter": "isoline"}}, ["evolution.emitter", "Did you mean 'iso_line'"]),
    ("bad-measure", T, {"evolution": {"measures": ["num_link"]}}, ["num_link", "Did you mean 'num_links'"]),
    ("bad-value-targets", T, {"training": {"value_targets": "vtrac"}}, ["vtrac", "Did you mean 'vtrace'"]),
    ("bad-clip-against", T, {"training": {"clip_against": "proximl"}}, ["training.clip_against", "Did you mean 'proximal'"]),
    # bad scenes
    ("bad-scene-option", "train --scene obstacle --output {out}", None, ["obstacle", "Did you mean", "obstacles"]),
    ("bad-scene-config", T, {"env": {"scene": "opne"}}, ["opne", "Did you mean 'open'"]),
    ("bad-scene-ppo", "ppo --scene forest --output {out}", None, ["forest", "open", "obstacles", "Use one of these"]),
    ("empty-scene", "train --scene '' --output {out}", None, ["--scene ''", "env.scene", "Use one of these"]),
    # bad bodies
    ("negative-link", "ppo --body=-0.1,0.2,0.2 --output {out}", None, ["-0.1", "link", "finite number > 0"]),
    ("link-outside-space", "ppo --body 0.2,0.5,0.2 --output {out}", None, ["link_lengths[1]", "0.5", "widen"]),
    ("too-long-body", "ppo --body 0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2 --output {out}", None, ["8", "links", "give 3 to 6 link lengths"]),
    ("too-short-body", "ppo --body 0.2 --output {out}", None, ["1", "links", "give 3 to 6 link lengths"]),
    ("non-numeric-body", "ppo --body a,b,c --output {out}", None, ["a,b,c", "comma-separated", "e.g."]),
    ("empty-body-entry", "ppo --body 0.2,,0.2,0.2 --output {out}", None, ["0.2,,0.2,0.2", "empty entry", "e.g."]),
    ("body-json-wrong", """ppo --body '{{"link_lengths":"x"}}' --output {out}""", None, ["link_lengths", "list of lengths", "e.g."]),
    ("body-json-broken", "ppo --body '{{bad' --output {out}", None, ["{bad", "not valid JSON", "link_lengths"]),
    ("body-json-count", """ppo --body '{{"link_lengths":[0.2,0.2,0.2],"num_links":4}}' --output {out}""", None,
     ["num_links is 4", "one length per link"]),
    ("unknown-gym-task", "ppo --env NoSuchTask-v0 --output {out}", None, ["NoSuchTask-v0", "registered Gymnasium ID"]),
    # bad paths
    ("missing-config", "train --config {tmp}/nope.json --output {out}", None, ["nope.json", "does not exist", "--config"]),
    ("config-not-json", "train --config {tmp}/broken.json --output {out}", "broken", ["broken.json", "not valid JSON", "Fix it"]),
    ("config-not-utf8", "train --config {tmp}/latin.json --output {out}", "latin", ["latin.json", "UTF-8", "save it"]),
    ("config-is-a-directory", "train --config {tmp}/adir --output {out}", "adir", ["adir", "directory", "--config"]),
    ("output-is-a-file", "train --output {tmp}/afile", "file", ["afile", "is a file", "Choose another --output"]),
    ("output-under-a-file", "train --output {tmp}/afile/run", "file", ["afile", "Choose another --output"]),
    ("empty-output", "train --output ''", None, ["--output is empty", "e.g. --output"]),
    ("resume-without-run", "train --resume --output {tmp}/empty", "empty-dir", ["no run", "drop --resume", "in Python: output_dir"]),
    ("resume-damaged-run", "train --resume --output {tmp}/damaged", "damaged-run", ["damaged", "config.json", "not valid JSON", "--output"]),
    ("resume-run-without-settings", "train --resume --output {tmp}/damaged", "run-without-settings", ["config.json", '"settings"', "Repair"]),
    ("non-empty-output", "train --output {tmp}/full", "full-dir",
     ["already holds files (notes.txt)", "no morphelites run", "Choose another --output"]),
    # bytes that are not UTF-8 (a Latin-1 name) arrive as surrogates; TensorBoard and Matplotlib refuse them
    ("non-utf8-output", "train --output {tmp}/bad\udcffname", None, ["bad\\xffname", "not UTF-8", "Choose another --output"]),
    ("ppo-non-utf8-output", "ppo --output {tmp}/bad\udcffname", None, ["bad\\xffname", "not UTF-8", "Choose another --output"]),
    ("output-under-a-dangling-link", "train --output {tmp}/scratch/run", "dangling-link",
     ["scratch is a symbolic link to", "purged", "does not exist", "remove the link"]),
    ("output-holds-a-run", "train --output {tmp}/done", "a-run", ["holds files of a run", "Use --resume", "--output", "resume=True"]),
    ("ppo-output-holds-a-run", "ppo --output {tmp}/done", "a-run", ["holds files of a run", "Choose another --output"]),
    ("resume-if-exists-on-other-files", "train --resume-if-exists --output {tmp}/full", "full-dir", ["no morphelites run", "--output"]),
    ("resume-if-exists-damaged-run", "train --resume-if-exists --output {tmp}/damaged", "damaged-run", ["Cannot resume", "damaged"]),
    ("two-resumes", "train --resume --resume-if-exists --output {out}", None, ["--resume-if-exists", "only one"]),
    ("resume-a-ppo-run", "train --resume --output {tmp}/ppo", "a-ppo-run", ["`morphelites ppo` run", "cannot be resumed"]),
    ("resume-if-exists-a-ppo-run", "train --resume-if-exists --output {tmp}/ppo", "a-ppo-run", ["morphelites ppo", "cannot be resumed"]),
    ("train-onto-a-ppo-run", "train --output {tmp}/ppo", "a-ppo-run", ["`morphelites ppo` run", "never overwritten", "--output"]),
    ("ppo-onto-a-ppo-run", "ppo --output {tmp}/ppo", "a-ppo-run", ["`morphelites ppo` run", "never overwritten", "--output"]),
    ("resume-damaged-results", "train --resume --output {tmp}/done", "damaged-results",
     ["results.jsonl is damaged at line 2 of 3", "1 line(s) after it", "Repair line 2"]),
    ("resume-incomplete-results", "train --resume --output {tmp}/done", "incomplete-results",
     ["results.jsonl is damaged at line 2 of 2: it has no genome, body, training_steps", "changed from outside",
      "Repair line 2"]),
    # more than the archive can hold or draw
    ("three-measures", T, {"evolution": {"measures": ["num_links", "total_length", "taper"]}}, ["3 measures", "one or two of"]),
    ("huge-archive", T, {"evolution": {"measures": ["total_length", "taper"], "continuous_bins": 10000}},
     ["100,000,000 cells", "at most 1,000,000", "Lower evolution.continuous_bins"]),
    # ppo: what only our bodies or only a Gymnasium task have
    ("ppo-observation-dim-disagrees", "ppo --config {cfg} --output {out}", {"model": {"observation_dim": 10}},
     ["model.observation_dim is 10", "body space gives 54", "Remove"]),
    ("gym-observation-dim-disagrees", "ppo --env Pendulum-v1 --config {cfg} --output {out}", {"model": {"observation_dim": 54}},
     ["model.observation_dim is 54", "task Pendulum-v1 gives 3", "Remove"]),
    ("gym-with-scene", "ppo --env Pendulum-v1 --scene obstacles --output {out}", None, ["--scene", "--env", "Drop them"]),
    ("obstacles-too-small-for-its-space", T, {"body_space": {"max_links": 3, "min_link_length": 0.01, "max_link_length": 0.05},
                                              "env": {"scene": "obstacles"}}, ["does not fit this body space", "at least 0.16 m"]),
    ("ppo-obstacles-too-small-for-its-space", "ppo --config {cfg} --scene obstacles --body 0.05,0.05,0.05 --output {out}",
     {"body_space": {"max_links": 3, "min_link_length": 0.01, "max_link_length": 0.05}}, ["does not fit this body space"]),
    ("gym-with-goals", "ppo --env Pendulum-v1 --goals reachable --output {out}", None, ["--goals", "--env", "Drop them"]),
]

#: config.json of a shared run with default settings, as the run stores them (update_epochs resolved).
_RUN_CONFIG = '{"command": "train", "mode": "shared", "settings": {"ppo": {"update_epochs": 4}}}'
#: Files and directories a case needs before the command runs (named by the case's `setup`).
SETUPS = {
    "broken": {"broken.json": "{not json"},
    "latin": {"latin.json": b'{"ppo": {"learning_rate": 0.001}} \xff'},
    "adir": {"adir/": None},
    "file": {"afile": "x"},
    "empty-dir": {"empty/": None},
    "full-dir": {"full/notes.txt": "mine"},
    "dangling-link": {"scratch@": "purged"},  # a symbolic link (name@) to a folder that is gone
    "a-run": {"done/config.json": '{"mode": "shared", "settings": {}}', "done/results.jsonl": ""},
    "damaged-run": {"damaged/config.json": '{"mode": "shared", "settings": {'},
    "run-without-settings": {"damaged/config.json": '{"mode": "shared"}'},
    "a-ppo-run": {"ppo/config.json": '{"command": "ppo", "settings": {}}', "ppo/summary.json": "{}"},
    "damaged-results": {"done/config.json": _RUN_CONFIG,
                        "done/results.jsonl": _RECORD + '{"id": 1, "fitn\n' + _RECORD.replace('"id": 0', '"id": 2')},
    # a whole line of JSON, but not a whole record (edited by hand): not something a crash leaves
    "incomplete-results": {"done/config.json": _RUN_CONFIG,
                           "done/results.jsonl": _RECORD + '{"id": 1, "note": "edited"}\n'},
}


def _prepare(tmp_path: Path, setup: object) -> None:
    """Write the config file (a dict or list) or the files named by ``setup`` under ``tmp_path``."""
    if setup is None:
        return
    if not isinstance(setup, str):
        (tmp_path / "cfg.json").write_text(json.dumps(setup))
        return
    for name, content in SETUPS[setup].items():
        path = tmp_path / name.rstrip("@")
        if name.endswith("@"):
            path.symlink_to(tmp_path / content)
            continue
        if name.endswith("/"):
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _files(root: Path) -> dict[Path, bytes | None]:
    """Every path under ``root``, with a file's contents (None for a folder): a refusal that
    rewrote or cut an existing file (results.jsonl, config.json) must show too."""
    return {path: path.read_bytes() if path.is_file() else None for path in root.rglob("*")}


@pytest.mark.parametrize("name,command,setup,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_paragraph_writes_nothing_starts_nothing(tmp_path, capsys, monkeypatch, name, command, setup, words):
    _prepare(tmp_path, setup)
    monkeypatch.chdir(tmp_path)  # a default output directory would land here
    started: list[object] = []

    def no_start(process: object) -> None:
        started.append(process)
        raise AssertionError(f"a process was started: {process}")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", no_start)
    before_files = _files(tmp_path)
    before_children = {p.pid for p in psutil.Process().children(recursive=True)}
    quoted = {"cfg": tmp_path / "cfg.json", "out": tmp_path / "run", "tmp": tmp_path}
    argv = shlex.split(command.format(**{k: shlex.quote(str(v)) for k, v in quoted.items()}))
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors (a missing value, a bad choice)
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    message = err.strip().splitlines()[-1]
    assert message.startswith("morphelites: error: ")
    assert "Traceback" not in err and "\n\n" not in err.strip(), "one paragraph, no traceback"
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
    assert _files(tmp_path) == before_files, "nothing is written"
    assert not started, "no process is started"
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before_children, "no process is started"



def test_a_run_with_workers_from_a_removed_current_directory_is_refused_before_anything_is_written(tmp_path, capsys,
                                                                                                    monkeypatch):
    """Review: worker processes start from the current directory (spawn asks for it); from one
    removed by another shell, a run with an absolute --output wrote its files, then failed with a
    bare traceback."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    code = main(["train", "--workers", "1", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "current directory no longer exists" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_relative_output_from_a_removed_current_directory_is_refused_naming_it(tmp_path, capsys, monkeypatch):
    """The default --output is relative: its absolute path needs the current directory (review)."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.runs import RunDirectoryError

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    for command in (["train", "--evaluations", "2"], ["ppo", "--steps", "64"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "current directory no longer exists" in err and "Traceback" not in err, err
    with pytest.raises(RunDirectoryError, match="current directory no longer exists"):
        MAPElitesEvolutionTrainer(output_dir="run", enable_multiprocess=False)


def test_a_leading_tilde_in_a_path_option_or_output_dir_means_the_home_directory(tmp_path, monkeypatch):
    """Review: the shell expands ``--output ~/x`` but not ``--output=~/x``, and Python nothing:
    a folder named ``~`` was made in the current directory while the log showed the home's path."""
    from morphelites.cli import build_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser().parse_args(["train", "--output=~/runs/a", "--config=~/exp.json"])
    assert (args.output, args.config) == (str(tmp_path / "runs/a"), str(tmp_path / "exp.json"))
    args = build_parser().parse_args(["animate", "~/runs/a", "--output=~/a.gif"])
    assert (args.run, args.output) == (str(tmp_path / "runs/a"), str(tmp_path / "a.gif"))
    assert build_parser().parse_args(["ppo", "--output=~/p"]).output == str(tmp_path / "p")
    assert RunDirectory("~/runs/a").path == tmp_path / "runs/a"  # the Python API's output_dir
    # ~word of no such user stays as written, as the shell leaves it (Path.expanduser raised: review)
    assert build_parser().parse_args(["train", "--output", "~nosuchuser/x"]).output == "~nosuchuser/x"
    assert str(RunDirectory("~nosuchuser/x").path) == "~nosuchuser/x"


def test_a_gymnasium_task_ignores_a_configs_obstacles_too_small_for_its_body_space(tmp_path, capsys):
    """`ppo --env` ignores the env and body_space sections of a config that also serves `train`: their
    scene check must not refuse it (review)."""
    from morphelites.cli import _ppo_request, build_parser

    config = tmp_path / "small.json"
    config.write_text(json.dumps({"body_space": {"max_links": 3, "min_link_length": 0.01, "max_link_length": 0.05},
                                  "env": {"scene": "obstacles"}}))  # fmt: skip
    request = _ppo_request(build_parser().parse_args(["ppo", "--env", "Pendulum-v1", "--config", str(config), "--output",
                                                       str(tmp_path / "run")]))  # fmt: skip
    assert request.env_id == "Pendulum-v1" and "ignoring them" in capsys.readouterr().err


def test_the_console_command_exits_2(tmp_path):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"training": {"buffer_sise": 10}}))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "morphelites", "train", "--config", str(config), "--output",
                           str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "Did you mean 'buffer_size'" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_bad_train_option_is_reported_before_the_heavy_libraries_load(tmp_path):
    """The trainer loads pyribs (scipy, scikit-learn, numba: ~2 s before anything was said); the
    checks of the options need none of it."""
    check = (f"import sys; from morphelites.cli import main; code = main(['train', '--workers', '0', '--output', "
             f"{str(tmp_path / 'run')!r}]); print(code, sorted(m for m in ('ribs', 'torch', 'mujoco') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", check], env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.stdout.split("\n")[0] == "2 []" and "evolution.max_workers is 0" in done.stderr, (done.stdout, done.stderr)


def test_ppo_on_a_run_directory_does_not_suggest_resume_which_it_does_not_have(tmp_path, capsys):
    _prepare(tmp_path, "a-run")
    assert main(["ppo", "--output", str(tmp_path / "done")]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "holds files of a run" in message and "--resume" not in message


def test_ppo_onto_a_run_another_process_runs_does_not_suggest_resume_either(tmp_path, capsys):
    """Seen in review: the in-use refusal told ppo, which has no --resume, to wait and resume."""
    run = RunDirectory(tmp_path / "held").prepare(resume=False)
    hold = run.hold()
    try:
        assert main(["ppo", "--output", str(run.path)]) == 2
    finally:
        hold.release()
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is in use" in message and "Choose another --output" in message and "resume" not in message
