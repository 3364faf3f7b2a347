"""Shared-memory blocks take all their pages at creation, so a full /dev/shm is a clear error
there, not a SIGBUS in whichever process first touches a page later (a real /dev/shm; Linux)."""

from __future__ import annotations

import os
from multiprocessing import shared_memory

import psutil
import pytest

from morphelites.config import Settings
from morphelites.parallel.shm import SHM_DIR, SharedMemoryFull, create_shared_memory, release_shared_memory
from morphelites.parallel.supervisor import check_shared_memory, create_shared_state

pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir() or not hasattr(os, "posix_fallocate"), reason="needs Linux's /dev/shm")


def test_a_new_block_has_all_its_pages_reserved():
    # Small enough for Docker's default 64 MiB /dev/shm with other blocks beside it (review: a
    # 64 MiB block failed there), large enough that a lazily backed block would show few pages.
    size = 8 * 2**20
    shm = create_shared_memory(size, "test block")
    try:
        # the block's own allocation, not the free space of /dev/shm, which other processes share
        allocated = os.stat(SHM_DIR / shm.name.lstrip("/")).st_blocks * 512
        assert allocated >= size, "untouched pages of the block are already taken from /dev/shm"
    finally:
        release_shared_memory(shm, owner=True)
    assert not (SHM_DIR / shm.name.lstrip("/")).exists()


def test_a_block_larger_than_dev_shm_is_refused_at_creation_and_removed(monkeypatch):
    stats = os.statvfs(SHM_DIR)
    size = stats.f_blocks * stats.f_frsize + 2**20  # more than the whole tmpfs: refused before any page is given
    # The refused block's name, from the real class: a listing of /dev/shm before and after would
    # also see the blocks of the tests or benchmarks running beside this one.
    created: list[str] = []

    class NamedBlock(shared_memory.SharedMemory):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            created.append(self.name.lstrip("/"))

    monkeypatch.setattr(shared_memory, "SharedMemory", NamedBlock)
    with pytest.raises(SharedMemoryFull) as refused:
        create_shared_memory(size, "experience buffer")
    message = str(refused.value)
    assert "experience buffer" in message and f"{size / 2**20:.1f} MB" in message
    assert "training.buffer_size" in message and "--shm-size" in message
    assert len(created) == 1 and not (SHM_DIR / created[0]).exists(), "the refused block is not left behind"


def test_the_check_counts_the_weights_and_the_buffer_that_a_run_creates():
    settings = Settings().validate()
    needed = check_shared_memory(settings, 2)
    weights, buffer, _handles = create_shared_state(settings, 2, sync=False, max_policy_lag=4)
    try:
        assert needed == weights._shm.size + buffer._shm.size
    finally:
        buffer.close()
        weights.close()


@pytest.mark.parametrize("sections, names", [
    ({"training": {"buffer_size": 400_000}}, "Lower training.buffer_size"),
    ({"model": {"hidden_dim": 4096}}, "Lower model.hidden_dim"),
    ({"training": {"update_interval": 20_000, "buffer_size": 1000}}, "Lower training.update_interval"),
])  # fmt: skip
def test_a_refusal_for_want_of_shared_memory_names_the_setting_that_takes_it(monkeypatch, sections, names):
    """Found in review: the advice was always to lower buffer_size, which does not help when the
    weights, or the floor of two segments per worker, take the room."""
    from morphelites.config import ConfigError
    from morphelites.parallel import supervisor

    settings = Settings.from_dict(sections).validate()
    needed = check_shared_memory(settings, 2)
    monkeypatch.setattr(supervisor, "shared_memory_free_bytes", lambda: needed - 1)
    with pytest.raises(ConfigError, match=names) as refused:
        check_shared_memory(settings, 2)
    assert f"needs {needed / 2**20:.1f} MB" in str(refused.value) and "--shm-size" in str(refused.value)
    for other in {"Lower training.buffer_size", "Lower model.hidden_dim", "Lower training.update_interval"} - {names}:
        assert other not in str(refused.value)


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_shared_memory_that_fills_after_the_check_is_a_clear_error_with_nothing_left_behind(tmp_path, monkeypatch, capsys):
    """The check before a run cannot see another process fill /dev/shm just after it. Creating
    the backend then fails: a message and exit code 1, not a traceback, and the process title
    and log handlers of this process (a notebook's, say) are as they were."""
    from setproctitle import getproctitle

    from morphelites.cli import main
    from morphelites.parallel import supervisor

    def filled(*args, **kwargs):
        raise SharedMemoryFull("Could not reserve 3.1 MB of shared memory for the experience buffer (No space left on "
                               "device). Lower training.buffer_size, or give the machine more shared memory.")  # fmt: skip

    monkeypatch.setattr(supervisor, "create_shared_state", filled)
    title = getproctitle()
    out = tmp_path / "run"
    assert main(["train", "--mode", "shared", "--workers", "1", "--evaluations", "2", "--output", str(out), "--quiet"]) == 1
    assert "morphelites: error: Could not reserve 3.1 MB of shared memory" in capsys.readouterr().err
    assert getproctitle() == title
    assert not [f for f in psutil.Process().open_files() if f.path.startswith(str(out))], "training.log is closed"


def test_a_serial_shared_backend_that_fails_to_start_frees_its_shared_memory(tmp_path, monkeypatch):
    from morphelites.parallel import learner, supervisor

    blocks: list[str] = []

    def recorded(*args, **kwargs):
        weights, buffer, handles = create_shared_state(*args, **kwargs)
        blocks.extend([handles.weights_name, handles.buffer_name])
        return weights, buffer, handles

    def broken(options):
        raise RuntimeError("the learner could not start")

    monkeypatch.setattr(supervisor, "create_shared_state", recorded)
    monkeypatch.setattr(learner, "SharedPPOTrainer", broken)
    with pytest.raises(RuntimeError, match="could not start"):
        supervisor.SerialSharedBackend(Settings().validate(), tmp_path, resume=False)
    assert len(blocks) == 2 and not [name for name in blocks if (SHM_DIR / name.lstrip("/")).exists()]


def test_a_shared_system_whose_making_fails_after_its_shared_memory_frees_it(tmp_path, monkeypatch):
    """Review (session 38): a semaphore or heartbeat array that a just-filled /dev/shm refuses,
    after the weights and buffer were made, left those blocks behind (nobody closes a system
    whose constructor raised)."""
    import errno

    from morphelites.parallel import supervisor

    blocks: list[str] = []

    def recorded(*args, **kwargs):
        weights, buffer, handles = create_shared_state(*args, **kwargs)
        blocks.extend([handles.weights_name, handles.buffer_name])
        return weights, buffer, handles

    def refused(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(supervisor, "create_shared_state", recorded)
    monkeypatch.setattr(supervisor, "WorkerPool", refused)
    with pytest.raises(OSError, match="No space left"):
        supervisor.SharedPPOSystem(Settings().validate(), workers=1, checkpoint_dir=tmp_path, resume=False)
    assert len(blocks) == 2 and not [name for name in blocks if (SHM_DIR / name.lstrip("/")).exists()]


class _ForkRefusedContext:
    """multiprocessing's spawn context, except that every process it makes refuses to start, as
    fork does under memory pressure or a pids limit (EAGAIN)."""

    def __init__(self) -> None:
        import multiprocessing as mp

        self._spawn = mp.get_context("spawn")

    def __getattr__(self, name):
        return getattr(self._spawn, name)

    def Process(self, *args, **kwargs):
        import errno

        process = self._spawn.Process(*args, **kwargs)

        def refused():
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

        process.start = refused
        return process


def test_a_learner_process_that_fails_to_start_leaves_a_system_that_closes_and_frees_its_memory(tmp_path, monkeypatch):
    # Under memory pressure fork can fail (EAGAIN). close() used to join the never-started
    # process, which raises, and the shared memory was left behind.
    from morphelites.parallel import supervisor

    system = supervisor.SharedPPOSystem(Settings().validate(), workers=1, checkpoint_dir=tmp_path, resume=False)
    blocks = [system.handles.weights_name, system.handles.buffer_name]
    monkeypatch.setattr(system, "_ctx", _ForkRefusedContext())
    with pytest.raises(OSError, match="temporarily unavailable"):
        system.start()
    system.close()
    assert system.learner is None
    assert not [name for name in blocks if (SHM_DIR / name.lstrip("/")).exists()]


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_replacement_learner_that_cannot_be_started_is_tried_again_then_stops_the_run_naming_why(tmp_path, monkeypatch):
    """Review (session 38): fork refused while the learner was restarted escaped poll() (and the
    results it had) as an unexpected error."""
    import time

    from morphelites.parallel import supervisor

    from morphelites.parallel import pool

    monkeypatch.setattr(pool, "START_RETRY_S", 0.01)
    system = supervisor.SharedPPOSystem(Settings().validate(), workers=1, checkpoint_dir=tmp_path, resume=False)
    try:
        system.start()
        system.learner.kill()
        system.learner.join(10)
        system._ctx = _ForkRefusedContext()
        assert system.poll(0.1) == []  # the death is seen, the restart refused: no exception yet
        assert [e["event"] for e in system.take_events()] == ["learner_died", "learner_start_failed"]
        with pytest.raises(supervisor.LearnerDied, match=f"replacement could not be started {pool.MAX_START_TRIES} "
                                                         "times in a row .*BlockingIOError.*--resume"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                system.poll(0.05)
        events = system.take_events()
        assert {e["event"] for e in events} == {"learner_start_failed"}, "tries, not more deaths"
        assert system.learner_restarts == 1
    finally:
        system.close(graceful=False)
    # A refusal that passes: the next try brings the learner back
    system = supervisor.SharedPPOSystem(Settings().validate(), workers=1, checkpoint_dir=tmp_path, resume=False)
    try:
        system.start()
        system.learner.kill()
        system.learner.join(10)
        spawn = system._ctx
        system._ctx = _ForkRefusedContext()
        assert system.poll(0.1) == []
        system._ctx = spawn
        time.sleep(0.05)
        assert system.poll(0.1) == [] and system.learner.is_alive() and system._learner_unstarted is None
        assert [e["event"] for e in system.take_events()] == ["learner_died", "learner_start_failed"]
    finally:
        system.close(graceful=False)


def test_a_runs_blocks_carry_its_name_and_those_a_killed_session_left_are_removed_and_no_others(tmp_path):
    """Review (session 40): a SIGKILL to a run's whole process group kills Python's resource
    tracker too, and the weights and buffer blocks stayed in /dev/shm until reboot. A run's blocks
    are named after its own id (kept in config.json; not its path, which two runs in containers
    sharing /dev/shm can have alike), and a session removes those an earlier one left."""
    from multiprocessing import resource_tracker

    from morphelites.parallel.shm import leftover_blocks, new_run_id, remove_leftover_blocks, run_block_prefix

    run_id = new_run_id()
    (tmp_path / "run").mkdir()
    (tmp_path / "copy").mkdir()
    mine, other = run_block_prefix(run_id, tmp_path / "run"), run_block_prefix(new_run_id(), tmp_path / "run")
    assert mine != other and len(mine) + 10 <= 31, "macOS takes names of 31 characters"
    assert run_block_prefix(run_id, tmp_path / "." / "run") == mine, "the same run, however its path is written"
    assert run_block_prefix(run_id, tmp_path / "copy") != mine, "a copy of the run directory resumed beside it"
    (tmp_path / "run").rename(tmp_path / "moved")
    assert run_block_prefix(run_id, tmp_path / "moved") == mine, "the run moved: its leftovers are still its own"
    left, kept = create_shared_memory(4096, "test", mine), create_shared_memory(4096, "test", other)
    try:
        assert left.name.startswith(f"{mine}_") and kept.name.startswith(f"{other}_")
        left.close()  # as a killed session leaves it: no process to unlink it
        resource_tracker.unregister(f"/{left.name}", "shared_memory")
        assert leftover_blocks(mine) == [SHM_DIR / left.name]
        assert remove_leftover_blocks(mine) == [(left.name, 4096)]
        assert leftover_blocks(mine) == [] and (SHM_DIR / kept.name).exists(), "another run's blocks stay"
    finally:
        release_shared_memory(kept, owner=True)


def test_a_run_started_again_removes_the_blocks_a_session_killed_with_its_process_group_left(tmp_path, monkeypatch):
    """The trainer's side: the run's own leftovers count as free space for the start check, and
    are removed (and said so) as the session starts, while it holds the run's lock."""
    import json

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.parallel.shm import leftover_blocks, run_block_prefix
    from morphelites.runs.run_dir import RunDirectory, RunHold

    tiny = {"evolution": {"eval_episodes": 2, "num_initial_random": 2}, "env": {"max_episode_steps": 20},
            "training": {"buffer_size": 2000, "min_batch_size": 400, "update_interval": 100}}  # fmt: skip
    out = tmp_path / "run"
    run = lambda evaluations, resume: MAPElitesEvolutionTrainer(  # noqa: E731
        tiny, enable_multiprocess=False, use_shared_ppo=True, output_dir=str(out), evaluations=evaluations,
        training_steps_per_individual=100, quiet=True, resume=resume).run()  # fmt: skip
    run(1, resume=False)
    run_id = json.loads((out / "config.json").read_text())["run_id"]
    assert leftover_blocks(run_block_prefix(run_id, out)) == [], "a session that ends removes its blocks"
    planted = SHM_DIR / f"{run_block_prefix(run_id, out)}_0badf00d"  # as a session killed with its tracker left it
    (tmp_path / "copy").mkdir()
    another_runs = SHM_DIR / f"{run_block_prefix(run_id, tmp_path / 'copy')}_0badf00d"  # a copy's, resumed beside it
    for block in (planted, another_runs):
        block.write_bytes(b"\0" * 65536)
    try:
        assert run(2, resume=True)["status"] == "completed"
        assert not planted.exists() and another_runs.exists()
        assert json.loads((out / "config.json").read_text())["run_id"] == run_id, "a run keeps its id"
        assert "Removed 1 shared-memory block(s) (0.1 MB: " in (out / "training.log").read_text()
        planted.write_bytes(b"\0" * 65536)  # a filesystem without locks: nothing tells a live run's blocks apart
        monkeypatch.setattr(RunDirectory, "hold", lambda self, resumable=True: RunHold(None))
        assert run(3, resume=True)["status"] == "completed" and planted.exists()
        # ... and a review found the session silent about them: they are named, with how to remove them
        assert f"are not removed. Once no session of this run runs, delete them (rm {SHM_DIR}/{planted.name[:-9]}_*)" in (
            out / "training.log").read_text()
    finally:
        planted.unlink(missing_ok=True)
        another_runs.unlink(missing_ok=True)


def _interrupt_after(target, name: str, monkeypatch) -> None:
    """``target.name`` runs as before, then raises KeyboardInterrupt: a Ctrl-C right after it."""
    original = getattr(target, name)

    def interrupted(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(target, name, interrupted)


@pytest.mark.parametrize("where", ["making the buffer", "after both blocks"])
def test_a_ctrl_c_while_the_shared_state_is_made_removes_its_blocks(monkeypatch, where):
    """Found in review: a Ctrl-C while the buffer was zeroed (~50 ms of every start), or just after,
    left the blocks to Python's resource tracker, which removed them at exit with a warning about
    leaked shared memory."""
    from morphelites.parallel import supervisor
    from morphelites.parallel.buffer import SharedExperienceBuffer
    from morphelites.parallel.shm import leftover_blocks

    if where == "making the buffer":
        _interrupt_after(SharedExperienceBuffer, "__init__", monkeypatch)
    else:
        _interrupt_after(supervisor, "wait_for_first_weights_s", monkeypatch)
    prefix = f"meltest{os.getpid()}"
    with pytest.raises(KeyboardInterrupt):
        create_shared_state(Settings(), workers=2, sync=False, max_policy_lag=4, block_prefix=prefix)
    assert leftover_blocks(prefix) == []


@pytest.mark.parametrize("second_ctrl_c", [False, True])
def test_a_ctrl_c_before_the_run_s_handlers_are_in_place_removes_the_backend_s_blocks(tmp_path, monkeypatch,
                                                                                      second_ctrl_c):
    """The same between the backend's creation and the run's Ctrl-C handlers, also with a second
    Ctrl-C while the backend closes (review: it cut the close short)."""
    import signal

    from morphelites.evolution import trainer as trainer_module
    from morphelites.parallel.shm import leftover_blocks
    from morphelites.parallel.supervisor import SharedPPOSystem

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "ProcessTreeMemory", interrupted)
    if second_ctrl_c:
        close = SharedPPOSystem.close

        def interrupted_close(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return close(self, *args, **kwargs)

        monkeypatch.setattr(SharedPPOSystem, "close", interrupted_close)
    trainer = trainer_module.MAPElitesEvolutionTrainer(
        {"evolution": {"num_initial_random": 2}}, training_steps_per_individual=64, enable_multiprocess=True,
        max_workers=1, use_shared_ppo=True, output_dir=str(tmp_path / "run"), evaluations=2, quiet=True,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert leftover_blocks(trainer.block_prefix) == []
