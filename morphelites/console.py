"""The ``morphelites`` command's entry point (``python -m morphelites`` too).

It imports only the standard library before it can catch a Ctrl-C: the command-line module loads
numpy and the config's modules (about 0.1 s), then parses the options and loads the run-file
modules, and a Ctrl-C in that time printed a traceback instead of the one line and exit code 130
that README promises (found in review).
"""

from __future__ import annotations

import sys

__all__ = ["console_main"]


def console_main() -> int:
    """Load :mod:`morphelites.cli` and run its ``console_main``; 130 on a Ctrl-C that lands before
    the command's own handling of it (while modules load, options are parsed)."""
    try:
        from morphelites.cli import console_main as run

        return run()
    except KeyboardInterrupt:
        print("morphelites: interrupted", file=sys.stderr)
        return 130  # cli.EXIT_INTERRUPTED, which this may not have imported yet
