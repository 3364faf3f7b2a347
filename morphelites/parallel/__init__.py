"""Processes and what moves between them: worker pools, supervision, shared weights and buffers.

Moves arrays and messages; knows no PPO maths and no quality diversity.
"""

from morphelites.parallel.pool import PoolEvent, SerialPool, WorkerPool, set_process_title

__all__ = ["WorkerPool", "SerialPool", "PoolEvent", "set_process_title"]
