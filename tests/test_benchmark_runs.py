"""A benchmark's runs do not outlive it: killing the benchmark stops the run it was measuring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from conftest import assert_gone, wait_for

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

DRIVER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(BENCHMARKS)!r})
from shared_vs_independent import run_mode
run_mode("independent", "open", 1500, 10_000, 1, 0, Path(sys.argv[1]))
"""


def test_killing_a_benchmark_stops_its_run_and_the_run_keeps_its_files(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    run_dir = tmp_path / "independent-open-1500-seed0"
    descendants: list[psutil.Process] = []

    def run_is_training() -> bool:
        descendants[:] = psutil.Process(driver.pid).children(recursive=True)
        return any("independent worker" in " ".join(p.cmdline()) for p in descendants if p.is_running())

    try:
        wait_for(run_is_training, 120.0, "the run's worker to start")
        driver.kill()  # no chance to clean up: only the kernel can tell the run
        driver.wait(timeout=10)
        assert_gone(descendants, timeout=30.0)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "terminated"
    finally:
        if driver.poll() is None:
            driver.kill()
        for proc in descendants:
            if proc.is_running():
                proc.kill()
