"""ReachEnv: determinism, padding, termination, scenes and rendering."""

import os
import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from morphelites.config import EnvConfig
import mujoco

from morphelites.envs import FEATURES_PER_JOINT, ReachEnv
from morphelites.gl_backend import backend_advice, headless_default
from morphelites.morphology import LINK_RADIUS, Morphology

BODY = Morphology(3, [0.2, 0.2, 0.15])


def _roll(env: ReachEnv, seed: int, steps: int = 60, padded_garbage: float = 0.0):
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        action = rng.uniform(-1, 1, 6)
        action[BODY.num_links :] = padded_garbage * rng.normal(size=6 - BODY.num_links)
        obs, reward, term, trunc, info = env.step(action)
        trace.append(np.append(obs, [reward, info["distance"]]))
        if term or trunc:
            obs, _ = env.reset()
    return trace


def test_passes_gymnasium_env_checker():
    check_env(ReachEnv(BODY), skip_render_check=True)


def test_same_seed_same_trajectory_and_different_seed_differs():
    a, b, c = _roll(ReachEnv(BODY), 3), _roll(ReachEnv(BODY), 3), _roll(ReachEnv(BODY), 4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a[1], c[1])


def test_padded_actions_have_no_effect():
    clean, noisy = _roll(ReachEnv(BODY), 5), _roll(ReachEnv(BODY), 5, padded_garbage=1e3)
    for x, y in zip(clean, noisy):
        np.testing.assert_array_equal(x, y)


def test_non_finite_action_entries_are_applied_as_zero_torque_infinite_ones_too():
    # np.clip turned inf into 1 before the finite check: full torque instead of none.
    env = ReachEnv(BODY)
    env.reset(seed=0)
    env.step(np.array([np.inf, -np.inf, np.nan, 0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(env.data.ctrl, [0.0, 0.0, 0.0])
    env.step(np.array([5.0, -5.0, 0.25, 0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(env.data.ctrl, [1.0, -1.0, 0.25])


def test_a_seed_given_to_the_constructor_is_recorded_as_reset_would():
    assert ReachEnv(BODY, seed=7).np_random_seed == 7
    seeded, reset = ReachEnv(BODY, seed=7), ReachEnv(BODY)
    np.testing.assert_array_equal(seeded.reset()[0], reset.reset(seed=7)[0])


def test_observation_is_padded_with_a_joint_mask():
    env = ReachEnv(BODY)
    obs, _ = env.reset(seed=0)
    F = FEATURES_PER_JOINT
    assert obs.shape == (F * 6 + 6,) and env.action_space.shape == (6,)
    np.testing.assert_array_equal(obs[env.layout.mask_indices], [1, 1, 1, 0, 0, 0])
    assert np.all(obs[3 * F : 6 * F] == 0)
    np.testing.assert_allclose(obs[3 : 3 * F : F], BODY.link_lengths, rtol=1e-6)
    np.testing.assert_allclose(obs[-2:], obs[-4:-2] - obs[-6:-4], atol=1e-6)


def test_positions_after_a_step_are_those_of_the_joint_angles_after_it():
    """Found in review: mj_step computes positions before it integrates, so the fingertip and link
    positions (observation, distance, success) lagged the joint angles by one physics step."""
    env = ReachEnv(BODY)
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    for _ in range(10):
        obs, _, _, _, info = env.step(rng.uniform(-1, 1, 6))
    angles = np.cumsum(np.arctan2(obs[1 : 3 * FEATURES_PER_JOINT : FEATURES_PER_JOINT],
                                  obs[0 : 3 * FEATURES_PER_JOINT : FEATURES_PER_JOINT]))  # fmt: skip
    tip = np.sum(np.array(BODY.link_lengths)[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1), axis=0)
    assert np.abs(np.asarray(env.data.qvel[:3])).max() > 0.3, "the arm moves, so a stale position would show"
    np.testing.assert_allclose(env.fingertip(), tip, atol=1e-6)
    np.testing.assert_allclose(obs[-6:-4], tip, atol=1e-6)
    assert info["distance"] == pytest.approx(np.linalg.norm(env.goal - tip), abs=1e-6)


def test_reach_gradient_feature_is_the_derivative_of_the_distance():
    env = ReachEnv(BODY)
    obs, _ = env.reset(seed=1)
    goal, F = env.goal, FEATURES_PER_JOINT
    q = env.data.qpos.copy()
    for j in range(BODY.num_links):
        half_sq = []
        for h in (-1e-5, 1e-5):
            env.data.qpos[:] = q
            env.data.qpos[j] += h
            mujoco.mj_kinematics(env.model, env.data)
            half_sq.append(0.5 * np.sum((goal - env.fingertip()) ** 2))
        numeric = -(half_sq[1] - half_sq[0]) / 2e-5
        assert obs[j * F + 7] == pytest.approx(numeric, rel=1e-3, abs=1e-6)


def test_a_given_goal_is_copied():
    """Seen in review: the env kept the caller's array, so changing it later moved the goal the
    reward was computed from, but not the goal marker."""
    env = ReachEnv(BODY)
    goal = np.array([0.3, 0.1])
    env.reset(seed=0, options={"goal": goal})
    goal[:] = 5.0
    np.testing.assert_array_equal(env.goal, [0.3, 0.1])


def test_goal_at_the_fingertip_terminates_with_success_bonus():
    env = ReachEnv(BODY)
    env.reset(seed=0)
    tip = env.fingertip()
    env.reset(seed=0, options={"goal": tip})
    _, reward, terminated, truncated, info = env.step(np.zeros(6))
    assert terminated and not truncated and info["success"]
    assert reward > 0.9


def test_unreachable_goal_truncates_at_the_time_limit():
    env = ReachEnv(BODY, env_config=EnvConfig(max_episode_steps=25))
    env.reset(seed=0, options={"goal": (1.4, 0.0)})  # the arm reaches 0.55 m
    for step in range(25):
        _, reward, terminated, truncated, info = env.step(np.zeros(6))
        assert not terminated
        assert reward < 0
    assert truncated and not info["success"] and info["distance"] > 0.8


def test_success_radius_is_five_percent_of_the_longest_reach():
    env = ReachEnv(BODY)
    assert env.success_radius == pytest.approx(0.05 * 6 * 0.25)


def test_workspace_goals_are_shared_and_reachable_goals_follow_the_body():
    short, long = Morphology(3, [0.1] * 3), Morphology(6, [0.25] * 6)
    short_env, long_env, short_rng, long_rng = ReachEnv(short), ReachEnv(long), np.random.default_rng(9), np.random.default_rng(9)
    ws_short = [short_env.sample_goal(short_rng) for _ in range(50)]
    ws_long = [long_env.sample_goal(long_rng) for _ in range(50)]
    np.testing.assert_array_equal(ws_short, ws_long)  # goal k is the same for every body, k = 0 .. 49
    env = ReachEnv(short, env_config=EnvConfig(goal_sampling="reachable"))
    rng = np.random.default_rng(0)
    distances = [np.linalg.norm(env.sample_goal(rng)) for _ in range(200)]
    assert max(distances) <= short.total_length + 1e-9
    far = [np.linalg.norm(ReachEnv(short).sample_goal(rng)) for _ in range(200)]
    assert max(far) > short.total_length, "the shared workspace holds goals a short arm cannot reach"


def test_reachable_goals_among_walls_come_from_poses_clear_of_the_walls():
    """Found in review: the pose a reachable goal was drawn from could pass through a wall, so the
    goal was not shown to be reachable."""
    long_arm = Morphology(6, [0.25] * 6)
    env = ReachEnv(long_arm, env_config=EnvConfig(scene="obstacles", goal_sampling="reachable"))
    wall = env.scene.walls[0]  # at 30 degrees, 0.825 m out
    through = np.array([[0.0, 0.0]] + [[k * 0.25 * np.cos(np.pi / 6), k * 0.25 * np.sin(np.pi / 6)] for k in range(1, 7)])
    assert wall.contains(through[4]) is False and not env.scene.chain_is_free(through, LINK_RADIUS), \
        "the straight arm at 30 degrees crosses the wall between its joints"
    clear = through * np.array([1.0, -1.0])  # mirrored to -30 degrees, where there is no wall
    assert env.scene.chain_is_free(clear, LINK_RADIUS) and ReachEnv(long_arm).scene.chain_is_free(through, LINK_RADIUS)

    checked = []
    real_check = env.scene.chain_is_free

    class Spy:  # the scene, recording each pose the sampler checks
        walls = env.scene.walls
        goal_is_free = env.scene.goal_is_free

        def chain_is_free(self, joints, radius):
            checked.append((joints.copy(), real_check(joints, radius)))
            return checked[-1][1]

    env.scene = Spy()
    rng = np.random.default_rng(0)
    rejected = 0
    for _ in range(100):
        checked.clear()
        goal = env.sample_goal(rng)
        np.testing.assert_allclose(goal, [joints for joints, free in checked if free][-1][-1], atol=1e-12)
        rejected += sum(not free for _, free in checked)
    assert rejected > 0, "some random poses of a 1.5 m arm cross a wall, and were drawn again"


def _turn_base(env: ReachEnv, steps: int = 150) -> tuple[dict, float]:
    """Turn the straight arm counter-clockwise into the wall at 30°; (info, deepest penetration m)."""
    env.reset(seed=0, options={"goal": (0.0, -1.4)})
    action = np.zeros(6)
    action[0] = 1.0
    deepest = 0.0
    for _ in range(steps):
        _, _, _, _, info = env.step(action)
        if env.data.ncon:
            deepest = min(deepest, float(env.data.contact.dist[: env.data.ncon].min()))
    return info, deepest


def test_obstacle_walls_collide_with_the_arm_and_are_counted():
    body = Morphology(6, [0.25] * 6)
    walled, open_env = ReachEnv(body, scene="obstacles"), ReachEnv(body, scene="open")
    assert len(walled.scene.walls) == 3
    info, deepest = _turn_base(walled)
    assert info["collisions"] > 0
    assert deepest > -LINK_RADIUS, "contacts keep links out of the wall"
    assert _turn_base(open_env)[0]["collisions"] == 0
    assert np.abs(walled.data.qpos - open_env.data.qpos).max() > 0.3, "the wall changes the motion"
    rng = np.random.default_rng(0)
    for _ in range(200):  # goals are never placed inside walls
        goal = walled.sample_goal(rng)
        assert all(not w.contains(goal) for w in walled.scene.walls)


@pytest.mark.parametrize("base_deg", [20.0, 25.0, 30.0, 40.0])
def test_a_link_whose_centre_line_crosses_a_wall_with_both_ends_outside_touches_it(base_deg):
    """Review (session 38): MuJoCo's capsule-box test reported no contact for a link crossing a
    wall box with both of its ends outside, so a link swung hard into a wall's end could pass
    through it with no force and no collision counted. Walls are convex meshes now."""
    env = ReachEnv(Morphology(6, [0.25] * 6), scene="obstacles")
    env.reset(seed=0)
    env.data.qpos[:] = 0.0
    env.data.qpos[0] = np.radians(base_deg)  # straight arm: link 3 lies across the wall at 30°
    env.data.qvel[:] = 0.0
    mujoco.mj_forward(env.model, env.data)
    joints = np.vstack([env.data.xpos[env._link_body_ids][:, :2], env.data.site_xpos[env._tip_site][:2]])
    ends_inside = [w.contains(p) for w in env.scene.walls for p in joints]
    assert not any(ends_inside) and not env.scene.chain_is_free(joints, radius=0.0), "the case: crossing, ends out"
    assert env.data.ncon > 0 and env._touches_wall()
    # Review (session 39): on walls reaching 6 cm above and below the plane the way out of such a link was along z, which a
    # planar arm cannot take, so the wall stopped nothing; contacts must push in the plane.
    normals = env.data.contact.frame[: env.data.ncon, :3]
    assert np.abs(normals[:, 2]).max() < 0.01, normals


@pytest.mark.parametrize("base_speed", [25.0, 40.0])
def test_a_straight_arm_spun_hard_into_a_wall_does_not_stay_inside_it(base_speed):
    """Review (session 39): a straight 1.5 m arm spun at 25-40 rad/s into the wall at 30° ended
    with a link's centre line inside the wall for ~390 of 400 physics steps on those low walls (pushed
    along z, which its hinges cannot follow); on tall walls it is thrown back or bends around."""
    env = ReachEnv(Morphology(6, [0.25] * 6), scene="obstacles")
    env.reset(seed=0)
    env.data.qpos[:] = 0.0
    env.data.qpos[0] = np.radians(-40.0)
    env.data.qvel[:] = 0.0
    env.data.qvel[0] = base_speed
    inside = 0
    for _ in range(400):
        mujoco.mj_step(env.model, env.data)
        joints = np.vstack([env.data.xpos[env._link_body_ids][:, :2], env.data.site_xpos[env._tip_site][:2]])
        inside += not env.scene.chain_is_free(joints, radius=0.0)
    assert inside <= 40, f"a link's centre line was inside a wall for {inside} of 400 physics steps"


def test_an_episode_among_walls_never_starts_inside_one_and_open_scene_starts_are_as_drawn():
    """Review: about 1 reset in 1,200 of the default space's bodies started inside the 30° wall
    (this body, reset seed 1596), taking collisions no policy could avoid."""
    body = Morphology(5, [0.24257, 0.121624, 0.242297, 0.146775, 0.163499])
    env = ReachEnv(body, scene="obstacles")
    for seed in [1596, *range(200)]:
        env.reset(seed=seed)
        assert not env._touches_wall(), seed
        assert np.all(np.abs(env.data.qpos) <= 0.1)
        _, _, _, _, info = env.step(np.zeros(env.action_space.shape))
        assert info["collisions"] == 0, seed
    open_env = ReachEnv(body)
    open_env.reset(seed=1596)
    np.testing.assert_array_equal(open_env.data.qpos, np.random.default_rng(1596).uniform(-0.1, 0.1, 5))


def test_a_body_space_too_small_for_the_walls_is_refused_for_new_runs_naming_the_reach_that_fits(tmp_path):
    from morphelites.config import ConfigError, Settings
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    small = {"max_links": 3, "min_link_length": 0.01, "max_link_length": 0.05}
    Settings.from_dict({"body_space": small}).check_scene_fits()  # the open scene has no walls
    Settings.from_dict({"env": {"scene": "obstacles"}}).check_scene_fits()
    settings = Settings.from_dict({"body_space": small, "env": {"scene": "obstacles"}})
    settings.validate()  # a run stored with it resumes and animates as before (review)
    with pytest.raises(ConfigError, match=r"does not fit this body space.*at least 0\.16 m, or use the open scene"):
        settings.check_scene_fits()
    with pytest.raises(ConfigError, match="does not fit this body space"):
        MAPElitesEvolutionTrainer(settings, output_dir=str(tmp_path / "run"), enable_multiprocess=False)
    assert not (tmp_path / "run").exists()


def test_start_poses_are_redrawn_only_where_the_arm_touches_a_wall(monkeypatch):
    """As MuJoCo measures a touch (the true distance; review: the walls grown square had narrowed
    the starts of small spaces to a sliver), and not at all for an arm too short to reach one."""
    from morphelites.config import BodySpaceConfig

    space = BodySpaceConfig(min_links=1, max_links=1, min_link_length=0.1, max_link_length=0.155)
    env = ReachEnv(Morphology(1, [0.155]), scene="obstacles", body_space=space)
    starts = []
    for seed in range(300):
        env.reset(seed=seed)
        starts.append(float(env.data.qpos[0]))
        assert not env._touches_wall(), seed
    assert min(starts) < -0.09 and max(starts) > -0.03, "every clear start angle is drawn"
    short = ReachEnv(Morphology(3, [0.1, 0.1, 0.1]), scene="obstacles")
    assert not short._may_start_in_a_wall and ReachEnv(Morphology(6, [0.25] * 6), scene="obstacles")._may_start_in_a_wall


def test_renders_rgb_frames_headless():
    env = ReachEnv(BODY, render_mode="rgb_array", render_size=(96, 64))
    env.reset(seed=0)
    first = env.render()
    for _ in range(20):
        env.step(np.ones(6))
    second = env.render()
    assert first.shape == (64, 96, 3) and first.dtype == np.uint8
    assert first.std() > 0 and not np.array_equal(first, second)
    env.close()
    env.close()


def test_render_fps_is_the_simulated_rate_of_env_steps():
    """For video wrappers (gymnasium's RecordVideo): it was 50 whatever env.frame_skip was."""
    assert ReachEnv(BODY).metadata["render_fps"] == 50  # 4 physics steps of 5 ms
    assert ReachEnv(BODY, env_config=EnvConfig(frame_skip=10)).metadata["render_fps"] == 20
    assert ReachEnv.metadata["render_fps"] == 50, "the class's metadata is not changed by an instance"


def test_bad_scene_and_body_raise_clear_errors():
    with pytest.raises(ValueError, match="env.scene is 'forest'"):
        ReachEnv(BODY, scene="forest")
    # Seen in review: a frame larger than the offscreen buffer failed at the first render(), with a
    # message about MUJOCO_GL.
    for size in ((800, 600), (0, 64), (64.0, 64), (64,)):
        with pytest.raises(ValueError, match="render_size must be \\(width, height\\) in whole pixels from 1 to 640"):
            ReachEnv(BODY, render_mode="rgb_array", render_size=size)
    with pytest.raises(ValueError, match=r"num_links is 7, outside"):
        ReachEnv(Morphology(7, [0.2] * 7))


def test_a_mujoco_that_cannot_be_imported_is_named_with_mujoco_gl(monkeypatch):
    """Seen in review: with MUJOCO_GL=osmesa and no libOSMesa, importing mujoco failed deep inside
    PyOpenGL and `morphelites animate` printed a 40-line traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "mujoco", None)  # importing it now fails, as it does then
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    with pytest.raises(RuntimeError, match="mujoco could not be imported .* with MUJOCO_GL='osmesa'.* Use MUJOCO_GL=egl"):
        ReachEnv(BODY)


GL_LIBRARIES = ("EGL", "GL", "OpenGL", "OSMesa", "GLESv1_CM", "GLESv2", "GLU", "glut")


@pytest.mark.parametrize("found", [(), ("EGL",)], ids=["no-egl", "egl-without-gl"])
def test_a_linux_machine_without_egl_or_osmesa_still_simulates(found):
    """Seen in review: morphelites set MUJOCO_GL=egl on every Linux machine, and where libEGL is
    missing (slim containers, some cluster nodes) mujoco's import itself failed, so nothing could
    simulate, training included. Here neither library can be found or loaded: the default is left
    unset (MuJoCo's own, glfw), mujoco imports and an arm steps. Also with libEGL but no OpenGL
    library beside it (a second review: PyOpenGL's EGL platform needs one too)."""
    pretend = (
        "import ctypes\n"
        "import OpenGL.platform.ctypesloader as loader\n"
        "real, real_cdll = loader.loadLibrary, ctypes.CDLL\n"
        f"missing = {tuple(n for n in GL_LIBRARIES if n not in found)}\n"
        "loader.loadLibrary = lambda dll, name, *a, **k: None if name in missing else real(dll, name, *a, **k)\n"
        "class Refusing(real_cdll):\n"
        "    def __init__(self, name, *args, **kwargs):\n"
        "        if str(name).split('.so')[0] in tuple('lib' + m for m in missing):\n"
        "            raise OSError(f'{name}: cannot open shared object file')\n"
        "        super().__init__(name, *args, **kwargs)\n"
        "ctypes.CDLL = Refusing\n"
    )
    check = ("import os, numpy as np, morphelites\n"
             "from morphelites.envs.reach import ReachEnv\n"
             "from morphelites.morphology import Morphology\n"
             "env = ReachEnv(Morphology(3, [0.2, 0.2, 0.2]))\n"
             "env.reset(seed=0); env.step(np.zeros(env.action_space.shape, dtype=np.float32))\n"
             "print(os.environ.get('MUJOCO_GL'))\n")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    done = subprocess.run([sys.executable, "-c", pretend + check], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None"]


@pytest.mark.parametrize("found, expected", [({"EGL", "GL", "OSMesa"}, "egl"), ({"EGL", "OpenGL"}, "egl"),
                                             ({"EGL", "GLESv2"}, "egl"), ({"EGL", "OSMesa"}, "osmesa"),
                                             ({"EGL"}, None), ({"OSMesa"}, "osmesa"), (set(), None)])
def test_the_linux_default_is_a_backend_whose_library_is_there(found, expected):
    assert headless_default("Linux", loadable=lambda name: name in found) == expected
    assert headless_default("Darwin", loadable=lambda name: True) is None


@pytest.mark.parametrize("system, expected", [("Linux", "egl"), ("Darwin", None), ("Windows", None)])
def test_mujoco_imports_with_the_mujoco_gl_default_of_each_system(system, expected):
    """Seen in review: morphelites set MUJOCO_GL=egl on every system, MuJoCo refuses egl at import
    outside Linux, so on a Mac nothing could even simulate. The default is now egl on Linux only;
    elsewhere MuJoCo's own choice stands. A value the user set is always kept."""
    pretend = f"import platform; platform.system = lambda: {system!r}; "
    check = "import os, morphelites, mujoco; print(os.environ.get('MUJOCO_GL'))"
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    done = subprocess.run([sys.executable, "-c", pretend + check], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(expected)]
    done = subprocess.run([sys.executable, "-c", pretend + check], env=dict(env, MUJOCO_GL="glfw"), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout.split() == ["glfw"], done.stderr
    assert backend_advice(system).startswith({"Linux": "MUJOCO_GL=egl", "Darwin": "MUJOCO_GL=cgl", "Windows": "MUJOCO_GL=wgl"}[system])
