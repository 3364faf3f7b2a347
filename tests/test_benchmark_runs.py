"""A benchmark's runs do not outlive it: killing the benchmark stops the run it was measuring."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

DRIVER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(BENCHMARKS)!r})
from shared_vs_independent import run_mode
run_mode("independent", "open", 1500, 10_000, 1, 0, Path(sys.argv[1]))
"""


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_killing_a_benchmark_stops_its_run_and_the_run_keeps_its_files(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    run_dir = tmp_path / "independent-open-1500-seed0"
    descendants: list[psutil.Process] = []

    def run_is_training() -> bool:
        descendants[:] = psutil.Process(driver.pid).children(recursive=True)
        return any("independent worker" in " ".join(p.cmdline()) for p in descendants if p.is_running())

    try:
        assert _wait_for(run_is_training, 120.0), "the run's worker never started"
        driver.kill()  # no chance to clean up: only the kernel can tell the run
        driver.wait(timeout=10)
        gone, alive = psutil.wait_procs(descendants, timeout=30.0)
        assert not alive, f"still running after the benchmark died: {[p.cmdline() for p in alive]}"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "terminated"
    finally:
        for proc in [*descendants, psutil.Process(driver.pid) if driver.poll() is None else None]:
            if proc is not None and proc.is_running():
                proc.kill()
