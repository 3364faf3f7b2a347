"""The benchmark scripts' command line and runs: a bad option or an output directory that cannot
be written stops a script before any work; ``--out`` keeps a check run away from the published
results; every script says how long it takes; and a benchmark's runs do not outlive it (killing
the benchmark stops the run it was measuring)."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from conftest import assert_gone, wait_for

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from common import RESULTS, add_output_option, parse_args  # noqa: E402

#: The scripts that write results (every one calls common.write_json, but normaliser_padding,
#: which writes only with --record, and into the published results: see its module docstring).
WRITERS = ("env_throughput", "experience_transport", "fitness_ceiling", "gym_ppo", "independent_mode", "learner_settings",
           "learner_targets", "learner_update", "learner_update_instructions", "learning_reach", "memory_scaling",
           "reproducible_runs", "run_length", "shared_vs_independent", "wall_heights")  # fmt: skip


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<name>.py ARGS``; a timeout, not a hang, if it starts waiting for work."""
    return subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize("name, args, message", [
    # seen in review: --segments 0 waited forever on the queue, 1 recorded 0 segments/s
    ("experience_transport", ["--segments", "0"], "argument --segments: 0 is out of range; give a whole number of at least 2"),
    ("experience_transport", ["--segments", "1"], "argument --segments: 1 is out of range; give a whole number of at least 2"),
    ("env_throughput", ["--seconds", "0"], "argument --seconds: 0 is out of range; give a finite number above 0"),
    ("shared_vs_independent", ["--workers", "-1"], "argument --workers: -1 is out of range; give a whole number of at least 1"),
    ("shared_vs_independent", ["--seeds", "-1"], "argument --seeds/--seed: -1 is out of range; give a whole number from 0 to"),
    ("independent_mode", ["--budgets", "1500", "-5"], "argument --budgets: -5 is out of range"),
    ("wall_heights", ["--episodes", "0"], "argument --episodes: 0 is out of range"),
    ("learning_reach", ["--mixed-bodies", "17"], "argument --mixed-bodies: 17 is out of range; give a whole number from 1 to 16"),
    ("run_length", ["--steps", "many"], "argument --steps: 'many' is not a whole number; give one of at least 1"),
])  # fmt: skip
def test_a_bad_number_is_refused_before_any_work_with_the_option_and_the_fix(name, args, message, tmp_path):
    result = _script(name, *args, "--out", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == "", "nothing was measured"
    assert list(tmp_path.iterdir()) == [], "nothing was written"


def test_a_rate_measured_for_less_time_than_one_batch_takes_still_counts_that_batch():
    """Seen in review: a measuring time shorter than the loop's first check left 0 steps, and
    env_throughput divided by zero."""
    import env_throughput

    from morphelites.morphology import Morphology

    body = Morphology(3, [0.175] * 3)
    assert env_throughput.env_rate(body, 1e-9) > 0 and env_throughput.raw_rate(body, 1e-9) > 0


def test_an_output_directory_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """Seen in review: write_json made the directory and wrote at the end, so a long benchmark lost
    every run to an output location it could not write."""
    taken = tmp_path / "a file"
    taken.write_text("")
    result = _script("experience_transport", "--out", str(taken / "results"))
    assert result.returncode == 2
    assert f"argument --out: cannot write into {taken / 'results'}" in result.stderr
    assert "give a directory you can write to" in result.stderr
    assert result.stdout == ""


def test_the_output_directory_is_created_and_the_write_probe_left_nowhere(tmp_path):
    parser = argparse.ArgumentParser()
    add_output_option(parser)
    out = tmp_path / "new" / "results"
    assert parse_args(parser, ["--out", str(out)]).out == out
    assert out.is_dir() and list(out.iterdir()) == []
    assert parser.parse_args([]).out == RESULTS, "rerun as it is, a script regenerates the published files"


def _fake_run(mode: str, scene: str, budget: int, evaluations: int, workers: int, seed: int, tmp: Path,
              sections: dict | None = None) -> dict:  # fmt: skip
    """What shared_vs_independent.run_mode returns, for a run of two evaluations (none is made)."""
    qd = 2.0 if mode == "shared" else 1.0
    curve = [{"evaluations": k, "env_steps": 100 * k, "wall_s": 0.5 * k, "qd_score": qd * k / 2} for k in (1, 2)]
    return {"mode": mode, "scene": scene, "training_steps_per_individual": budget, "seed": seed, "wall_s": 1.0,
            "qd_score": qd, "coverage": 0.1, "mean_elite_fitness": qd / 2, "env_steps": 200, "env_steps_per_s": 200.0,
            "peak_pss_mb": 100.0, "update_epochs": 4, "native_threads_limited": True, "curve": curve}  # fmt: skip


def test_a_check_run_with_out_adds_to_that_directory_s_file_and_leaves_the_published_ones(tmp_path, monkeypatch, capsys):
    """Found in review: every script wrote into benchmarks/results under a fixed name, and the
    merging ones dropped the committed rows when evaluations or workers differed."""
    import learner_settings

    monkeypatch.setattr(learner_settings, "run_mode", _fake_run)
    monkeypatch.setattr(learner_settings, "env_only_rate", lambda workers: 1000.0)
    earlier = {"evaluations": 2, "workers": 2, "wall_s": 1.0, "rows": [
        {**_fake_run("independent", "open", 100, 2, 2, 5, tmp_path), "setting": learner_settings.REFERENCE, "sections": {}}]}
    (tmp_path / "learner_settings_100.json").write_text(json.dumps(earlier))
    check = ["--out", str(tmp_path), "--steps", "100", "--evaluations", "2", "--seeds", "1", "--settings", "4 epochs"]
    learner_settings.main(check)
    rows = json.loads((tmp_path / "learner_settings_100.json").read_text())["rows"]
    assert [(r["seed"], r["setting"]) for r in rows] == [(1, learner_settings.REFERENCE), (1, "4 epochs"),
                                                         (5, learner_settings.REFERENCE)], "the earlier row is kept"
    assert not (RESULTS / "learner_settings_100.json").exists()
    learner_settings.main([*check, "--workers", "3"])
    rows = json.loads((tmp_path / "learner_settings_100.json").read_text())["rows"]
    assert {r["seed"] for r in rows} == {1}, "runs of another worker count do not compare: the file starts again"
    assert "holds runs with other workers (2): this run starts the file again" in capsys.readouterr().out


def test_a_shared_vs_independent_check_run_writes_its_json_and_plot_into_out(tmp_path, monkeypatch):
    import shared_vs_independent

    published = (RESULTS / "shared_vs_independent_quick.json").read_bytes()
    monkeypatch.setattr(shared_vs_independent, "run_mode", _fake_run)
    monkeypatch.setattr(shared_vs_independent, "env_only_rate", lambda workers: 1000.0)
    shared_vs_independent.main(["--out", str(tmp_path), "--budgets", "1500"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["shared_vs_independent_quick.json",
                                                                "shared_vs_independent_quick.png"]  # fmt: skip
    assert json.loads((tmp_path / "shared_vs_independent_quick.json").read_text())["comparisons"][0]["env_steps_ratio"] > 0
    assert (RESULTS / "shared_vs_independent_quick.json").read_bytes() == published


def test_every_script_that_writes_results_has_the_output_option():
    writers = {path.stem for path in BENCHMARKS.glob("*.py") if re.search(r"\bwrite_json\(", path.read_text())}
    assert writers - {"common", "normaliser_padding"} == set(WRITERS)


@pytest.mark.parametrize("name", [*WRITERS, "normaliser_padding", "long_analysis"])
def test_every_script_says_how_long_it_takes_and_what_each_option_is(name):
    parser = importlib.import_module(name).build_parser()
    assert "Takes " in parser.description
    undocumented = [action.option_strings or action.dest for action in parser._actions if not action.help]
    assert undocumented == []
    assert ("--out" in parser._option_string_actions) == (name in WRITERS)

DRIVER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(BENCHMARKS)!r})
from shared_vs_independent import run_mode
run_mode("independent", "open", 1500, 10_000, 1, 0, Path(sys.argv[1]))
"""


def test_killing_a_benchmark_stops_its_run_and_the_run_keeps_its_files(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    run_dir = tmp_path / "independent-open-1500-seed0"
    descendants: list[psutil.Process] = []

    def run_is_training() -> bool:
        descendants[:] = psutil.Process(driver.pid).children(recursive=True)
        return any("independent worker" in " ".join(p.cmdline()) for p in descendants if p.is_running())

    try:
        wait_for(run_is_training, 120.0, "the run's worker to start")
        driver.kill()  # no chance to clean up: only the kernel can tell the run
        driver.wait(timeout=10)
        assert_gone(descendants, timeout=30.0)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "terminated"
    finally:
        if driver.poll() is None:
            driver.kill()
        for proc in descendants:
            if proc.is_running():
                proc.kill()
