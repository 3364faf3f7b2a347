"""Independent mode's job: train a fresh PPO policy on one body, then evaluate it.

Runs in a worker process (or in the main process with ``enable_multiprocess=False``). The
baseline the shared mode has to beat: every body starts from scratch.
"""

from __future__ import annotations

import time

import torch

from morphelites.config import Settings
from morphelites.envs.reach import ReachEnv
from morphelites.individual import Individual, IndividualResult, individual_seed
from morphelites.policy import ActorCritic, reach_policy_spec
from morphelites.rollout import evaluate
from morphelites.train_ppo import train_policy

__all__ = ["train_and_evaluate"]


def train_and_evaluate(individual: Individual, settings: Settings) -> IndividualResult:
    """Train a fresh policy on ``individual.body`` for ``training_steps_per_individual`` env steps
    with PPO, then evaluate it on the fixed evaluation goals."""
    evo = settings.evolution
    seed = individual_seed(evo.seed, individual.id)
    # Before the model: its orthogonal init (a QR) gives other bits with another thread count, and
    # train_policy sets the count only after, so a process's first individual started from other weights.
    torch.set_num_threads(settings.ppo.torch_threads)
    torch.manual_seed(seed)
    spec = reach_policy_spec(settings.body_space.max_links, settings.model.hidden_dim, settings.model.init_log_std,
                             settings.ppo.normalize_obs)  # fmt: skip
    model = ActorCritic(spec)
    envs = [
        ReachEnv(individual.body, body_space=settings.body_space, env_config=settings.env)
        for _ in range(settings.ppo.num_envs)
    ]
    trained = train_policy(model, envs, settings.ppo, evo.training_steps_per_individual, seed=seed % (2**31))
    start = time.perf_counter()
    result = evaluate(
        model.numpy_twin(), individual.body, evo.eval_episodes, evo.eval_seed,
        body_space=settings.body_space, env_config=settings.env,
    )  # fmt: skip
    return IndividualResult(
        individual_id=individual.id,
        evaluation=result.to_dict(),
        training_env_steps=trained.env_steps,
        eval_env_steps=result.env_steps,
        training_wall_s=trained.wall_s,
        eval_wall_s=time.perf_counter() - start,
    )
