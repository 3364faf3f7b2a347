"""Run-directory helpers: atomic writes, metrics, progress output, checkpoints, memory sampling."""

import io
import json
import os
import sys

import pytest

from morphelites.runs import MetricsWriter, RunDirectory, RunDirectoryError, atomic_write_json
from morphelites.runs.checkpoints import (CheckpointError, checkpoint_counter, list_checkpoints, load_checkpoint,
                                         save_checkpoint)
from morphelites.runs.memory import ProcessTreeMemory
from morphelites.runs.progress import Progress


def test_atomic_write_replaces_whole_files_and_maps_non_finite_to_null(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"a": 1.0, "b": float("nan")})
    atomic_write_json(path, {"a": 2.0, "b": float("inf")})
    assert json.loads(path.read_text()) == {"a": 2.0, "b": None}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"], "no temp files left behind"


def test_an_atomic_write_that_fails_leaves_the_previous_file_whole_and_no_temp_file(tmp_path, monkeypatch):
    """The disk fills while summary.json (or a checkpoint) is rewritten: readers must still find the
    old file. A write straight to the path would leave it half new."""
    import errno

    from morphelites.runs import files

    path = tmp_path / "summary.json"
    files.atomic_write_bytes(path, b'{"old": true}')

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write_bytes(path, b'{"new": "and much longer than the old one"}')
    assert path.read_bytes() == b'{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"], "no temp file left behind"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_an_appended_line_that_fails_is_cut_back_off_so_later_lines_do_not_follow_a_torn_one(tmp_path, monkeypatch):
    """Review (session 38): a run goes on recording the other results of a poll after a refused
    line; a part-line left in the middle of results.jsonl would be refused on --resume as damage."""
    import errno

    from morphelites.runs import files

    path = tmp_path / "results.jsonl"
    files.append_line(path, '{"id": 0}')
    fsync = files.os.fsync
    calls = []

    def disk_full_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(files.os, "fsync", disk_full_once)
    with pytest.raises(OSError, match="No space left"):
        files.append_line(path, '{"id": 1}')
    files.append_line(path, '{"id": 2}')
    assert path.read_text() == '{"id": 0}\n{"id": 2}\n'


def test_atomic_writes_get_the_permissions_a_plain_write_gets(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_json(tmp_path / "summary.json", {"a": 1})
    mode = (tmp_path / "summary.json").stat().st_mode & 0o777
    assert mode == plain.stat().st_mode & 0o777, "the umask decides, not mkstemp's private 0600"


def test_checkpoints_keep_the_newest_and_reject_foreign_files(tmp_path):
    for counter in range(5):
        save_checkpoint(tmp_path, "evolution", counter, {"format": "x", "n": counter}, keep=3)
    assert [p.name for p in list_checkpoints(tmp_path, "evolution")] == [f"evolution-0000000{i}.pkl" for i in (2, 3, 4)]
    assert load_checkpoint(list_checkpoints(tmp_path, "evolution")[-1])["n"] == 4
    assert [checkpoint_counter(p) for p in list_checkpoints(tmp_path, "evolution")] == [2, 3, 4]
    bad = tmp_path / "evolution-00000009.pkl"
    bad.write_bytes(os.urandom(64))
    with pytest.raises(CheckpointError, match="evolution-00000009.pkl"):
        load_checkpoint(bad)


def test_a_checkpoint_is_never_pruned_by_its_own_write(tmp_path):
    """Found in review: with `keep` files of higher counters in the directory (corrupt ones that a
    resume skipped), the checkpoint just written was deleted at once and its path returned."""
    for counter in (500, 600, 700):
        (tmp_path / f"evolution-{counter:08d}.pkl").write_bytes(os.urandom(64))
    for counter in (31, 32):
        path = save_checkpoint(tmp_path, "evolution", counter, {"format": "x", "n": counter}, keep=3)
        assert path.exists() and load_checkpoint(path)["n"] == counter
    assert len(list_checkpoints(tmp_path, "evolution")) == 3


def test_a_checkpoint_write_clears_what_a_writer_killed_mid_write_left_behind(tmp_path):
    # atomic_write_bytes's own cleanup cannot run under SIGKILL (a stall kill, the OOM killer)
    killed = tmp_path / ".learner-00000003.pkl.k1ll3d.tmp"
    killed.write_bytes(b"half a checkpoint")
    other = tmp_path / ".evolution-00000010.pkl.w0rk1n.tmp"  # another writer's: not ours to touch
    other.write_bytes(b"being written")
    save_checkpoint(tmp_path, "learner", 4, {"format": "x"})
    assert not killed.exists() and other.exists()
    assert [p.name for p in list_checkpoints(tmp_path, "learner")] == ["learner-00000004.pkl"]


def test_metrics_csv_keeps_its_columns_and_appends_on_reopen(tmp_path):
    path = tmp_path / "metrics.csv"
    writer = MetricsWriter(path, ["evaluations", "qd_score"])
    writer.write({"evaluations": 1, "qd_score": 0.5, "ignored": 3})
    writer.close()
    MetricsWriter(path, ["evaluations", "qd_score"]).write({"evaluations": 2})
    assert path.read_text().splitlines() == ["evaluations,qd_score", "1,0.5", "2,"]
    with open(path, "a") as handle:
        handle.write("3,0.")  # a crash mid-write tore this row
    MetricsWriter(path, ["evaluations", "qd_score"]).write({"evaluations": 3, "qd_score": 0.75})
    assert path.read_text().splitlines() == ["evaluations,qd_score", "1,0.5", "2,", "3,0.75"]
    # Found in review: rows ended in csv's \r\n under a \n header (awk or cut saw a stray \r)
    assert path.read_bytes() == b"evaluations,qd_score\n1,0.5\n2,\n3,0.75\n"


def test_metrics_csv_of_a_run_started_with_other_columns_goes_on_under_its_own_header(tmp_path):
    """A run started by a version with fewer columns, resumed by one with more, got rows longer
    than its header."""
    path = tmp_path / "metrics.csv"
    MetricsWriter(path, ["evaluations", "qd_score"]).write({"evaluations": 1, "qd_score": 0.5})
    MetricsWriter(path, ["evaluations", "qd_score", "rss_mb"]).write({"evaluations": 2, "qd_score": 0.75, "rss_mb": 900.0})
    assert path.read_text().splitlines() == ["evaluations,qd_score", "1,0.5", "2,0.75"]


def test_metrics_csv_writes_whole_counters_exactly_and_rates_to_six_digits(tmp_path):
    """A --resume continues the learner's and buffer's counters from metrics.csv; written with
    6 significant digits, 12,345,678.0 samples came back as 12,345,700."""
    path = tmp_path / "metrics.csv"
    writer = MetricsWriter(path, ["samples_consumed", "samples_per_s", "lag"])
    writer.write({"samples_consumed": 12_345_678.0, "samples_per_s": 8234.5678, "lag": -0.0})
    writer.close()
    assert path.read_text().splitlines()[1] == "12345678,8234.57,0"


def test_metrics_reach_tensorboard_with_their_step_and_an_unused_writer_leaves_no_events_file(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "tensorboard"
    unused = MetricsWriter(tmp_path / "unused.csv", ["evaluations"], tensorboard_dir=board, step_key="evaluations")
    unused.close()
    assert not board.exists() or not any(board.iterdir())
    writer = MetricsWriter(tmp_path / "metrics.csv", ["evaluations", "qd_score"], tensorboard_dir=board, step_key="evaluations")
    writer.write({"evaluations": 1, "qd_score": 0.5, "policy_lag": 2.0, "status": "ok", "nan": float("nan")})
    writer.write({"evaluations": 2, "qd_score": 0.75, "policy_lag": 1.0})
    writer.close()
    writer.close()
    events = EventAccumulator(str(board))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars == {"evaluations": [(1, 1.0), (2, 2.0)], "qd_score": [(1, 0.5), (2, 0.75)], "policy_lag": [(1, 2.0), (2, 1.0)]}


def test_two_runs_open_at_once_in_one_process_each_log_to_their_own_training_log(tmp_path):
    """Found in review: every run's recorder took logging's one "morphelites.evolution" logger, so
    a second run started in another thread took the first one's log lines, and closing it left the
    first with none."""
    from morphelites.runs.recorder import EvolutionRecorder

    first = EvolutionRecorder(RunDirectory(tmp_path / "a").prepare(resume=False), quiet=True)
    second = EvolutionRecorder(RunDirectory(tmp_path / "b").prepare(resume=False), quiet=True)
    first.log.info("line of a")
    second.log.info("line of b")
    second.close()
    first.log.info("a goes on")
    first.close()
    assert ["line of a", "a goes on"] == [line.split(" INFO ")[1] for line in (tmp_path / "a" / "training.log").read_text().splitlines()]
    assert ["line of b"] == [line.split(" INFO ")[1] for line in (tmp_path / "b" / "training.log").read_text().splitlines()]


def test_metrics_maxima_come_from_whole_rows(tmp_path):
    from morphelites.runs.recorder import EvolutionRecorder

    run = RunDirectory(tmp_path / "run").prepare(resume=False)
    run.metrics.write_text("evaluations,policy_updates,samples_consumed\n1,40,9000\n2,52,\n3,5")  # last row torn mid-write
    recorder = EvolutionRecorder(run, quiet=True, metric_columns=["evaluations", "policy_updates", "samples_consumed"])
    try:
        maxima = recorder.metrics_maxima(["policy_updates", "samples_consumed", "skipped_updates"])
    finally:
        recorder.close()
    assert maxima == {"policy_updates": 52.0, "samples_consumed": 9000.0}
    assert run.metrics.read_text().splitlines()[-1] == "2,52,", "the torn row is cut when the recorder opens the file"


def test_metric_rows_are_read_whole_thinned_one_at_a_time_or_only_the_last(tmp_path):
    """Review (session 44): at 200,000 rows every reader made every row a dict (~1 GB): a resume's
    maxima and last row, and each redraw of curves.png. The readers agree with the whole list."""
    from morphelites.runs.metrics import iter_metric_rows, last_metric_row, read_metric_rows
    from morphelites.viz import thinned

    path = tmp_path / "metrics.csv"
    assert read_metric_rows(path) == [] and last_metric_row(path) is None, "no file"
    path.write_text("evaluations,qd_score\n")
    assert read_metric_rows(path, most=5) == [] and last_metric_row(path) is None, "a header alone"
    path.write_text("evaluations,qd_score\n" + "".join(f"{k},{k / 10}\n" for k in range(1, 101)) + "101,1")  # torn
    rows = read_metric_rows(path)
    assert len(rows) == 100 and rows[-1] == {"evaluations": "100", "qd_score": "10.0"}
    assert list(iter_metric_rows(path)) == rows and last_metric_row(path) == rows[-1]
    assert read_metric_rows(path, most=7) == list(thinned(rows, 7))
    assert [row["evaluations"] for row in read_metric_rows(path, most=3)] == ["1", "51", "100"]
    assert read_metric_rows(path, most=100) == rows
    # blank lines (an edit from outside) are passed over by every reader, as csv.DictReader does
    path.write_text("evaluations,qd_score\n1,0.1\n\n2,0.2\n3,0.3\n4,0.4\n\n\n")
    assert [row["evaluations"] for row in read_metric_rows(path, most=3)] == ["1", "3", "4"]
    assert last_metric_row(path) == {"evaluations": "4", "qd_score": "0.4"}


def test_a_torn_last_row_of_reevaluations_csv_is_not_counted_on_resume(tmp_path):
    # reevaluations.csv's writer is opened (and cuts a torn row) only by the next round, after
    # the resume has read the file: "40" cut from "4000" was counted as 40 steps.
    from morphelites.runs.recorder import REEVALUATION_COLUMNS, EvolutionRecorder

    run = RunDirectory(tmp_path / "run").prepare(resume=False)
    header = ",".join(REEVALUATION_COLUMNS)
    row = {"evaluations": "8", "reevaluation_env_steps": "4000", "policy_version_max": "12"}
    whole = ",".join(row.get(column, "") for column in REEVALUATION_COLUMNS)
    steps_at = REEVALUATION_COLUMNS.index("reevaluation_env_steps")
    torn = ",".join([""] * steps_at + ["40"])
    run.reevaluations.write_text(f"{header}\n{whole}\n{torn}")
    recorder = EvolutionRecorder(run, quiet=True, metric_columns=["evaluations"])
    try:
        assert recorder.reevaluation_env_steps() == 4000
        assert recorder.reevaluation_rows_max("policy_version_max") == 12
    finally:
        recorder.close()


def test_progress_draws_a_bar_on_a_tty_plain_lines_otherwise_and_nothing_when_quiet():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, plain, quiet = Tty(), io.StringIO(), io.StringIO()
    for stream, is_quiet in ((tty, False), (plain, False), (quiet, True)):
        progress = Progress(4, quiet=is_quiet, stream=stream, interval_s=0.0)
        for done in range(1, 5):
            progress.update(done, qd_score=done * 0.1, coverage=0.25, best=0.5)
        progress.close()
    assert "\r[" in tty.getvalue() and "4/4 evaluations" in tty.getvalue()
    assert plain.getvalue().count("\n") == 4 and "\r" not in plain.getvalue()
    assert quiet.getvalue() == ""


def test_progress_on_a_console_that_is_gone_is_passed_over():
    """Seen in review: after a hang-up (SIGHUP, a dropped ssh session) writes to the terminal fail
    with EIO; the progress line raised it out of the run's result handling."""

    class HungUp(io.StringIO):
        def isatty(self):
            return True

        def write(self, text):
            raise OSError(5, "Input/output error")

    progress = Progress(4, stream=HungUp(), interval_s=0.0)
    progress.update(1, qd_score=0.1, coverage=0.25, best=0.5)
    progress.close()


def test_the_eta_is_not_near_zero_when_the_workers_first_results_arrive_together(monkeypatch):
    """Found in review: the rate was taken from the first result on, and two workers started
    together finish their first bodies half a second apart: the ETA read 31 s for a 31 min run."""
    import morphelites.runs.progress as progress_module

    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    progress = Progress(64, stream=stream, interval_s=0.0)
    for clock[0], done in ((60.0, 1), (60.5, 2)):  # two workers, 60 s per body
        progress.update(done, qd_score=0.1, coverage=0.1, best=0.1)
    assert "ETA 00:31:15" in stream.getvalue().splitlines()[-1], stream.getvalue()  # 62 left at 2 per 60.5 s
    resumed = Progress(64, stream=stream, interval_s=0.0, start_done=32)  # a resumed run counts only its own session
    clock[0] += 60.0
    resumed.update(34, qd_score=0.1, coverage=0.1, best=0.1)
    assert "ETA 00:15:00" in stream.getvalue().splitlines()[-1], stream.getvalue()


def test_the_eta_ends_with_the_env_step_budget(monkeypatch):
    """Found in review: the ETA followed the evaluations asked for, though --max-env-steps would end
    the run first."""
    import morphelites.runs.progress as progress_module

    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    stream, unbounded = io.StringIO(), io.StringIO()
    progress = Progress(100, stream=stream, interval_s=0.0, env_steps_left=40_000)
    without_budget = Progress(100, stream=unbounded, interval_s=0.0)
    clock[0] = 60.0
    progress.update(1, qd_score=0.1, coverage=0.1, best=0.1, env_steps=10_000)  # 30,000 steps left at 10,000 a minute
    assert "ETA 00:03:00" in stream.getvalue().splitlines()[-1], stream.getvalue()
    without_budget.update(1, qd_score=0.1, coverage=0.1, best=0.1, env_steps=10_000)
    assert "ETA 01:39:00" in unbounded.getvalue(), "no budget: the evaluations decide"


def test_the_eta_counts_days_and_ends_with_the_wall_time_budget(monkeypatch):
    """Found in review: the ETA wrapped every 24 h (HH:MM:SS of gmtime) and ignored --max-wall-time."""
    import morphelites.runs.progress as progress_module

    clock = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    for time_left_s, expected in ((None, "ETA 11d 13:45:00"), (3600.0, "ETA 00:58:20")):
        stream = io.StringIO()
        progress = Progress(10_000, stream=stream, interval_s=0.0, time_left_s=time_left_s)
        progress.update(0, qd_score=0.0, coverage=0.0, best=0.0)
        clock[0] += 100.0  # one evaluation per 100 s: 9,999 left take 11.57 days
        progress.update(1, qd_score=0.1, coverage=0.1, best=0.1)
        assert expected in stream.getvalue().splitlines()[-1], stream.getvalue()
        clock[0] += 10_000.0
        progress.update(2, qd_score=0.1, coverage=0.1, best=0.1)
        if time_left_s is not None:
            assert "ETA 00:00:00" in stream.getvalue().splitlines()[-1], "past the budget: nothing left"


def test_run_directory_checks_write_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    RunDirectory(target).check()
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        RunDirectory(tmp_path / "file").check()


def test_what_a_run_stopped_before_its_config_leaves_counts_as_empty_and_nothing_else_does(tmp_path):
    stopped = RunDirectory(tmp_path / "stopped").prepare(resume=False)  # the directory and an empty checkpoints/
    stopped.hold().release()  # and the lock file
    # and, killed while writing config.json, its temp file (found in review: --resume-if-exists
    # then neither resumed nor started, and a requeued job failed)
    (stopped.path / ".config.json.k2x8_q.tmp").write_text('{"comm')
    RunDirectory(stopped.path).check()  # a new run may start here: no error
    (stopped.checkpoints / "evolution-00000001.pkl").write_bytes(b"x")
    with pytest.raises(RunDirectoryError, match="no morphelites run"):
        RunDirectory(stopped.path).check()
    (tmp_path / "other" / "checkpoints").mkdir(parents=True)
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="already holds files"):
        RunDirectory(tmp_path / "other").check()


def test_a_held_run_directory_is_refused_to_every_other_holder_until_released(tmp_path):
    import subprocess
    import sys

    run = RunDirectory(tmp_path / "run").prepare(resume=False)
    hold = run.hold()
    try:
        with pytest.raises(RunDirectoryError, match="in use: another run in this process is running it"):
            RunDirectory(run.path).check()  # a run in a thread of this process, not "another process" of this pid
        # another process (flock is per open file: this one could take it twice)
        probe = ("import sys\nfrom morphelites.runs.run_dir import RunDirectory, RunDirectoryError\n"
                 "try:\n    RunDirectory(sys.argv[1]).hold()\nexcept RunDirectoryError as e:\n    print(e)\n")  # fmt: skip
        other = subprocess.run([sys.executable, "-c", probe, str(run.path)], capture_output=True, text=True, timeout=60)
        assert f"is in use: another morphelites process (pid {os.getpid()} on " in other.stdout, other
    finally:
        hold.release()
        hold.release()
    assert RunDirectory(run.path).in_use_by() is None
    RunDirectory(run.path).hold().release()


def test_memory_sampler_counts_this_process_and_tracks_the_peak():
    memory = ProcessTreeMemory()
    sample = memory.sample({"gone": 999_999_999})
    assert sample["per_process_mb"]["main"] > 10 and "gone" not in sample["per_process_mb"]
    assert memory.peak_mb == pytest.approx(sample["total_mb"])


def test_each_training_log_line_is_fsynced(tmp_path, monkeypatch):
    """Found in review: the handler named for fsync only flushed, so a power cut could lose lines."""
    import morphelites.runs.training_log as training_log
    from morphelites.runs.training_log import open_training_log

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(training_log.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log = open_training_log(tmp_path / "training.log", quiet=True, name="morphelites.test-fsync")
    log.info("one")
    log.info("two")
    assert len(synced) == 2 and (tmp_path / "training.log").read_text().count("INFO") == 2
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)


def test_on_a_terminal_a_log_line_erases_the_progress_bar_first(monkeypatch):
    """Found in review: log lines were glued to the end of the bar, which is drawn without a newline."""
    from morphelites.runs.training_log import open_training_log

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for stream in (Tty(), io.StringIO()):
        monkeypatch.setattr(sys, "stderr", stream)
        Progress(4, stream=stream).update(1, qd_score=0.1, coverage=0.25, best=0.5)
        log = open_training_log(None, name="morphelites.test-console")
        log.info("Evaluated 1")
        for handler in list(log.handlers):
            log.removeHandler(handler)
        assert stream.getvalue().endswith(" Evaluated 1\n")
        if stream.isatty():  # the bar, then the line that erases it
            assert stream.getvalue().startswith("\r[######") and "\033[K\r\033[K" in stream.getvalue()
        else:
            assert "\033" not in stream.getvalue() and "\r" not in stream.getvalue()


def test_the_line_that_creates_an_appended_file_also_makes_its_name_durable(tmp_path, monkeypatch):
    # fsync of a new file does not make its directory entry durable; a power cut could keep a
    # checkpoint that counts on results.jsonl's lines and lose the file itself.
    from morphelites.runs import files

    synced: list[str] = []
    real = files.fsync_directory
    monkeypatch.setattr(files, "fsync_directory", lambda directory: synced.append(str(directory)) or real(directory))
    files.append_line(tmp_path / "results.jsonl", '{"id": 0}')
    files.append_line(tmp_path / "results.jsonl", '{"id": 1}')
    assert synced == [str(tmp_path)], "once, when the file was created"
    assert (tmp_path / "results.jsonl").read_text() == '{"id": 0}\n{"id": 1}\n'


def test_a_run_whose_appended_files_this_user_cannot_write_is_refused_before_anything_starts(tmp_path, monkeypatch):
    """Seen in review: only the directory was checked, so a results.jsonl or training.log of
    another user (a group results folder, a requeue under another account) raised PermissionError
    from deep inside the run, after config.json was rewritten. Root may write anything, so the
    permission answer is the one thing faked here."""
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    run.config.write_text('{"command": "train"}')
    run.results.write_text("")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path).endswith("results.jsonl") else real_access(path, mode))
    with pytest.raises(RunDirectoryError, match=r"Cannot write results.jsonl in .*run \(read-only, or another user's\)"):
        run.check(resume=True, resumable=True)
    run.checkpoints.mkdir()  # every checkpoint would fail, only logged, for hours
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path).endswith("checkpoints") else real_access(path, mode))
    with pytest.raises(RunDirectoryError, match=r"Cannot write checkpoints/ in "):
        run.check(resume=True, resumable=True)
    monkeypatch.setattr(os, "access", real_access)
    run.lock_file.mkdir()  # cannot be opened for writing: a real fault, not a faked one
    with pytest.raises(RunDirectoryError, match="Cannot use output directory .*run: Is a directory"):
        run.hold()


def test_the_eta_includes_the_final_re_evaluation_after_the_evaluations_and_any_budget(monkeypatch):
    """Session 39 left open: the ETA ended with the last evaluation, though shared mode then
    re-evaluates every elite (15-20% of the demo's env steps), so it read 00:00:00 for that time."""
    import morphelites.runs.progress as progress_module

    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    progress = Progress(4, stream=stream, interval_s=0.0, time_left_s=100.0)
    clock[0] = 60.0
    progress.update(1, qd_score=0.1, coverage=0.1, best=0.1, after_s=30.0)  # 3 x 60 s, capped at 40 s, then 30 s
    assert "ETA 00:01:10" in stream.getvalue().splitlines()[-1], stream.getvalue()
    clock[0] = 240.0
    progress.update(4, qd_score=0.1, coverage=0.1, best=0.1, after_s=30.0)
    assert "ETA 00:00:30" in stream.getvalue().splitlines()[-1], "the evaluations are done; the round is left"


_TITLED = """import os, sys, time
from morphelites.parallel.pool import set_process_title
from morphelites.runs.training_log import open_training_log
title = "map_elites main " + os.path.realpath(sys.argv[1])
set_process_title(title)
open_training_log(__import__("pathlib").Path(sys.argv[2]), quiet=True).info("output %s", title)
print("ready", flush=True)
time.sleep(60)
"""


def test_readmes_pkill_stops_the_one_run_of_a_directory_named_with_pattern_characters_or_other_bytes(tmp_path):
    """README's recipe: `pkill -INT -xf "morphelites: map_elites main $(realpath RUN_DIR | sed ...)"`.
    Review: the pattern it gave read `exp (copy)` and `exp[1]` as a regex and signalled nothing; and a
    title (or log line) holding a path of bytes that are not UTF-8 (a working directory's: such an
    --output is refused) crashed the run as it started."""
    import re
    import subprocess
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    recipe = re.search(r'`(pkill -INT -xf "morphelites: map_elites main .*?")`\n', readme).group(1)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    names = ["exp (copy)[1]", "exp (copy)[1]2", os.fsdecode(b"bad\xffname")]
    processes = []
    try:
        for index, name in enumerate(names):
            (tmp_path / name).mkdir()
            processes.append(subprocess.Popen([sys.executable, "-c", _TITLED, str(tmp_path / name), str(tmp_path / f"{index}.log")],
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))  # fmt: skip
        for process in processes:
            assert process.stdout.readline().strip() == b"ready", process.communicate(timeout=30)[1].decode()
        for process in processes:
            assert process.poll() is None
        subprocess.run(["bash", "-c", recipe.replace("RUN_DIR", "'exp (copy)[1]'")], cwd=tmp_path, timeout=30)
        assert processes[0].wait(timeout=30) == -2 or "KeyboardInterrupt" in processes[0].communicate()[1].decode()
        assert processes[1].poll() is None, "the run of exp (copy)[1]2 goes on"
        # the third set its title and logged its path (escaped), and runs on
        assert processes[2].poll() is None and "bad\\udcffname" in (tmp_path / "2.log").read_text(encoding="utf-8")
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_a_command_started_with_stderr_closed_writes_nothing_to_the_console_and_nothing_into_the_run_files(tmp_path):
    """Review: `morphelites train 2>&-` crashed at start with no word (sys.stderr is None), and the
    first file the run opened took descriptor 2, which a signal's notice (os.write(2, ...)) and C
    libraries write to."""
    import subprocess

    script = ("import os, sys\n"
              "from morphelites.console import _standard_streams_open\n"
              "from morphelites.runs.progress import Progress\n"
              "from morphelites.runs.training_log import open_training_log\n"
              "assert sys.stderr is None\n"
              "_standard_streams_open()\n"
              "log = open_training_log(__import__('pathlib').Path(sys.argv[1]))\n"
              "log.info('logged')\n"
              "Progress(3).update(1, 0.5, 0.1, 0.2)\n"
              "os.write(2, b'to the console')\n"
              "print(os.readlink('/proc/self/fd/2'), file=sys.stdout)\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "training.log")], capture_output=False,
                          stdout=subprocess.PIPE, text=True, timeout=60, env=env, preexec_fn=lambda: os.close(2))  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == os.devnull, done.stdout
    assert (tmp_path / "training.log").read_text().strip().endswith("INFO logged")


def test_a_workers_wait_notice_to_a_console_that_is_gone_does_not_fail_its_task(monkeypatch):
    """Review: the notice went to stdout by print; with the console a closed pipe (`| head -1`) its
    BrokenPipeError failed the task, twice, and the run."""
    from types import SimpleNamespace

    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    class Gone(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    written = io.StringIO()
    monkeypatch.setattr(sys, "stdout", written)
    monkeypatch.setattr(sys, "stderr", Gone())
    MultiProcessPPOWorker._warn_full(SimpleNamespace(index=1), 12.0)
    monkeypatch.setattr(sys, "stderr", None)
    MultiProcessPPOWorker._warn_full(SimpleNamespace(index=1), 12.0)
    assert written.getvalue() == "", "not on stdout, which a user's pipe reads"
    monkeypatch.setattr(sys, "stderr", written)
    MultiProcessPPOWorker._warn_full(SimpleNamespace(index=1), 12.0)
    assert "shared_ppo worker 1: waited 12 s" in written.getvalue()


def test_runs_in_threads_of_one_process_show_the_newest_runs_title_and_the_last_to_end_gives_the_process_its_own():
    """Review: each run put back the title it had found, so a run that outlived another went on
    untitled (README's pkill recipe could not find it), and the process kept the first run's title."""
    from setproctitle import getproctitle

    from morphelites.parallel.pool import restore_process_title, set_process_title

    own = getproctitle()
    try:
        first = set_process_title("map_elites main /runs/a")
        second = set_process_title("map_elites main /runs/b")
        assert getproctitle() == "morphelites: map_elites main /runs/b"
        restore_process_title(first)  # a ends first
        assert getproctitle() == "morphelites: map_elites main /runs/b", "b still runs, titled"
        third = set_process_title("map_elites main /runs/c")
        restore_process_title(third)
        assert getproctitle() == "morphelites: map_elites main /runs/b"
        restore_process_title(second)
        assert getproctitle() == own, "the process's own title once no run is left"
    finally:
        from setproctitle import setproctitle

        setproctitle(own)
