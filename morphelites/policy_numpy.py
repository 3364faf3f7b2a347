"""The actor-critic's architecture spec and its numpy inference twin (no torch import).

The torch :class:`morphelites.policy.ActorCritic` trains; :class:`NumpyActorCritic` acts. Both
compute, for a batch of raw observations ``obs`` of shape (B, obs_dim):

    mask  = obs[:, mask_indices] > 0.5                  (B, act_dim); all ones without a mask
    x     = clip((obs - mean) / sqrt(var + 1e-8), ±10)  observation normalisation (no clip
                                                        with the normaliser off: input_clip None)
    x     = x * gate                                    zero every feature of a padded joint
    h     = tanh(W2 tanh(W1 x + b1) + b2)               separately for actor and critic
    mu    = W3a h + b3a   (B, act_dim);  value = W3c h + b3c   (B,)
    a     ~ Normal(mu, exp(log_std)), log p(a) = sum over real joints only

so the outputs ignore whatever sits in padded observation slots and padded action entries.
Weights travel between them as one flat float32 vector (:meth:`PolicySpec.flat_size`): the
parameters in :data:`PARAMETER_ORDER`, then the normaliser mean and var.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from morphelites.envs.reach import FEATURES_PER_JOINT, GLOBAL_FEATURES, ObservationLayout

__all__ = ["PolicySpec", "NumpyActorCritic", "PARAMETER_ORDER", "reach_policy_spec", "INPUT_CLIP", "input_clip"]

#: Names of the network tensors in the flat weight vector, in order.
PARAMETER_ORDER = (
    "actor.0.weight", "actor.0.bias", "actor.2.weight", "actor.2.bias", "actor.4.weight",
    "actor.4.bias", "log_std",
    "critic.0.weight", "critic.0.bias", "critic.2.weight", "critic.2.bias", "critic.4.weight",
    "critic.4.bias",
)  # fmt: skip

_LOG_2PI = math.log(2.0 * math.pi)
#: Standardised observations are clipped to ±this before the network (as SB3's VecNormalize and
#: CleanRL's wrappers do): it bounds what a rare outlier or a blown-up simulation feeds in.
INPUT_CLIP = 10.0


def input_clip(normalize_obs: bool) -> float | None:
    """The :attr:`PolicySpec.input_clip` of a policy whose observation normaliser is on or off:
    raw observations (normaliser off) are not clipped, like SB3's ``norm_obs=False``."""
    return INPUT_CLIP if normalize_obs else None


@dataclass(frozen=True)
class PolicySpec:
    """Sizes and masking of the actor-critic.

    Attributes:
        obs_dim: observation length.
        action_dim: action length.
        hidden_dim: width of both hidden layers.
        mask_indices: for each action entry, the observation index holding its joint mask
            (None: every action entry is real, e.g. a Gymnasium task).
        gate_joint: for each observation index, the joint whose mask gates it (-1: never gated).
        init_log_std: initial log std of the Gaussian.
        input_clip: standardised inputs are clipped to ±this (None: not clipped; a policy whose
            normaliser is off, see :func:`input_clip`).
    """

    obs_dim: int
    action_dim: int
    hidden_dim: int = 256
    mask_indices: tuple[int, ...] | None = None
    gate_joint: tuple[int, ...] | None = None
    init_log_std: float = -0.5
    input_clip: float | None = INPUT_CLIP

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each network tensor (torch Linear convention: weight is (out, in))."""
        o, a, h = self.obs_dim, self.action_dim, self.hidden_dim
        shapes: dict[str, tuple[int, ...]] = {}
        for head, out in (("actor", a), ("critic", 1)):
            shapes[f"{head}.0.weight"], shapes[f"{head}.0.bias"] = (h, o), (h,)
            shapes[f"{head}.2.weight"], shapes[f"{head}.2.bias"] = (h, h), (h,)
            shapes[f"{head}.4.weight"], shapes[f"{head}.4.bias"] = (out, h), (out,)
        shapes["log_std"] = (a,)
        return {name: shapes[name] for name in PARAMETER_ORDER}

    @property
    def flat_size(self) -> int:
        """Length of the flat weight vector: parameters + normaliser mean + normaliser var."""
        return sum(int(np.prod(s)) for s in self.parameter_shapes().values()) + 2 * self.obs_dim

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data; ``input_clip`` only where it is not the default, so that the
        specs stored by versions before it existed (which all clipped) still match."""
        data = asdict(self)
        if data["input_clip"] == INPUT_CLIP:
            del data["input_clip"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PolicySpec":
        data = dict(data)
        for key in ("mask_indices", "gate_joint"):
            if data.get(key) is not None:
                data[key] = tuple(int(x) for x in data[key])
        return cls(**data)

    def joint_mask(self, obs: np.ndarray) -> np.ndarray:
        """Float mask (B, action_dim) of real joints read from raw observations (B, obs_dim)."""
        if self.mask_indices is None:
            return np.ones((obs.shape[0], self.action_dim), dtype=obs.dtype)
        return (obs[:, list(self.mask_indices)] > 0.5).astype(obs.dtype)

    def gate(self, mask: np.ndarray) -> np.ndarray | None:
        """Per-feature gate (B, obs_dim) from a joint mask, or None when nothing is gated."""
        if self.gate_joint is None:
            return None
        joint = np.asarray(self.gate_joint)
        padded = np.concatenate([mask, np.ones((mask.shape[0], 1), dtype=mask.dtype)], axis=1)
        return padded[:, np.where(joint < 0, mask.shape[1], joint)]


class NumpyActorCritic:
    """Inference-only actor-critic in numpy, in float32 like the torch model: means and values
    agree with it to a few 1e-6, log-probs (sums over action dims, with small ``log_std``) to a few
    1e-4, which moves a PPO ratio by well under 0.1%.

    Build it from a flat weight vector with :meth:`from_flat` (or :meth:`load_flat` in place, e.g.
    when a worker sees a new policy version).
    """

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self.params: dict[str, np.ndarray] = {
            name: np.zeros(shape, dtype=np.float32) for name, shape in spec.parameter_shapes().items()
        }
        self.obs_mean = np.zeros(spec.obs_dim, dtype=np.float64)
        self.obs_var = np.ones(spec.obs_dim, dtype=np.float64)

    @classmethod
    def from_flat(cls, spec: PolicySpec, flat: np.ndarray) -> "NumpyActorCritic":
        """A policy of ``spec`` with the weights of ``flat``: shape (spec.flat_size,) float32, laid
        out as the module docstring says (ActorCritic.flat_weights, SharedWeights.read). ValueError
        on another shape."""
        policy = cls(spec)
        policy.load_flat(flat)
        return policy

    def load_flat(self, flat: np.ndarray) -> None:
        """Copy weights from a flat float32 vector of length ``spec.flat_size``."""
        flat = np.asarray(flat, dtype=np.float32)
        if flat.shape != (self.spec.flat_size,):
            raise ValueError(f"flat weights have shape {flat.shape}, expected ({self.spec.flat_size},)")
        offset = 0
        for name, shape in self.spec.parameter_shapes().items():
            size = int(np.prod(shape))
            self.params[name] = flat[offset : offset + size].reshape(shape).copy()
            offset += size
        d = self.spec.obs_dim
        self.obs_mean = flat[offset : offset + d].astype(np.float64)
        self.obs_var = flat[offset + d : offset + 2 * d].astype(np.float64)

    def _normalised(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[None]
        mask = self.spec.joint_mask(obs)
        x = (obs - self.obs_mean) / np.sqrt(self.obs_var + 1e-8)
        if self.spec.input_clip is not None:
            x = np.clip(x, -self.spec.input_clip, self.spec.input_clip)
        gate = self.spec.gate(mask)
        if gate is not None:
            x = x * gate
        return x.astype(np.float32), mask

    def _mlp(self, head: str, x: np.ndarray) -> np.ndarray:
        p = self.params
        h = np.tanh(x @ p[f"{head}.0.weight"].T + p[f"{head}.0.bias"])
        h = np.tanh(h @ p[f"{head}.2.weight"].T + p[f"{head}.2.bias"])
        return h @ p[f"{head}.4.weight"].T + p[f"{head}.4.bias"]

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw observations (B, obs_dim) -> (mean action (B, A), value (B,), joint mask (B, A))."""
        x, mask = self._normalised(obs)
        return self._mlp("actor", x), self._mlp("critic", x)[:, 0], mask

    def act(self, obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        """Actions (B, A) for observations (B, obs_dim); padded joints get 0. Sampling
        (``deterministic=False``) needs ``rng``: every random draw of a run comes from a seeded
        stream of its own (``morphelites.seeding``)."""
        if not deterministic and rng is None:
            raise ValueError("act(deterministic=False) samples actions: pass rng, a seeded numpy Generator")
        mean, _, mask = self.forward(obs)
        if deterministic:
            return mean * mask
        std = np.exp(self.params["log_std"])
        return (mean + std * rng.standard_normal(mean.shape).astype(np.float32)) * mask

    def step(self, obs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample for training: (actions (B, A), log-probs (B,), values (B,)), all float32."""
        mean, value, mask = self.forward(obs)
        log_std = self.params["log_std"]
        noise = rng.standard_normal(mean.shape).astype(np.float32)
        actions = (mean + np.exp(log_std) * noise) * mask
        log_prob = (mask * (-0.5 * noise**2 - log_std - 0.5 * _LOG_2PI)).sum(axis=1)
        return actions.astype(np.float32), log_prob.astype(np.float32), value.astype(np.float32)

    def log_prob(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Log-density (B,) of ``actions`` (B, A); entries of padded joints are ignored."""
        mean, _, mask = self.forward(obs)
        log_std = self.params["log_std"]
        z = (np.asarray(actions, dtype=np.float32) - mean) / np.exp(log_std)
        return (mask * (-0.5 * z**2 - log_std - 0.5 * _LOG_2PI)).sum(axis=1)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """State values (B,)."""
        return self.forward(obs)[1]


def reach_policy_spec(max_joints: int, hidden_dim: int = 256, init_log_std: float = -0.5,
                      normalize_obs: bool = True) -> PolicySpec:
    """The spec for ReachEnv observations of a body space with ``max_joints`` joints, for a policy
    whose observation normaliser is on or off (``normalize_obs``, as ``ppo.normalize_obs``)."""
    layout = ObservationLayout(max_joints)
    gate = [j for j in range(max_joints) for _ in range(FEATURES_PER_JOINT)] + [-1] * GLOBAL_FEATURES
    return PolicySpec(
        obs_dim=layout.observation_dim,
        action_dim=layout.action_dim,
        hidden_dim=hidden_dim,
        mask_indices=tuple(int(i) for i in layout.mask_indices),
        gate_joint=tuple(gate),
        init_log_std=init_log_std,
        input_clip=input_clip(normalize_obs),
    )
