"""Scenes: what surrounds the arm, scaled to the body space's maximum reach.

A scene is a list of wall boxes in the plane (plus the goal marker every scene has). Walls are
MuJoCo geoms with contype 2 / conaffinity 1, so arm links collide with them through ordinary
MuJoCo contacts, and links never collide with each other.

A wall is a box-shaped convex *mesh*, not a ``box`` geom: MuJoCo's dedicated capsule-box test
(4.0) reports no contact for a link whose centre line crosses a box with both of its ends
outside (at 15-60° to a wall's face, say), so a link swung hard into a wall's end could pass
through it unhindered and unpenalised. A mesh goes through MuJoCo's general convex collider,
which finds that overlap (``tests/test_env.py``).

MuJoCo pushes a penetrating link out along the shortest way, in 3-D. The arm moves in the plane
and its hinges turn about z, so a push along z cannot stop it: a wall must be so tall that the
way out is always in the plane. Each wall's colliding mesh reaches :data:`WALL_COLLISION_HALF_HEIGHT`
times the max reach above and below the plane (until 2026-12-07 walls reached 6 cm above and below it, and a link
8 cm deep, driven hard into a wall's end, was pushed along z and went through); it is in geom
group 3, which the renderer does not draw, and a low copy without contacts is what a picture shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from morphelites.config import SCENES
from morphelites.morphology import LINK_RADIUS

__all__ = ["Wall", "Scene", "make_scene", "check_fits", "SCENES"]

#: Half the height of the wall drawn in pictures (metres); it takes no contacts.
WALL_HALF_HEIGHT = 0.06
#: Half the height of a wall's colliding mesh, in units of the max reach: more than any in-plane
#: way out of a wall for a link (a wall is 30% of the max reach long), so contacts push in the plane.
WALL_COLLISION_HALF_HEIGHT = 1.0


@dataclass(frozen=True)
class Wall:
    """A box wall: centre (x, y), half-sizes (hx, hy) in metres, rotated ``angle`` rad about z."""

    x: float
    y: float
    hx: float
    hy: float
    angle: float = 0.0

    def contains(self, point: np.ndarray, margin: float = 0.0) -> bool:
        """Whether ``point`` (x, y) lies inside the wall grown by ``margin`` metres."""
        return bool(self.contains_each(np.asarray(point, dtype=np.float64)[None], margin)[0])

    def contains_each(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """For each of ``points`` (N, 2), metres: whether it lies inside the wall grown by
        ``margin`` metres; (N,) bool."""
        dx, dy = points[:, 0] - self.x, points[:, 1] - self.y
        c, s = math.cos(self.angle), math.sin(self.angle)
        return (np.abs(c * dx + s * dy) <= self.hx + margin) & (np.abs(-s * dx + c * dy) <= self.hy + margin)

    def distance_each(self, points: np.ndarray) -> np.ndarray:
        """For each of ``points`` (N, 2), metres: its distance to the wall (0 inside), metres; (N,).
        Exact, corners included (``contains_each`` grows the box with square corners)."""
        dx, dy = points[:, 0] - self.x, points[:, 1] - self.y
        c, s = math.cos(self.angle), math.sin(self.angle)
        outside_x = np.maximum(np.abs(c * dx + s * dy) - self.hx, 0.0)
        outside_y = np.maximum(np.abs(-s * dx + c * dy) - self.hy, 0.0)
        return np.hypot(outside_x, outside_y)


@dataclass(frozen=True)
class Scene:
    """A named scene: its walls and the MJCF text they compile to."""

    name: str
    walls: tuple[Wall, ...]
    #: Half the height of the walls' colliding meshes, metres (see the module docstring).
    collision_half_height: float = 1.0

    def assets(self) -> str:
        """Asset MJCF: each wall's box-shaped meshes, centred on its origin: ``wall{i}``, which
        collides, and ``wall{i}_visual``, the low one pictures show (see the module docstring)."""
        return "".join(
            _box_mesh(f"wall{i}", w.hx, w.hy, self.collision_half_height)
            + _box_mesh(f"wall{i}_visual", w.hx, w.hy, WALL_HALF_HEIGHT)
            for i, w in enumerate(self.walls)
        )

    def mjcf(self) -> str:
        """World-body MJCF: floor-free walls (the meshes of :meth:`assets`: a colliding one in geom
        group 3, which is not drawn, and a drawn one without contacts), and the mocap goal marker
        (no collisions)."""
        walls = "".join(
            f'<geom name="wall{i}" type="mesh" mesh="wall{i}" pos="{w.x:.5f} {w.y:.5f} 0" '
            f'euler="0 0 {math.degrees(w.angle):.4f}" group="3" '
            f'contype="2" conaffinity="1" solimp="0.95 0.99 0.001" rgba="0.45 0.45 0.45 1"/>'
            f'<geom name="wall{i}_visual" type="mesh" mesh="wall{i}_visual" pos="{w.x:.5f} {w.y:.5f} 0" '
            f'euler="0 0 {math.degrees(w.angle):.4f}" contype="0" conaffinity="0" rgba="0.45 0.45 0.45 1"/>'
            for i, w in enumerate(self.walls)
        )
        goal = (
            '<body name="goal" mocap="true" pos="0 0 0">'
            '<site name="goal" type="sphere" size="0.03" rgba="0.1 0.9 0.2 0.8"/></body>'
        )
        return walls + goal

    def goal_is_free(self, goal: np.ndarray, margin: float) -> bool:
        """Whether a goal at ``goal`` (x, y) keeps ``margin`` metres clear of every wall."""
        return not any(w.contains(goal, margin) for w in self.walls)

    def chain_is_free(self, joints: np.ndarray, radius: float, spacing: float = 0.01, exact: bool = False) -> bool:
        """Whether an arm whose joints (and fingertip, last) are at ``joints`` (n + 1, 2), metres,
        with links of ``radius`` metres, keeps clear of every wall; checked at points at most
        ``spacing`` metres apart along each link (walls are several centimetres thick). Each wall
        is grown square by ``radius`` (a little more than a touch near its corners), or with
        ``exact`` measured by the true distance, as MuJoCo's capsule meets a box."""
        if not self.walls:
            return True
        starts, ends = joints[:-1], joints[1:]
        # A link whose middle is farther from every wall than half its length and a grown wall's
        # farthest reach (radius * sqrt 2 at a square corner) is clear: only the others are sampled.
        middles, half_lengths = (starts + ends) / 2, np.linalg.norm(ends - starts, axis=1) / 2
        near = np.zeros(len(middles), dtype=bool)
        for wall in self.walls:
            near |= wall.distance_each(middles) <= half_lengths + radius * math.sqrt(2) + 1e-9  # a rounding's slack
        if not near.any():
            return True
        points = np.concatenate([
            start + np.linspace(0.0, 1.0, max(2, math.ceil(float(np.linalg.norm(end - start)) / spacing) + 1))[:, None]
            * (end - start)
            for start, end in zip(starts[near], ends[near])
        ])  # fmt: skip
        if exact:
            return all(w.distance_each(points).min() > radius for w in self.walls)
        return not any(w.contains_each(points, radius).any() for w in self.walls)


def _box_mesh(name: str, hx: float, hy: float, hz: float) -> str:
    """A ``<mesh>`` asset: the eight corners of a box of half-sizes (hx, hy, hz) metres."""
    corners = " ".join(f"{sx * hx:.5f} {sy * hy:.5f} {sz * hz:.5f}" for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1))
    return f'<mesh name="{name}" vertex="{corners}"/>'


def check_fits(name: str, max_reach: float) -> None:
    """Raise ValueError, naming the least reach that fits, where scene ``name`` made for
    ``max_reach`` metres has a wall within a link's radius of the straight arm along +x (where every
    episode starts): the walls scale with the reach, the links' radius does not, and in a space of
    short links every episode had started in a wall, its collisions independent of the policy
    (review). New runs are refused so (``Settings.check_scene_fits``); a run stored before goes on.
    """
    # The arm and the walls both scale with the reach, so their distance does too: per metre of reach
    per_metre = _straight_arm_distance(make_scene(name, 1.0), 1.0)
    if per_metre * max_reach > LINK_RADIUS:
        return
    raise ValueError(
        f"env.scene {name!r} does not fit this body space: its walls scale with the longest arm's reach "
        f"({max_reach:g} m), the links' thickness ({2 * LINK_RADIUS * 100:g} cm) does not, and at this reach the arm's "
        f"start pose touches a wall. Give body_space a longest arm (max_links * max_link_length) of at least "
        f"{math.ceil(LINK_RADIUS / per_metre * 100) / 100:g} m, or use the open scene."
    )


def _straight_arm_distance(scene: Scene, reach: float) -> float:
    """The least distance, metres, from the straight arm of ``reach`` metres along +x to a wall of
    ``scene`` (its centre line's: the true distance, as MuJoCo's capsule meets a box); inf without walls."""
    along_x = np.linspace(0.0, reach, 4001)  # points 0.025% of the reach apart: the distance to within that
    arm = np.stack([along_x, np.zeros_like(along_x)], axis=1)
    return min((float(wall.distance_each(arm).min()) for wall in scene.walls), default=math.inf)


def make_scene(name: str, max_reach: float) -> Scene:
    """Build scene ``name`` for a body space whose longest arm reaches ``max_reach`` metres.

    ``obstacles``: three tangential walls at 55% of the max reach, at 30°, 150° and 270°, each
    30% of the max reach long, so goals behind them can only be reached by bending around.
    """
    if name == "open":
        return Scene("open", ())
    if name == "obstacles":
        radius, half_length, half_thickness = 0.55 * max_reach, 0.15 * max_reach, 0.025 * max_reach
        walls = tuple(
            Wall(
                x=radius * math.cos(math.radians(deg)),
                y=radius * math.sin(math.radians(deg)),
                hx=half_thickness,
                hy=half_length,
                angle=math.radians(deg),
            )
            for deg in (30.0, 150.0, 270.0)
        )
        return Scene("obstacles", walls, collision_half_height=WALL_COLLISION_HALF_HEIGHT * max_reach)
    raise ValueError(f"Unknown scene {name!r}; choose one of {', '.join(SCENES)}.")
