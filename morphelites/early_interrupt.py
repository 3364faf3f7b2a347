"""A Ctrl-C that arrives before a command's own signal handlers, remembered so it cannot be lost.

Python's default SIGINT handler raises KeyboardInterrupt wherever the main thread is. During the
command's start-up that is often inside code whose exceptions Python drops: a finalizer
(``__del__``, ``weakref.finalize``) or a weakref callback, about 2,400 of them in the imports
alone (every import runs one), where the interrupt is printed as "Exception ignored" and the
command went on to run to the end; or inside a library that turns it into another error (numpy's
import of ``datetime`` into an ImportError, a ``__set_name__`` into a RuntimeError), which
printed a traceback or a false input error. Both were found in review by raising the signal at
chosen calls; one real Ctrl-C was lost that way.

The ``morphelites`` command calls :func:`install` first. Its handler remembers the Ctrl-C before
it raises, so that the command (cli.py) and the run (the trainer, ``morphelites ppo``) look at
:func:`seen` once they could have lost it, and stop as a Ctrl-C asks. Nothing here is used when
morphelites runs from a user's own Python (``seen`` stays False).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

__all__ = ["install", "seen"]

_seen = False


def install() -> None:
    """From now on, remember a Ctrl-C (then raise KeyboardInterrupt, as Python's default handler
    does), and drop the "Exception ignored" report of a KeyboardInterrupt that Python could not
    raise. A handler installed later (the run's own) replaces this one. Nothing is done where
    SIGINT is ignored (a script's background job): Python leaves it ignored then, and so does the
    run (review: a Ctrl-C meant for the script's foreground command had stopped it)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    signal.signal(signal.SIGINT, _on_sigint)
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not (_seen and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            previous_hook(unraisable)

    sys.unraisablehook = hook


def _on_sigint(signum: int, frame: Any) -> None:
    global _seen
    _seen = True
    raise KeyboardInterrupt


def seen() -> bool:
    """Whether a Ctrl-C arrived since :func:`install`, before a run's own handlers took over."""
    return _seen
