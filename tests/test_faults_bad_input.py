"""Bad input, tried systematically (issue #5, promise 10): every case exits with code 2 and a
one-paragraph message naming what is wrong and how to fix it, writes nothing and starts no process.

The cases run ``morphelites.cli.main`` in this process (fast); one runs the real console command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from morphelites.cli import main

REPO = Path(__file__).resolve().parents[1]

# (id, command line with {cfg} for a config file written from `config` and {out} for the output
#  directory, config contents or None, words the message must contain: the culprit and the fix)
CASES = [
    # wrong types
    ("string-for-int", "train --config {cfg} --output {out}", {"training": {"buffer_size": "big"}}, ["training.buffer_size", "whole number"]),
    ("bool-for-int", "train --config {cfg} --output {out}", {"evolution": {"evaluations": True}}, ["evolution.evaluations", "whole number"]),
    ("list-for-float", "train --config {cfg} --output {out}", {"ppo": {"learning_rate": [0.1]}}, ["ppo.learning_rate", "number"]),
    ("null-for-float", "train --config {cfg} --output {out}", {"ppo": {"gamma": None}}, ["ppo.gamma", "number"]),
    ("string-for-bool", "train --config {cfg} --output {out}", {"training": {"sync": "yes"}}, ["training.sync", "true or false"]),
    ("section-not-object", "train --config {cfg} --output {out}", {"ppo": 3}, ["ppo", "JSON object"]),
    ("config-not-object", "train --config {cfg} --output {out}", [1, 2], ["object", "sections"]),
    # out of range
    ("negative-learning-rate", "train --config {cfg} --output {out}", {"ppo": {"learning_rate": -1.0}}, ["ppo.learning_rate", "range"]),
    ("gamma-above-1", "train --config {cfg} --output {out}", {"ppo": {"gamma": 1.5}}, ["ppo.gamma", "range"]),
    ("zero-buffer", "train --config {cfg} --output {out}", {"training": {"buffer_size": 0}}, ["training.buffer_size", "range"]),
    ("zero-eval-episodes", "train --config {cfg} --output {out}", {"evolution": {"eval_episodes": 0}}, ["evolution.eval_episodes", "range"]),
    ("negative-ipc-timeout", "train --config {cfg} --output {out}", {"training": {"ipc_timeout": -5}}, ["training.ipc_timeout", "range"]),
    ("too-many-links", "train --config {cfg} --output {out}", {"body_space": {"max_links": 50}}, ["body_space.max_links", "range"]),
    ("zero-workers", "train --workers 0 --output {out}", None, ["max_workers", "range"]),
    ("zero-evaluations", "train --evaluations 0 --output {out}", None, ["evolution.evaluations", "range"]),
    ("zero-steps", "train --steps-per-individual 0 --output {out}", None, ["steps_per_individual", "range"]),
    ("negative-wall-time", "train --max-wall-time -1 --output {out}", None, ["max_wall_s", "range"]),
    # inconsistent
    ("batch-above-buffer", "train --config {cfg} --output {out}", {"training": {"buffer_size": 500, "min_batch_size": 1000}}, ["min_batch_size", "buffer_size", "raise"]),
    ("observation-dim-disagrees", "train --config {cfg} --output {out}", {"model": {"observation_dim": 10}}, ["observation_dim", "54", "Remove"]),
    ("min-links-above-max", "train --config {cfg} --output {out}", {"body_space": {"min_links": 5, "max_links": 3}}, ["min_links", "max_links"]),
    ("too-many-workers", "train --workers 1000 --output {out}", None, ["1000", "cores", "--workers"]),
    # unknown keys, with a did-you-mean
    ("unknown-key", "train --config {cfg} --output {out}", {"training": {"buffer_sise": 10}}, ["buffer_sise", "Did you mean", "buffer_size"]),
    ("unknown-section", "train --config {cfg} --output {out}", {"trainig": {}}, ["trainig", "Did you mean", "training"]),
    ("unknown-evolution-key", "train --config {cfg} --output {out}", {"evolution": {"evaluatons": 3}}, ["evaluatons", "evaluations"]),
    ("bad-emitter", "train --config {cfg} --output {out}", {"evolution": {"emitter": "isoline"}}, ["evolution.emitter", "iso_line"]),
    ("bad-measure", "train --config {cfg} --output {out}", {"evolution": {"measures": ["num_link"]}}, ["num_link", "num_links"]),
    ("bad-value-targets", "train --config {cfg} --output {out}", {"training": {"value_targets": "vtrac"}}, ["vtrac", "vtrace"]),
    # bad scenes
    ("bad-scene-option", "train --scene obstacle --output {out}", None, ["obstacle", "Did you mean", "obstacles"]),
    ("bad-scene-config", "train --config {cfg} --output {out}", {"env": {"scene": "opne"}}, ["opne", "open"]),
    ("bad-scene-ppo", "ppo --scene forest --output {out}", None, ["forest", "open", "obstacles"]),
    # bad bodies
    ("negative-link", "ppo --body=-0.1,0.2,0.2 --output {out}", None, ["-0.1", "link"]),
    ("too-long-body", "ppo --body 0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2 --output {out}", None, ["8", "links"]),
    ("too-short-body", "ppo --body 0.2 --output {out}", None, ["1", "links"]),
    ("non-numeric-body", "ppo --body a,b,c --output {out}", None, ["a,b,c", "comma-separated"]),
    ("body-json-wrong", 'ppo --body {{"link_lengths":"x"}} --output {out}', None, ["link_lengths", "list of lengths"]),
    ("unknown-gym-task", "ppo --env NoSuchTask-v0 --output {out}", None, ["NoSuchTask-v0"]),
    # bad paths
    ("missing-config", "train --config {tmp}/nope.json --output {out}", None, ["nope.json", "does not exist", "--config"]),
    ("config-not-json", "train --config {tmp}/broken.json --output {out}", "broken", ["broken.json", "not valid JSON"]),
    ("output-is-a-file", "train --output {tmp}/afile", "file", ["afile", "is a file", "--output"]),
    ("output-under-a-file", "train --output {tmp}/afile/run", "file", ["afile", "--output"]),
    ("resume-without-run", "train --resume --output {tmp}/empty", "empty-dir", ["no run", "--resume"]),
    ("non-empty-output", "train --output {tmp}/full", "full-dir", ["already holds files", "--resume", "--output"]),
]


def _prepare(tmp_path: Path, config: object) -> None:
    if config == "broken":
        (tmp_path / "broken.json").write_text("{not json")
    elif config == "file":
        (tmp_path / "afile").write_text("x")
    elif config == "empty-dir":
        (tmp_path / "empty").mkdir()
    elif config == "full-dir":
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "notes.txt").write_text("mine")
    elif config is not None:
        (tmp_path / "cfg.json").write_text(json.dumps(config))


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("name,command,config,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_paragraph_writes_nothing_starts_nothing(tmp_path, capsys, monkeypatch, name, command, config, words):
    _prepare(tmp_path, config)
    monkeypatch.chdir(tmp_path)  # a default output directory would land here
    before_files = _files(tmp_path)
    before_children = {p.pid for p in psutil.Process().children(recursive=True)}
    argv = command.format(cfg=tmp_path / "cfg.json", out=tmp_path / "run", tmp=tmp_path).split()
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
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before_children, "no process is started"


def test_there_are_at_least_30_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 30


def test_the_console_command_exits_2(tmp_path):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"training": {"buffer_sise": 10}}))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "morphelites", "train", "--config", str(config), "--output",
                           str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "Did you mean 'buffer_size'" in done.stderr
    assert not (tmp_path / "run").exists()
