"""`morphelites train` end to end with real worker processes, signals and resume."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from conftest import assert_gone, read_results, refuse_with_a_quota, start_train, wait_for, write_json
from morphelites.cli import main
from morphelites.runs.run_dir import RunDirectory

TINY = {
    "evolution": {"eval_episodes": 3, "heatmap_every": 2, "checkpoint_every": 2, "num_initial_random": 3},
    "ppo": {"num_envs": 4, "num_steps": 32},
    "env": {"max_episode_steps": 40},
}


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    return write_json(tmp_path / "tiny.json", TINY)


def _train(*args: str) -> subprocess.Popen:
    return start_train("--mode", "independent", *args)


_results = read_results


def test_two_worker_run_writes_every_file_and_a_non_empty_archive(tmp_path, tiny_config):
    out = tmp_path / "run"
    proc = _train("--workers", "2", "--evaluations", "5", "--steps-per-individual", "128", "--config", str(tiny_config), "--output", str(out))
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    for name in ("config.json", "training.log", "results.jsonl", "archive.csv", "heatmap.png", "curves.png", "metrics.csv",
                 "summary.json"):  # fmt: skip
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("heatmap.png", "curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert list((out / "checkpoints").glob("evolution-*.pkl"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "independent" and summary["evaluations"] == 5 and summary["status"] == "completed"
    for key in ("env_steps", "wall_s", "qd_score", "coverage", "best_fitness", "mean_elite_fitness", "peak_memory_mb"):
        assert key in summary
    assert summary["qd_score"] > 0 and summary["elites"] >= 1
    results = _results(out)
    assert sorted(r["id"] for r in results) == list(range(5))
    assert {r["worker"] for r in results} == {0, 1}, "both workers evaluated individuals"
    first = results[0]
    for key in ("parent_id", "genome", "body", "measures", "fitness", "success_rate", "mean_return", "final_distance",
                "path_efficiency", "training_steps", "training_wall_s", "worker", "status", "timestamp"):  # fmt: skip
        assert key in first
    assert first["training_steps"] >= 128 and first["status"] == "new"
    assert all(0.0 <= r["fitness"] <= r["fitness_ceiling"] <= 1.0 for r in results), "fitness within its ceiling"
    archive_rows = (out / "archive.csv").read_text().splitlines()
    assert archive_rows[0].startswith("cell,individual_id,parent_id,fitness,num_links,total_length,link_lengths")
    assert archive_rows[0].split(",").count("num_links") == 1, "no duplicate column"
    joints = [row.split(",")[4] for row in archive_rows[1:]]
    assert all(j.isdigit() and 3 <= int(j) <= 6 for j in joints), joints
    assert len(archive_rows) == 1 + summary["elites"]
    with open(out / "archive.csv", newline="") as handle:
        elites = list(csv.DictReader(handle))
    ceilings = [float(e["fitness_ceiling"]) for e in elites]
    assert all(float(e["fitness"]) <= c <= 1.0 for e, c in zip(elites, ceilings)), "each elite within its ceiling"
    assert summary["mean_elite_fitness_ceiling"] == pytest.approx(sum(ceilings) / len(ceilings))
    log = (out / "training.log").read_text()
    assert "eval 5/5" in log
    # however short the run, its progress line is written once more when the last evaluation is in
    assert re.findall(r"progress: (\d+)/(\d+) evaluations", log)[-1] == ("5", "5"), log


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_sigint_stops_with_a_checkpoint_and_resume_reaches_exactly_the_total(tmp_path):
    out = tmp_path / "run"
    # No periodic checkpoint: the one the resume starts from must be the one written on Ctrl-C.
    config = write_json(tmp_path / "c.json", {**TINY, "evolution": {**TINY["evolution"], "checkpoint_every": 10**6}})
    args = ["--workers", "2", "--evaluations", "8", "--steps-per-individual", "128", "--config", str(config), "--output", str(out)]
    proc = _train(*args)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if (out / "results.jsonl").exists() and len(_results(out)) >= 3:
            break
        time.sleep(0.2)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    proc.communicate(timeout=30)
    assert time.monotonic() - start < 10, "Ctrl-C must stop the run within 10 s"
    assert proc.returncode == 130
    assert_gone(children)  # no orphan workers
    done_before = len(_results(out))
    assert 3 <= done_before < 8
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"

    resumed = _train("--resume", "--output", str(out))
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    ids = [r["id"] for r in _results(out)]
    assert len(ids) == 8 and len(set(ids)) == 8, "exactly the requested number of unique evaluations"
    assert json.loads((out / "summary.json").read_text())["evaluations"] == 8
    assert f"Resumed from evolution-{done_before:08d}.pkl: " in (out / "training.log").read_text()


def test_resume_with_a_conflicting_config_is_refused(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"mode": "independent", "settings": json.loads(json.dumps(TINY))}))
    code = main(["train", "--resume", "--output", str(out), "--steps-per-individual", "999", "--quiet"])
    assert code == 2
    assert "evolution.training_steps_per_individual: stored 1500, now 999" in capsys.readouterr().err


def test_resume_with_another_body_space_names_the_setting_not_a_damaged_results_line(tmp_path):
    # Every stored genome has another length in another body space; checked against the new one
    # first, the stored results looked damaged, and the message advised deleting good lines.
    from morphelites.config import ConfigError, Settings
    from morphelites.runs.run_dir import RunDirectory
    from morphelites.runs.stored_run import check_resume

    stored = Settings.from_dict({"body_space": {"max_links": 6}}).validate()
    (tmp_path / "config.json").write_text(json.dumps({"mode": "shared", "settings": stored.to_dict()}))
    (tmp_path / "results.jsonl").write_text(json.dumps({"id": 0, "genome": [0.5] * 7}) + "\n")
    wider = Settings.from_dict({"body_space": {"max_links": 8}}).validate()
    with pytest.raises(ConfigError, match=re.escape("body_space.max_links: stored 6, now 8")):
        check_resume(RunDirectory(tmp_path), "shared", wider)


def test_settings_built_in_python_with_a_list_of_measures_resume_their_own_run(tmp_path):
    # config.json stores the measures as a JSON list and reads them back as a tuple; settings
    # built in Python may hold a list. The same settings must not be refused as a change.
    from morphelites.config import EvolutionConfig, Settings
    from morphelites.runs.run_dir import RunDirectory
    from morphelites.runs.stored_run import check_resume

    settings = Settings(evolution=EvolutionConfig(measures=["num_links", "taper"])).validate()
    (tmp_path / "config.json").write_text(json.dumps({"mode": "shared", "settings": settings.to_dict()}))
    check_resume(RunDirectory(tmp_path), "shared", settings)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--workers", "0"], "evolution.max_workers is 0"),
        (["--evaluations", "0"], "evolution.evaluations is 0"),
        (["--scene", "lava"], "env.scene is 'lava'"),
        (["--steps-per-individual", "-5"], "training_steps_per_individual is -5"),
        (["--resume"], "Cannot resume"),
        (["--mode", "shared", "--workers", "-1"], "evolution.max_workers is -1"),
        (["--config", "/no/such.json"], "does not exist"),
        (["--initial-random", "x"], "invalid int value"),
        (["--parent-lag", "-1"], "--parent-lag -1: evolution.parent_lag is -1"),
    ],
)
def test_bad_options_exit_2_before_any_worker_starts(tmp_path, capsys, args, words):
    out = tmp_path / "never"
    argv = ["train", "--output", str(out), *args]
    if "--mode" not in args:
        argv.insert(1, "--train")
    before = set(p.pid for p in psutil.Process().children(recursive=True))
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    assert words in capsys.readouterr().err
    assert not out.exists()
    assert set(p.pid for p in psutil.Process().children(recursive=True)) <= before, "no process is started"


def test_existing_run_directory_is_refused_without_resume(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"mode": "independent", "settings": {}}')
    (tmp_path / "results.jsonl").write_text("{}\n")
    assert main(["train", "--train", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--output" in err


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_resume_if_exists_starts_a_run_then_continues_it_then_does_nothing(tmp_path, tiny_config):
    """A requeued job script passes the same command every time: the first start, each resume, and
    a resume after the end must all succeed."""
    from morphelites.runs import RunDirectory

    out = tmp_path / "run"
    RunDirectory(out).prepare()  # as a first launch stopped before it wrote config.json leaves it
    command = ["train", "--train", "--serial", "--resume-if-exists", "--output", str(out), "--config", str(tiny_config),
               "--initial-random", "2", "--steps-per-individual", "64", "--quiet"]  # fmt: skip
    assert main([*command, "--evaluations", "2"]) == 0
    assert [r["id"] for r in _results(out)] == [0, 1]
    assert "Resumed from" not in (out / "training.log").read_text()
    assert main([*command, "--evaluations", "3"]) == 0
    assert [r["id"] for r in _results(out)] == [0, 1, 2]
    assert "Resumed from" in (out / "training.log").read_text()
    summary = (out / "summary.json").read_bytes()
    assert main([*command, "--evaluations", "3"]) == 0
    assert len(_results(out)) == 3 and (out / "summary.json").read_bytes() == summary
    assert "Nothing to do: this run already completed 3 evaluations (requested evaluations done). To continue it, " \
           "raise --evaluations (it is 3)." in (out / "training.log").read_text()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_resume_of_a_finished_run_whose_pictures_cannot_be_drawn_still_exits_0(tmp_path, tiny_config, monkeypatch):
    """Seen in review: a drawing library's bug (pyribs and a 1-D archive of one elite) escaped the
    redraw of a finished run's pictures, so --resume-if-exists of a done job exited 1."""
    from morphelites.evolution import trainer as trainer_module

    def broken_heatmap(archive, title_prefix=""):
        raise ValueError("simulated: a drawing library's bug")

    out = tmp_path / "run"
    command = ["train", "--train", "--serial", "--resume-if-exists", "--output", str(out), "--config", str(tiny_config),
               "--initial-random", "2", "--steps-per-individual", "64", "--evaluations", "2", "--quiet"]  # fmt: skip
    assert main(command) == 0
    monkeypatch.setattr(trainer_module, "heatmap_png", broken_heatmap)
    assert main(command) == 0
    log = (out / "training.log").read_text()
    assert "Nothing to do: this run already completed 2 evaluations" in log
    assert "Could not redraw the figures (ValueError: simulated" in log and "Traceback" in log


def test_nothing_to_do_names_the_budget_of_this_resume_and_how_far_the_run_already_is(tmp_path, tiny_config):
    """Seen in review: a resume that raised --max-env-steps, but not past what the run had spent,
    was told the old budget stopped it and to raise it."""
    out = tmp_path / "run"
    command = ["train", "--serial", "--config", str(tiny_config), "--initial-random", "2", "--steps-per-individual", "64",
               "--output", str(out), "--quiet"]  # fmt: skip
    assert main([*command, "--max-env-steps", "300"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    spent = summary["env_steps"]
    assert summary["stopped_because"] == "env-step budget of 300 reached" and spent > 301
    assert main(["train", "--resume", "--output", str(out), "--quiet", "--max-env-steps", "301"]) == 0
    log = (out / "training.log").read_text()
    assert (f"Nothing to do: this run already completed {summary['evaluations']} evaluations (its {spent:,} env steps "
            f"reach --max-env-steps 301). To continue it, give --max-env-steps above {spent:,}.") in log


def test_nothing_to_do_after_a_wall_time_budget_names_that_budget(tmp_path, tiny_config):
    """The same for --max-wall-time (review: its branch had no test; it had told the user to raise
    --evaluations)."""
    out = tmp_path / "run"
    command = ["train", "--serial", "--config", str(tiny_config), "--initial-random", "2", "--steps-per-individual", "64",
               "--output", str(out), "--quiet"]  # fmt: skip
    assert main([*command, "--max-wall-time", "0.5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_because"] == "wall-time limit of 0.5 s reached", summary
    assert main(["train", "--resume", "--output", str(out), "--quiet", "--max-wall-time", "0.25"]) == 0
    log = (out / "training.log").read_text()
    assert re.search(rf"Nothing to do: this run already completed {summary['evaluations']} evaluations \(its \d+ s reach "
                     r"--max-wall-time 0.25\)\. To continue it, give --max-wall-time above \d+\.", log), log


def test_a_run_stored_with_a_value_now_refused_for_new_runs_goes_on_when_resumed(tmp_path, tiny_config, capsys):
    """Found in review: refusing max_policy_lag 0 without sync (and ipc_timeout under 5 s) for every
    run made such a run, stored by an earlier version, impossible to resume: a resume may not change
    the lag. New runs are refused; the stored run goes on as it did."""
    out = tmp_path / "run"
    lag_zero = write_json(tmp_path / "lag0.json", {**TINY, "training": {"max_policy_lag": 0}})
    command = ["train", "--mode", "shared", "--serial", "--initial-random", "2", "--steps-per-individual", "64",
               "--output", str(out), "--quiet"]  # fmt: skip
    assert main([*command, "--config", str(lag_zero), "--evaluations", "2"]) == 2
    assert "training.max_policy_lag is 0 without training.sync" in capsys.readouterr().err
    assert not out.exists()
    assert main([*command, "--config", str(tiny_config), "--evaluations", "2"]) == 0
    config = json.loads((out / "config.json").read_text())
    config["settings"]["training"]["max_policy_lag"] = 0  # as an earlier version stored it
    write_json(out / "config.json", config)
    assert main(["train", "--resume", "--output", str(out), "--evaluations", "3", "--quiet"]) == 0
    assert len(_results(out)) == 3


def test_a_ctrl_c_remembered_from_the_command_s_start_up_stops_the_run_as_a_first_ctrl_c(tmp_path, monkeypatch):
    """A Ctrl-C that the start-up may have lost (morphelites.early_interrupt) and that came after the
    command's own check: the run's handlers take it over, and the run stops with a checkpoint."""
    from morphelites import early_interrupt
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    monkeypatch.setattr(early_interrupt, "_seen", True)
    out = tmp_path / "run"
    summary = MAPElitesEvolutionTrainer(
        TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
        use_shared_ppo=False, output_dir=str(out), evaluations=3, quiet=True,
    ).run()  # fmt: skip
    assert summary["status"] == "interrupted" and summary["evaluations"] < 3
    assert "Ctrl-C" in (out / "training.log").read_text()


def test_serial_mode_through_the_python_api(tmp_path):
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    trainer = MAPElitesEvolutionTrainer(
        TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
        use_shared_ppo=False, output_dir=str(tmp_path / "serial"), evaluations=3, quiet=True,
    )  # fmt: skip
    summary = trainer.run()
    assert summary["evaluations"] == 3 and summary["workers"] == 1 and summary["status"] == "completed"
    assert len(_results(tmp_path / "serial")) == 3
    recorded = json.loads((tmp_path / "serial" / "config.json").read_text())["settings"]["ppo"]
    assert recorded["update_epochs"] == 4, "config.json records the evolution default that was used"


def _serial_arguments(out: Path, evaluations: int) -> dict[str, Any]:
    """MAPElitesEvolutionTrainer's arguments for a tiny serial independent run in ``out``."""
    return {"base_args": TINY, "num_initial_random": 2, "training_steps_per_individual": 64, "enable_multiprocess": False,
            "use_shared_ppo": False, "output_dir": str(out), "evaluations": evaluations, "quiet": True}  # fmt: skip


@pytest.fixture(scope="module")
def one_evaluation_run(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """A finished serial independent run of one evaluation, and the trainer arguments that made it."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    out = tmp_path_factory.mktemp("api") / "run"
    arguments = _serial_arguments(out, evaluations=1)
    assert MAPElitesEvolutionTrainer(**arguments).run()["status"] == "completed"
    return out, arguments


def test_a_run_whose_directory_another_run_filled_before_it_took_the_lock_is_refused(tmp_path, monkeypatch):
    """run() checks the directory, then locks it; another run started onto the same new directory
    (a job array) may take the lock first, and even end, in between. Found in review: nothing was
    checked under the lock, so the second run wrote its config.json over the first's and appended
    its evaluations to the first's results."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.runs.run_dir import RunDirectoryError

    out = tmp_path / "run"
    prepare = RunDirectory.prepare
    first = MAPElitesEvolutionTrainer(**_serial_arguments(out, evaluations=1))

    def prepare_then_let_the_first_run(run_dir: RunDirectory, *args: Any, **kwargs: Any) -> RunDirectory:
        prepared = prepare(run_dir, *args, **kwargs)
        monkeypatch.setattr(RunDirectory, "prepare", prepare)
        assert first.run()["status"] == "completed"  # in the window between the check and the lock
        return prepared

    late = MAPElitesEvolutionTrainer(**_serial_arguments(out, evaluations=1))
    monkeypatch.setattr(RunDirectory, "prepare", prepare_then_let_the_first_run)
    with pytest.raises(RunDirectoryError, match="already holds files of a run; it is never overwritten"):
        late.run()
    assert len(_results(out)) == 1 and json.loads((out / "config.json").read_text())["command"] == "train"
    assert RunDirectory(out).in_use_by() is None, "the refused run let go of the lock"


def test_a_resume_is_checked_again_under_the_lock(tmp_path, one_evaluation_run):
    """A resume compares its settings with the stored run's when the trainer is made; if another
    run has replaced the stored one by the time run() holds the directory, it is refused then."""
    import shutil

    from morphelites.config import ConfigError
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    stored, arguments = one_evaluation_run
    out = tmp_path / "run"
    shutil.copytree(stored, out)
    resumed = MAPElitesEvolutionTrainer(**{**arguments, "output_dir": str(out), "evaluations": 2}, resume=True)
    shutil.rmtree(out)
    other = {**_serial_arguments(out, evaluations=1), "training_steps_per_individual": 96}
    assert MAPElitesEvolutionTrainer(**other).run()["status"] == "completed"
    before = (out / "results.jsonl").read_bytes()
    with pytest.raises(ConfigError, match="training_steps_per_individual"):
        resumed.run()
    assert (out / "results.jsonl").read_bytes() == before


def test_cli_resume_refuses_a_config_whose_mode_is_not_the_stored_runs(tmp_path, one_evaluation_run, capsys):
    """Found in review: with --resume and no --mode, a --config's use_shared_ppo was overwritten by
    the stored mode without a word (--mode itself is refused)."""
    import shutil

    stored, _ = one_evaluation_run
    out = tmp_path / "run"
    shutil.copytree(stored, out)
    settings = json.loads((out / "config.json").read_text())["settings"]
    settings["evolution"]["use_shared_ppo"] = True  # the stored run is independent
    config = write_json(tmp_path / "shared.json", settings)
    files = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    assert main(["train", "--resume", "--output", str(out), "--config", str(config), "--evaluations", "2", "--quiet"]) == 2
    assert "holds a run in independent mode, but" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == files, "nothing was written"


def test_a_shared_summary_holds_the_learners_figures_even_when_the_learner_never_reported(tmp_path):
    """Found in review: policy_updates, mean_policy_lag and max_policy_lag (keys DESIGN.md says
    summary.json holds in shared mode) came only from the learner's reports, so a session stopped
    while its learner started wrote a summary without them."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.runs.memory import ProcessTreeMemory

    class NoReportYet:
        def stats(self) -> dict[str, float]:  # what SharedPPOSystem.stats() gives before any learner message
            return {"worker_restarts": 0.0, "worker_stalls": 0.0, "learner_restarts": 0.0, "learner_stalls": 0.0}

    trainer = MAPElitesEvolutionTrainer(TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
                                        use_shared_ppo=True, output_dir=str(tmp_path / "run"), evaluations=2, quiet=True)  # fmt: skip
    trainer._pool, trainer.memory, trainer._start = NoReportYet(), ProcessTreeMemory(), time.monotonic()
    trainer.learner_counters_floor, trainer.recorded_policy_version = {"updates": 7, "max_lag_seen": 3}, 9  # a resumed run's
    summary = trainer._summary("interrupted")
    assert summary["policy_updates"] == 7 and summary["max_policy_lag"] == 3 and summary["policy_version"] == 9
    assert "mean_policy_lag" in summary and summary["mean_policy_lag"] is None, "unknown, and said so"
    trainer._pool = type("Reported", (), {"stats": lambda self: {**NoReportYet().stats(), "policy_updates": 12.0,
                                                                 "mean_policy_lag": 0.5, "max_policy_lag": 4.0}})()  # fmt: skip
    summary = trainer._summary("completed")
    assert (summary["policy_updates"], summary["mean_policy_lag"], summary["max_policy_lag"]) == (12, 0.5, 4), "reports win"


def test_a_lag_recorded_after_the_learners_last_checkpoint_still_counts_after_a_resume(tmp_path):
    """Found in review: after a hard stop the resumed learner's max_policy_lag started from its
    checkpoint's (or 0 without one), so summary.json could say less than metrics.csv had shown."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    out = tmp_path / "run"
    arguments = dict(base_args=TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
                     use_shared_ppo=True, output_dir=str(out), quiet=True)  # fmt: skip
    assert MAPElitesEvolutionTrainer(**arguments, evaluations=1).run()["status"] == "completed"
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[-1]["max_policy_lag"] = "3"  # a serial run's lag is 0: as a worker process's late segment would have shown
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for checkpoint in (out / "checkpoints").glob("learner-*.pkl"):  # a hard stop before the learner wrote one
        checkpoint.unlink()
    (out / "summary.json").unlink()
    summary = MAPElitesEvolutionTrainer(**arguments, evaluations=2, resume=True).run()
    assert summary["status"] == "completed" and summary["max_policy_lag"] == 3


def test_the_python_api_refuses_an_empty_output_dir(tmp_path, monkeypatch):
    """Found in review: output_dir="" silently meant the default directory (the CLI refuses --output "")."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.runs.run_dir import RunDirectoryError

    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):
        with pytest.raises(RunDirectoryError, match="output_dir is empty"):
            MAPElitesEvolutionTrainer(**{**_serial_arguments(tmp_path, evaluations=1), "output_dir": empty})
    assert not any(tmp_path.iterdir())


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_resume_removes_the_temp_files_a_write_killed_midway_left(tmp_path, one_evaluation_run):
    """Found in review: a kill while heatmap.png or summary.json was written left its temp file in
    the run directory for good (only checkpoints' were cleaned up)."""
    import shutil

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    stored, arguments = one_evaluation_run
    out = tmp_path / "run"
    shutil.copytree(stored, out)
    leftovers = [".heatmap.png.k2x8_q1a.tmp", ".summary.json.0ab9zz_1.tmp"]
    for name in leftovers:
        (out / name).write_bytes(b"half")
    mine = [out / ".notes.tmp", out / "heatmap.png.tmp"]  # not a run's temp file: kept
    for path in mine:
        path.write_text("keep")
    assert MAPElitesEvolutionTrainer(**{**arguments, "output_dir": str(out), "evaluations": 2}, resume=True).run()["status"] == "completed"
    assert not any((out / name).exists() for name in leftovers) and all(path.exists() for path in mine)
    assert f"Removed {', '.join(sorted(leftovers))}, left by a write" in (out / "training.log").read_text()


def test_independent_mode_says_which_shared_learner_settings_it_ignores(tmp_path, one_evaluation_run):
    """Found in review: training.reevaluate_every (and every other setting of the shared learner)
    was ignored in independent mode without a word."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    arguments = _serial_arguments(tmp_path / "run", evaluations=1)
    base = {**arguments["base_args"], "training": {"reevaluate_every": 2, "buffer_size": 5000, "ipc_timeout": 60.0}}
    assert MAPElitesEvolutionTrainer(**{**arguments, "base_args": base}).run()["status"] == "completed"
    assert "Independent mode does not use training.buffer_size=5000, training.reevaluate_every=2: only the shared " \
           "learner does. Ignoring them." in (tmp_path / "run" / "training.log").read_text()
    assert "does not use" not in (one_evaluation_run[0] / "training.log").read_text(), "nothing said when nothing is set"


def test_shared_mode_says_which_ppo_rollout_settings_it_ignores(tmp_path):
    """Review (session 38): ppo.num_envs and ppo.num_steps were accepted and recorded in shared mode,
    whose workers and learner read neither."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    arguments = {**_serial_arguments(tmp_path / "run", evaluations=1), "use_shared_ppo": True}
    base = {**arguments["base_args"], "ppo": {**arguments["base_args"].get("ppo", {}), "num_envs": 64, "num_steps": 32}}
    assert MAPElitesEvolutionTrainer(**{**arguments, "base_args": base}).run()["status"] == "completed"
    assert "Shared mode does not use ppo.num_envs=64, ppo.num_steps=32: each worker steps 4 copies of its body" in (
        tmp_path / "run" / "training.log").read_text()


def test_a_serial_run_gives_the_caller_back_its_torch_threads_and_random_stream(tmp_path, torch_state_restored):
    """--serial trains in the calling process; from Python, that is the user's notebook."""
    import torch

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    torch.set_num_threads(2)
    torch.manual_seed(11)
    caller_rng = torch.get_rng_state()
    assert MAPElitesEvolutionTrainer(**_serial_arguments(tmp_path / "run", evaluations=1)).run()["status"] == "completed"
    assert torch.get_num_threads() == 2 and torch.equal(torch.get_rng_state(), caller_rng)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"use_shared_ppo": True}, ["holds a run in independent mode, and this one is in shared mode", "use_shared_ppo=False"]),
        ({"seed": 7}, ["evolution.seed: stored 0, now 7", "Only the budgets"]),
        ({"training_steps_per_individual": 128}, ["evolution.training_steps_per_individual: stored 64, now 128"]),
        ({"base_args": {**TINY, "env": {**TINY["env"], "scene": "obstacles"}}}, ["env.scene: stored 'open', now 'obstacles'"]),
    ],
    ids=["mode", "seed", "steps-per-individual", "scene"],
)
def test_python_api_resume_refuses_a_mode_or_settings_other_than_the_stored_run(one_evaluation_run, changes, words):
    """Seen: MAPElitesEvolutionTrainer(resume=True) ran with whatever its arguments said, so resuming an
    independent run with the default use_shared_ppo=True switched it to shared mode silently."""
    from morphelites.config import ConfigError
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    out, arguments = one_evaluation_run
    files = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    with pytest.raises(ConfigError) as refused:
        MAPElitesEvolutionTrainer(**{**arguments, "evaluations": 2, "resume": True, **changes})
    for word in words:
        assert word in str(refused.value)
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == files, "nothing was written"

    stored = json.loads((out / "config.json").read_text())["settings"]
    resumed = MAPElitesEvolutionTrainer(stored, output_dir=str(out), evaluations=2, max_workers=3, resume=True, quiet=True)
    assert resumed.mode == "independent", "the stored settings as base_args resume the run in its own mode"
    # Seen: with the stored settings, an explicit use_shared_ppo=True (its default) was dropped and
    # the run resumed in independent mode without a word.
    with pytest.raises(ConfigError, match="holds a run in independent mode"):
        MAPElitesEvolutionTrainer(stored, output_dir=str(out), evaluations=2, use_shared_ppo=True, resume=True, quiet=True)


def test_python_api_resume_keeps_the_stored_budgets_and_workers_its_settings_leave_out(one_evaluation_run):
    """Found in review: `--resume --config` keeps the stored run's budgets and workers where the
    file leaves them out, but MAPElitesEvolutionTrainer(dict, resume=True) took the defaults: a run
    stopped at 300 of 400 evaluations ended at once at 300 (the default 64), a wall-time limit was
    lifted and a serial run went parallel, all as 'resumable changes'. None now takes the stored
    settings whole."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    out, _ = one_evaluation_run
    stored = json.loads((out / "config.json").read_text())["settings"]
    left_out = ("evaluations", "enable_multiprocess", "max_workers", "max_wall_s")
    partial = {**stored, "evolution": {k: v for k, v in stored["evolution"].items() if k not in left_out}}
    resumed = MAPElitesEvolutionTrainer(partial, output_dir=str(out), resume=True, quiet=True)
    assert {k: getattr(resumed.settings.evolution, k) for k in left_out} == {k: stored["evolution"][k] for k in left_out}
    assert resumed._resumed_changes == [] and resumed.settings.evolution.evaluations == 1
    assert MAPElitesEvolutionTrainer(partial, output_dir=str(out), evaluations=3, resume=True,
                                     quiet=True).settings.evolution.evaluations == 3, "a keyword given still wins"  # fmt: skip
    # A second review: max_workers given asks for worker processes, as --workers does, also of a serial run
    for settings in (partial, None, stored):  # stored: README's recipe, config.json's whole settings (a third review)
        parallel = MAPElitesEvolutionTrainer(settings, output_dir=str(out), max_workers=2, resume=True, quiet=True)
        assert parallel.settings.evolution.enable_multiprocess and parallel.settings.evolution.max_workers == 2
    serial = MAPElitesEvolutionTrainer(stored, output_dir=str(out), max_workers=2, enable_multiprocess=False, resume=True,
                                       quiet=True)  # fmt: skip
    assert not serial.settings.evolution.enable_multiprocess, "the enable_multiprocess keyword still decides"
    from morphelites.config import Settings

    serial_section = {"evolution": {"enable_multiprocess": False}}
    for settings in (serial_section, Settings.from_dict(serial_section)):
        fresh = MAPElitesEvolutionTrainer(settings, max_workers=2, use_shared_ppo=False, output_dir=str(out.parent / "new"))
        assert fresh.settings.evolution.enable_multiprocess, "the same rule for a new run, as the CLI's --workers"
    whole = MAPElitesEvolutionTrainer(output_dir=str(out), resume=True, quiet=True)
    assert whole.mode == "independent" and whole.settings.to_dict() == resumed.settings.to_dict()


def test_a_trainer_runs_once(tmp_path):
    """Found in review: a second run() of a resume=True trainer (a notebook cell run again)
    replayed results.jsonl onto the archive and counts it already held: summary.json said 60 of
    30 evaluations, and the next resume took its checkpoint for one with results missing."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    from morphelites.runs.run_dir import RunDirectoryError

    out = tmp_path / "run"
    assert MAPElitesEvolutionTrainer(**_serial_arguments(out, evaluations=1)).run()["status"] == "completed"
    trainer = MAPElitesEvolutionTrainer(output_dir=str(out), resume=True, quiet=True)
    hold = RunDirectory(out).hold()  # another process runs it: refused before anything changed (a third review)
    try:
        with pytest.raises(RunDirectoryError, match="is in use"):
            trainer.run()
    finally:
        hold.release()
    assert trainer.run()["evaluations"] == 1, "refused, it may be run once it can"
    files = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file() and path.name != ".morphelites.lock"}
    with pytest.raises(RuntimeError, match="a trainer runs once. To continue the run, make a new"):
        trainer.run()
    assert {path.name: path.read_bytes() for path in out.iterdir()
            if path.is_file() and path.name != ".morphelites.lock"} == files, "nothing written"  # fmt: skip


def _append_a_partial_record(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*lines, {"id": 1, "note": "edited"}]


def _give_an_id_as_text(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*lines, {**lines[0], "id": "1"}]


def _cut_a_genome_short(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*lines, {**lines[0], "id": 1, "genome": lines[0]["genome"][:3]}]


@pytest.mark.parametrize(
    "edit, words",
    [
        # Seen: a KeyError, after config.json had been rewritten with the new budget.
        (_append_a_partial_record, "line 2 of 2: it has no genome, body"),
        # Seen: replayed; the next new individual took id 1 as well, so two records had id 1.
        (_give_an_id_as_text, "line 2 of 2: its id is '1', not a whole number >= 0"),
        # Seen in review: the results check let it through.
        (_cut_a_genome_short, "line 2 of 2: its genome has 3 genes, but this run's body space has genomes of 7"),
    ],
)
def test_python_api_resume_refuses_a_results_line_changed_from_outside_before_writing_anything(
        one_evaluation_run, tmp_path, edit, words):
    import shutil

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.runs.recorder import DamagedResults

    out = tmp_path / "copy"
    shutil.copytree(one_evaluation_run[0], out)
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    (out / "results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in edit(lines)))
    files = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    with pytest.raises(DamagedResults, match=re.escape(f"results.jsonl is damaged at {words}")):
        MAPElitesEvolutionTrainer(**{**one_evaluation_run[1], "output_dir": str(out), "evaluations": 2, "resume": True})
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == files, "nothing was written"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_second_ctrl_c_stops_at_once_without_orphans(tmp_path, tiny_config):
    """The first Ctrl-C waits for the learner's final checkpoint (up to 5 s, then it is stopped
    by force); the second stops at once. The learner is kept from answering (SIGSTOP) so that
    the first would take its full time: in independent mode, or with a learner that answers, the
    first alone stops within seconds, and the second had nothing to cut short."""
    out = tmp_path / "run"
    proc = start_train("--mode", "shared", "--workers", "1", "--evaluations", "50", "--steps-per-individual", "2000",
                       "--config", str(tiny_config), "--output", str(out))  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not _results(out):
        time.sleep(0.2)
    children = psutil.Process(proc.pid).children(recursive=True)
    (learner,) = [c for c in children if "shared_ppo learner" in " ".join(c.cmdline())]
    learner.suspend()
    proc.send_signal(signal.SIGINT)
    while time.monotonic() < deadline and "Stopping (Ctrl-C)" not in (out / "training.log").read_text():
        time.sleep(0.05)
    time.sleep(0.5)  # the main process now waits for the learner
    proc.send_signal(signal.SIGINT)
    # The suspended learner is killed at once; a main process that kept waiting would leave it alive
    # until its 5 s from the first Ctrl-C ran out. Timed alone: the final pictures that follow took
    # up to 4 s on a loaded machine, and with them in the limit the test failed there (review).
    assert_gone([learner], timeout=3.0)
    _, err = proc.communicate(timeout=60)  # summary.json and the pictures, at the machine's speed
    assert proc.returncode == 130, err
    assert "Second interrupt: stopping at once" in (out / "training.log").read_text()
    assert_gone(children)
    assert len(_results(out)) >= 1, "what was written before stays"
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


def test_a_picture_that_cannot_be_drawn_mid_run_does_not_stop_the_run(tmp_path, monkeypatch):
    """Review (session 38): the final pictures' failures were logged and tolerated, but one while
    the run went on (not the disk's: a bug in a drawing library) ended it as failed."""
    from morphelites.evolution import trainer as trainer_module

    def broken_heatmap(archive, title_prefix=""):
        raise ValueError("simulated: a drawing library's bug")

    monkeypatch.setattr(trainer_module, "heatmap_png", broken_heatmap)
    out = tmp_path / "run"
    settings = {**TINY, "evolution": {**TINY["evolution"], "heatmap_every": 1}}
    trainer = trainer_module.MAPElitesEvolutionTrainer(
        settings, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
        use_shared_ppo=False, output_dir=str(out), evaluations=3, quiet=True,
    )  # fmt: skip
    assert trainer.run()["status"] == "completed"
    assert len(_results(out)) == 3 and (out / "archive.csv").is_file()
    assert "A picture of the archive could not be drawn (ValueError: simulated" in (out / "training.log").read_text()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_final_picture_that_cannot_be_drawn_does_not_cost_the_summary(tmp_path, monkeypatch):
    """Seen: a second Ctrl-C tore the first import of pyribs' heatmap code in half, the final
    heatmap then raised AttributeError, and the run exited 1 without summary.json."""
    from morphelites.evolution import trainer as trainer_module

    def broken_heatmap(archive, title_prefix=""):
        raise AttributeError("partially initialized module 'shapely' has no attribute 'lib'")

    monkeypatch.setattr(trainer_module, "heatmap_png", broken_heatmap)
    out = tmp_path / "run"
    settings = {**TINY, "evolution": {**TINY["evolution"], "heatmap_every": 100}}  # drawn at the end only
    trainer = trainer_module.MAPElitesEvolutionTrainer(
        settings, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
        use_shared_ppo=False, output_dir=str(out), evaluations=2, quiet=True,
    )  # fmt: skip
    assert trainer.run()["status"] == "completed"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["evaluations"] == 2
    assert not (out / "heatmap.png").exists()
    log = (out / "training.log").read_text()
    assert "Could not write the final archive files (AttributeError: partially initialized module 'shapely'" in log
    assert "Traceback" in log, "a failure that is not the disk's is a bug: its traceback goes in the log"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_final_picture_that_cannot_be_drawn_does_not_cost_the_reevaluated_archive(tmp_path, monkeypatch):
    """Seen in review: archive_reevaluated.csv was written after the pictures, in the same try, so
    a failing heatmap lost each elite's re-evaluated fitness for good, and --resume then called the
    run finished. The tables now come first; a run whose re-evaluated archive is missing does its
    final re-evaluation again on --resume."""
    from morphelites.evolution import trainer as trainer_module

    real = trainer_module.heatmap_png

    def broken_heatmap(archive, title_prefix=""):
        raise OSError(28, "No space left on device")

    settings = {**TINY, "evolution": {**TINY["evolution"], "heatmap_every": 100}}  # drawn at the end only

    def run(resume: bool) -> dict:
        return trainer_module.MAPElitesEvolutionTrainer(
            settings, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
            use_shared_ppo=True, output_dir=str(out), evaluations=2, quiet=True, resume=resume,
        ).run()  # fmt: skip

    monkeypatch.setattr(trainer_module, "heatmap_png", broken_heatmap)
    out = tmp_path / "run"
    assert run(resume=False)["status"] == "completed"
    assert (out / "archive_reevaluated.csv").is_file() and (out / "curves.png").is_file()
    assert not (out / "heatmap.png").exists() and not (out / "heatmap_reevaluated.png").exists()
    monkeypatch.setattr(trainer_module, "heatmap_png", real)
    (out / "archive_reevaluated.csv").unlink()  # as a failed write would have left it
    summary = run(resume=True)
    assert summary["status"] == "completed" and "qd_score_reevaluated" in summary
    assert (out / "archive_reevaluated.csv").is_file() and (out / "heatmap_reevaluated.png").is_file()
    assert "Nothing to do" not in (out / "training.log").read_text()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_results_line_the_disk_refuses_leaves_the_archive_and_summary_without_that_individual(tmp_path, monkeypatch):
    """Seen: the archive took the individual before results.jsonl refused its line, so the failed run's
    summary.json and archive.csv counted an evaluation that results.jsonl (the run's record) lacks."""
    import errno

    from morphelites.evolution import trainer as trainer_module
    from morphelites.runs.recorder import EvolutionRecorder

    record_result = EvolutionRecorder.result

    def disk_full_at_id_2(recorder, line):
        if line["id"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        record_result(recorder, line)

    monkeypatch.setattr(EvolutionRecorder, "result", disk_full_at_id_2)
    out = tmp_path / "run"
    arguments = _serial_arguments(out, evaluations=4)
    summary = trainer_module.MAPElitesEvolutionTrainer(**arguments).run()
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert [r["id"] for r in _results(out)] == [0, 1]
    stored = json.loads((out / "summary.json").read_text())
    assert stored["evaluations"] == 2
    with open(out / "archive.csv") as handle:
        ids = {int(row["individual_id"]) for row in csv.DictReader(handle)}
    assert ids and ids <= {0, 1} and len(ids) == stored["elites"], (ids, stored["elites"])

    monkeypatch.setattr(EvolutionRecorder, "result", record_result)
    assert trainer_module.MAPElitesEvolutionTrainer(**arguments, resume=True).run()["status"] == "completed"
    assert sorted(r["id"] for r in _results(out)) == [0, 1, 2, 3], "--resume evaluates the refused individual again"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
@pytest.mark.parametrize("refused", [{1}, {1, 2}])
def test_a_record_the_disk_refuses_still_handles_the_other_results_of_its_poll_and_counts_their_steps(
    tmp_path, monkeypatch, refused
):
    """Review (session 38): a refused write dropped the rest of the poll's events, whose workers the
    pool had already marked idle: their results were lost, and in shared mode so was the training
    the learner had taken from them (and from the refused one), also after --resume."""
    import errno

    from morphelites.evolution import trainer as trainer_module
    from morphelites.parallel.supervisor import SerialSharedBackend
    from morphelites.runs.recorder import EvolutionRecorder

    record_result, poll = EvolutionRecorder.result, SerialSharedBackend.poll
    held: list = []

    def disk_full_at_id_1(recorder, line):
        if line["id"] in refused:
            raise OSError(errno.ENOSPC, "No space left on device")
        record_result(recorder, line)

    def id_1_arrives_with_id_2(backend, timeout):  # as two workers' results arrive in one poll
        events = poll(backend, timeout)
        if any(e.task_id == 1 for e in events):
            held.extend(events)
            return []
        events, held[:] = held + events, []
        return events

    monkeypatch.setattr(EvolutionRecorder, "result", disk_full_at_id_1)
    monkeypatch.setattr(SerialSharedBackend, "poll", id_1_arrives_with_id_2)
    out = tmp_path / "run"
    arguments = {**_serial_arguments(out, evaluations=4), "use_shared_ppo": True, "num_initial_random": 4}
    arguments["base_args"] = {**TINY, "training": {**TINY.get("training", {}), "reevaluate_every": 2}}
    summary = trainer_module.MAPElitesEvolutionTrainer(**arguments).run()
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert [r["id"] for r in _results(out)] == sorted({0, 2} - refused), "what came with the refused one is recorded"
    assert summary["training_env_steps"] == summary["transitions_written"], "and the refused ones' training counts"
    log = (out / "training.log").read_text()
    assert ("Also, in the same poll: [Errno 28] No space left" in log) == (2 in refused)
    assert "(round at 2 evaluations)" not in log, "no re-evaluation round starts in a poll that fails the run"

    monkeypatch.setattr(EvolutionRecorder, "result", record_result)
    summary = trainer_module.MAPElitesEvolutionTrainer(**arguments, resume=True).run()
    assert summary["status"] == "completed" and sorted(r["id"] for r in _results(out)) == [0, 1, 2, 3]
    assert summary["training_env_steps"] == summary["transitions_written"]


def _before_recording(monkeypatch, individual_id: int, act) -> None:
    """Call ``act()`` just before individual ``individual_id``'s result is recorded, in the run's
    thread: a signal it sends to this process is handled there and then."""
    from morphelites.runs.recorder import EvolutionRecorder

    record_result = EvolutionRecorder.result

    def act_then_record(recorder, line):
        if line["id"] == individual_id:
            act()
        record_result(recorder, line)

    monkeypatch.setattr(EvolutionRecorder, "result", act_then_record)


def _serial_trainer(out: Path, evaluations: int) -> Any:
    """An independent-mode trainer of TINY that runs in this process, two random bodies first."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    return MAPElitesEvolutionTrainer(TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
                                     use_shared_ppo=False, output_dir=str(out), evaluations=evaluations, quiet=True)  # fmt: skip


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_second_ctrl_c_while_a_result_is_recorded_waits_until_the_files_agree(tmp_path, monkeypatch):
    """Without the wait, the archive took the individual but results.jsonl and metrics.csv never did."""
    import os

    def ctrl_c_twice():
        os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler at once, in this thread
        os.kill(os.getpid(), signal.SIGINT)

    _before_recording(monkeypatch, 1, ctrl_c_twice)
    out = tmp_path / "run"
    trainer = _serial_trainer(out, evaluations=4)
    assert trainer.run()["status"] == "interrupted"
    assert [r["id"] for r in _results(out)] == [0, 1]
    with open(out / "metrics.csv") as handle:
        assert [row["evaluations"] for row in csv.DictReader(handle)] == ["1", "2"]
    stored = json.loads((out / "summary.json").read_text())
    with open(out / "archive.csv") as handle:
        ids = {int(row["individual_id"]) for row in csv.DictReader(handle)}
    assert ids and ids <= {0, 1} and len(ids) == stored["elites"], (ids, stored["elites"])
    assert stored["evaluations"] == 2
    assert "Second interrupt: stopping at once" in (out / "training.log").read_text()


def test_the_trainer_handles_every_stop_signal_alike(tmp_path, monkeypatch):
    """SIGHUP (a closed terminal) and SIGUSR1/2 (a scheduler's warning) stop a run as SIGTERM does,
    through one handler (their whole runs are `make test-faults`' ones)."""
    import os

    from morphelites.parallel.pool import STOP_SIGNALS

    seen = []

    def look_then_warn():
        seen.append({signal.getsignal(s) for s in STOP_SIGNALS})
        os.kill(os.getpid(), signal.SIGUSR2)

    _before_recording(monkeypatch, 0, look_then_warn)
    out = tmp_path / "run"
    trainer = _serial_trainer(out, evaluations=3)
    summary = trainer.run()
    assert seen == [{trainer._on_signal}]
    assert summary["status"] == "terminated" and summary["evaluations"] < 3
    assert "Stopping (SIGUSR2)" in (out / "training.log").read_text()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_run_started_under_nohup_goes_on_through_a_hang_up(tmp_path, monkeypatch):
    """Review: the run's handlers replaced the SIGHUP that ``nohup`` ignores, so a closed terminal
    stopped a nohup'd run ("terminated")."""
    import os

    _before_recording(monkeypatch, 0, lambda: os.kill(os.getpid(), signal.SIGHUP))  # ignored: nothing happens
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        summary = _serial_trainer(tmp_path / "run", evaluations=2).run()
        # and the log says so, or a `kill -HUP` that does nothing looks like a hung run (review)
        assert ("SIGHUP ignored as this run started (as nohup and a script's background job do), and left so: "
                "SIGTERM stops it.") in (tmp_path / "run" / "training.log").read_text()
        assert summary["status"] == "completed" and summary["evaluations"] == 2
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, "still ignored after the run"
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_second_ctrl_c_while_the_processes_stop_still_writes_the_summary(tmp_path, monkeypatch):
    """The backend's last close waits for the processes (in shared mode up to 15 s for the
    learner's final checkpoint). A second Ctrl-C there escaped run(): no summary.json, the
    trainer's signal handlers left in place, the processes and shared memory not freed."""
    import os

    from morphelites.evolution import trainer as trainer_module
    from morphelites.parallel.supervisor import IndependentBackend

    close = IndependentBackend.close
    calls: list[bool] = []

    def ctrl_c_twice_while_closing(backend, graceful=True):
        calls.append(graceful)
        if graceful:
            os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler at once, in this thread
            os.kill(os.getpid(), signal.SIGINT)
        close(backend, graceful=graceful)

    monkeypatch.setattr(IndependentBackend, "close", ctrl_c_twice_while_closing)
    handler_before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "run"
    trainer = trainer_module.MAPElitesEvolutionTrainer(
        TINY, num_initial_random=2, training_steps_per_individual=64, enable_multiprocess=False,
        use_shared_ppo=False, output_dir=str(out), evaluations=2, quiet=True,
    )  # fmt: skip
    try:
        summary = trainer.run()
    except KeyboardInterrupt:  # not left to stop the whole test session
        signal.signal(signal.SIGINT, handler_before)
        pytest.fail("the second Ctrl-C escaped run()")
    assert calls == [True, False], "the second Ctrl-C stopped the processes at once"
    assert summary["status"] == "interrupted" and summary["evaluations"] == 2
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is handler_before, "the caller's handler is given back"
    assert "Second interrupt: stopping the processes at once." in (out / "training.log").read_text()


_IMPORTS_UNDER_THE_HANDLER = """import signal, sys
from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
late = []
def hook(event, args):
    if event == "import" and args[0] not in sys.modules and getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "_on_signal":
        late.append(args[0])
sys.addaudithook(hook)
summary = MAPElitesEvolutionTrainer({"evolution": {"eval_episodes": 1}}, num_initial_random=1, training_steps_per_individual=64,
                                    enable_multiprocess=False, use_shared_ppo=sys.argv[2] == "shared", output_dir=sys.argv[1],
                                    evaluations=1, training_config={"min_batch_size": 32, "buffer_size": 512}, quiet=True).run()
print(summary["status"], sorted({name for name in late if name in sys.modules}))
"""


# one code path loads the modules for both modes: `make test` runs the shared one
@pytest.mark.parametrize("mode", ["shared", pytest.param("independent", marks=pytest.mark.slow)])
def test_a_run_in_the_callers_process_imports_nothing_while_its_ctrl_c_handler_is_in(tmp_path, mode):
    """Review: a serial run imported mujoco and, with its first optimiser step, torch._dynamo and
    sympy (~890 modules) while its Ctrl-C handler was in; a second Ctrl-C inside that import left
    sympy half initialised, the final checkpoint failed, run() raised, the shared memory stayed,
    and every later optimiser of the process failed. (A failed probe for tensorflow, by
    TensorBoard, leaves nothing half made: only imports that succeeded are counted.)"""
    done = subprocess.run([sys.executable, "-c", _IMPORTS_UNDER_THE_HANDLER, str(tmp_path / "run"), mode],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed []", done.stdout


def test_a_bug_while_the_processes_stop_still_writes_the_summary_and_gives_the_handlers_back(tmp_path, monkeypatch):
    """An error escaping the backend's close (a module a second Ctrl-C left half imported, a bug)
    went past summary.json, the signal handlers, the process title and training.log (review)."""
    from morphelites.parallel.supervisor import IndependentBackend

    def broken_close(backend, graceful=True):
        raise RuntimeError("broken on the way out")

    monkeypatch.setattr(IndependentBackend, "close", broken_close)
    handler_before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "run"
    trainer = _serial_trainer(out, evaluations=1)
    with pytest.raises(RuntimeError, match="broken on the way out"):  # a bug is raised, as any other of run()
        trainer.run()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["evaluations"] == 1
    assert "while stopping the run's processes: RuntimeError: broken on the way out" in summary["error"]
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_a_serial_shared_run_whose_final_checkpoint_breaks_still_frees_its_shared_memory(tmp_path, monkeypatch):
    from morphelites.evolution import trainer as trainer_module
    from morphelites.parallel.shm import leftover_blocks
    from morphelites.parallel.supervisor import SerialSharedBackend

    checkpoint = SerialSharedBackend._checkpoint

    def broken_final_checkpoint(backend, final=False):
        if final:
            raise AttributeError("module 'sympy' has no attribute 'core'")
        checkpoint(backend, final)

    monkeypatch.setattr(SerialSharedBackend, "_checkpoint", broken_final_checkpoint)
    out = tmp_path / "run"
    trainer = trainer_module.MAPElitesEvolutionTrainer(
        TINY, num_initial_random=1, training_steps_per_individual=64, enable_multiprocess=False, use_shared_ppo=True,
        output_dir=str(out), evaluations=1, quiet=True, training_config={"min_batch_size": 32, "buffer_size": 512},
    )  # fmt: skip
    summary = trainer.run()
    assert summary["status"] == "completed"
    assert not leftover_blocks(trainer.block_prefix), "the shared memory is freed"
    assert ("The learner's final checkpoint (update 1) could not be written (AttributeError: module 'sympy' has no "
            "attribute 'core'); the previous learner checkpoint is intact") in (out / "training.log").read_text()


@pytest.mark.parametrize("where", ["loop", "handlers", "replay"])
def test_a_run_cut_short_by_another_base_exception_gives_back_handlers_title_log_and_shared_memory(tmp_path, monkeypatch,
                                                                                                    where):
    """Review (session 44): a BaseException other than KeyboardInterrupt in the main loop (SystemExit,
    pytest-timeout's Failed) closed the backend gracefully and skipped the rest: the run's Ctrl-C
    handler, its process title and training.log stayed with the caller, whose next Ctrl-C did
    nothing. A Ctrl-C while the handlers were being looked up left the shared memory behind, and
    one while a resume replayed results.jsonl left training.log open."""
    from setproctitle import getproctitle

    from morphelites.evolution import trainer as trainer_module
    from morphelites.parallel.shm import leftover_blocks

    def make(**kwargs: Any) -> Any:
        return trainer_module.MAPElitesEvolutionTrainer(
            TINY, num_initial_random=1, training_steps_per_individual=64, enable_multiprocess=False, use_shared_ppo=True,
            output_dir=str(tmp_path / "run"), quiet=True, training_config={"min_batch_size": 32, "buffer_size": 512},
            **kwargs)  # fmt: skip

    def cut(*args, **kwargs):
        raise SystemExit(3) if where != "handlers" else KeyboardInterrupt

    if where == "replay":
        make(evaluations=1).run()
    monkeypatch.setattr(trainer_module.MAPElitesEvolutionTrainer,
                        {"loop": "_loop", "handlers": "_handlers_to_replace", "replay": "_insert"}[where], cut)
    trainer = make(evaluations=2, resume=True) if where == "replay" else make(evaluations=1)
    handler_before, title_before = signal.getsignal(signal.SIGINT), getproctitle()
    with pytest.raises(KeyboardInterrupt if where == "handlers" else SystemExit):
        trainer.run()
    assert signal.getsignal(signal.SIGINT) is handler_before, "the caller's Ctrl-C handler is back"
    assert getproctitle() == title_before, "the caller's title is back"
    assert not leftover_blocks(trainer.block_prefix), "the shared memory is freed"
    assert not trainer.recorder.log.handlers, "training.log is closed"


def test_what_a_long_run_costs_the_main_process_does_not_grow_with_it(tmp_path, monkeypatch):
    """Review (session 44): curves.png was redrawn every 30 s from the whole metrics.csv, in which
    the main process issues nothing (at 200,000 rows a drawing took 7-10 s, a third of its time):
    now at most once in fifty times the last drawing. And the issue count of every individual
    ever issued was kept (+51 MB at 500,000): now only of those in flight."""
    from morphelites.evolution import trainer as trainer_module

    trainer = _serial_trainer(tmp_path / "run", evaluations=2)
    trainer.run()
    assert trainer._issued_at == {} and trainer._issues == 2
    clock = iter([1000.0, 1002.0])  # the drawing takes 2 s

    # the trainer's clock only (time.monotonic itself is left to every other thread of the process)
    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    trainer._write_curves()
    assert trainer._curves_every_s == 100.0 and trainer._last_curves == 1000.0
    clock = iter([2000.0, 2000.1])
    trainer._write_curves()
    assert trainer._curves_every_s == trainer_module._CURVES_EVERY_S, "a quick drawing: every 30 s as before"
    drawn: list[bool] = []
    monkeypatch.setattr(trainer, "_write_curves", lambda: drawn.append(True))
    trainer._curves_every_s, trainer._last_curves = 100.0, 2000.0
    for now in (2050.0, 2100.0):  # with the heatmap: not yet at 50 s, then at 100 s
        clock = iter([now])
        trainer._write_archive_files()
    assert drawn == [True]


def test_a_relative_output_dir_is_the_one_of_the_directory_the_trainer_was_made_in(tmp_path, monkeypatch):
    """Review: a run in a thread wrote into another directory, and named it in its advice, once the
    main thread changed directory (a notebook's %cd)."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    trainer = MAPElitesEvolutionTrainer(TINY, num_initial_random=1, training_steps_per_individual=64, enable_multiprocess=False,
                                        use_shared_ppo=False, output_dir="run", evaluations=1, quiet=True)  # fmt: skip
    monkeypatch.chdir(tmp_path / "b")
    assert trainer.run()["status"] == "completed"
    assert (tmp_path / "a/run/summary.json").is_file() and not (tmp_path / "b/run").exists()


def test_a_finished_trainer_kept_by_its_caller_holds_no_descriptor_of_its_processes(tmp_path):
    """Review: a sweep that keeps its trainers (to read their archives) kept two descriptors per
    process each had started, until a full garbage collection (macOS allows 256 by default)."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    kept, counts = [], []
    for mode in ("shared", "shared"):
        trainer = MAPElitesEvolutionTrainer(TINY, num_initial_random=1, training_steps_per_individual=64,
                                            use_shared_ppo=mode == "shared", max_workers=1, evaluations=1, quiet=True,
                                            output_dir=str(tmp_path / f"run{len(kept)}"),
                                            training_config={"min_batch_size": 32, "buffer_size": 512})  # fmt: skip
        assert trainer.run()["status"] == "completed"
        kept.append(trainer)
        counts.append(open_descriptors())
    # (the first may start multiprocessing's resource tracker, whose pipe stays: the second is compared with it)
    assert counts[1] == counts[0], f"descriptors after each run: {counts}"


def _serial_run(out: Path, config: Path, evaluations: int, resume: bool = False) -> None:
    options = ["--resume"] if resume else ["--mode", "independent", "--serial", "--config", str(config),
                                           "--initial-random", "4", "--steps-per-individual", "64"]  # fmt: skip
    assert main(["train", *options, "--output", str(out), "--evaluations", str(evaluations), "--quiet"]) == 0


def test_a_resume_after_whole_results_lines_were_deleted_says_so_and_fills_their_ids(tmp_path, tiny_config):
    """DamagedResults advises deleting a damaged line; a resume then went on without a word, and its
    log called the missing evaluations individuals in flight (review, session 38)."""
    out = tmp_path / "run"
    _serial_run(out, tiny_config, evaluations=4)  # its newest checkpoint counted 4
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:1] + lines[2:]))  # id 1's line deleted
    _serial_run(out, tiny_config, evaluations=4, resume=True)
    log = (out / "training.log").read_text()
    assert ("results.jsonl holds 3 evaluations, but evolution-00000004.pkl counted 4: 1 recorded evaluation(s) are "
            "missing from it") in log
    assert "new individuals take them (1)" in log
    assert sorted(r["id"] for r in _results(out)) == [0, 1, 2, 3]
    # the checkpoint of the lost timeline is set aside: a later resume, stopped below its count,
    # would go back to it (the highest count wins) and drop that session's individuals in flight
    assert (out / "checkpoints" / "evolution-00000004.pkl.superseded").is_file()
    assert "Set aside evolution-00000004.pkl as *.superseded" in log
    _serial_run(out, tiny_config, evaluations=4, resume=True)  # nothing left to do: and nothing missing now
    log = (out / "training.log").read_text()
    assert log.count("recorded evaluation(s) are missing") == 1, "said once: the resume refilled what was lost"


def test_a_resume_after_the_last_results_line_was_lost_past_the_checkpoint_says_so(tmp_path, tiny_config):
    """Review (session 38): counted against the checkpoint alone, a line lost after it (the newest
    checkpoint is older than the last results after a hard stop) went unsaid; metrics.csv's last row
    counts it."""
    out = tmp_path / "run"
    _serial_run(out, tiny_config, evaluations=5)  # checkpoints at 2 and 4; metrics.csv's last row: 5
    for name in ("summary.json", "checkpoints/evolution-00000005.pkl"):  # as a hard stop leaves the run
        (out / name).unlink(missing_ok=True)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:-1]))  # an older copy: the last line is missing
    _serial_run(out, tiny_config, evaluations=5, resume=True)
    assert ("results.jsonl holds 4 evaluations, but metrics.csv counted 5: 1 recorded evaluation(s) are missing"
            in (out / "training.log").read_text())


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_resume_whose_checkpoint_is_behind_results_draws_no_genome_again_and_fills_the_lost_ids(tmp_path, tiny_config):
    """After a hard stop (SIGKILL, a second Ctrl-C) results.jsonl is ahead of the newest checkpoint,
    and an individual that was in flight may be missing below the last recorded id (another worker
    finished later ones). Resuming with the checkpoint's variation stream drew the genomes after
    it again, and the missing id was never filled."""
    out = tmp_path / "run"
    _serial_run(out, tiny_config, evaluations=6)  # checkpoints after 2, 4 and 6 evaluations
    for newer in ("000004", "000006"):
        next((out / "checkpoints").glob(f"*{newer}*.pkl")).unlink()
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(line for line in lines if json.loads(line)["id"] != 4))
    (out / "summary.json").unlink()
    _serial_run(out, tiny_config, evaluations=8, resume=True)
    results = _results(out)
    assert sorted(r["id"] for r in results) == list(range(8)), "id 4, lost in flight, is taken by a new individual"
    genomes = [tuple(r["genome"]) for r in results]
    assert len(set(genomes)) == len(genomes), "no genome is evaluated twice"
    assert sum(r["parent_id"] is None for r in results) == 4, "the random start is not run again"
    assert "behind results.jsonl" in (out / "training.log").read_text()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_second_hard_stop_after_free_ids_were_taken_draws_no_genome_again(tmp_path, tiny_config):
    """Individuals that take the free ids of ones lost in flight leave next_id where it was. After a
    checkpoint between two such individuals and a second hard stop, the resume judged the
    checkpoint up to date by next_id and drew their genomes again for new ids."""
    out = tmp_path / "run"

    def run(evaluations: int, resume: bool = False) -> None:  # all random: genomes come from the variation stream alone
        options = ["--resume"] if resume else ["--mode", "independent", "--serial", "--config", str(tiny_config),
                                               "--initial-random", "10", "--steps-per-individual", "64"]  # fmt: skip
        assert main(["train", *options, "--output", str(out), "--evaluations", str(evaluations), "--quiet"]) == 0

    def hard_stop(keep_checkpoints_up_to: int, lost_ids: tuple[int, ...] = ()) -> None:
        for checkpoint in (out / "checkpoints").glob("*.pkl"):
            if int(checkpoint.stem.split("-")[-1]) > keep_checkpoints_up_to:
                checkpoint.unlink()
        lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
        (out / "results.jsonl").write_text("".join(line for line in lines if json.loads(line)["id"] not in lost_ids))
        (out / "summary.json").unlink()

    run(evaluations=6)  # ids 0-5, checkpoints after 2, 4 and 6 evaluations
    hard_stop(keep_checkpoints_up_to=2, lost_ids=(1, 2, 4))  # in flight, never recorded
    run(evaluations=6, resume=True)  # ids 1, 2, 4 taken again: a checkpoint after 1, none after 2 and 4
    hard_stop(keep_checkpoints_up_to=4)
    run(evaluations=8, resume=True)
    results = _results(out)
    assert sorted(r["id"] for r in results) == list(range(8))
    genomes = [tuple(r["genome"]) for r in results]
    assert len(set(genomes)) == len(genomes), "no genome is evaluated twice"


def test_a_serial_shared_run_goes_on_with_worker_processes_when_resumed_with_workers(tmp_path, tiny_config):
    """--workers on the resume of a --serial run was ignored: the run stayed serial, silently."""
    out = tmp_path / "run"
    assert main(["train", "--serial", "--config", str(tiny_config), "--initial-random", "2", "--steps-per-individual", "200",
                 "--output", str(out), "--evaluations", "2", "--quiet"]) == 0  # fmt: skip
    assert main(["train", "--resume", "--workers", "2", "--output", str(out), "--evaluations", "4", "--quiet"]) == 0
    assert sorted(r["id"] for r in _results(out)) == [0, 1, 2, 3]
    settings = json.loads((out / "config.json").read_text())["settings"]["evolution"]
    assert settings["enable_multiprocess"] is True and settings["max_workers"] == 2
    assert "2 worker(s)" in (out / "training.log").read_text().split("MAP-Elites (shared mode)")[-1]


def test_a_budget_raised_on_resume_is_recorded_for_the_next_plain_resume(tmp_path, tiny_config):
    """config.json kept the first session's budget, so after `--resume --evaluations 6` was stopped,
    a plain --resume (as README's troubleshooting advises) went back to 4 and ended the run there."""
    out = tmp_path / "run"
    _serial_run(out, tiny_config, evaluations=4)
    settings = json.loads((out / "config.json").read_text())["settings"]
    _serial_run(out, tiny_config, evaluations=6, resume=True)
    stored = json.loads((out / "config.json").read_text())["settings"]
    assert stored["evolution"]["evaluations"] == 6
    settings["evolution"]["evaluations"] = 6
    assert stored == settings, "nothing but the budget changed"
    assert main(["train", "--resume", "--output", str(out), "--quiet"]) == 0
    assert len(_results(out)) == 6


def test_a_config_given_to_a_resume_keeps_the_stored_budgets_and_workers_it_does_not_name(tmp_path, tiny_config):
    """A resume's --config was the whole configuration: a job script's file that named no budget put
    the budgets and workers back to their defaults (64 evaluations, no wall-time limit, worker
    processes) and config.json recorded them, undoing `--resume --evaluations N` (review, session 38)."""
    out = tmp_path / "run"
    command = ["train", "--mode", "independent", "--resume-if-exists", "--config", str(tiny_config), "--output", str(out),
               "--initial-random", "2", "--steps-per-individual", "64", "--quiet"]  # fmt: skip
    assert main([*command, "--serial", "--evaluations", "2", "--max-wall-time", "36000"]) == 0
    assert main(["train", "--resume", "--output", str(out), "--evaluations", "3", "--quiet"]) == 0
    assert len(_results(out)) == 3
    assert main(command) == 0  # the job script requeued: its file names no budget
    evolution = json.loads((out / "config.json").read_text())["settings"]["evolution"]
    assert (evolution["evaluations"], evolution["max_wall_s"], evolution["enable_multiprocess"]) == (3, 36000, False)
    assert len(_results(out)) == 3
    ipc = tmp_path / "ipc.json"  # what the file does name, it changes (and training.log says so)
    write_json(ipc, {**TINY, "training": {**TINY.get("training", {}), "ipc_timeout": 999.0}})
    assert main([*command[:5], str(ipc), *command[6:], "--evaluations", "4"]) == 0
    assert len(_results(out)) == 4
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["training"]["ipc_timeout"] == 999.0 and settings["evolution"]["max_wall_s"] == 36000
    assert "Resumed with settings changed from the stored run's (config.json now records them): " \
           "evolution.evaluations: stored 3, now 4; training.ipc_timeout: stored" in (out / "training.log").read_text()


def test_a_resume_config_of_one_key_changes_that_key_and_keeps_every_other_stored_setting(tmp_path, tiny_config, capsys):
    """Seen in review: README's troubleshooting file of one key (a longer ipc_timeout) was refused for
    a run started with non-default settings: what the file left out took its default, and the
    refusal listed values the user never gave."""
    out = tmp_path / "run"
    _serial_run(out, tiny_config, evaluations=2)  # --initial-random 4, --steps-per-individual 64, TINY's sections
    stored = json.loads((out / "config.json").read_text())["settings"]
    ipc = write_json(tmp_path / "ipc.json", {"training": {"ipc_timeout": 600}})
    assert main(["train", "--resume", "--config", str(ipc), "--output", str(out), "--evaluations", "3", "--quiet"]) == 0
    assert len(_results(out)) == 3
    settings = json.loads((out / "config.json").read_text())["settings"]
    stored["training"]["ipc_timeout"], stored["evolution"]["evaluations"] = 600.0, 3
    assert settings == stored
    # what the file does set is still checked: a setting a resume may not change is refused
    changed = write_json(tmp_path / "lr.json", {"ppo": {"learning_rate": 0.1}})
    assert main(["train", "--resume", "--config", str(changed), "--output", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "ppo.learning_rate: stored 0.0003, now 0.1" in error and "Leave the others out (of --config" in error
    # the model's sizes, derived from the body space, are not kept from the stored run: the refusal
    # names the change the file makes (review)
    smaller = write_json(tmp_path / "space.json", {"body_space": {"max_links": 5}})
    assert main(["train", "--resume", "--config", str(smaller), "--output", str(out), "--quiet"]) == 2
    assert "body_space.max_links: stored 6, now 5" in capsys.readouterr().err


def test_a_config_given_to_a_resume_that_asks_for_workers_or_is_a_whole_config_json_is_not_filled_in():
    """Review (session 38) of the fill-in above: a file setting max_workers kept a serial run serial
    (--workers makes it parallel), and a run's whole config.json got "Unknown config section 'mode'"
    instead of the advice to take its settings object."""
    from morphelites.config import ConfigError, Settings
    from morphelites.runs.stored_run import over_stored_settings

    stored = Settings.from_dict({"evolution": {"enable_multiprocess": False, "evaluations": 9}}).to_dict()
    merged = over_stored_settings({"evolution": {"max_workers": 2}}, stored)
    assert "enable_multiprocess" not in merged["evolution"] and merged["evolution"]["evaluations"] == 9
    assert Settings.from_dict(merged).evolution.enable_multiprocess
    whole = {"command": "train", "mode": "shared", "settings": stored}
    with pytest.raises(ConfigError, match="This is a run's config.json"):
        Settings.from_dict(over_stored_settings(whole, stored))


def test_a_resume_may_raise_the_stall_timeout_that_troubleshooting_advises(tmp_path, tiny_config):
    """README's troubleshooting says to raise training.ipc_timeout; a resume refused any change but
    budgets and workers, so a run that kept stalling could not go on with a longer timeout."""
    out = tmp_path / "run"
    _serial_run(out, tiny_config, evaluations=2)
    settings = json.loads((out / "config.json").read_text())["settings"]
    settings["training"]["ipc_timeout"] = settings["training"]["ipc_timeout"] * 2
    config = tmp_path / "longer_timeout.json"
    config.write_text(json.dumps(settings))
    assert main(["train", "--resume", "--config", str(config), "--output", str(out), "--evaluations", "3", "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["settings"]["training"] == settings["training"]
    assert len(_results(out)) == 3


def test_a_resumed_serial_run_evaluates_exactly_what_the_uninterrupted_run_does(tmp_path, tiny_config):
    """The parents a resumed run draws come from the archive's sampling stream, which the checkpoint
    now holds; before, a resume drew other parents than the uninterrupted run."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _serial_run(straight, tiny_config, evaluations=8)
    _serial_run(resumed, tiny_config, evaluations=6)  # 4 random, then 2 offspring of sampled parents
    _serial_run(resumed, tiny_config, evaluations=8, resume=True)
    assert [(r["id"], r["parent_id"], r["genome"]) for r in _results(resumed)] == \
        [(r["id"], r["parent_id"], r["genome"]) for r in _results(straight)]


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_an_evaluation_that_fails_twice_ends_the_run_as_failed_with_its_files_and_resume_issues_it_again(
    tmp_path, tiny_config, monkeypatch
):
    """It used to escape run() as a bare RuntimeError: a traceback, no summary.json, no final
    checkpoint, and (from Python) the run's signal handlers left installed."""
    import morphelites.independent as independent

    real = independent.train_and_evaluate

    def unstable_on_id_3(individual, settings):
        if individual.id == 3:
            raise FloatingPointError("simulated: the simulation went unstable on this body")
        return real(individual, settings)

    monkeypatch.setattr(independent, "train_and_evaluate", unstable_on_id_3)
    out, handler_before = tmp_path / "run", signal.getsignal(signal.SIGINT)
    assert main(["train", "--mode", "independent", "--serial", "--config", str(tiny_config), "--initial-random", "4",
                 "--steps-per-individual", "64", "--evaluations", "6", "--output", str(out), "--quiet"]) == 1  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "individual 3 failed twice" in summary["error"]
    assert "--resume" in summary["error"] and (out / "archive.csv").exists()
    assert "simulated: the simulation went unstable" in (out / "training.log").read_text()
    assert signal.getsignal(signal.SIGINT) is handler_before, "the run's Ctrl-C handler is given back"
    monkeypatch.setattr(independent, "train_and_evaluate", real)  # the cause fixed
    assert main(["train", "--resume", "--output", str(out), "--quiet"]) == 0
    assert sorted(r["id"] for r in _results(out)) == list(range(6)), "individual 3 is issued again"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_non_finite_fitness_is_an_evaluation_failure_and_the_run_stays_resumable(tmp_path, tiny_config, monkeypatch):
    """A NaN fitness went to results.jsonl, then pyribs refused it: the run crashed, and every
    --resume crashed again replaying that line."""
    import dataclasses

    import morphelites.independent as independent

    real = independent.train_and_evaluate

    def nan_on_id_3(individual, settings):
        result = real(individual, settings)
        if individual.id == 3:
            result = dataclasses.replace(result, evaluation={**result.evaluation, "fitness": float("nan")})
        return result

    monkeypatch.setattr(independent, "train_and_evaluate", nan_on_id_3)
    out = tmp_path / "run"
    assert main(["train", "--mode", "independent", "--serial", "--config", str(tiny_config), "--initial-random", "4",
                 "--steps-per-individual", "64", "--evaluations", "6", "--output", str(out), "--quiet"]) == 1  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "individual 3 failed twice" in summary["error"]
    assert "non-finite fitness" in (out / "training.log").read_text()
    assert 3 not in [r["id"] for r in _results(out)], "results.jsonl takes no line the archive refuses"
    monkeypatch.setattr(independent, "train_and_evaluate", real)
    assert main(["train", "--resume", "--output", str(out), "--quiet"]) == 0
    assert sorted(r["id"] for r in _results(out)) == list(range(6))


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_workers_that_die_on_every_task_stop_the_run_after_ten_deaths_in_a_row_with_its_files(tmp_path, tiny_config,
                                                                                               monkeypatch):  # fmt: skip
    """README, Reliability: workers that cannot run must not respawn forever. Here every worker
    process dies as it takes its task (exit code 3): the run stops with exit 1, summary.json says
    why, and no process is left."""
    from morphelites.parallel.supervisor import SharedPPOSystem

    monkeypatch.setattr(SharedPPOSystem, "WORKER_JOB", "crashing_job:run_task")
    out = tmp_path / "run"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert main(["train", "--mode", "shared", "--workers", "1", "--config", str(tiny_config), "--evaluations", "3",
                 "--steps-per-individual", "64", "--output", str(out), "--quiet"]) == 1  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["evaluations"] == 0
    assert "died 10 times in a row without finishing a task (last exit code 3)" in summary["error"]
    # the command to continue names this run (review, session 40: a bare --resume took the default directory)
    assert summary["error"].endswith(f"The command: `morphelites train --resume --output {out}`.")
    assert summary["worker_restarts"] >= 9 and not _results(out)
    left = {p for p in psutil.Process().children(recursive=True) if p.pid not in before}
    # multiprocessing's resource tracker, started with this process's first shared memory, lives as long as it
    tracker = [p for p in left if "resource_tracker" in " ".join(p.cmdline())]
    assert left == set(tracker) and len(tracker) <= 1, [p.cmdline() for p in left]


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_body_whose_worker_dies_three_times_stops_the_run_naming_it_and_resume_issues_it_again(tmp_path, tiny_config,
                                                                                                   monkeypatch):  # fmt: skip
    """Seen in review: an individual whose evaluation kills its worker was issued again without
    limit (a respawn and part of a training each time), and near the end of a run the deaths
    became a crash loop blamed on the install, which --resume met again."""
    from morphelites.parallel.supervisor import IndependentBackend

    monkeypatch.setattr(IndependentBackend, "JOB", "crashing_job:dies_on_individual_3")
    out = tmp_path / "run"
    args = ["--config", str(tiny_config), "--steps-per-individual", "64", "--output", str(out), "--quiet"]
    assert main(["train", "--mode", "independent", "--workers", "1", "--initial-random", "4", "--evaluations", "6", *args]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "worker evaluating individual 3 died 3 times (last exit code 3" in summary["error"]
    assert "--resume" in summary["error"] and summary["worker_restarts"] == 3
    assert sorted(r["id"] for r in _results(out)) == [0, 1, 2]
    monkeypatch.setattr(IndependentBackend, "JOB", "morphelites.independent:train_and_evaluate")  # the cause fixed
    assert main(["train", "--resume", "--output", str(out), "--quiet"]) == 0
    assert sorted(r["id"] for r in _results(out)) == list(range(6)), "individual 3 is issued again"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_with_one_worker_a_body_that_kills_it_first_is_told_from_a_broken_install(tmp_path, tiny_config, monkeypatch):
    """Left open in session 36: with one worker and the first body killing it, no evaluation had
    finished to tell the body from the install, and the deaths ran on into the pool's crash loop,
    blamed on the install. After three deaths another body now goes first; it finishes, and the
    first body's next death stops the run naming it."""
    from morphelites.parallel.supervisor import IndependentBackend

    monkeypatch.setattr(IndependentBackend, "JOB", "crashing_job:dies_on_individual_0")
    out = tmp_path / "run"
    assert main(["train", "--mode", "independent", "--workers", "1", "--initial-random", "3", "--evaluations", "3",
                 "--config", str(tiny_config), "--steps-per-individual", "64", "--output", str(out), "--quiet"]) == 1  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "worker evaluating individual 0 died 4 times" in summary["error"]
    assert "probably crashes the simulator" in summary["error"] and summary["worker_restarts"] == 4
    assert [r["id"] for r in _results(out)] == [1]
    assert "individual 1 goes first" in (out / "training.log").read_text()
    # resumed with the cause still there and individual 0 the last evaluation left, there is no other
    # body to try first (seen in review: the deaths ran on into the crash loop, blamed on the install)
    assert main(["train", "--resume", "--evaluations", "2", "--output", str(out), "--quiet"]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert "individual 0 died 3 times before any evaluation finished in this session, and no other" in summary["error"]
    assert "crashes the simulator" in summary["error"] and "broken install" in summary["error"]


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_worker_deaths_with_tasks_finished_between_them_never_count_as_a_crash_loop():
    """README, Reliability: the limit is ten deaths *in a row*, with no task finished in between.
    Seen in review: no test covered the reset, and without it a long run would stop after ten
    scattered deaths (out of memory now and then over a night)."""
    from morphelites.parallel.pool import MAX_DEATHS_IN_ROW, WorkerPool

    pool = WorkerPool(1, "crashing_job:dies_on_odd_tasks", role="test worker").start()
    outcomes = []
    try:
        for number in range(2 * MAX_DEATHS_IN_ROW + 2):  # MAX + 1 deaths, each after a finished task
            pool.submit(0, number, (number,))
            events: list = []
            deadline = time.monotonic() + 60
            while not events and time.monotonic() < deadline:
                events = pool.poll(0.5)
            outcomes += [(event.kind, event.task_id) for event in events]
    finally:
        pool.close()
    assert outcomes == [("done", n) if n % 2 == 0 else ("died", n) for n in range(2 * MAX_DEATHS_IN_ROW + 2)]
    assert pool.restarts == MAX_DEATHS_IN_ROW + 1


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_stalled_worker_that_outlives_its_kill_is_reported_once():
    """Review (session 38): a process in uninterruptible sleep (swapping, a hung NFS mount) lives on
    after SIGKILL; every later poll reported it stalled again, counted another stall and waited 5 s
    more for it."""
    from morphelites.parallel.pool import WorkerPool

    pool = WorkerPool(1, "crashing_job:dies_on_odd_tasks", role="test worker", ipc_timeout=1.0).start()
    proc = pool._procs[0]
    kill = proc.kill
    try:
        os.kill(proc.pid, signal.SIGSTOP)  # an idle worker beats too: no beat from now on
        proc.kill = lambda: None  # as a process the kill cannot reach yet
        proc.join = lambda timeout=None: None
        pool.heartbeats.array[0] = time.monotonic() - 5.0  # its last beat, 5 s ago
        # the watcher was here just now: the next polls read the ages as they are (a poll that came
        # more than ipc_timeout / 2 after the last, on a loaded machine, would take it for a pause)
        pool.heartbeats._last_round = time.monotonic()
        first = pool.poll(0.1)
        later = pool.poll(0.1) + pool.poll(0.1)
        assert [e.kind for e in first] == ["stalled"] and later == [] and pool.stalls == 1
        assert pool.idle == [], "it takes no task before its death is seen"
    finally:
        kill()
        os.kill(proc.pid, signal.SIGCONT)
        pool.close(graceful=False)


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_replacement_that_cannot_be_started_loses_no_result_and_is_tried_again(monkeypatch):
    """Review (session 38): when fork was refused (EAGAIN under a pids limit, EMFILE) while a dead
    worker was replaced, the OSError escaped poll() with the results it had received, and the run
    failed as an unexpected error. Now the results come back, the empty slot takes no task, later
    polls try again with a growing wait (not counted as more deaths), and after MAX_START_TRIES the
    run stops naming the refusal; a start that succeeds meanwhile brings the slot back."""
    import errno

    from morphelites.parallel import pool as pool_module
    from morphelites.parallel.pool import MAX_START_TRIES, WorkerCrashLoop, WorkerPool

    monkeypatch.setattr(pool_module, "START_RETRY_S", 0.01)
    pool = WorkerPool(2, "crashing_job:dies_on_odd_tasks", role="test worker").start()
    spawn, refusals = pool._spawn, []

    def refused(index: int) -> None:
        refusals.append(index)
        if len(refusals) <= 2:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        spawn(index)

    try:
        pool.submit(0, "even", (0,))
        pool.submit(1, "odd", (1,))
        wait_for(lambda: not pool._procs[1].is_alive() and pool._conns[0].poll(0), 60, "a result and a death")
        pool._spawn = refused
        events = pool.poll(0.5)
        assert sorted((e.kind, e.task_id) for e in events) == [("died", "odd"), ("done", "even")]
        assert pool.idle == [0], "the empty slot takes no task"
        assert list(pool.pids()) == [0], "and has no process: worker 1's memory is not labelled worker 0's"
        wait_for(lambda: pool.poll(0.05) == [] and 1 in pool.idle, 30, "the third start to succeed")
        assert pool.restarts == 1 and refusals == [1, 1, 1], "one death, three starts"

        pool.submit(1, "odd again", (3,))  # dies; now every start is refused
        pool._spawn = lambda index: (_ for _ in ()).throw(OSError(errno.EAGAIN, "Resource temporarily unavailable"))
        with pytest.raises(WorkerCrashLoop, match=f"could not be started {MAX_START_TRIES} times in a row .*"
                                                  "BlockingIOError: .*temporarily unavailable.* --resume"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                assert [e.kind for e in pool.poll(0.05)] in ([], ["died"])
        assert pool.restarts == 2
        pool._spawn = spawn
    finally:
        pool.close()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_crash_loop_reports_every_death_before_it_raises():
    """Seen in review (session 37): the poll that counted the tenth death raised at once when it
    had no result, and that death's event, with the training steps its worker had committed, was
    never reported."""
    from morphelites.parallel.pool import MAX_DEATHS_IN_ROW, WorkerCrashLoop, WorkerPool

    pool = WorkerPool(2, "crashing_job:run_task", role="test worker").start()
    deaths, number = [], 0
    try:
        with pytest.raises(WorkerCrashLoop, match=f"died {MAX_DEATHS_IN_ROW} times in a row"):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for worker in pool.idle:
                    pool.submit(worker, number, (number,))
                    number += 1
                deaths += [event.task_id for event in pool.poll(0.2) if event.kind == "died"]
    finally:
        pool.close()
    # every death counted is reported, each task once (a task on a worker still alive when the
    # crash loop was found is not among them: not every task sent)
    assert len(deaths) >= MAX_DEATHS_IN_ROW and len(set(deaths)) == len(deaths), deaths
    assert pool.restarts == len(deaths), "every counted death was reported"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_crash_loop_of_workers_killed_as_stalled_says_so_and_names_ipc_timeout():
    """Seen in review: a short ipc_timeout on a loaded machine had every worker killed as stalled,
    and the message said to look in the console output for why they died, where nothing was."""
    from morphelites.parallel.pool import MAX_DEATHS_IN_ROW, WorkerCrashLoop, WorkerPool

    pool = WorkerPool(5, "crashing_job:hangs", role="test worker", ipc_timeout=1.0).start()
    number = 0
    try:
        with pytest.raises(WorkerCrashLoop) as info:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for worker in pool.idle:
                    pool.submit(worker, number, (number,))
                    number += 1
                pool.poll(0.2)
    finally:
        pool.close()
    message = str(info.value)
    assert f"died {MAX_DEATHS_IN_ROW} times in a row" in message and "each was killed as stalled" in message
    assert "raise training.ipc_timeout" in message and "(1 s)" in message
    assert pool.stalls >= MAX_DEATHS_IN_ROW


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_crash_loop_found_with_results_in_hand_returns_the_results_first():
    """Seen in review: a poll that received a result and then counted the tenth death in a row
    raised at once, and the finished evaluation never reached results.jsonl."""
    from morphelites.parallel.pool import MAX_DEATHS_IN_ROW, WorkerCrashLoop, WorkerPool

    pool = WorkerPool(MAX_DEATHS_IN_ROW + 1, "crashing_job:dies_unless_zero", role="test worker").start()
    try:
        pids = pool.pids()
        for number in range(MAX_DEATHS_IN_ROW + 1):
            pool.submit(number, number, (number,))
        # every death and the one result are in before the poll looks
        def gone(pid: int) -> bool:
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        wait_for(lambda: all(gone(pids[i]) for i in range(1, len(pids))), 60, "the crashing workers to die")
        assert pool._conns[0].poll(60), "worker 0's result"
        events = pool.poll(1.0)
        assert [(e.kind, e.task_id) for e in events if e.kind == "done"] == [("done", 0)]
        assert sum(e.kind == "died" for e in events) == MAX_DEATHS_IN_ROW
        with pytest.raises(WorkerCrashLoop, match=f"died {MAX_DEATHS_IN_ROW} times in a row"):
            pool.raise_deferred_failure()  # for a caller whose last results these were
        with pytest.raises(WorkerCrashLoop, match=f"died {MAX_DEATHS_IN_ROW} times in a row"):
            pool.poll(0.1)
    finally:
        pool.close()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_results_that_arrive_with_a_fatal_event_are_handled_before_it_stops_the_run(tmp_path, monkeypatch):
    """Seen in review: an evaluation failing for the second time raised at once, and a result
    received in the same poll after it was never recorded; likewise a learner death found in a poll
    that brought results. Both are handled first now, and the error raised after."""
    from morphelites.evolution.reevaluation import EvaluationFailed
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.parallel.pool import PoolEvent
    from morphelites.parallel.supervisor import LearnerDied, SharedPPOSystem

    trainer = MAPElitesEvolutionTrainer(TINY, enable_multiprocess=False, output_dir=str(tmp_path / "run"), quiet=True)
    handled = []

    def handle(event):
        handled.append(event.task_id)
        if event.kind == "error":
            raise EvaluationFailed("individual 1 failed twice")

    monkeypatch.setattr(trainer, "_handle", handle)
    with pytest.raises(EvaluationFailed, match="individual 1 failed twice"):
        trainer._handle_all([PoolEvent("error", 0, 1, "traceback"), PoolEvent("done", 1, 2, None)])
    assert handled == [1, 2]

    class Pool:
        in_flight: dict = {}

        def poll(self, timeout):
            return [PoolEvent("done", 0, 7, None)]

    def learner_dies():
        raise LearnerDied("died 4 times in a row")

    system = SharedPPOSystem.__new__(SharedPPOSystem)  # only what poll() touches
    system._learner_gone, system._kinds, system.pool = None, {}, Pool()
    system._active = type("Value", (), {"value": 0})()
    system._read_learner_stats, system._watch_learner = (lambda: None), learner_dies
    assert [e.task_id for e in system.poll(0.0)] == [7], "the result first"
    with pytest.raises(LearnerDied, match="died 4 times"):
        system.raise_deferred_failure()  # for a caller whose last results these were
    with pytest.raises(LearnerDied, match="died 4 times"):
        system.poll(0.0)
    # a worker death too (session 37's review): its committed training steps are counted first
    system._learner_gone = None
    system._written_at_submit, system.buffer = {0: 0}, type("Buffer", (), {"written": lambda self, worker: 500})()
    system._kinds = {0: "train"}
    Pool.poll = lambda self, timeout: [PoolEvent("died", 0, 8, -9)]
    assert [(e.kind, e.task_id, e.env_steps) for e in system.poll(0.0)] == [("died", 8, 500)]
    system._learner_gone = None  # and a train task that raised (its worker lives on): likewise
    Pool.poll = lambda self, timeout: [PoolEvent("error", 0, 9, "traceback")]
    assert [(e.kind, e.task_id, e.env_steps) for e in system.poll(0.0)] == [("error", 9, 500)]
    with pytest.raises(LearnerDied, match="died 4 times"):
        system.poll(0.0)


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
@pytest.mark.parametrize("reevaluate", [False, True], ids=["last-evaluation", "final-reevaluation"])
def test_a_learner_found_dead_beside_the_last_results_fails_the_run_with_every_result_kept(tmp_path, monkeypatch,
                                                                                          reevaluate):  # fmt: skip
    """Seen in review (session 36, left open): a learner death found by the poll that brought
    the run's last results was deferred to the next poll, which never came, so the run ended as
    completed with its learner dead and its final checkpoint unwritten. Likewise beside the final
    re-evaluation's results (session 37's review)."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.parallel.supervisor import LearnerDied, SerialSharedBackend

    from morphelites.evolution.reevaluation import ReevaluationRound

    real_poll, real_handle = SerialSharedBackend.poll, ReevaluationRound.handle
    deferred: list[LearnerDied] = []
    results = []

    def died(why: str) -> None:  # what SharedPPOSystem.poll does with a death beside results
        if not deferred:
            deferred.append(LearnerDied(f"simulated: the learner died 4 times in a row ({why})"))

    def poll_that_finds_the_learner_dead_with_the_last_result(self, timeout):
        kind = self._task[1] if self._task is not None else None
        events = real_poll(self, timeout)
        results.extend(event.task_id for event in events if event.kind == "done" and kind == "train")
        if not reevaluate and len(results) == 4:
            died("with the last evaluation")
        return events

    def handle_that_finds_it_dead_with_the_rounds_last_result(round_, event):
        real_handle(round_, event)
        if round_.complete:
            died("with the final round's last result")

    monkeypatch.setattr(ReevaluationRound, "handle", handle_that_finds_it_dead_with_the_rounds_last_result)

    def raise_deferred_failure(self):
        if deferred:
            raise deferred[0]

    monkeypatch.setattr(SerialSharedBackend, "poll", poll_that_finds_the_learner_dead_with_the_last_result)
    monkeypatch.setattr(SerialSharedBackend, "raise_deferred_failure", raise_deferred_failure)
    settings = {**TINY, "training": {"reevaluate_elites": reevaluate}}
    trainer = MAPElitesEvolutionTrainer(settings, use_shared_ppo=True, enable_multiprocess=False,
                                        output_dir=str(tmp_path / "run"), quiet=True, evaluations=4,
                                        training_steps_per_individual=64)  # fmt: skip
    summary = trainer.run()
    assert deferred and summary["status"] == "failed" and "simulated: the learner died" in summary["error"]
    assert summary["evaluations"] == 4
    assert sorted(r["id"] for r in _results(tmp_path / "run")) == sorted(results) and len(results) == 4
    assert (tmp_path / "run" / "archive_reevaluated.csv").exists() == reevaluate, "a finished round is kept"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_final_reevaluation_that_raises_stops_the_run_as_failed_and_resume_does_it(tmp_path, tiny_config, monkeypatch):
    """README, Reliability: a re-evaluation of an elite that raises stops the run at once (exit 1,
    summary.json, the archive as found); once the cause is gone, --resume re-evaluates."""
    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    real = MultiProcessPPOWorker.evaluate_only

    def unstable(self, individual, settings):
        raise FloatingPointError(f"simulated: elite {individual.id} went unstable")

    monkeypatch.setattr(MultiProcessPPOWorker, "evaluate_only", unstable)
    out = tmp_path / "run"
    args = ["train", "--serial", "--config", str(tiny_config), "--initial-random", "2", "--steps-per-individual", "64",
            "--evaluations", "3", "--output", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["evaluations"] == 3 and "elite" in summary["error"]
    assert "simulated: elite" in (out / "training.log").read_text()
    assert (out / "archive.csv").exists() and not (out / "archive_reevaluated.csv").exists()
    monkeypatch.setattr(MultiProcessPPOWorker, "evaluate_only", real)
    assert main(["train", "--resume", "--output", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and "qd_score_reevaluated" in summary
    assert (out / "archive_reevaluated.csv").exists()


@pytest.mark.parametrize("failure", ["raises", "non-finite fitness"])
def test_a_failing_evaluation_in_a_serial_shared_run_is_tried_again_then_fails_the_run_with_its_files(
    tmp_path, tiny_config, monkeypatch, failure
):
    """The serial shared backend let the exception escape run(): a traceback, no summary.json, and
    the run's signal handlers left installed (the pool backends report it as an error event). The
    training a failed evaluation had handed on to the learner counts (session 37's review)."""
    import dataclasses

    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    real = MultiProcessPPOWorker.train

    def unstable_on_id_3(self, individual, settings):
        result = real(self, individual, settings)  # trained, then the evaluation fails
        if individual.id == 3 and failure == "raises":
            raise FloatingPointError("simulated: the simulation went unstable on this body")
        if individual.id == 3:
            result = dataclasses.replace(result, evaluation={**result.evaluation, "fitness": float("nan")})
        return result

    monkeypatch.setattr(MultiProcessPPOWorker, "train", unstable_on_id_3)
    out, handler_before = tmp_path / "run", signal.getsignal(signal.SIGINT)
    assert main(["train", "--serial", "--config", str(tiny_config), "--initial-random", "4",
                 "--steps-per-individual", "64", "--evaluations", "5", "--output", str(out), "--quiet"]) == 1  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "individual 3 failed twice" in summary["error"]
    log = (out / "training.log").read_text()
    assert ("simulated: the simulation went unstable" if failure == "raises" else "non-finite fitness") in log
    assert signal.getsignal(signal.SIGINT) is handler_before, "the run's Ctrl-C handler is given back"
    per_body = {r["training_steps"] for r in _results(out)}  # 64 steps, in whole segments
    assert len(per_body) == 1
    recorded = sum(r["training_steps"] for r in _results(out))
    assert summary["training_env_steps"] == summary["transitions_written"] == recorded + 2 * per_body.pop()


def test_a_second_ctrl_c_in_a_serial_shared_run_counts_the_training_of_the_task_it_cut_short(
    tmp_path, tiny_config, monkeypatch
):
    """The serial backend runs a task whole inside poll(); a second Ctrl-C cuts it short, and the
    transitions it had written (which the learner takes after every segment) went uncounted."""
    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    real = MultiProcessPPOWorker.train

    def second_ctrl_c_in_id_3(self, individual, settings):
        if individual.id == 3:
            learn, segments = self.after_segment, []

            def after_segment():
                learn()
                segments.append(1)
                if len(segments) == 2:
                    raise KeyboardInterrupt  # as the run's handler raises it on a second Ctrl-C

            self.after_segment = after_segment
        return real(self, individual, settings)

    monkeypatch.setattr(MultiProcessPPOWorker, "train", second_ctrl_c_in_id_3)
    out = tmp_path / "run"
    assert main(["train", "--serial", "--config", str(tiny_config), "--initial-random", "4",
                 "--steps-per-individual", "64", "--evaluations", "5", "--output", str(out), "--quiet"]) == 130  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["evaluations"] < 5
    recorded = sum(r["training_steps"] for r in _results(out))
    assert summary["transitions_written"] > recorded, "individual 3 wrote two segments before the cut"
    assert summary["training_env_steps"] == summary["transitions_written"]


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_an_unexpected_error_still_writes_summary_json_and_gives_the_signal_handlers_back(
    tmp_path, tiny_config, monkeypatch
):
    """Any exception the trainer has no branch for (a bug) skipped summary.json and left the run's
    Ctrl-C handler installed in the caller's process; it still reaches the caller."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    def broken_loop(self, pool):
        raise ZeroDivisionError("simulated bug in the main loop")

    monkeypatch.setattr(MAPElitesEvolutionTrainer, "_loop", broken_loop)
    out, handler_before = tmp_path / "run", signal.getsignal(signal.SIGINT)
    with pytest.raises(ZeroDivisionError, match="simulated bug"):
        main(["train", "--mode", "independent", "--serial", "--config", str(tiny_config), "--initial-random", "4",
              "--steps-per-individual", "64", "--evaluations", "4", "--output", str(out), "--quiet"])  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "ZeroDivisionError: simulated bug" in summary["error"]
    assert "--resume" in summary["error"]
    assert "simulated bug in the main loop" in (out / "training.log").read_text()
    assert signal.getsignal(signal.SIGINT) is handler_before, "the run's Ctrl-C handler is given back"


def test_a_resumed_run_continues_restart_counts_from_summary_json_where_they_passed_the_last_metrics_row(tmp_path,
                                                                                                         tiny_config):  # fmt: skip
    """Seen in review: the counters were floored from metrics.csv alone, which gets a row per
    evaluation; deaths during a body still in flight at Ctrl-C, or during the final re-evaluation,
    are only in summary.json, and the resumed run's totals lost them."""
    out = tmp_path / "run"
    _serial_run(out, tiny_config, evaluations=3)
    summary = json.loads((out / "summary.json").read_text())
    summary["worker_restarts"] = 3  # metrics.csv says 0
    (out / "summary.json").write_text(json.dumps(summary))
    _serial_run(out, tiny_config, evaluations=4, resume=True)
    assert json.loads((out / "summary.json").read_text())["worker_restarts"] == 3


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_resumed_run_continues_its_wall_time_restart_counts_and_peak_memory_from_metrics_csv(tmp_path, tiny_config):
    """Without an up-to-date checkpoint (a hard stop before the next one) wall_s restarted from the
    checkpoint's figure, or from 0, and the worker restart count from 0 in every resumed session;
    peak_memory_mb was the last session's in every case."""
    out = tmp_path / "run"
    _serial_run(out, tiny_config, evaluations=3)
    for checkpoint in (out / "checkpoints").glob("*.pkl"):
        checkpoint.unlink()
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[-1]["worker_restarts"] = "2"  # as a session in which two workers died would have left it
    rows[-1]["wall_s"] = "500.0"
    rows[-1]["peak_memory_mb"] = "99999.0"  # as a session with many more workers would have left it
    assert 0 < float(rows[0]["rss_main_mb"]) <= float(rows[0]["rss_mb"]) <= float(rows[0]["peak_memory_mb"])
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _serial_run(out, tiny_config, evaluations=4, resume=True)
    with open(out / "metrics.csv", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    assert float(last["evaluations"]) == 4
    assert float(last["wall_s"]) > 500.0 and float(last["worker_restarts"]) == 2.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["wall_s"] > 500.0 and summary["worker_restarts"] == 2 and type(summary["worker_restarts"]) is int
    assert summary["peak_memory_mb"] == float(last["peak_memory_mb"]) == 99999.0, "the peak is the whole run's"


def test_the_resume_command_a_message_names_works_when_pasted_into_a_shell(tmp_path):
    """Review (session 40): the path was pasted unquoted (and as given), so a directory with a space
    gave a command that did not work when copied."""
    import shlex

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    trainer = MAPElitesEvolutionTrainer(TINY, enable_multiprocess=False, output_dir=str(tmp_path / "my run"), quiet=True)
    command = trainer._resume_command
    assert shlex.split(command) == ["morphelites", "train", "--resume", "--output", str((tmp_path / "my run").resolve())]


@pytest.mark.parametrize("refused", ["config.json", "metrics.csv"])
def test_a_run_directory_that_refuses_its_first_writes_is_a_clear_error_not_a_traceback(tmp_path, monkeypatch, capsys,
                                                                                        refused):  # fmt: skip
    """Review (session 40): the start check sees free disk, not a user's quota; config.json's write
    then raised OSError(EDQUOT) out of `morphelites train` as a traceback (exit 1). A later review:
    refused after config.json was written (the recorder's files), the same command was then refused
    as a run to resume; what the start wrote is removed now, and the command runs."""
    import morphelites.evolution.trainer as trainer_module
    from morphelites.cli import EXIT_BAD_INPUT, main

    owner, name = (RunDirectory, "write_config") if refused == "config.json" else (trainer_module, "EvolutionRecorder")
    refuse_with_a_quota(monkeypatch, owner, name, refused)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    args = ["train", "--serial", "--evaluations", "1", "--config", str(config), "--output", str(tmp_path / "run"), "--quiet"]
    code = main(args)
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Cannot write to the run directory" in err and "Disk quota exceeded" in err and "Traceback" not in err
    monkeypatch.undo()
    if refused == "metrics.csv":  # any other failure there too (a broken install, a Ctrl-C): raised as it is
        def broken(*args, **kwargs):
            raise ImportError("tensorboard is broken")

        monkeypatch.setattr(trainer_module, "EvolutionRecorder", broken)
        with pytest.raises(ImportError, match="tensorboard is broken"):
            main(args)
        monkeypatch.undo()
    assert main(args) == 0, capsys.readouterr().err


def test_the_first_shared_ppo_line_after_a_hard_stop_does_not_count_updates_made_before_it(tmp_path):
    """Found in review: on --resume the first line's rates started from metrics.csv's last row,
    while the learner restored a checkpoint written after it (say 140 updates against 131): those
    9 updates, and their samples, read as made in the new session's first seconds. A learner
    restarted later in the session restores from its own checkpoints, and changes nothing here."""
    import logging

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    trainer = MAPElitesEvolutionTrainer(TINY, enable_multiprocess=False, output_dir=str(tmp_path / "run"), quiet=True)
    trainer.recorder = type("Recorder", (), {"log": logging.getLogger("test")})()
    previous = {"policy_updates": 100.0, "samples_consumed": 100_000.0}
    trainer._previous_learner = dict(previous)
    # A session that was not resumed: its first "restored" comes from a learner restarted mid-run
    # (a second review), whose updates since the last line are this session's own
    trainer._log_learner_event({"event": "restored", "checkpoint": "learner-00000150.pkl", "version": 151,
                                "published_version": 151, "updates": 150, "samples_consumed": 150_000})  # fmt: skip
    assert trainer._previous_learner == previous
    trainer.resume, trainer._learner_restored = True, False  # as a resumed session's
    trainer._previous_learner = {"policy_updates": 131.0, "samples_consumed": 131_000.0, "producer_waits": 4.0}
    restored = {"event": "restored", "checkpoint": "learner-00000140.pkl", "version": 141, "published_version": 141,
                "updates": 140, "samples_consumed": 140_000}  # fmt: skip
    trainer._log_learner_event(restored)
    assert trainer._previous_learner == {"policy_updates": 140.0, "samples_consumed": 140_000.0, "producer_waits": 4.0}
    trainer._log_learner_event({**restored, "updates": 150, "samples_consumed": 150_000})  # a restart mid-session
    assert trainer._previous_learner["policy_updates"] == 140.0


class _DyingPool:
    """A pool of ``size`` workers for the trainer's _issue/_handle_all: ``die(w)`` ends worker w's
    task with a death, as WorkerPool.poll reports one."""

    def __init__(self, size: int):
        self.tasks: dict[int, Any] = {w: None for w in range(size)}

    @property
    def idle(self):
        return [w for w, task in self.tasks.items() if task is None]

    def submit(self, worker, individual, kind="train"):
        self.tasks[worker] = individual.id

    def die(self, worker):
        from morphelites.parallel.pool import PoolEvent

        task, self.tasks[worker] = self.tasks[worker], None
        return PoolEvent("died", worker, task, 3)


def _trainer_without_a_run(tmp_path, workers: int):
    import logging

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    trainer = MAPElitesEvolutionTrainer(TINY, max_workers=workers, use_shared_ppo=False, evaluations=20,
                                        output_dir=str(tmp_path / "run"), quiet=True)  # fmt: skip
    trainer.recorder = type("Recorder", (), {"log": logging.getLogger("test")})()
    return trainer


def test_with_two_workers_that_die_on_every_task_no_body_is_blamed(tmp_path):
    """Found in review: an individual issued a moment ago, in flight without a death only because
    it had not had time to die, counted as proof that the workers run, so the third death of
    another body's worker stopped the run blaming that body, not the install. Deaths one per poll,
    alternating workers: no body is blamed (the pool's crash loop names the workers instead)."""
    from morphelites.evolution.reevaluation import EvaluationFailed

    trainer, pool = _trainer_without_a_run(tmp_path, 2), _DyingPool(2)
    for step in range(30):
        trainer._issue(pool)
        try:
            trainer._handle_all([pool.die(step % 2)])
        except EvaluationFailed as error:
            assert "no other individual is left" in str(error), f"death {step + 1}: {error}"
            break


def test_with_two_workers_a_body_whose_worker_dies_while_the_other_runs_on_is_named(tmp_path):
    """The other side: the body of individual 0 kills its worker each time while the other
    worker's evaluation, handed out before its latest try, runs on: its third death names it."""
    from morphelites.evolution.reevaluation import EvaluationFailed

    trainer, pool = _trainer_without_a_run(tmp_path, 2), _DyingPool(2)
    trainer._issue(pool)
    assert pool.tasks == {0: 0, 1: 1}
    for death in (1, 2):
        trainer._handle_all([pool.die(0)])
        trainer._issue(pool)
        assert pool.tasks == {0: 0, 1: 1}, f"after death {death}: individual 0 again, individual 1 runs on"
    with pytest.raises(EvaluationFailed, match=r"individual 0 died 3 times .* while other evaluations run"):
        trainer._handle_all([pool.die(0)])


def test_a_reevaluation_whose_worker_keeps_dying_stops_the_run_naming_the_elite(tmp_path):
    """Found in review: an elite whose re-evaluation killed its worker was queued again without
    end: a periodic round kept a worker dying for the rest of the run, and a final round never
    completed. The steps of results that came in the same poll as a failure are counted too."""
    from morphelites.evolution.reevaluation import EvaluationFailed, ReevaluationRound
    from morphelites.individual import IndividualResult
    from morphelites.parallel.pool import PoolEvent

    archive = type("Archive", (), {"elites": lambda self: [{"individual_id": 4, "genome": [0.5] * 7, "parent_id": None},
                                                          {"individual_id": 9, "genome": [0.2] * 7, "parent_id": 4}],
                                   "stats": lambda self: {}})()  # fmt: skip
    trainer = _trainer_without_a_run(tmp_path, 2)
    round_ = ReevaluationRound(archive, trainer.space, 10, max_deaths=3)
    for death in (1, 2):
        assert round_.next_task().id == 4
        round_.handle(PoolEvent("died", 0, 4, -9))
    assert round_.next_task().id == 4 and round_.next_task().id == 9
    result = IndividualResult(9, {"fitness": 0.3, "policy_version": 7}, 0, 400, 0.0, 1.0)
    before = trainer.env_steps
    with pytest.raises(EvaluationFailed, match=r"re-evaluating elite 4 died 3 times .* its body \("):
        trainer._handle_round_events(round_, [PoolEvent("died", 0, 4, -9), PoolEvent("done", 1, 9, result)])
    assert trainer.env_steps - before == 400 and trainer.reevaluation_env_steps == 400, "the result of the same poll counts"
    # A second review: before any task of the session has finished, the workers may be what cannot
    # run (a resumed session whose only work is the final round): the pool's crash loop says so
    unproven = ReevaluationRound(archive, trainer.space, 10, max_deaths=3, workers_ran=lambda: False)
    for death in (1, 2, 3, 4):
        assert unproven.next_task().id == 4
        unproven.handle(PoolEvent("died", 0, 4, -9))
