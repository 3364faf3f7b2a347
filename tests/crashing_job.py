"""A worker job that kills its process on every task, as a broken install or a body that crashes
the simulator would: for the crash-loop test (tests/test_train.py). Imported by worker processes
by its module name (they inherit this directory on sys.path)."""

import os


def run_task(*args: object) -> None:
    os._exit(3)
