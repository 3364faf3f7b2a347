"""Random streams: each purpose draws bits no other purpose (or seed) draws.

Found in review: seeding every consumer with its owner's seed (or seed + 1) made the parents
drawn a function of the random start's genes, the action noise a function of the first training
environment's resets, and run seed s's mutations the same bits as seed s + 1's random start, so
benchmark seeds were not independent replicates."""

import os
import subprocess
import sys

import numpy as np

from morphelites.individual import individual_seed
from morphelites.seeding import Stream, stream_seed


def test_every_purpose_and_seed_gets_its_own_stream():
    seeds = {(seed, stream): stream_seed(seed, stream) for seed in range(20) for stream in Stream}
    assert len(set(seeds.values())) == len(seeds), "no two (seed, purpose) pairs share a stream"
    owners = set(range(40)) | {individual_seed(seed, k) for seed in range(20) for k in range(20)}
    assert not owners & set(seeds.values()), "nor does any stream use an owner's seed itself"
    assert stream_seed(3, Stream.RESUMED_VARIATION, 5) != stream_seed(3, Stream.RESUMED_VARIATION, 6)
    # a seed repeats its streams in another process, whatever its hash seed
    script = "from morphelites.seeding import Stream, stream_seed; print(stream_seed(3, Stream.GENOMES))"
    other = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": "12345"},
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert int(other.stdout) == stream_seed(3, Stream.GENOMES)


def test_a_runs_random_start_parents_and_mutations_draw_different_bits(tmp_path):
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    def trainer(seed: int) -> MAPElitesEvolutionTrainer:
        return MAPElitesEvolutionTrainer(output_dir=str(tmp_path / f"run{seed}"), seed=seed, quiet=True)

    first, second = trainer(0), trainer(1)
    genomes = first.variation.rng.bit_generator.state["state"]
    assert first.archive.sampling_state()["state"] != genomes
    assert first.variation.operator._rng.bit_generator.state["state"] != genomes
    assert first.variation.operator._rng.bit_generator.state["state"] != second.variation.rng.bit_generator.state["state"]


def test_the_action_noise_does_not_replay_the_first_environments_resets():
    """The worker's and serial PPO's action noise and env i's resets (its stream's seed + i)."""
    import gymnasium

    seed = individual_seed(0, 7)
    noise = np.random.default_rng(stream_seed(seed, Stream.ACTION_NOISE))
    first_env, _ = gymnasium.utils.seeding.np_random(stream_seed(seed, Stream.ENV_RESETS))
    assert not np.array_equal(noise.random(8), first_env.random(8))
