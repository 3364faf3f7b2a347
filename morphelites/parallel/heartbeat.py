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
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

__all__ = ["Heartbeats", "install", "beat", "STARTUP_GRACE_S"]

#: Seconds a starting process gets on top of ``ipc_timeout`` before its first heartbeat.
STARTUP_GRACE_S = 60.0

_stamps: Any = None  # this process's view of the shared array, once installed
_slot = 0


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


def install(array: Any, slot: int) -> None:
    """In a child process: beat into ``array[slot]`` from now on (and once right away)."""
    global _stamps, _slot
    _stamps, _slot = array, slot
    beat()


def beat() -> None:
    """Record that this process is making progress; a no-op where no heartbeat is installed."""
    if _stamps is not None:
        _stamps[_slot] = time.monotonic()
