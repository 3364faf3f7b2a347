"""What travels between the evolution loop and the evaluators: an individual and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from morphelites.morphology import Morphology

__all__ = ["Individual", "IndividualResult", "individual_seed"]


@dataclass(frozen=True)
class Individual:
    """One candidate: sequential ``id``, its genome, the decoded body, and the elite it came from."""

    id: int
    genome: tuple[float, ...]
    body: Morphology
    parent_id: int | None = None

    def genome_array(self) -> np.ndarray:
        return np.asarray(self.genome, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "parent_id": self.parent_id, "genome": list(self.genome), "body": self.body.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Individual":
        return cls(int(data["id"]), tuple(float(g) for g in data["genome"]), Morphology.from_dict(data["body"]), data.get("parent_id"))


@dataclass
class IndividualResult:
    """An evaluated individual: the EvalResult as a dict plus the effort it took.

    ``training_env_steps`` and ``eval_env_steps`` are env steps simulated for this individual;
    wall times are seconds; ``worker`` is the index of the worker that did it.
    """

    individual_id: int
    evaluation: dict[str, Any]
    training_env_steps: int
    eval_env_steps: int
    training_wall_s: float
    eval_wall_s: float
    worker: int = -1
    extra: dict[str, Any] = field(default_factory=dict)


def individual_seed(run_seed: int, individual_id: int) -> int:
    """A seed for everything random about one individual, derived from the run seed and its id."""
    return int(np.random.SeedSequence([run_seed, individual_id]).generate_state(1)[0])
