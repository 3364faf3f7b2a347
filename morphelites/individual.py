"""What travels between the evolution loop and the evaluators: an individual and its result."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from morphelites.morphology import Morphology

__all__ = ["Individual", "IndividualResult", "individual_seed"]


@dataclass(frozen=True)
class Individual:
    """One candidate: sequential ``id``, its genome, the decoded body, and the elite it came from.

    ``attempt`` counts the times it was issued before (a worker that died, an evaluation that
    failed, a stop while it was in flight). In shared mode a worker draws its action noise and env
    resets from streams of (id, attempt, the run's session), so that a reissue does not hand the
    learner a copy of an earlier try's segments; independent mode ignores both: a retry there
    repeats its draws, so an individual's result does not depend on faults or resumes.
    """

    id: int
    genome: tuple[float, ...]
    """genome_dim floats in [0, 1] (see BodySpace.decode); :meth:`genome_array` as an array."""
    body: Morphology
    parent_id: int | None = None
    attempt: int = 0

    def genome_array(self) -> np.ndarray:
        """The genome as a new array, shape (genome_dim,) float64."""
        return np.asarray(self.genome, dtype=np.float64)

    def issued_again(self) -> "Individual":
        """The same individual, to be issued once more (``attempt`` + 1)."""
        return replace(self, attempt=self.attempt + 1)

    def to_dict(self) -> dict[str, Any]:
        data = {"id": self.id, "parent_id": self.parent_id, "genome": list(self.genome), "body": self.body.to_dict()}
        return {**data, "attempt": self.attempt} if self.attempt else data  # a first try's record is as before

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Individual":
        attempt = int(data.get("attempt", 0))
        if attempt < 0:
            raise ValueError(f"an individual's attempt must be 0 or more, not {attempt}")
        return cls(int(data["id"]), tuple(float(g) for g in data["genome"]), Morphology.from_dict(data["body"]),
                   data.get("parent_id"), attempt)  # fmt: skip


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
