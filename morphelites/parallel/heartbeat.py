"""Heartbeats: how the supervisor tells a stalled process from a busy one.

Each watched process owns one slot of a shared array of ``time.monotonic()`` stamps (seconds;
CLOCK_MONOTONIC is one clock for every process of the machine). The process calls :func:`beat`
from the loops where it makes progress or waits on purpose (env steps, PPO epochs, waiting for a
buffer slot or a new policy version, waiting for a task). A slot older than ``ipc_timeout``
seconds means the process is stalled: it is killed and handled like a process that died.

Starting up is not a loop: a spawned process imports its modules (torch, MuJoCo) before it can
beat, which takes seconds, and many on a loaded machine. So the parent stamps the slot
:data:`STARTUP_GRACE_S` seconds into the future when it starts the process.

Why not a heartbeat thread: a thread keeps beating while the main thread is stuck in a loop or
a deadlock, which is exactly what must be detected.

A beating process also checks, at most once a second, that its parent is still the one it was
started by, and exits at once if not. On Linux the parent's death already sends it SIGKILL
(``pool.die_with_parent``); elsewhere that is a no-op, and a worker waiting for a buffer slot or
a policy version that will never come (its learner and supervisor gone) would wait forever.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

__all__ = ["Heartbeats", "install", "beat", "STARTUP_GRACE_S"]

#: Seconds a starting process gets on top of ``ipc_timeout`` before its first heartbeat.
STARTUP_GRACE_S = 60.0

_stamps: Any = None  # this process's view of the shared array, once installed
_slot = 0
_parent_pid: int | None = None  # the process that started this one, once installed
_parent_checked = 0.0  # monotonic seconds of the last check that it is still the parent

#: How often (seconds) a beating process checks that its parent is alive.
PARENT_CHECK_S = 1.0
#: Exit code of a process that found its parent gone.
EXIT_ORPHANED = 3


class Heartbeats:
    """``slots`` shared timestamps (monotonic seconds), made by the parent, passed to children.

    Args:
        slots: number of watched processes.
        ctx: multiprocessing context the children are started with.
    """

    def __init__(self, slots: int, ctx: Any = None) -> None:
        self.array = (ctx or mp.get_context("spawn")).Array("d", slots, lock=False)
        for slot in range(slots):
            self.array[slot] = time.monotonic()
        self._last_round = time.monotonic()  # the watcher's, see restamp_after_own_pause

    def stamp(self, slot: int, grace_s: float = 0.0) -> None:
        """Mark ``slot`` as alive now, plus ``grace_s`` seconds (the parent does this with
        :data:`STARTUP_GRACE_S` when it (re)starts the process)."""
        self.array[slot] = time.monotonic() + grace_s

    def age(self, slot: int) -> float:
        """Seconds since ``slot`` last beat."""
        return time.monotonic() - self.array[slot]

    def restamp_after_own_pause(self, pause_s: float) -> bool:
        """For the watcher, once per round of stall checks, before it reads any age: if it has
        not been here for more than ``pause_s`` seconds, stamp every slot now and return True.

        Such a gap means the watcher itself was not running: the whole job was stopped (Ctrl-Z,
        SIGSTOP, a cluster suspending it) while CLOCK_MONOTONIC ran on, so the watched processes'
        stamps are old because they were stopped too, not because they hung; read at once on
        waking, before they ran again, they would all look stalled. A process that really hangs
        is caught one ``ipc_timeout`` later instead."""
        now = time.monotonic()
        paused = now - self._last_round > pause_s
        self._last_round = now
        if paused:
            for slot in range(len(self.array)):
                self.array[slot] = max(self.array[slot], now)  # a startup grace (a stamp ahead) is kept
        return paused


def install(array: Any, slot: int, parent_pid: int | None = None) -> None:
    """In a child process: beat into ``array[slot]`` from now on (and once right away); with
    ``parent_pid``, a beat exits the process once its parent is no longer that process."""
    global _stamps, _slot, _parent_pid, _parent_checked
    _stamps, _slot, _parent_pid, _parent_checked = array, slot, parent_pid, 0.0
    beat()


def beat() -> None:
    """Record that this process is making progress; a no-op where no heartbeat is installed.
    Exits the process (code :data:`EXIT_ORPHANED`) if its parent has died (module docstring)."""
    global _parent_checked
    if _stamps is None:
        return
    now = time.monotonic()
    _stamps[_slot] = now
    if _parent_pid is not None and now - _parent_checked >= PARENT_CHECK_S:
        _parent_checked = now
        if os.getppid() != _parent_pid:
            os._exit(EXIT_ORPHANED)  # no cleanup to run: nobody is left to take this process's work
