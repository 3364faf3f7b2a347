"""The morphology-conditioned actor-critic in torch (the trainable twin of NumpyActorCritic).

One set of weights controls arms of every joint count in the body space: observations and
actions are padded to the space's maximum joint count, padded observation features are gated to
zero after normalisation, and log-probabilities and entropy sum over real joints only. The same
class with no mask is a plain MLP actor-critic for any Gymnasium Box task. See
:mod:`morphelites.policy_numpy` for the exact computation and the flat weight layout.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from morphelites.normalization import RunningMeanStd
from morphelites.policy_numpy import PARAMETER_ORDER, NumpyActorCritic, PolicySpec, reach_policy_spec

__all__ = ["ActorCritic", "reach_policy_spec", "PolicySpec"]

_LOG_2PI = math.log(2.0 * math.pi)
#: Observation values beyond this magnitude are left out of the normaliser: their squares would
#: overflow float32 (max ~3.4e38), the type the statistics travel in.
NORMALISER_MAX_ABS = 1e18


def _layer(n_in: int, n_out: int, gain: float) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Gaussian actor and value critic, two tanh hidden layers each (CleanRL initialisation).

    The observation normaliser (:attr:`obs_rms`) belongs to the policy: it is saved with it and
    shipped in the flat weight vector. Inputs are raw observations.
    """

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        o, a, h = spec.obs_dim, spec.action_dim, spec.hidden_dim
        self.actor = nn.Sequential(_layer(o, h, math.sqrt(2)), nn.Tanh(), _layer(h, h, math.sqrt(2)), nn.Tanh(), _layer(h, a, 0.01))
        self.critic = nn.Sequential(_layer(o, h, math.sqrt(2)), nn.Tanh(), _layer(h, h, math.sqrt(2)), nn.Tanh(), _layer(h, 1, 1.0))
        self.log_std = nn.Parameter(torch.full((a,), float(spec.init_log_std)))
        self.obs_rms = RunningMeanStd((o,))
        if spec.mask_indices is not None:
            self.register_buffer("_mask_indices", torch.tensor(spec.mask_indices, dtype=torch.long), persistent=False)
        if spec.gate_joint is not None:
            joint = torch.tensor(spec.gate_joint, dtype=torch.long)
            self.register_buffer("_gate_joint", torch.where(joint < 0, a, joint), persistent=False)
        self._sync_normaliser()

    def _sync_normaliser(self) -> None:
        self._obs_mean = torch.as_tensor(self.obs_rms.mean, dtype=torch.float32)
        self._obs_std = torch.as_tensor(np.sqrt(self.obs_rms.var + 1e-8), dtype=torch.float32)

    def update_normaliser(self, obs: np.ndarray) -> None:
        """Fold a batch of raw observations (N, obs_dim) into the running statistics; rows with
        a value beyond ±1e18 (a simulation that blew up) are left out, as non-finite ones are."""
        self.obs_rms.update(obs, max_abs=NORMALISER_MAX_ABS)
        self._sync_normaliser()

    # ----------------------------------------------------------------- forward passes

    def features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The networks' inputs and the real-joint mask of raw observations (B, obs_dim).

        Returns ``x`` (B, obs_dim): normalised, clipped to ±``input_clip``, zero on padded joints'
        features; and ``mask`` (B, A): 1 on real joints, 0 on padded ones. Row by row, so the rows
        of a batch's features equal the features of those rows, bit for bit: an update computes
        them once for its whole batch. No gradient reaches the normaliser, which is not trained.
        """
        if self.spec.mask_indices is None:
            mask = torch.ones(obs.shape[0], self.spec.action_dim, dtype=obs.dtype)
        else:
            mask = (obs[:, self._mask_indices] > 0.5).to(obs.dtype)
        x = (obs - self._obs_mean) / self._obs_std
        if self.spec.input_clip is not None:
            x = torch.clamp(x, -self.spec.input_clip, self.spec.input_clip)
        if self.spec.gate_joint is not None:
            padded = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype=mask.dtype)], dim=1)
            x = x * padded[:, self._gate_joint]
        return x, mask

    def log_prob_entropy(self, x: torch.Tensor, mask: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-prob (B,), entropy (B,)) of ``actions`` (B, A) given :meth:`features` ``x`` and
        ``mask``; padded joints ignored. The actor alone: no critic forward."""
        mean = self.actor(x)
        log_std = self.log_std.expand_as(mean)
        z = (actions - mean) * torch.exp(-log_std)
        log_prob = (mask * (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI)).sum(-1)
        entropy = (mask * (0.5 + 0.5 * _LOG_2PI + log_std)).sum(-1)
        return log_prob, entropy

    def critic_value(self, x: torch.Tensor) -> torch.Tensor:
        """State values (B,) of :meth:`features` ``x`` (B, obs_dim)."""
        return self.critic(x).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values (B,) of raw observations (B, obs_dim)."""
        return self.critic_value(self.features(obs)[0])

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-prob (B,), entropy (B,), value (B,)) of ``actions`` (B, A); padded joints ignored."""
        x, mask = self.features(obs)
        return *self.log_prob_entropy(x, mask, actions), self.critic_value(x)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic actions (B, A), zero on padded joints."""
        x, mask = self.features(obs)
        return self.actor(x) * mask

    # ----------------------------------------------------------------- weight transport

    def flat_weights(self) -> np.ndarray:
        """All weights + normaliser as one float32 vector (layout in policy_numpy)."""
        named = dict(self.named_parameters())
        parts = [named[name].detach().reshape(-1).numpy() for name in PARAMETER_ORDER]
        parts += [self.obs_rms.mean.astype(np.float32), self.obs_rms.var.astype(np.float32)]
        return np.concatenate(parts).astype(np.float32)

    def load_flat_weights(self, flat: np.ndarray) -> None:
        """Inverse of :meth:`flat_weights` (normaliser count is left as it is)."""
        twin = NumpyActorCritic.from_flat(self.spec, flat)
        named = dict(self.named_parameters())
        with torch.no_grad():
            for name in PARAMETER_ORDER:
                named[name].copy_(torch.from_numpy(twin.params[name]))
        self.obs_rms.mean, self.obs_rms.var = twin.obs_mean.copy(), twin.obs_var.copy()
        self._sync_normaliser()

    def numpy_twin(self) -> NumpyActorCritic:
        """A numpy copy of the current policy for acting without torch."""
        return NumpyActorCritic.from_flat(self.spec, self.flat_weights())

    def policy_state(self) -> dict:
        """Everything needed to rebuild this policy: spec, weights, normaliser (for checkpoints)."""
        # The normaliser's arrays as tensors: torch.load's default (weights_only=True, torch 2.6 on)
        # refuses numpy arrays, and a user loads policy.pt with the default.
        rms = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in self.obs_rms.state_dict().items()}
        return {"spec": self.spec.to_dict(), "state_dict": {k: v.detach().clone() for k, v in self.state_dict().items()},
                "obs_rms": rms}

    @classmethod
    def from_policy_state(cls, state: dict) -> "ActorCritic":
        """Rebuild the policy a :meth:`policy_state` dict describes (e.g. a checkpoint's
        ``policy``): its spec, weights and normaliser. A state that does not fit raises KeyError
        (a part missing), TypeError (an unknown spec field), RuntimeError (tensors missing or of
        other shapes) or ValueError (invalid normaliser statistics)."""
        model = cls(PolicySpec.from_dict(state["spec"]))
        model.load_state_dict(state["state_dict"])
        model.obs_rms.load_state_dict(state["obs_rms"])
        model._sync_normaliser()
        return model
