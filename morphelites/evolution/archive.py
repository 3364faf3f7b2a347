"""The elite archive: a pyribs GridArchive over body measures, with what rebuilds each elite.

Extra fields keep, per elite, the individual's id and parent id, its body (joint count and
padded link lengths) and its evaluation figures, so ``archive.csv`` alone says which body each
cell holds and how well it did.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from morphelites.evolution.measures import MeasureSpec
from morphelites.morphology import BodySpace
from morphelites.ribs_without_torch import import_ribs

import_ribs()
from ribs.archives import GridArchive  # noqa: E402  (after import_ribs: no torch in this process)

__all__ = ["BodyArchive", "STATUS_NAMES", "EVAL_FIELDS"]

#: pyribs add() status codes -> names used in results.jsonl.
STATUS_NAMES = {0: "not added", 1: "improved", 2: "new"}
#: Evaluation figures stored with each elite. ``fitness_ceiling`` is the most fitness any policy
#: could get on the elite's body and the evaluation goals (``rollout.score_ceilings``); NaN for
#: results recorded before evaluations carried it.
EVAL_FIELDS = ("success_rate", "mean_return", "final_distance", "path_efficiency", "collisions", "fitness_ceiling")


class BodyArchive:
    """A GridArchive of genomes (objective = fitness in [0, 1]) over ``specs``.

    Args:
        space: the body space (genome length, padding of link lengths).
        specs: the measure axes.
        seed: seeds the archive's own sampling (``sample_elites``).
    """

    def __init__(self, space: BodySpace, specs: list[MeasureSpec], seed: int = 0) -> None:
        self.space = space
        self.specs = specs
        self.archive = GridArchive(
            solution_dim=space.genome_dim,
            dims=[s.bins for s in specs],
            ranges=[(s.low, s.high) for s in specs],
            seed=seed,
            extra_fields={
                "individual_id": ((), np.int64),
                "parent_id": ((), np.int64),
                "policy_version": ((), np.int64),
                "num_links": ((), np.int64),
                "link_lengths": ((space.max_links,), np.float64),
                **{name: ((), np.float64) for name in EVAL_FIELDS},
            },
        )

    def add(
        self,
        individual_id: int,
        parent_id: int | None,
        genome: np.ndarray,
        fitness: float,
        measures: np.ndarray,
        evaluation: dict[str, Any],
    ) -> str:
        """Insert one evaluated individual; returns ``"new"``, ``"improved"`` or ``"not added"``.

        A cell keeps the better of its elite and the newcomer (ties keep the elite).

        Args:
            individual_id, parent_id: its id, and its parent's (None: a random genome; stored as -1).
            genome: (genome_dim,) in [0, 1], stored as the elite's solution; its body is decoded
                from it.
            fitness: the objective, in [0, 1].
            measures: (len(specs),), in the order and units of ``specs`` (e.g. ``total_length`` in
                metres).
            evaluation: the EvalResult as a dict; its ``policy_version`` (-1 if absent) and
                :data:`EVAL_FIELDS` (NaN if absent) are stored.
        """
        body = self.space.decode(genome)
        lengths = np.zeros(self.space.max_links)
        lengths[: body.num_links] = body.link_lengths
        # add_single, not a batch of one through add(): the same rule, without the numba kernel
        # that add() compiles on its first call (~0.25 s and ~44 MB of PSS in every process).
        info = self.archive.add_single(
            np.asarray(genome, dtype=np.float64),
            float(fitness),
            np.asarray(measures, dtype=np.float64),
            individual_id=individual_id,
            parent_id=-1 if parent_id is None else parent_id,
            policy_version=int(evaluation.get("policy_version", -1)),
            num_links=body.num_links,
            link_lengths=lengths,
            **{name: _float_or_nan(evaluation.get(name)) for name in EVAL_FIELDS},
        )
        return STATUS_NAMES[int(info["status"])]

    def status_if_added(self, fitness: float, measures: np.ndarray) -> str:
        """What ``add`` would return for an individual of this fitness and measures (shape
        (number of measures,)), without adding it: ``"new"`` for an empty cell, ``"improved"`` if
        it beats the cell's elite, else ``"not added"`` (the archive's default thresholds: a cell
        keeps the better of the two, ties keep the elite)."""
        occupied, elite = self.archive.retrieve_single(np.asarray(measures, dtype=np.float64))
        if not occupied:
            return "new"
        return "improved" if fitness > float(elite["objective"]) else "not added"

    def __len__(self) -> int:
        return len(self.archive)

    @property
    def num_cells(self) -> int:
        return int(self.archive.cells)

    def stats(self) -> dict[str, float | int]:
        """qd_score (sum of elite fitness), coverage (fraction of cells filled), best and mean
        fitness, and the number of elites (a whole number)."""
        stats = self.archive.stats
        empty = len(self.archive) == 0
        return {
            "qd_score": float(stats.qd_score) if not empty else 0.0,
            "coverage": float(stats.coverage),
            "best_fitness": float(stats.obj_max) if not empty else float("nan"),
            "mean_elite_fitness": float(stats.obj_mean) if not empty else float("nan"),
            "elites": len(self.archive),
        }

    def mean_elite_fitness_ceiling(self) -> float:
        """Mean of the elites' fitness ceilings: the most ``mean_elite_fitness`` any policy could
        reach on these bodies. NaN if the archive is empty or an elite's ceiling is unknown."""
        if len(self.archive) == 0:
            return float("nan")
        return float(np.mean(self.archive.data("fitness_ceiling")))

    def elites(self) -> list[dict[str, Any]]:
        """One dict per elite (plain Python values): ids, body, measures, fitness, evaluation."""
        data = self.archive.data()
        rows = []
        for i in range(len(data["index"])):
            n = int(data["num_links"][i])
            row = {
                "cell": int(data["index"][i]),
                "individual_id": int(data["individual_id"][i]),
                "parent_id": int(data["parent_id"][i]),
                "fitness": float(data["objective"][i]),
                "measures": {s.name: float(v) for s, v in zip(self.specs, data["measures"][i])},
                "num_links": n,
                "link_lengths": [float(x) for x in data["link_lengths"][i][:n]],
                "policy_version": int(data["policy_version"][i]),
                "genome": [float(x) for x in data["solution"][i]],
            }
            row.update({name: float(data[name][i]) for name in EVAL_FIELDS})
            rows.append(row)
        rows.sort(key=lambda r: r["cell"])
        return rows

    def sample_parents(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` elites drawn uniformly with replacement: (genomes (n, d), individual ids (n,))."""
        sampled = self.archive.sample_elites(n)
        return np.asarray(sampled["solution"]), np.asarray(sampled["individual_id"])

    # pyribs keeps the generator sample_elites draws from in GridArchive._rng, with no public way to
    # save it; a checkpoint needs it, or a resumed run draws other parents than the run it continues.
    def sampling_state(self) -> dict[str, Any]:
        """The state of the generator ``sample_parents`` draws from (for checkpoints)."""
        return self.archive._rng.bit_generator.state

    def load_sampling_state(self, state: dict[str, Any]) -> None:
        self.archive._rng.bit_generator.state = state

    def reseed_sampling(self, seed: int) -> None:
        """Draw parents from a new stream (a resume whose checkpoint is behind results.jsonl)."""
        self.archive._rng = np.random.default_rng(seed)


def _float_or_nan(value: Any) -> float:
    """``value`` as a float; None (a figure not recorded) as NaN."""
    return float("nan") if value is None else float(value)
