"""Shared fixtures: small body spaces and the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Headless rendering: MuJoCo picks its GL backend when first imported, maybe by a test module.
os.environ.setdefault("MUJOCO_GL", "egl")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_cli():
    """Run ``python -m morphelites ARGS`` in a subprocess; returns the CompletedProcess."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return subprocess.run(
            [sys.executable, "-m", "morphelites", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    return run
