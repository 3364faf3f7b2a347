"""ReachEnv: a planar arm must bring its fingertip to a goal (a gymnasium.Env on MuJoCo).

Spaces are padded to the body space's maximum joint count J, so every body has the same
observation and action spaces and one policy can control them all.

Observation (float32, shape ``(8 * J + 6,)``), see :class:`ObservationLayout`:
    per joint j < J, 8 features: cos q_j, sin q_j, dq_j (rad/s), link length (m), mask (1 if the
    joint exists), x_j, y_j (world position of the joint, m), and the reach gradient
    ``(tip - joint_j) x (goal - tip)`` (m^2): how fast turning joint j alone closes the distance
    (d(-|goal - tip|^2 / 2) / dq_j), a geometric fact of the pose that every body shares; padded
    joints are all zeros; then fingertip (x, y), goal (x, y), goal - fingertip (x, y), metres.
Action (float32, shape ``(J,)``, in [-1, 1]): normalised torque of each motor; entries of padded
    joints are ignored.
Reward per policy step:
    ``-d / R - control_cost * sum(a_j^2 over real joints) - collision_penalty * [arm touches a wall]
    + 1 * [success]``, where d is the fingertip-goal distance and R the max reach of the space.
Termination: success (d <= success radius = success_radius_fraction * R). Truncation: after
    ``max_episode_steps`` policy steps.
Info: ``distance`` (m), ``success`` (bool), ``collisions`` (policy steps in contact with a wall so
    far this episode), ``path_length`` (fingertip path so far, m), ``initial_distance`` (m).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from morphelites.config import BodySpaceConfig, EnvConfig
from morphelites.envs.scenes import Scene, make_scene
from morphelites.gl_backend import backend_advice
from morphelites.morphology import (JOINT_RANGE_DEG, LINK_RADIUS, MAX_RENDER_SIZE, PHYSICS_TIMESTEP, BodySpace, Morphology,
                                    compile_arm, import_mujoco)

__all__ = ["ReachEnv", "ObservationLayout", "FEATURES_PER_JOINT", "GLOBAL_FEATURES"]

FEATURES_PER_JOINT = 8
GLOBAL_FEATURES = 6
_MASK_FEATURE = 4
_SUCCESS_BONUS = 1.0
#: Reset noise on joint angles, radians (uniform in ±this).
_RESET_ANGLE_NOISE = 0.1
#: Draws of that noise a reset makes to find a start pose clear of the walls before it starts from
#: the straight pose (clear of them in every body space a new run may name: scenes.check_fits).
_START_POSE_DRAWS = 100


@dataclass(frozen=True)
class ObservationLayout:
    """Where things are in the padded observation vector for a space of ``max_joints`` joints."""

    max_joints: int

    @property
    def observation_dim(self) -> int:
        return FEATURES_PER_JOINT * self.max_joints + GLOBAL_FEATURES

    @property
    def action_dim(self) -> int:
        return self.max_joints

    @property
    def mask_indices(self) -> np.ndarray:
        """Indices (shape (J,), int64) of the joint-mask entries in the observation."""
        return np.arange(self.max_joints, dtype=np.int64) * FEATURES_PER_JOINT + _MASK_FEATURE


class ReachEnv(gym.Env):
    """Reach a goal in the plane with the fingertip of ``morphology``.

    Args:
        morphology: the body; must lie in ``body_space``.
        scene: scene name (overrides ``env_config.scene`` when given).
        seed: seeds the goal and reset-noise generator (as ``reset(seed=...)`` would).
        body_space: bounds of the body space; fixes padding and the goal workspace.
        env_config: task settings.
        render_mode: ``None`` or ``"rgb_array"`` (headless, through EGL when no display).
        render_size: (width, height) of rendered frames, pixels.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        morphology: Morphology,
        scene: str | None = None,
        seed: int | None = None,
        body_space: BodySpaceConfig | None = None,
        env_config: EnvConfig | None = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (480, 480),
    ) -> None:
        super().__init__()
        import dataclasses

        cfg = env_config or EnvConfig()
        if scene is not None:
            cfg = dataclasses.replace(cfg, scene=scene)
        self.config = cfg.validate()
        self.space = BodySpace(body_space)
        if not isinstance(morphology, Morphology):
            raise TypeError(f"morphology must be a Morphology, got {type(morphology).__name__}.")
        self.morphology = self.space.check(morphology)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        sides = tuple(render_size) if isinstance(render_size, (tuple, list)) else ()
        if len(sides) != 2 or not all(isinstance(side, (int, np.integer)) and not isinstance(side, bool)
                                      and 1 <= side <= MAX_RENDER_SIZE for side in sides):  # fmt: skip
            raise ValueError(f"render_size must be (width, height) in whole pixels from 1 to {MAX_RENDER_SIZE} (the "
                             f"offscreen buffer every body's model is compiled with), got {render_size!r}.")  # fmt: skip
        self.render_mode = render_mode
        self.render_size = render_size
        # frames per second of simulated time, for video wrappers (50 at the default frame_skip 4)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / (PHYSICS_TIMESTEP * self.config.frame_skip))}

        self.layout = ObservationLayout(self.space.max_links)
        self.max_reach = self.space.max_reach
        self.success_radius = self.config.success_radius_fraction * self.max_reach
        self.scene: Scene = make_scene(self.config.scene, self.max_reach)

        mujoco = import_mujoco()
        self._mujoco = mujoco
        self.model = compile_arm(self.morphology, self.scene.mjcf(), view_radius=self.max_reach, assets=self.scene.assets())
        self.data = mujoco.MjData(self.model)
        self._n = self.morphology.num_links
        self._tip_site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "fingertip")
        self._link_body_ids = np.array(
            [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, f"link{i}") for i in range(self._n)]
        )
        self._wall_geom_ids = np.array(
            [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"wall{i}") for i in range(len(self.scene.walls))],
            dtype=np.int32,
        )
        self._lengths = np.array(self.morphology.link_lengths, dtype=np.float64)
        # An arm shorter than every wall's distance from the base, less a link's radius, never meets
        # one, whatever its pose: its resets skip the test (half of the default space's bodies).
        base = np.zeros((1, 2))
        self._may_start_in_a_wall = any(float(wall.distance_each(base)[0]) <= self._lengths.sum() + LINK_RADIUS
                                        for wall in self.scene.walls)  # fmt: skip

        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=(self.layout.observation_dim,), dtype=np.float32
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.layout.action_dim,), dtype=np.float32)

        self._goal = np.zeros(2)
        self._steps = 0
        self._collisions = 0
        self._path_length = 0.0
        self._initial_distance = 0.0
        self._renderer: Any = None
        if seed is not None:  # as reset(seed=...) does, so that np_random_seed records it
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode. ``options={"goal": (x, y)}`` fixes the goal instead of sampling it."""
        super().reset(seed=seed)
        mujoco = self._mujoco
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self._start_pose(self.np_random)
        if options and "goal" in options:
            goal = np.array(options["goal"], dtype=np.float64)  # a copy: the caller's array may change later
            if goal.shape != (2,) or not np.all(np.isfinite(goal)):
                raise ValueError(f"options['goal'] must be a finite (x, y) pair, got {options['goal']!r}.")
            self._goal = goal
        else:
            self._goal = self.sample_goal(self.np_random)
        self.data.mocap_pos[0, :2] = self._goal
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        self._collisions = 0
        self._path_length = 0.0
        self._initial_distance = self._distance()
        return self._observation(), self._info(False, self._initial_distance)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply normalised torques ``action`` (shape (J,)), clipped to [-1, 1]; padded entries are
        ignored, and a NaN or infinite entry is applied as zero torque (the policies never emit one:
        non-finite weights are never published)."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape[0] != self.layout.action_dim:
            raise ValueError(f"action has {a.shape[0]} entries, expected {self.layout.action_dim}.")
        torque = a[: self._n]
        torque = np.clip(np.where(np.isfinite(torque), torque, 0.0), -1.0, 1.0)  # zeroed before clipping: inf too
        self.data.ctrl[:] = torque
        tip_before = self.data.site_xpos[self._tip_site, :2].copy()
        touched = False
        for _ in range(self.config.frame_skip):
            self._mujoco.mj_step(self.model, self.data)
            # the contacts mj_step found at the substep's start, whose forces acted during it: a
            # contact in the state a step ends in counts in the next step (README, Reward)
            touched = touched or self._touches_wall()
        # mj_step computes positions before it integrates: without this, the fingertip and link
        # positions (observation, distance, success, reward) were those of one physics step earlier
        # than the joint angles beside them
        self._mujoco.mj_kinematics(self.model, self.data)
        self._steps += 1
        self._collisions += int(touched)
        self._path_length += float(np.linalg.norm(self.data.site_xpos[self._tip_site, :2] - tip_before))
        distance = self._distance()
        success = distance <= self.success_radius
        reward = (
            -distance / self.max_reach
            - self.config.control_cost * float(np.dot(torque, torque))
            - self.config.collision_penalty * float(touched)
            + _SUCCESS_BONUS * float(success)
        )
        truncated = (not success) and self._steps >= self.config.max_episode_steps
        return self._observation(), reward, bool(success), bool(truncated), self._info(success, distance)

    def render(self) -> np.ndarray | None:
        """RGB frame (height, width, 3) uint8 from the top camera, or None without render_mode."""
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            width, height = self.render_size
            try:
                self._renderer = self._mujoco.Renderer(self.model, height=height, width=width)
            except Exception as error:  # MuJoCo raises FatalError/ImportError/RuntimeError here
                raise RuntimeError(
                    f"MuJoCo could not open an OpenGL context ({error}). Without a display, set "
                    f"{backend_advice()} before mujoco is first imported; MUJOCO_GL is now "
                    f"{os.environ.get('MUJOCO_GL')!r}."
                ) from error
        self._renderer.update_scene(self.data, camera="top")
        return self._renderer.render().copy()

    def close(self) -> None:
        """Free the renderer; safe to call twice."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ task geometry

    def _start_pose(self, rng: np.random.Generator) -> np.ndarray:
        """Joint angles (n,), radians, an episode starts from: each uniform in ±``_RESET_ANGLE_NOISE``,
        drawn again while the arm would touch a wall (review: about 1 reset in 1,200 of the default
        space's bodies started inside the 30° wall, taking collisions no policy could avoid). Where
        the first draw is clear, as in every reset of the open scene, the draws are as before."""
        for _ in range(_START_POSE_DRAWS):
            q = rng.uniform(-_RESET_ANGLE_NOISE, _RESET_ANGLE_NOISE, self._n)
            # points 1 mm apart: at 1 cm a link passing a wall's corner measured up to 0.6 mm too far (a touch missed)
            if not self._may_start_in_a_wall or self.scene.chain_is_free(self._joint_positions(q), LINK_RADIUS,
                                                                          spacing=0.001, exact=True):  # fmt: skip
                return q
        return np.zeros(self._n)

    def _joint_positions(self, q: np.ndarray) -> np.ndarray:
        """The base, each joint and the fingertip (n + 1, 2), metres, of this body at joint angles ``q`` (n,)."""
        heading = np.cumsum(q)
        steps = self._lengths[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        return np.vstack([np.zeros((1, 2)), np.cumsum(steps, axis=0)])

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """Draw a goal (x, y) for this body under ``goal_sampling``, clear of walls.

        ``workspace``: distance uniform in [0, R] (R = max reach of the space), direction uniform,
        so every distance band weighs the same and a short arm cannot reach the outer ones.
        ``reachable``: the fingertip position of a random pose of this body (base angle uniform,
        every other joint uniform within its limits) whose links keep clear of the walls, so the
        goal is reachable by construction. Goals within 1.5 success radii of a wall are redrawn.
        """
        for _ in range(1000):
            if self.config.goal_sampling == "workspace":
                radius = rng.uniform(0.0, self.max_reach)
                angle = rng.uniform(-math.pi, math.pi)
                goal = np.array([radius * math.cos(angle), radius * math.sin(angle)])
            else:
                limit = math.radians(JOINT_RANGE_DEG)
                q = np.concatenate([rng.uniform(-math.pi, math.pi, 1), rng.uniform(-limit, limit, self._n - 1)])
                heading = np.cumsum(q)
                goal = np.array([np.dot(self._lengths, np.cos(heading)), np.dot(self._lengths, np.sin(heading))])
                if self.scene.walls and not self.scene.chain_is_free(self._joint_positions(q), LINK_RADIUS):
                    continue  # a pose through a wall does not show that the goal can be reached
            if self.scene.goal_is_free(goal, margin=1.5 * self.success_radius):
                return goal
        raise RuntimeError("could not place a goal clear of the walls in 1000 draws")

    @property
    def goal(self) -> np.ndarray:
        """This episode's goal (x, y), shape (2,) float64, metres, the arm's base at the origin; a
        copy ((0, 0) before the first reset)."""
        return self._goal.copy()

    def fingertip(self) -> np.ndarray:
        """Fingertip position (x, y), metres."""
        return self.data.site_xpos[self._tip_site, :2].copy()

    def _distance(self) -> float:
        return float(np.linalg.norm(self.data.site_xpos[self._tip_site, :2] - self._goal))

    def _touches_wall(self) -> bool:
        if self._wall_geom_ids.size == 0 or self.data.ncon == 0:
            return False
        geoms = self.data.contact.geom[: self.data.ncon]  # (ncon, 2); geom1 / geom2 are deprecated in MuJoCo 4
        return bool(np.isin(geoms, self._wall_geom_ids).any())

    def _observation(self) -> np.ndarray:
        n, J = self._n, self.layout.max_joints
        per_joint = np.zeros((J, FEATURES_PER_JOINT), dtype=np.float64)
        q = self.data.qpos[:n]
        per_joint[:n, 0] = np.cos(q)
        per_joint[:n, 1] = np.sin(q)
        per_joint[:n, 2] = self.data.qvel[:n]
        per_joint[:n, 3] = self._lengths
        per_joint[:n, 4] = 1.0
        per_joint[:n, 5:7] = self.data.xpos[self._link_body_ids, :2]
        tip = self.data.site_xpos[self._tip_site, :2]
        lever, error = tip - per_joint[:n, 5:7], self._goal - tip
        per_joint[:n, 7] = lever[:, 0] * error[1] - lever[:, 1] * error[0]
        glob = np.concatenate([tip, self._goal, self._goal - tip])
        return np.concatenate([per_joint.reshape(-1), glob]).astype(np.float32)

    def _info(self, success: bool, distance: float) -> dict[str, Any]:
        return {
            "distance": distance,
            "success": bool(success),
            "collisions": self._collisions,
            "path_length": self._path_length,
            "initial_distance": self._initial_distance,
        }
