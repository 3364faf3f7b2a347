"""Shared fixtures: small body spaces and the CLI runner."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

# Headless rendering: MuJoCo picks its GL backend when first imported, maybe by a test module.
import morphelites  # noqa: E402,F401  (sets the MUJOCO_GL default of this system before any test imports mujoco)

REPO = Path(__file__).resolve().parents[1]

# A run leaves a stop signal ignored if it was ignored as it started (nohup's SIGHUP; SIGINT of a
# shell script's background job), and the runs these tests start inherit the suite's. Whatever
# started the suite, the tests' signals must reach those runs: the defaults are put back here.
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
    if signal.getsignal(_sig) is signal.SIG_IGN:
        signal.signal(_sig, signal.default_int_handler if _sig == signal.SIGINT else signal.SIG_DFL)


_BACKGROUND: list[subprocess.Popen] = []  # started by start_morphelites, killed at the test's end if still running


def start_morphelites(*args: str) -> subprocess.Popen:
    """Start ``python -m morphelites ARGS`` in the background (stdout and stderr piped, as text).
    If it still runs when its test ends (the test failed or timed out), it is killed with every
    process it started: a run left going slows the rest of the suite, or a benchmark beside it."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "morphelites", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _BACKGROUND.append(proc)
    return proc


def start_train(*args: str) -> subprocess.Popen:
    """Start ``python -m morphelites train --quiet ARGS`` in the background (see :func:`start_morphelites`)."""
    return start_morphelites("train", "--quiet", *args)


def kill_process_tree(pid: int) -> None:
    """SIGKILL the process ``pid`` and every process it started (those already gone are passed over).

    ``pid`` goes first, and its resource tracker gets a moment to free the shared memory it left
    (seen in review: killing the tracker with the rest left the run's blocks in /dev/shm)."""
    try:
        main = psutil.Process(pid)
        children = main.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        main.kill()
    trackers = [p for p in children if _is_resource_tracker(p)]
    psutil.wait_procs(trackers, timeout=5.0)  # it exits once it has freed what its process left
    for process in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _is_resource_tracker(process: psutil.Process) -> bool:
    try:
        return "resource_tracker" in " ".join(process.cmdline())
    except psutil.Error:
        return False


@pytest.fixture(autouse=True)
def _no_background_run_outlives_its_test():
    yield
    while _BACKGROUND:
        proc = _BACKGROUND.pop()
        if proc.poll() is None:
            kill_process_tree(proc.pid)
            proc.wait(timeout=10)


def read_results(out: Path) -> list[dict]:
    """The lines of ``out/results.jsonl`` (none if it does not exist yet)."""
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def refuse_with_a_quota(monkeypatch, owner: object, name: str, what: str) -> None:
    """Make ``owner.name`` raise OSError(EDQUOT) naming ``what``, as a disk quota the start check's
    free-space test cannot see refuses a write."""
    import errno

    def over_quota(*args, **kwargs):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", what)

    monkeypatch.setattr(owner, name, over_quota)


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def wait_for(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll ``condition()`` every ``interval`` s until it returns something true, and return that;
    fail the test after ``timeout`` s, naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def assert_gone(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    """Wait until every one of ``processes`` has exited; those that have not by ``timeout`` are
    killed (so that a failing test leaves no orphans on the machine), and the test fails."""

    def running(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:  # reaped between the two questions: gone, as promised
            return False

    def alive() -> list[psutil.Process]:
        return [p for p in processes if running(p)]

    try:
        wait_for(lambda: not alive(), timeout, "every child process to exit (no orphans)")
    except AssertionError:
        for survivor in alive():
            with contextlib.suppress(psutil.Error):
                survivor.kill()
        raise


@pytest.fixture
def run_cli():
    """Run ``python -m morphelites ARGS`` in a subprocess; returns the CompletedProcess."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            [sys.executable, "-m", "morphelites", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    return run


@pytest.fixture
def torch_state_restored():
    """For a test that sets torch's thread count or global random stream in the pytest process:
    both are put back afterwards, so later tests do not depend on the order they run in."""
    import torch

    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
