"""A pool of worker processes that each run one job at a time, with a pipe of their own.

Why not ``concurrent.futures``: we need to know which worker holds which task (to reissue the
task of a worker that died), a process title per worker, workers that ignore Ctrl-C (the
supervisor owns shutdown) and exit when their parent dies, and a dead worker must not be able to
wedge a queue lock shared with the others, hence one pipe per worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing import spawn as mp_spawn
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator

from morphelites.parallel import heartbeat

__all__ = ["WorkerPool", "SerialPool", "PoolEvent", "WorkerCrashLoop", "set_process_title", "restore_process_title",
           "die_with_parent", "one_native_thread_per_process", "children_start_deaf_to_stop_signals", "ignore_stop_signals",
           "stop_signal_name", "STOP_SIGNALS", "stop_signals_to_handle",
           "exit_without_teardown"]

#: Worker deaths in a row, with no task finished by any worker in between, that end the run: a
#: worker that cannot even start (an import error, a broken install) must not respawn forever.
MAX_DEATHS_IN_ROW = 10
#: Tries to start a dead worker's replacement when the system refuses new processes (fork or pipe:
#: a limit on processes or open files, memory) before the run stops, the first again after
#: ``START_RETRY_S`` s and each next one twice as long after the last (~30 s in all).
MAX_START_TRIES = 6
START_RETRY_S = 1.0


def start_retry_at(tries: int) -> float:
    """When (monotonic s) to try again a process start the system has refused ``tries`` times
    (:data:`START_RETRY_S` after the first refusal, each next wait twice the last): for a worker
    here, and for the learner in ``supervisor``."""
    return time.monotonic() + START_RETRY_S * 2 ** (tries - 1)


class WorkerCrashLoop(RuntimeError):
    """Workers keep dying without finishing any task."""

_PR_SET_PDEATHSIG = 1

#: Environment variables that size the native thread pools a process starts when numpy (OpenBLAS)
#: or torch (OpenMP, MKL) loads.
NATIVE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def one_native_thread_per_process() -> Iterator[None]:
    """Processes started inside this block run OpenMP, OpenBLAS and MKL with one thread each,
    unless the user's environment sets a number, and without OpenMP's thread binding.

    Why: each library starts a thread per core in every process, and its idle threads spin. With
    one worker process per core those threads fight over the cores: independent-mode workers ran
    8x slower (71 s against 8.9 s for 8 bodies of 10,000 steps on 2 cores). The libraries read the
    variables when they load, so they are set in ``os.environ`` while the child is spawned (it
    copies the environment) and restored afterwards. torch's own intra-op threads are set from
    ``ppo.torch_threads`` as before.
    """
    with _STARTING_A_PROCESS:
        added = [name for name in NATIVE_THREAD_VARIABLES if name not in os.environ]
        for name in added:
            os.environ[name] = "1"
        # OpenMP's thread binding (OMP_PROC_BIND, OMP_PLACES, GOMP_CPU_AFFINITY, often set on clusters)
        # pins a process's first thread to the first core of its set as torch loads: every learner and
        # independent worker then ran on one core (found in review). A one-thread process gains nothing
        # from it, so the children do without, whatever the user's environment says.
        binding = os.environ.get("OMP_PROC_BIND")
        os.environ["OMP_PROC_BIND"] = "false"
        try:
            yield
        finally:
            for name in added:
                os.environ.pop(name, None)
            if binding is None:
                os.environ.pop("OMP_PROC_BIND", None)
            else:
                os.environ["OMP_PROC_BIND"] = binding


#: The signals a terminal or a job's scheduler sends to the whole process group to stop a run:
#: Ctrl-C, SIGTERM, SIGHUP (the terminal closed, the ssh session dropped), and SIGUSR1 and
#: SIGUSR2, a scheduler's warning (Slurm's ``--signal=USR1@120`` before a time limit; Grid
#: Engine's ``-notify``: SIGUSR1 before a suspension, SIGUSR2 before a kill), whose default
#: action would kill every process at once, without a final checkpoint. All but Ctrl-C stop the
#: run as SIGTERM does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


#: Blocked in every process the run starts (:func:`children_start_deaf_to_stop_signals`): the stop
#: signals, and SIGQUIT (Ctrl-\\), which the run does not handle (its default, quit with a core
#: dump, is the user's way to a hard stop) but which must not kill the resource tracker with the
#: rest of the process group: it frees the run's shared memory after a hard stop (review: blocks
#: were left in /dev/shm).
_BLOCKED_IN_CHILDREN = frozenset({*STOP_SIGNALS, signal.SIGQUIT})


def stop_signals_to_handle() -> list[int]:
    """The :data:`STOP_SIGNALS` a run handles: those not ignored when it starts. A signal ignored then
    stays ignored, as Python leaves an ignored SIGINT: ``nohup`` ignores SIGHUP (a run under it had
    stopped when the terminal closed), and a script's background job (``cmd &``) SIGINT (a Ctrl-C
    meant for the script's foreground command had stopped the run; found in review)."""
    return [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]


def stop_signal_name(signum: int | None) -> str:
    """A stop signal as a user knows it: ``Ctrl-C`` (SIGINT, and None), else its name (``SIGTERM``,
    ``SIGHUP``, ``SIGUSR1``, ``SIGUSR2``)."""
    return signal.Signals(signum).name if signum in STOP_SIGNALS[1:] else "Ctrl-C"


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, deaf to the stop signals as in
    :func:`children_start_deaf_to_stop_signals`, unless it runs already. Call it before creating
    shared memory: the first block created starts the tracker otherwise, with SIGHUP live, and a
    hang-up then killed it (seen in review: a dropped ssh session printed the tracker's relaunch
    and KeyError tracebacks, and a hard kill soon after left the run's blocks in /dev/shm)."""
    with children_start_deaf_to_stop_signals():
        pass


#: Held while a process starts with changed process-wide state: the environment of
#: :func:`one_native_thread_per_process`, the main script hidden by
#: :func:`children_skip_the_main_script`. Two runs started in threads at once would each restore
#: the state the other had changed (found in review), so both take it; reentrant, since a start
#: takes both.
_STARTING_A_PROCESS = threading.RLock()


@contextlib.contextmanager
def children_skip_the_main_script() -> Iterator[None]:
    """Processes started (spawned) inside this block do not run the parent's main script again.

    Why: spawn runs a parent's ``__main__`` script once more in each child (as ``__mp_main__``), so
    that functions pickled from it can be found there. Ours need none of it: a job is named
    ``"module:function"``. But a user's script that imports the trainer at its top (as README's
    Python examples do, guarding only the call) made every shared-mode worker and the learner load
    pyribs, scipy, sklearn, numba and matplotlib too: ~200 MB more per process (measured: 250 MB
    against 39 MB), where DESIGN promises numpy-only workers. So while a process starts, the data
    spawn hands it leaves out where the main script is. The ``__main__`` module itself is left
    alone: hiding its ``__file__`` instead broke main-thread code that read it while a run started
    in another thread started a process (found in review).
    """
    with _STARTING_A_PROCESS:  # two runs started in threads at once would restore each other's patch
        real = mp_spawn.get_preparation_data

        def without_the_main_script(name: str) -> dict[str, Any]:
            data = real(name)
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
            return data

        mp_spawn.get_preparation_data = without_the_main_script
        try:
            yield
        finally:
            mp_spawn.get_preparation_data = real


@contextlib.contextmanager
def children_start_deaf_to_stop_signals() -> Iterator[None]:
    """Processes started inside this block never receive the :data:`STOP_SIGNALS` (nor SIGQUIT:
    :data:`_BLOCKED_IN_CHILDREN`): they are blocked in this thread while they start, and a child
    inherits the blocked mask through fork and exec. multiprocessing's resource tracker is started here too, if it is not running: it
    ignores SIGINT and SIGTERM but not SIGHUP or SIGUSR1/2, and a signal that killed it would leave
    a killed run's shared memory in /dev/shm.

    Why: Ctrl-C in a terminal goes to the whole process group, and so do the SIGTERM of GNU
    ``timeout``, systemd's stop and a Slurm preemption, a hang-up's SIGHUP and a scheduler's
    SIGUSR1 warning. Workers and the
    learner ignore them (the supervisor owns shutdown: it asks the learner for its final
    checkpoint), but only once their own code runs; a Ctrl-C that came while a child was still
    importing (torch takes seconds) printed a KeyboardInterrupt traceback per child, and a SIGTERM
    then killed it. A signal meant for this process waits while blocked and is delivered when the
    block ends, so none is lost here. CPython starts its resource tracker the same way.
    """
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED_IN_CHILDREN)
    try:
        resource_tracker.ensure_running()
        # Starting the tracker unblocks SIGINT and SIGTERM in this thread as it ends (CPython's
        # ensure_running): block them again, or the first child (independent mode's worker 0,
        # which starts the tracker) would start with them live (found in review).
        signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED_IN_CHILDREN)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ignore_stop_signals() -> None:
    """In a worker or the learner: ignore the :data:`STOP_SIGNALS` sent to the whole process
    group. The main process decides how the run stops and tells its children; if it dies, they
    are killed (:func:`die_with_parent`) or leave on their own (heartbeat module)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


#: The titles of the runs going on in this process (threads), oldest first, each with the token
#: :func:`set_process_title` returned, and the title the process had before the first of them.
_RUN_TITLES: list[tuple[object, str]] = []
_TITLE_BEFORE_RUNS: list[str | None] = [None]
_TITLES_LOCK = threading.Lock()


def set_process_title(title: str) -> object | None:
    """Show ``morphelites: <title>`` as the title ``ps`` shows, when setproctitle is available.
    Returns a token for :func:`restore_process_title` (None without setproctitle).

    With runs in several threads of one process, the newest run still going is shown, and the
    process's own title comes back when the last one ends (review: each run put back the title
    it had found, so a run outlived the first to end untitled, where README's ``pkill`` recipe
    could not find it, and the process kept the first run's title after both)."""
    try:
        from setproctitle import getproctitle, setproctitle
    except ImportError:  # pragma: no cover - it is a dependency; titles are a convenience
        return None
    # A path of bytes that are not UTF-8 reaches Python as surrogates, which setproctitle refuses:
    # it crashed the run after config.json was written, and every resume again (review). Shown escaped.
    shown = f"morphelites: {os.fsencode(title).decode('utf-8', 'backslashreplace')}"
    token = object()
    with _TITLES_LOCK:
        if not _RUN_TITLES:
            try:
                _TITLE_BEFORE_RUNS[0] = getproctitle()
            except UnicodeError:  # a command line with such bytes: left as the runs leave it then
                _TITLE_BEFORE_RUNS[0] = None
        _RUN_TITLES.append((token, shown))
        setproctitle(shown)
    return token


def restore_process_title(token: object | None) -> None:
    """End the title of :func:`set_process_title`'s ``token`` (nothing to do for None): the newest
    other run's is shown, or the process's own once no run is left."""
    if token is None:
        return
    from setproctitle import setproctitle

    with _TITLES_LOCK:
        _RUN_TITLES[:] = [(other, shown) for other, shown in _RUN_TITLES if other is not token]
        if _RUN_TITLES:
            setproctitle(_RUN_TITLES[-1][1])
        elif _TITLE_BEFORE_RUNS[0] is not None:
            setproctitle(_TITLE_BEFORE_RUNS[0])


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (no-op elsewhere). SIGKILL,
    because the children ignore SIGTERM (:func:`ignore_stop_signals`)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except OSError:
            pass


def exit_without_teardown() -> None:
    """End this child process now with exit code 0, skipping the interpreter's teardown.

    Why: tearing down a process that imported torch (or MuJoCo) frees module by module and took
    0.5-1.5 s per process, which every run paid at its end while the supervisor joined its
    children. Call it only once the process has nothing left to do: every file it wrote closed
    (checkpoints are fsynced and renamed before this), every message sent (pipe data outlives
    the sender). Shared-memory mappings and descriptors go with the process, as in a normal
    exit. Does nothing in the main process, which must tear down as usual.
    """
    if mp.parent_process() is None:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _resolve(job: str) -> Callable[..., Any]:
    module, _, name = job.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(index: int, role: str, job: str, conn: Connection, parent_pid: int, beats: Any) -> None:
    """Entry point of a worker process: serve tasks until told to stop (or the parent's pipe
    closes), then exit without the interpreter's slow teardown. An exception escaping the loop
    ends the process the usual way, with its traceback and exit code 1."""
    ignore_stop_signals()  # Ctrl-C, a scheduler's SIGTERM, a hang-up go to the whole group; the parent decides
    die_with_parent()
    set_process_title(f"{role} {index}")
    function = _resolve(job)
    heartbeat.install(beats, index, parent_pid=parent_pid)
    _serve(function, conn)
    exit_without_teardown()


def _serve(function: Callable[..., Any], conn: Connection) -> None:
    """Receive (task_id, args), run ``function(*args)``, send the outcome back; return on None."""
    while True:
        heartbeat.beat()  # also exits this process once its parent is gone (heartbeat module)
        if not conn.poll(1.0):
            continue
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, args = message
        try:
            outcome = ("done", task_id, function(*args))
        except Exception:  # report any failure of the job to the parent instead of dying
            outcome = ("error", task_id, traceback.format_exc())
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return


@dataclass
class PoolEvent:
    """Something a worker did: ``done`` (value = the job's result), ``error`` (value = traceback
    text), ``stalled`` (value = seconds without a heartbeat; the worker was killed and a ``died``
    event follows), or ``died`` (value = exit code; the worker was restarted, its task is lost;
    None: killed as stalled, it lives on in uninterruptible sleep, its task is lost, and its place
    is restarted once it is gone, with another ``died`` event without a task).
    ``env_steps``: for ``died`` and ``error``, the env steps of its task's training that the worker
    handed on before it died or raised (shared mode: the transitions it committed, which the learner
    trains on), so that the run counts them; 0 where nothing is known."""

    kind: str
    worker: int
    task_id: Any
    value: Any
    env_steps: int = 0


class WorkerPool:
    """``size`` worker processes running ``job`` (``"module:function"``) on submitted args.

    Args:
        size: number of workers.
        job: the function, as ``"package.module:function"``, imported in each worker.
        role: process-title role, e.g. ``"independent worker"`` -> ``morphelites: independent worker 0``.
        on_died: called with a dead worker's index before its replacement starts (to clean up
            what it shared, e.g. half-written buffer slots).
        ipc_timeout: seconds without a heartbeat after which a worker counts as stalled and is
            killed (then replaced like a worker that died); None: never.
    """

    def __init__(self, size: int, job: str, role: str, on_died: Callable[[int], Any] | None = None,
                 ipc_timeout: float | None = None) -> None:  # fmt: skip
        self.size = size
        self.job = job
        self.role = role
        self._ctx = mp.get_context("spawn")  # no inherited torch or thread state
        self.heartbeats = heartbeat.Heartbeats(size, self._ctx)
        self.ipc_timeout = ipc_timeout
        self.stalls = 0
        self._procs: list[Any] = [None] * size
        self._conns: list[Connection | None] = [None] * size
        self._tasks: list[Any] = [None] * size
        self._closed = False  # closing has begun: no more restarts
        self._shut_down = False  # closing has finished
        self.restarts = 0
        self._deaths_in_row = 0
        self._stall_kills_in_row = 0  # of those deaths, the workers this pool killed as stalled
        self._crash_loop: WorkerCrashLoop | None = None  # found by a poll, which returned its events first
        self.on_died = on_died
        self.last_start_error: str | None = None  # why the last replacement could not be started
        self._unstarted: dict[int, tuple[int, float]] = {}  # worker index -> (refused starts, next try at, monotonic s)
        self._killed: dict[int, Any] = {}  # worker index -> the stalled process killed there (reported once)

    def start(self) -> "WorkerPool":
        for index in range(self.size):
            self._spawn(index)
        return self

    def _spawn(self, index: int) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main, args=(index, self.role, self.job, child, os.getpid(), self.heartbeats.array),
            name=f"{self.role} {index}", daemon=True,
        )  # fmt: skip
        self.heartbeats.stamp(index, heartbeat.STARTUP_GRACE_S)
        with one_native_thread_per_process(), children_start_deaf_to_stop_signals(), children_skip_the_main_script():
            proc.start()
        child.close()
        self._procs[index], self._conns[index], self._tasks[index] = proc, parent, None

    @property
    def idle(self) -> list[int]:
        """Indices of live workers without a task (a dead one waits for its replacement, and one
        killed as stalled that lives on, in uninterruptible sleep, for its death)."""
        return [i for i, proc in enumerate(self._procs)
                if self._tasks[i] is None and proc is not None and proc.is_alive() and proc is not self._killed.get(i)]  # fmt: skip

    @property
    def in_flight(self) -> dict[int, Any]:
        """Worker index -> task id, for busy workers."""
        return {i: t for i, t in enumerate(self._tasks) if t is not None}

    def pids(self) -> dict[int, int]:
        """Worker index -> process id, for the places that have a process (a refused start leaves none)."""
        return {i: p.pid for i, p in enumerate(self._procs) if p is not None}

    def submit(self, worker: int, task_id: Any, args: tuple) -> None:
        """Hand ``args`` to idle ``worker``; its outcome comes back from :meth:`poll`."""
        if self._tasks[worker] is not None:
            raise RuntimeError(f"worker {worker} is busy with task {self._tasks[worker]}")
        self._tasks[worker] = task_id
        conn = self._conns[worker]
        assert conn is not None
        try:
            conn.send((task_id, args))
        except (BrokenPipeError, OSError):
            pass  # the worker is dead; poll() reports it and restarts it

    def poll(self, timeout: float) -> list[PoolEvent]:
        """Wait up to ``timeout`` s for outcomes; also reports (and replaces) dead workers.

        Raises WorkerCrashLoop after ``MAX_DEATHS_IN_ROW`` deaths in a row, from the next call (or
        :meth:`raise_deferred_failure`): this one returns its events first, so that the caller
        records the results and counts the deaths it received with the last one.
        """
        if self._crash_loop is not None:
            raise self._crash_loop
        self._start_due()
        events: list[PoolEvent] = []
        busy = [c for i, c in enumerate(self._conns) if c is not None and self._tasks[i] is not None]
        ready = wait(busy, timeout) if busy else (time.sleep(timeout) or [])
        for index, conn in enumerate(self._conns):
            if conn is None or conn not in ready:
                continue
            try:
                kind, task_id, value = conn.recv()
            except (EOFError, OSError):
                continue  # dead: handled below
            self._tasks[index] = None
            self._deaths_in_row = self._stall_kills_in_row = 0
            events.append(PoolEvent(kind, index, task_id, value))
        events += self._kill_stalled()
        for index, proc in enumerate(self._procs):
            if proc is not None and not proc.is_alive() and not self._closed:
                lost = self._tasks[index]
                proc.join(timeout=0.1)
                events.append(PoolEvent("died", index, lost, proc.exitcode))
                self.restarts += 1
                self._deaths_in_row += 1
                self._stall_kills_in_row += proc is self._killed.get(index)
                if self._deaths_in_row >= MAX_DEATHS_IN_ROW and self._crash_loop is None:
                    self._crash_loop = WorkerCrashLoop(self._crash_loop_message(proc.exitcode))
                if self._crash_loop is not None:  # the run stops: reported, not replaced
                    self._tasks[index] = None
                    continue
                if self.on_died is not None:
                    self.on_died(index)
                self._tasks[index] = None  # reported lost above
                self._start(index, tries=0)
        return events

    def _crash_loop_message(self, exitcode: int | None) -> str:
        """Why the run stops after ``MAX_DEATHS_IN_ROW`` deaths in a row, and what to do."""
        died = f"{self.role} processes died {self._deaths_in_row} times in a row without finishing a task"
        if self._stall_kills_in_row == self._deaths_in_row:
            # Seen in review: with a short ipc_timeout on a loaded machine every death was a stall kill,
            # and the message sent the user looking for a crash in console output that had none.
            return (f"{died}: each was killed as stalled, silent for longer than training.ipc_timeout "
                    f"({self.ipc_timeout:g} s), so the run stops. On a loaded machine (or with more workers than "
                    f"cores) a process can be that slow without hanging: raise training.ipc_timeout (README, "
                    f"Troubleshooting) or use fewer workers, and continue with --resume.")  # fmt: skip
        return (f"{died} (last exit code {exitcode}), so the run stops. The console output above shows why they die "
                f"(an import error, memory, a broken install); fix that and continue with --resume.")  # fmt: skip

    def _start(self, index: int, tries: int) -> None:
        """Start worker ``index``'s replacement, after ``tries`` refused starts. A refusal (fork or
        a pipe: EAGAIN under a pids limit, EMFILE, memory) leaves the slot empty, taking no task,
        and a later poll tries again; after ``MAX_START_TRIES`` the run stops (from the next poll)."""
        try:
            self._spawn(index)
        except OSError as error:
            self._procs[index] = None  # nothing to watch: no death to report again
            tries += 1
            self.last_start_error = f"{type(error).__name__}: {error}"
            if tries < MAX_START_TRIES:
                self._unstarted[index] = (tries, start_retry_at(tries))
            elif self._crash_loop is None:
                self._unstarted.pop(index, None)
                self._crash_loop = WorkerCrashLoop(
                    f"A {self.role} process could not be started {tries} times in a row over about "
                    f"{START_RETRY_S * (2 ** (tries - 1) - 1):.0f} s (last: {self.last_start_error}): this system refuses "
                    f"new processes (a limit on processes or open files, or memory), so the run stops. Free what it "
                    f"lacks, or use fewer --workers, and continue with --resume."
                )  # fmt: skip
            return
        self._unstarted.pop(index, None)

    def _start_due(self) -> None:
        """Try again the replacements whose start was refused and whose wait is over."""
        now = time.monotonic()
        for index, (tries, due) in list(self._unstarted.items()):
            if now >= due and not self._closed:
                self._start(index, tries)

    def raise_deferred_failure(self) -> None:
        """Raise the crash loop a poll found (it returned its events first), if any: a run whose
        last results came with it must not end as completed without the next poll."""
        if self._crash_loop is not None:
            raise self._crash_loop

    def _kill_stalled(self) -> list[PoolEvent]:
        """SIGKILL every live worker whose heartbeat is older than ``ipc_timeout``."""
        if self.ipc_timeout is None or self._closed:
            return []
        if self.heartbeats.restamp_after_own_pause(self.ipc_timeout / 2):
            return []
        events = []
        for index, proc in enumerate(self._procs):
            age = self.heartbeats.age(index)
            if proc is not None and proc.is_alive() and age > self.ipc_timeout and proc is not self._killed.get(index):
                events.append(PoolEvent("stalled", index, self._tasks[index], age))
                self.stalls += 1
                proc.kill()
                proc.join(timeout=5.0)
                # A process in uninterruptible sleep (swapping, a hung NFS mount: the causes of a stall)
                # dies only when it wakes, which may be never: killed once, reported once; its place is
                # replaced once it is gone. Its SIGKILL is pending, so it never runs its own code again:
                # its task is lost now, as at a death (issued again; a run waiting for it never ended:
                # found in review), and its buffer slots and sync quota are cleared.
                self._killed[index] = proc
                if proc.is_alive():
                    lost, self._tasks[index] = self._tasks[index], None
                    if self.on_died is not None:
                        self.on_died(index)
                    if lost is not None:
                        events.append(PoolEvent("died", index, lost, None))
        return events

    def close(self, graceful: bool = True, timeout: float = 5.0) -> None:
        """Stop every worker (ask, then kill); safe to call twice.

        A call cut short (a second Ctrl-C while it waited) is finished by the next one, without
        asking or waiting again.
        """
        if self._shut_down:
            return
        graceful = graceful and not self._closed
        self._closed = True
        if graceful:
            for conn in self._conns:
                try:
                    if conn is not None:
                        conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        deadline = time.monotonic() + (timeout if graceful else 0.0)
        for proc in self._procs:
            if proc is not None:
                proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self._procs:  # workers ignore SIGTERM, and hold nothing a kill could tear
            if proc is not None and proc.is_alive():
                proc.kill()
        for index, proc in enumerate(self._procs):
            if proc is not None:
                proc.join(timeout=2.0)
                if proc.exitcode is not None:  # its descriptors go now, not when the trainer is collected (review)
                    proc.close()
                    self._procs[index] = None
        for conn in self._conns:
            if conn is not None:
                conn.close()
        self._shut_down = True


class SerialPool:
    """The same interface, one "worker" that runs each job in this process when polled."""

    def __init__(self, job: str) -> None:
        self.size = 1
        self._function = _resolve(job)
        self._task: tuple[Any, tuple] | None = None
        self.restarts = 0
        self.stalls = 0  # one process cannot watch itself

    def start(self) -> "SerialPool":
        return self

    @property
    def idle(self) -> list[int]:
        return [] if self._task is not None else [0]

    @property
    def in_flight(self) -> dict[int, Any]:
        return {0: self._task[0]} if self._task is not None else {}

    def pids(self) -> dict[int, int]:
        return {}

    def submit(self, worker: int, task_id: Any, args: tuple) -> None:
        self._task = (task_id, args)

    def poll(self, timeout: float) -> list[PoolEvent]:
        if self._task is None:
            return []
        task_id, args = self._task
        try:
            event = PoolEvent("done", 0, task_id, self._function(*args))
        except Exception:
            event = PoolEvent("error", 0, task_id, traceback.format_exc())
        self._task = None
        return [event]

    def raise_deferred_failure(self) -> None:
        """Nothing to raise: one process, no worker deaths."""

    def close(self, graceful: bool = True, timeout: float = 5.0) -> None:
        self._task = None
