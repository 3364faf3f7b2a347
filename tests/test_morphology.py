"""Bodies: the genome codec, validation messages, JSON, and MJCF compilation."""

import json

import mujoco
import numpy as np
import pytest

from morphelites.config import BodySpaceConfig
from morphelites.morphology import BodySpace, Morphology, arm_mjcf, compile_arm


def test_every_random_genome_decodes_to_a_valid_body_and_round_trips():
    space = BodySpace()
    rng = np.random.default_rng(0)
    seen_counts = set()
    for genome in space.random_genomes(rng, 500):
        body = space.decode(genome)
        space.check(body)
        seen_counts.add(body.num_links)
        assert space.decode(space.encode(body)) == body
    assert seen_counts == {3, 4, 5, 6}


def test_decode_clips_out_of_cube_genomes_and_hits_the_bounds():
    space = BodySpace()
    low = space.decode(np.full(space.genome_dim, -5.0))
    high = space.decode(np.full(space.genome_dim, 7.0))
    assert low == Morphology(3, [0.1] * 3)
    assert high == Morphology(6, [0.25] * 6)


@pytest.mark.parametrize("bad", [np.full(7, np.nan), np.zeros(6), np.zeros((2, 7))])
def test_decode_rejects_nan_and_wrong_shapes(bad):
    with pytest.raises(ValueError, match="genome"):
        BodySpace().decode(bad)


def test_json_round_trip_equality_and_hashing():
    body = Morphology(4, [0.1, 0.2, 0.15, 0.25])
    again = Morphology.from_json(body.to_json())
    assert again == body and hash(again) == hash(body)
    assert {body, again} == {body}
    assert json.loads(body.to_json())["total_length"] == pytest.approx(0.7)
    assert body.total_length == pytest.approx(0.7)
    assert Morphology(4, [0.1, 0.2, 0.15, 0.2500000001]) == body  # micrometre rounding


@pytest.mark.parametrize(
    "make, field, words",
    [
        (lambda: Morphology(0, []), "num_links", "at least 1"),
        (lambda: Morphology(2, [0.1]), "link_lengths", "one length per link"),
        (lambda: Morphology(2, [0.1, float("nan")]), "link_lengths[1]", "finite"),
        (lambda: Morphology(1, [-0.1]), "link_lengths[0]", "> 0"),
        (lambda: Morphology(1, [4e-7]), "link_lengths[0] is 4e-07 (0.0 m to the 6 decimals", "> 0"),
        (lambda: Morphology(3, "123"), "link_lengths", "a list of numbers"),
        (lambda: Morphology(3, [0.2, True, 0.2]), "link_lengths", "a list of numbers"),
        (lambda: Morphology(3, [0.2, "0.2", 0.2]), "link_lengths", "a list of numbers"),
        (lambda: Morphology(3, [10**400, 0.2, 0.2]), "link_lengths", "a list of numbers"),  # OverflowError before
        (lambda: BodySpace().check(Morphology(9, [0.2] * 9)), "num_links", "[3, 6]"),
        (lambda: BodySpace().check(Morphology(2, [0.2] * 2)), "num_links", "[3, 6]"),
        (lambda: BodySpace().check(Morphology(3, [0.2, 0.5, 0.2])), "link_lengths[1]", "[0.1, 0.25]"),
        (lambda: BodySpace().check(Morphology(3, [0.2, 0.05, 0.2])), "link_lengths[1]", "[0.1, 0.25]"),
    ],
)
def test_bad_bodies_raise_value_errors_naming_field_value_and_range(make, field, words):
    with pytest.raises(ValueError) as info:
        make()
    assert field in str(info.value) and words in str(info.value)


def test_every_joint_count_up_to_eight_compiles_and_moves():
    space = BodySpace(BodySpaceConfig(min_links=1, max_links=8))
    for n in range(1, 9):
        body = Morphology(n, [0.1 + 0.02 * i for i in range(n)])
        space.check(body)
        model = compile_arm(body)
        assert (model.njnt, model.nu, model.nbody) == (n, n, n + 1)
        data = mujoco.MjData(model)
        data.ctrl[:] = 1.0
        for _ in range(50):
            mujoco.mj_step(model, data)
        assert np.all(np.abs(data.qpos) > 1e-4), f"every joint of the {n}-link arm should move"
        tip = data.site_xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "fingertip")]
        assert np.linalg.norm(tip[:2]) <= body.total_length + 1e-6


def test_mjcf_has_limits_damping_motors_and_fingertip():
    xml = arm_mjcf(Morphology(3, [0.1, 0.2, 0.3]))
    for needle in ('type="hinge" axis="0 0 1"', 'limited="true"', "damping=", "<motor", 'type="capsule"', 'name="fingertip"'):
        assert needle in xml
