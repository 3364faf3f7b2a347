"""Import now what a run in the caller's process would first import under its Ctrl-C handler.

A second Ctrl-C raises KeyboardInterrupt wherever the main process is, and one that lands inside a
first import leaves a half-initialised module in ``sys.modules`` for the rest of the Python process.
A serial run (``--serial``, ``enable_multiprocess=False``) imported mujoco and, at its first Adam
step, torch._dynamo with sympy (~890 modules) under its handler: a second Ctrl-C there made the final
checkpoint raise out of ``run()``, and every later optimiser of the process (the next run's, the
user's own) fail with "module 'sympy' has no attribute 'core'" (found in review). Such runs, and
``morphelites ppo``, call these before they install their handlers; :func:`morphelites.viz.load_drawing_modules`
does the same for the pictures. Worker processes need none of it (they ignore the stop signals).
"""

from __future__ import annotations

__all__ = ["load_simulation_modules", "load_optimiser_modules"]


def load_simulation_modules() -> None:
    """Import mujoco (with the OpenGL backend that ``MUJOCO_GL`` names), the env, and the shared
    worker's and the per-body PPO's modules (which load torch)."""
    import mujoco  # noqa: F401

    import morphelites.envs.reach  # noqa: F401
    import morphelites.parallel.shared_worker  # noqa: F401
    import morphelites.train_ppo  # noqa: F401


def load_optimiser_modules() -> None:
    """Import what a process's first Adam step imports on use (``torch._dynamo`` with sympy: about
    1.5 s), by stepping a throwaway optimiser of one parameter (no random draw, no state kept)."""
    import torch

    parameter = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.Adam([parameter], foreach=True)
    parameter.grad = torch.zeros(1)
    optimiser.step()
