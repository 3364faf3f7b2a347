"""Where new genomes come from: uniform random first, then pyribs operators on archive elites."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from morphelites.config import EvolutionConfig
from morphelites.evolution.archive import BodyArchive
from morphelites.ribs_without_torch import import_ribs
from morphelites.seeding import Stream, stream_seed

import_ribs()
from ribs.emitters.operators import GaussianOperator, IsoLineOperator  # noqa: E402  (after import_ribs)

__all__ = ["Variation", "Offspring"]


@dataclass(frozen=True)
class Offspring:
    """A genome to evaluate and the id of the elite it was varied from (None: random)."""

    genome: np.ndarray
    """Shape (genome_dim,) float64, in [0, 1] (see BodySpace.decode)."""
    parent_id: int | None


class Variation:
    """Proposes one genome at a time, for steady-state MAP-Elites.

    The first ``num_initial_random`` proposals are uniform in [0, 1]^d; after that a parent is
    drawn uniformly from the archive's elites at the moment of asking and mutated by a pyribs
    operator (Iso+LineDD with a second elite for the line direction, or Gaussian), then clipped
    to the genome cube. Asking per genome (instead of per generation) is what lets a worker start
    its next individual as soon as it is free, with parents from the newest archive.

    Args:
        config: emitter choice and mutation sizes.
        archive: where parents come from.
        genome_dim: genome length.
        seed: the run's seed; the random genomes and the operator draw from streams of their
            own (:class:`~morphelites.seeding.Stream`).
    """

    def __init__(self, config: EvolutionConfig, archive: BodyArchive, genome_dim: int, seed: int) -> None:
        self.config = config
        self.archive = archive
        self.genome_dim = genome_dim
        self.rng = np.random.default_rng(stream_seed(seed, Stream.GENOMES))
        mutation = stream_seed(seed, Stream.MUTATION)
        if config.emitter == "iso_line":
            self.operator = IsoLineOperator(iso_sigma=config.sigma, line_sigma=config.line_sigma, seed=mutation)
        else:
            self.operator = GaussianOperator(sigma=config.sigma, seed=mutation)
        self.proposed = 0

    @property
    def next_is_random(self) -> bool:
        """Whether the next proposal is one of the random start's (it reads no archive)."""
        return self.proposed < self.config.num_initial_random

    def next(self) -> Offspring:
        """The next genome to evaluate, (genome_dim,) float64 in [0, 1]: uniform for the first
        ``num_initial_random`` (and while the archive is empty), with parent_id None; after that
        an elite mutated (with iso_line, along the line to a second elite), with its id."""
        self.proposed += 1
        if self.proposed <= self.config.num_initial_random or len(self.archive) == 0:
            return Offspring(self.rng.uniform(0.0, 1.0, self.genome_dim), None)
        if self.config.emitter == "iso_line":
            genomes, ids = self.archive.sample_parents(2)
            child = self.operator.ask(genomes[:, None, :])[0]
        else:
            genomes, ids = self.archive.sample_parents(1)
            child = self.operator.ask(genomes)[0]
        return Offspring(np.clip(child, 0.0, 1.0), int(ids[0]))

    def state_dict(self) -> dict:
        """RNG states and counters, for checkpoints (the operator is pickled whole)."""
        return {"rng": self.rng.bit_generator.state, "operator": self.operator, "proposed": self.proposed}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.operator = state["operator"]
        self.proposed = int(state["proposed"])
