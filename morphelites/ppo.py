"""PPO maths: batches, GAE, the clipped loss and one update. No processes, no files.

Shapes: a rollout is T steps of N environments; ``(T, N)`` arrays are time-major. ``dones[t, n]``
means the episode of env n ended with step t (so ``obs[t + 1, n]`` starts a new one). For a
time-limit truncation the caller adds ``gamma * V(final obs)`` (the collector's
``Segment.bootstrap``) to ``rewards[t, n]`` before :func:`compute_gae` or :func:`compute_vtrace`,
so that a truncation is not mistaken for a terminal state; the collector does not.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn

from morphelites.config import CLIP_AGAINST, MIN_MINIBATCH, PPOConfig

__all__ = ["Batch", "compute_gae", "compute_vtrace", "ppo_loss", "PPOUpdater", "linear_schedule", "PROXIMAL_WEIGHT_CAP"]

#: Largest weight pi_proximal / pi_behaviour that the decoupled objective gives one transition. It
#: guards against the rare action that the acting policy found unlikely and the proximal one does
#: not; with lags of a few versions nearly all weights are well inside it (``proximal_weight_capped``
#: in the update's diagnostics says how many are not).
PROXIMAL_WEIGHT_CAP = 2.0


class Batch(NamedTuple):
    """Flat training batch; every array has leading dimension B = T * N."""

    obs: np.ndarray  # (B, obs_dim) float32, raw observations
    actions: np.ndarray  # (B, act_dim) float32
    logprobs: np.ndarray  # (B,) float32, behaviour-policy log-probs
    advantages: np.ndarray  # (B,) float32
    returns: np.ndarray  # (B,) float32, the critic's target (GAE: advantage + value; V-trace: v_t)
    values: np.ndarray  # (B,) float32, the values the advantages were computed with; value clipping is around them


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation.

    Args:
        rewards, values, dones: shape (T, N); dones as 0/1 or bool.
        last_values: V(obs after the last step), shape (N,).
    Returns:
        (advantages, returns), each (T, N) float32, returns = advantages + values.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    not_done = 1.0 - np.asarray(dones, dtype=np.float64)
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    next_values = np.asarray(last_values, dtype=np.float64)
    running = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * next_values * not_done[t] - values[t]
        running = delta + gamma * gae_lambda * not_done[t] * running
        advantages[t] = running
        next_values = values[t]
    return advantages.astype(np.float32), (advantages + values).astype(np.float32)


def compute_vtrace(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_values: np.ndarray,
    log_rhos: np.ndarray,
    gamma: float,
    gae_lambda: float,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, IMPALA), for
    experience acted by a behaviour policy mu and learned by the current policy pi.

    Args:
        rewards, values, dones: shape (T, N); ``values`` from the current critic; dones 0/1.
        last_values: V(obs after the last step), shape (N,).
        log_rhos: log pi(a|s) - log mu(a|s) of the actions taken, shape (T, N).
        gamma, gae_lambda: discount, and the lambda that scales the traces c_t.
        rho_bar, c_bar: truncation of the importance weights rho_t and c_t.
    Returns:
        (advantages, targets), each (T, N) float32: advantages rho_t (r_t + gamma v_{t+1} - V(x_t))
        and value targets v_t. On-policy (log_rhos = 0) the targets equal GAE(lambda) returns.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    not_done = 1.0 - np.asarray(dones, dtype=np.float64)
    ratios = np.exp(np.asarray(log_rhos, dtype=np.float64))
    rhos = np.minimum(rho_bar, ratios)
    cs = gae_lambda * np.minimum(c_bar, ratios)
    T = rewards.shape[0]
    next_values = np.concatenate([values[1:], np.asarray(last_values, dtype=np.float64)[None]], axis=0)
    deltas = rhos * (rewards + gamma * not_done * next_values - values)
    corrections = np.zeros_like(rewards)  # v_t - V(x_t)
    running = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in reversed(range(T)):
        running = deltas[t] + gamma * cs[t] * not_done[t] * running
        corrections[t] = running
    targets = values + corrections
    next_targets = np.concatenate([targets[1:], np.asarray(last_values, dtype=np.float64)[None]], axis=0)
    advantages = rhos * (rewards + gamma * not_done * next_targets - values)
    return advantages.astype(np.float32), targets.astype(np.float32)


def linear_schedule(initial: float, progress: float) -> float:
    """Learning rate after ``progress`` in [0, 1] of training: linear decay to 0."""
    return initial * max(0.0, 1.0 - progress)


def ppo_loss(
    new_logprobs: torch.Tensor,
    entropy: torch.Tensor,
    new_values: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor,
    config: PPOConfig,
    start_logprobs: torch.Tensor | None = None,
    clip_against_start: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-surrogate PPO loss on one minibatch, from the model's outputs: ``new_logprobs``,
    ``entropy`` and ``new_values``, each (B,), of the minibatch's actions under the weights being
    trained (``ActorCritic.evaluate_actions(obs, actions)``; the updater computes them from
    features made once per batch).

    Returns the scalar loss and detached diagnostics (policy/value loss, entropy, approx KL, clip
    fraction). ``old_logprobs``, shape (B,), are the behaviour policy's (the one that acted).
    ``start_logprobs``, shape (B,), are the log-probs of ``actions`` under the weights the update
    started from: given, the diagnostics add ``kl_since_update_start``, the KL that ``target_kl``
    limits. Both KL figures are :func:`approx_kl` over the batch's actions, which the behaviour
    policy drew: against the behaviour policy (``approx_kl`` with the default ratio) it is
    unbiased; against the start policy (``kl_since_update_start``, and ``approx_kl`` with
    ``clip_against_start``) it is biased where the two differ, as on the shared learner's lagged
    data.

    By default the ratio is new / behaviour, clipped to 1 ± clip_coef: on lagged data the clip then
    bounds the distance from the acting policy, not the distance this update moves the policy.
    ``clip_against_start`` (needs ``start_logprobs``) is Decoupled PPO (Hilton et al. 2021, "Batch
    size-invariance for policy optimization"): the ratio is new / start (the *proximal* policy),
    and each transition's clipped term is weighted by start / behaviour, capped at
    :data:`PROXIMAL_WEIGHT_CAP`, which corrects for the data being off-policy. Approx KL and clip
    fraction are measured against whichever policy the ratio uses; on data the learner's own
    policy acted (no lag) the two objectives are the same.
    """
    if clip_against_start and start_logprobs is None:
        raise ValueError("clip_against_start needs start_logprobs, the log-probs under the update's starting weights")
    reference = start_logprobs if clip_against_start else old_logprobs
    log_ratio = new_logprobs - reference
    ratio = log_ratio.exp()
    if config.norm_adv and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    per_transition = torch.max(
        -advantages * ratio, -advantages * torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef)
    )
    weights = None
    if clip_against_start:
        weights = (start_logprobs - old_logprobs).exp().clamp(max=PROXIMAL_WEIGHT_CAP).detach()
        per_transition = weights * per_transition
    policy_loss = per_transition.mean()
    if config.clip_vloss:
        clipped = old_values + torch.clamp(new_values - old_values, -config.clip_coef, config.clip_coef)
        value_loss = 0.5 * torch.max((new_values - returns).pow(2), (clipped - returns).pow(2)).mean()
    else:
        value_loss = 0.5 * (new_values - returns).pow(2).mean()
    entropy_mean = entropy.mean()
    loss = policy_loss - config.ent_coef * entropy_mean + config.vf_coef * value_loss
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": approx_kl(log_ratio),
            "clip_fraction": ((ratio - 1.0).abs() > config.clip_coef).float().mean(),
        }
        if start_logprobs is not None:
            stats["kl_since_update_start"] = approx_kl(new_logprobs - start_logprobs)
        if weights is not None:
            stats["proximal_weight"] = weights.mean()
            stats["proximal_weight_capped"] = (weights >= PROXIMAL_WEIGHT_CAP).float().mean()
    return loss, stats


def approx_kl(log_ratio: torch.Tensor) -> torch.Tensor:
    """Mean of (r - 1) - log r for r = exp(log_ratio) = p_new / p_ref, shape (B,) -> scalar (nats).

    Non-negative per sample; an unbiased estimate of KL(ref || new) only when the actions were
    drawn from the reference policy. On actions another policy drew (the shared learner's lagged
    behaviour data, measured against the update's start) it is biased."""
    return (log_ratio.exp() - 1 - log_ratio).mean()


class PPOUpdater:
    """Owns the optimiser and runs PPO epochs over a :class:`Batch`.

    Args:
        model: the ActorCritic to train.
        config: PPO hyper-parameters; ``update_epochs`` None means single-policy training's
            default (evolution runs fill in theirs before they get here).
        seed: seeds minibatch shuffling.
        clip_against: ``behaviour`` (standard PPO: the ratio against the policy that acted) or
            ``proximal`` (Decoupled PPO: against the policy this update starts from, see
            :func:`ppo_loss`); one of :data:`CLIP_AGAINST`.
        on_minibatch: called before every minibatch step, e.g. a watched process's heartbeat
            (an update can take longer than the time a silent process is given).
    """

    def __init__(self, model: nn.Module, config: PPOConfig, seed: int = 0, clip_against: str = "behaviour",
                 on_minibatch: Callable[[], None] | None = None) -> None:  # fmt: skip
        if clip_against not in CLIP_AGAINST:
            raise ValueError(f"clip_against is {clip_against!r}; use one of {', '.join(CLIP_AGAINST)}")
        self.model = model
        self.on_minibatch = on_minibatch
        self.clip_against = clip_against
        self.config = config.with_default_epochs(evolution=False)
        self._optimizer: torch.optim.Adam | None = None
        self.rng = np.random.default_rng(seed)
        self.skipped_steps = 0  # minibatch steps skipped for a non-finite loss or gradient

    @property
    def optimizer(self) -> torch.optim.Adam:
        """Adam over the model's parameters, made on first use.

        Why not in ``__init__``: a process's first torch optimiser imports ``torch._dynamo``
        (about 1.6 s on 2 cores). The shared learner publishes its first weights before that, so
        its workers start acting instead of waiting for the import.
        """
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.learning_rate, eps=1e-5,
                                               foreach=True)  # fmt: skip
        return self._optimizer

    def load_optimizer_state(self, state: dict) -> None:
        """Load an optimiser state (a checkpoint's ``optimizer.state_dict()``), keeping ``foreach``.

        Why foreach: on the CPU torch's default Adam steps each parameter tensor in a Python loop;
        foreach runs the same arithmetic, in the same order, in one call per operation, so the
        weights are bit for bit the same and a step costs less. ``load_state_dict`` puts back the
        implementation the state was saved with, so it is set again here.
        """
        self.optimizer.load_state_dict(state)
        for group in self.optimizer.param_groups:
            group["foreach"] = True

    def set_progress(self, progress: float) -> float:
        """Anneal the learning rate for ``progress`` in [0, 1] of the run; returns the new rate."""
        lr = linear_schedule(self.config.learning_rate, progress) if self.config.anneal_lr else self.config.learning_rate
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def update(self, batch: Batch) -> dict[str, float]:
        """Run ``update_epochs`` epochs of minibatch PPO; returns diagnostics.

        A minibatch whose loss or gradient is not finite is skipped (counted in
        ``skipped_steps``), so the weights never become NaN. With ``target_kl`` the epochs end after
        the first minibatch step whose ``kl_since_update_start`` (measured before the step)
        exceeds it; that estimate is biased on lagged data (:func:`approx_kl`).

        Returns means over the minibatch steps taken (absent if none was): ``policy_loss``,
        ``value_loss`` (in squared units of ``batch.returns``), ``entropy`` and ``approx_kl``
        (nats), ``clip_fraction`` (share of transitions whose ratio left 1 ± clip_coef), and with
        ``clip_against="proximal"`` ``proximal_weight`` and ``proximal_weight_capped`` (share at
        the cap). Always: ``grad_norm`` (mean global L2 norm before clipping), ``gradient_steps``,
        ``skipped_steps`` (this updater's total so far, not this update's),
        ``explained_variance`` (of ``batch.returns`` by ``batch.values``; NaN if returns are
        constant) and ``learning_rate``.
        """
        cfg = self.config
        tensors = [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in batch]
        obs, actions, logprobs, advantages, returns, values = tensors
        # The networks' inputs once for the whole batch, not once per minibatch and epoch: the
        # normaliser does not change during an update, and features are computed row by row.
        inputs, mask = self.model.features(obs)
        size = obs.shape[0]
        # A batch below num_minibatches * MIN_MINIBATCH (a very small training budget) is cut into
        # fewer minibatches, not into ones of a single transition, whose advantage cannot be normalised.
        minibatch = max(min(MIN_MINIBATCH, size), size // cfg.num_minibatches)
        totals: dict[str, float] = {}
        steps = 0
        grad_norm_sum = 0.0
        stop = False
        start_logprobs = None
        proximal = self.clip_against == "proximal"
        if cfg.target_kl is not None or proximal:
            # The early stop limits how far this update moves the policy. Measured against the
            # behaviour log-probs instead, shared-mode data that lags the learner by a few versions
            # could exceed target_kl before the first step, and every update would stop after one.
            # The decoupled objective clips around these same starting log-probs.
            with torch.no_grad():
                start_logprobs, _ = self.model.log_prob_entropy(inputs, mask, actions)
        for _ in range(cfg.update_epochs):
            order = torch.from_numpy(self.rng.permutation(size))
            for start in range(0, size - minibatch + 1, minibatch):
                if self.on_minibatch is not None:
                    self.on_minibatch()
                idx = order[start : start + minibatch]
                new_logprobs, entropy = self.model.log_prob_entropy(inputs[idx], mask[idx], actions[idx])
                loss, stats = ppo_loss(
                    new_logprobs, entropy, self.model.critic_value(inputs[idx]), logprobs[idx], advantages[idx],
                    returns[idx], values[idx], cfg, None if start_logprobs is None else start_logprobs[idx],
                    clip_against_start=proximal,
                )
                kl_since_start = stats.pop("kl_since_update_start", None)
                if not torch.isfinite(loss):
                    self.skipped_steps += 1
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    self.skipped_steps += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    continue
                self.optimizer.step()
                steps += 1
                grad_norm_sum += float(grad_norm)
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + float(value)
                if cfg.target_kl is not None and kl_since_start is not None and float(kl_since_start) > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        result = {key: value / max(steps, 1) for key, value in totals.items()}
        result["grad_norm"] = grad_norm_sum / max(steps, 1)
        result["gradient_steps"] = float(steps)
        result["skipped_steps"] = float(self.skipped_steps)
        result["explained_variance"] = explained_variance(batch.values, batch.returns)
        result["learning_rate"] = float(self.optimizer.param_groups[0]["lr"])
        return result


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var(target - predicted) / Var(target); NaN when the target is constant."""
    var = float(np.var(target))
    return math.nan if var == 0 else 1.0 - float(np.var(np.asarray(target) - np.asarray(predicted))) / var
