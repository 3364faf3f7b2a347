"""The ``morphelites`` command's entry point (``python -m morphelites`` too).

It loads the command-line module only once it can catch a Ctrl-C: that module loads numpy and
the config's modules (about 0.1 s), then parses the options and loads the run-file modules, and a
Ctrl-C in that time printed a traceback instead of the one line and exit code 130 that README
promises (found in review). Before this module runs, only the package's ``__init__`` (its
rendering default, ~10 ms) is imported. A Ctrl-C that Python drops or a library turns into another
error while the command starts is remembered (:mod:`morphelites.early_interrupt`).
"""

from __future__ import annotations

import os
import sys

from morphelites import early_interrupt

__all__ = ["console_main"]


def console_main() -> int:
    """Load :mod:`morphelites.cli` and run its ``console_main``; 130 on a Ctrl-C that lands before
    the command's own handling of it (while modules load, options are parsed)."""
    _standard_streams_open()
    early_interrupt.install()
    try:
        from morphelites.cli import console_main as run

        return run()
    except KeyboardInterrupt:
        pass
    except Exception:
        if not early_interrupt.seen():
            raise
        # else: a library turned the Ctrl-C into another error while it loaded
    print("morphelites: interrupted", file=sys.stderr)
    return 130  # cli.EXIT_INTERRUPTED, which this may not have imported yet


def _standard_streams_open() -> None:
    """Give each of the standard descriptors 0, 1, 2 that the command was started without
    (``2>&-``) /dev/null. Else the first files the run opens take their numbers, and what is
    written to "stderr" below Python (a signal's notice by ``os.write(2, ...)``, a C library's
    warning) would land in them: the lock file, training.log (found in review). Python sees such
    a stream as None (``sys.stderr``); the run then writes nothing to the console."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, as those below are open
