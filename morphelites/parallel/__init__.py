"""Processes and what moves between them: worker pools, supervision, shared weights and buffers.

Moves arrays and messages; knows no PPO maths and no quality diversity.
"""

from morphelites.parallel.pool import PoolEvent, SerialPool, WorkerPool, set_process_title

__all__ = ["WorkerPool", "SerialPool", "PoolEvent", "set_process_title", "SharedExperienceBuffer", "SharedWeights",
           "SharedPPOTrainer", "MultiProcessPPOWorker", "SharedPPOSystem"]

#: Where each of the names below lives. Imported when first asked for: a worker process imports
#: this package, and the learner's module loads torch, which workers must not (DESIGN.md).
_LAZY = {"SharedExperienceBuffer": "buffer", "SharedWeights": "weights", "SharedPPOTrainer": "learner",
         "MultiProcessPPOWorker": "shared_worker", "SharedPPOSystem": "supervisor"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"morphelites.parallel.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
