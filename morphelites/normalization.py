"""Running statistics for observation and reward normalisation (numpy only, no torch)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["RunningMeanStd", "RewardScaler", "scale_rewards", "REWARD_CLIP"]

#: Scaled rewards are clipped to ±this (SB3 VecNormalize's ``clip_reward``).
REWARD_CLIP = 10.0
#: Added to the return variance before its square root, so that a variance of 0 divides by 1e-4.
_VARIANCE_EPS = 1e-8


class RunningMeanStd:
    """Running mean and variance of vectors of shape ``shape`` (parallel Welford / Chan update).

    ``count`` starts at a tiny epsilon so that the first update dominates, as in SB3.
    """

    def __init__(self, shape: tuple[int, ...], epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray, max_abs: float = np.inf) -> None:
        """Fold in ``batch`` of shape (N, *shape); rows with a non-finite value, or one whose
        magnitude exceeds ``max_abs``, are skipped."""
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, *self.mean.shape)
        flat = batch.reshape(len(batch), -1)
        usable = np.all(np.isfinite(flat), axis=1) & np.all(np.abs(flat) <= max_abs, axis=1)
        batch = batch[usable]
        if len(batch) == 0:
            return
        batch_mean, batch_var, batch_count = batch.mean(axis=0), batch.var(axis=0), len(batch)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, np.ndarray | float]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict[str, np.ndarray | float]) -> None:
        """Take ``state`` (from :meth:`state_dict`); ValueError if it cannot be statistics of this
        shape: a wrong shape, a non-finite value, a negative variance or a count not above 0
        (any of them would poison every later update, or fail far from the file that caused it)."""
        mean = np.asarray(state["mean"], dtype=np.float64)
        var = np.asarray(state["var"], dtype=np.float64)
        count = float(state["count"])  # type: ignore[arg-type]
        if mean.shape != self.mean.shape or var.shape != self.var.shape:
            raise ValueError(f"normaliser state has shapes {mean.shape} (mean) and {var.shape} (var), expected {self.mean.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and math.isfinite(count)):
            raise ValueError("normaliser state is not all finite (NaN or inf)")
        if np.any(var < 0) or count <= 0:
            raise ValueError(f"normaliser state has a negative variance or a count of {count}, not above 0")
        self.mean, self.var, self.count = mean.copy(), var.copy(), count


class RewardScaler:
    """Divide rewards by the running std of each env's discounted return (SB3 VecNormalize style).

    Args:
        num_envs: parallel environments, each with its own running return.
        gamma: discount of the return whose spread is tracked.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = REWARD_CLIP) -> None:
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.stats = RunningMeanStd(())
        self.gamma = gamma
        self.clip = clip

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Scale ``rewards`` (shape (num_envs,)); ``dones`` ends the running return of an env."""
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns)
        scaled = scale_rewards(rewards, self.stats.var, self.clip)
        self.returns[np.asarray(dones, dtype=bool)] = 0.0
        return scaled

    @property
    def scale(self) -> float:
        """Current divisor applied to rewards."""
        return float(np.sqrt(self.stats.var + _VARIANCE_EPS))


def scale_rewards(rewards: np.ndarray, return_var: float | np.ndarray, clip: float = REWARD_CLIP) -> np.ndarray:
    """``rewards`` (any shape) divided by the running std of the discounted return (whose variance
    is ``return_var``), clipped to ±``clip``: RewardScaler's scaling, which the shared learner
    applies too (with the return statistics it keeps per worker stream)."""
    return np.clip(rewards / np.sqrt(return_var + _VARIANCE_EPS), -clip, clip)
