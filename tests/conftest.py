"""Shared fixtures: small body spaces and the CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Headless rendering: MuJoCo picks its GL backend when first imported, maybe by a test module.
os.environ.setdefault("MUJOCO_GL", "egl")

REPO = Path(__file__).resolve().parents[1]


def start_train(*args: str) -> subprocess.Popen:
    """Start ``python -m morphelites train --quiet ARGS`` in the background."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "morphelites", "train", "--quiet", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def read_results(out: Path) -> list[dict]:
    """The lines of ``out/results.jsonl`` (none if it does not exist yet)."""
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def run_cli():
    """Run ``python -m morphelites ARGS`` in a subprocess; returns the CompletedProcess."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            [sys.executable, "-m", "morphelites", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    return run


@pytest.fixture
def torch_state_restored():
    """For a test that sets torch's thread count or global random stream in the pytest process:
    both are put back afterwards, so later tests do not depend on the order they run in."""
    import torch

    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
