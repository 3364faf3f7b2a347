"""The test suite's own process helpers: a fault test that leaves processes behind would slow or
break every test after it, so the cleanup is itself tested."""

from __future__ import annotations

import subprocess
import sys

import psutil

from conftest import assert_gone, kill_process_tree

_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def test_kill_process_tree_kills_the_process_and_the_processes_it_started():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        kill_process_tree(parent.pid)
        parent.wait(timeout=10)
        assert parent.returncode == -9
        assert_gone([child], timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()

