"""Bodies: planar serial arms, their genome codec, and their MuJoCo model.

A :class:`Morphology` is a chain of ``num_links`` capsule links joined by hinge joints about the
world z axis, based at the origin and lying in the z = 0 plane. Link lengths are in metres and are
rounded to the micrometre so that a genome round-trip gives an equal (and equally hashed) body.

A :class:`BodySpace` fixes the bounds (joint counts, link lengths) and owns the genome codec: a
genome is a vector in [0, 1]^(1 + max_links); gene 0 picks the joint count, gene 1+i the length of
link i (genes of links a shorter body lacks are ignored). Every genome in the cube decodes to a
valid body, so pyribs emitters can search the cube freely.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from morphelites.config import LENGTH_DECIMALS, BodySpaceConfig
from morphelites.gl_backend import backend_advice

__all__ = ["Morphology", "BodySpace", "LENGTH_DECIMALS", "MAX_RENDER_SIZE", "import_mujoco"]

#: Largest rendered frame side, pixels: the offscreen buffer every model is compiled with.
MAX_RENDER_SIZE = 640


@dataclass(frozen=True)
class Morphology:
    """A planar serial arm: ``num_links`` links of ``link_lengths`` metres, base at the origin."""

    num_links: int
    link_lengths: tuple[float, ...]

    def __init__(self, num_links: int, link_lengths: Sequence[float]) -> None:
        if isinstance(num_links, bool) or not isinstance(num_links, (int, np.integer)):
            raise ValueError(f"num_links must be a whole number >= 1, got {num_links!r}; give the number of links, "
                             f"or leave it out (it follows from link_lengths).")  # fmt: skip
        if num_links < 1:
            raise ValueError(f"num_links is {num_links}; an arm needs at least 1 link, so give at least one length.")
        # A string would be split into characters and True read as 1 m: numbers only. Each is
        # checked as it is kept (rounded to LENGTH_DECIMALS), so that none rounds down to 0.
        try:
            if isinstance(link_lengths, (str, bytes)):
                raise TypeError
            given = list(link_lengths)
            if any(isinstance(x, (bool, str, bytes)) for x in given):
                raise TypeError
            lengths = tuple(round(float(x), LENGTH_DECIMALS) for x in given)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float's range
            raise ValueError(f"link_lengths must be a list of numbers, got {link_lengths!r}; give one length in metres "
                             f"per link, e.g. [0.2, 0.2, 0.15].") from None  # fmt: skip
        if len(lengths) != num_links:
            raise ValueError(
                f"link_lengths has {len(lengths)} entries but num_links is {num_links}; "
                f"give one length per link."
            )
        for i, length in enumerate(lengths):
            if not math.isfinite(length) or length <= 0:
                kept = f" ({length!r} m to the {LENGTH_DECIMALS} decimals lengths are kept to)" if length != given[i] else ""
                raise ValueError(
                    f"link_lengths[{i}] is {given[i]!r}{kept}; every link length must be a finite number > 0 "
                    f"(metres), e.g. 0.2."
                )  # fmt: skip
        object.__setattr__(self, "num_links", int(num_links))
        object.__setattr__(self, "link_lengths", lengths)

    @property
    def total_length(self) -> float:
        """Sum of the link lengths = the arm's reach, metres."""
        return float(sum(self.link_lengths))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``num_links``, ``link_lengths`` and (informative) ``total_length``."""
        return {
            "num_links": self.num_links,
            "link_lengths": list(self.link_lengths),
            "total_length": round(self.total_length, LENGTH_DECIMALS),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Morphology":
        """Inverse of :meth:`to_dict` (``total_length``, if present, is ignored)."""
        if not isinstance(data, dict) or "link_lengths" not in data:
            raise ValueError(
                f"A body must be a mapping with 'link_lengths' (and optionally 'num_links'), got {data!r}; write it "
                f"as {{\"link_lengths\": [0.2, 0.2, 0.15]}}."
            )
        lengths = data["link_lengths"]
        if not isinstance(lengths, (list, tuple)):
            raise ValueError(f"A body's 'link_lengths' must be a list of lengths in metres, e.g. [0.2, 0.2, 0.15], got {lengths!r}.")
        return cls(data.get("num_links", len(lengths)), lengths)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Morphology":
        return cls.from_dict(json.loads(text))


class BodySpace:
    """Bounds of the body space, the genome codec, and body validation.

    Args:
        config: joint-count and link-length bounds (validated here).
    """

    def __init__(self, config: BodySpaceConfig | None = None) -> None:
        self.config = (config or BodySpaceConfig()).validate()

    @property
    def min_links(self) -> int:
        return self.config.min_links

    @property
    def max_links(self) -> int:
        return self.config.max_links

    @property
    def length_bounds(self) -> tuple[float, float]:
        """(shortest, longest) allowed link, metres."""
        return self.config.min_link_length, self.config.max_link_length

    @property
    def max_reach(self) -> float:
        """Reach of the longest arm in the space, metres."""
        return self.config.max_reach

    @property
    def genome_dim(self) -> int:
        """Genome length: 1 gene for the joint count + one per possible link."""
        return 1 + self.max_links

    @property
    def num_link_choices(self) -> int:
        return self.max_links - self.min_links + 1

    def check(self, body: Morphology, widenable: bool = True) -> Morphology:
        """Raise ValueError naming the field, the value and the allowed range if ``body`` is outside.
        ``widenable``: the message may suggest widening the body space in --config (not where the
        space is fixed, e.g. a finished run's)."""
        if not self.min_links <= body.num_links <= self.max_links:
            widen = " or widen body_space.min_links/max_links in --config" if widenable else ""
            raise ValueError(
                f"num_links is {body.num_links}, outside the body space's range "
                f"[{self.min_links}, {self.max_links}] (body_space.min_links/max_links): give {self.min_links} to "
                f"{self.max_links} link lengths{',' if widenable else ''}{widen}."
            )
        low, high = self.length_bounds
        for i, length in enumerate(body.link_lengths):
            if not low - 1e-9 <= length <= high + 1e-9:
                widen = ", or widen body_space.min_link_length/max_link_length in --config" if widenable else ""
                raise ValueError(
                    f"link_lengths[{i}] is {length} m, outside the allowed range [{low}, {high}] m "
                    f"(body_space.min_link_length/max_link_length): give a length in that range{widen}."
                )
        return body

    def decode(self, genome: Sequence[float] | np.ndarray) -> Morphology:
        """Genome in [0,1]^genome_dim -> body. Values outside [0,1] are clipped; NaN is an error."""
        g = np.asarray(genome, dtype=np.float64)
        if g.shape != (self.genome_dim,):
            raise ValueError(
                f"genome has shape {g.shape}, expected ({self.genome_dim},) for a body space with "
                f"max_links={self.max_links}."
            )
        if not np.all(np.isfinite(g)):
            raise ValueError(f"genome contains NaN or Inf: {g.tolist()}.")
        g = np.clip(g, 0.0, 1.0)
        index = min(int(g[0] * self.num_link_choices), self.num_link_choices - 1)
        num_links = self.min_links + index
        low, high = self.length_bounds
        lengths = low + g[1 : 1 + num_links] * (high - low)
        return Morphology(num_links, lengths.tolist())

    def encode(self, body: Morphology) -> np.ndarray:
        """Body -> genome (float64, shape (genome_dim,)); ``decode(encode(b)) == b``.

        Genes of links the body lacks are set to 0.5 (they do not affect the body).
        """
        self.check(body)
        g = np.full(self.genome_dim, 0.5)
        g[0] = (body.num_links - self.min_links + 0.5) / self.num_link_choices
        low, high = self.length_bounds
        span = high - low
        for i, length in enumerate(body.link_lengths):
            g[1 + i] = 0.5 if span == 0 else (length - low) / span
        return np.clip(g, 0.0, 1.0)

    def random_genomes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform genomes, shape (n, genome_dim)."""
        return rng.uniform(0.0, 1.0, size=(n, self.genome_dim))

    def random_body(self, rng: np.random.Generator, num_links: int | None = None) -> Morphology:
        """A uniform random body, optionally with a given joint count."""
        genome = self.random_genomes(rng, 1)[0]
        if num_links is not None:
            self.check(Morphology(num_links, [self.length_bounds[0]] * num_links))
            genome[0] = (num_links - self.min_links + 0.5) / self.num_link_choices
        return self.decode(genome)


# --------------------------------------------------------------------------- MJCF

#: Physics timestep of every model, seconds.
PHYSICS_TIMESTEP = 0.005
#: Capsule radius of a link, metres.
LINK_RADIUS = 0.02
#: Joint range of every hinge but the base, degrees (the base turns freely through ±180°).
JOINT_RANGE_DEG = 150.0
#: Viscous damping of each hinge, N·m·s/rad.
JOINT_DAMPING = 0.2
#: Peak motor torque per metre of arm outboard of the joint, N·m/m (ctrl in [-1, 1]).
TORQUE_PER_METRE = 1.0


def arm_mjcf(
    body: Morphology, world_extras: str = "", view_radius: float = 2.0, name: str = "arm", assets: str = ""
) -> str:
    """MJCF text of ``body`` in a world with ``world_extras`` (scene geoms, goal markers), whose
    ``assets`` (e.g. the scene's wall meshes) go in the model's ``<asset>`` section.

    Each link ``i`` is a body ``link{i}`` with hinge ``joint{i}`` about z (limited to
    ±JOINT_RANGE_DEG, except the base), a capsule geom ``link{i}_geom`` along local x, and a
    torque motor ``motor{i}`` whose gear scales with the arm length outboard of the joint, so
    that a long arm can move its own length at all. Damping and armature are the same for every
    joint, so longer arms are still quicker: at full base torque a 6 x 0.25 m arm sweeps its reach
    in about half the time a 3 x 0.1 m arm does (tip speeds after 1 s ~4.7 and ~0.45 m/s). The
    fingertip is the site ``fingertip``. Gravity is off (the arm moves in a horizontal plane).
    Link geoms collide with scene geoms of contype 2 / conaffinity 1 but not with each other. The
    top-down camera ``top`` sees a disc of ``view_radius`` metres around the base.
    """
    camera_height = 1.1 * view_radius / math.tan(math.radians(22.5))
    lengths = body.link_lengths
    outboard = np.cumsum(lengths[::-1])[::-1]
    chain = ""
    closing = ""
    for i, length in enumerate(lengths):
        pos = "0 0 0" if i == 0 else f"{lengths[i - 1]:.6f} 0 0"
        limited = (
            'range="-180 180" limited="false"'
            if i == 0
            else f'range="-{JOINT_RANGE_DEG} {JOINT_RANGE_DEG}" limited="true"'
        )
        chain += (
            f'<body name="link{i}" pos="{pos}">'
            f'<joint name="joint{i}" type="hinge" axis="0 0 1" {limited}/>'
            f'<geom name="link{i}_geom" type="capsule" fromto="0 0 0 {length:.6f} 0 0" '
            f'size="{LINK_RADIUS}" rgba="0.2 0.5 0.8 1"/>'
        )
        closing += "</body>"
    tip = f'<site name="fingertip" pos="{lengths[-1]:.6f} 0 0" size="0.025" rgba="1 0.3 0.1 1"/>'
    chain += tip + closing
    motors = "".join(
        f'<motor name="motor{i}" joint="joint{i}" gear="{TORQUE_PER_METRE * outboard[i]:.6f}" '
        f'ctrlrange="-1 1" ctrllimited="true"/>'
        for i in range(body.num_links)
    )
    return f"""<mujoco model="{name}">
  <compiler angle="degree"/>
  <option timestep="{PHYSICS_TIMESTEP}" gravity="0 0 0" integrator="implicitfast"/>
  <visual><global offwidth="{MAX_RENDER_SIZE}" offheight="{MAX_RENDER_SIZE}"/></visual>
  <asset>{assets}</asset>
  <default>
    <joint damping="{JOINT_DAMPING}" armature="0.005"/>
    <geom contype="1" conaffinity="2" density="300" friction="0.5 0.005 0.0001"/>
  </default>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1" directional="true"/>
    <camera name="top" pos="0 0 {camera_height:.4f}" xyaxes="1 0 0 0 1 0" fovy="45"/>
    {world_extras}
    {chain}
  </worldbody>
  <actuator>{motors}</actuator>
</mujoco>"""


def import_mujoco() -> Any:
    """The mujoco module; RuntimeError naming ``MUJOCO_GL`` if importing it fails. mujoco loads
    the OpenGL backend MUJOCO_GL names when it is first imported, and with a backend whose library
    is missing (osmesa without libOSMesa) the import itself fails, deep inside PyOpenGL."""
    try:
        import mujoco
    except Exception as error:
        raise RuntimeError(
            f"mujoco could not be imported ({type(error).__name__}: {error}) with MUJOCO_GL="
            f"{os.environ.get('MUJOCO_GL')!r}, which this system may lack or not offer. Use {backend_advice()}, or "
            f"install that backend's library."
        ) from error
    return mujoco


def compile_arm(body: Morphology, world_extras: str = "", view_radius: float = 2.0, assets: str = "") -> "Any":
    """Compile :func:`arm_mjcf` with MuJoCo; returns an ``mujoco.MjModel``.

    Raises ValueError (with MuJoCo's message) if the scene extras do not compile.
    """
    mujoco = import_mujoco()

    xml = arm_mjcf(body, world_extras, view_radius, assets=assets)
    try:
        return mujoco.MjModel.from_xml_string(xml)
    except ValueError as error:
        raise ValueError(f"MuJoCo could not compile the model of {body}: {error}") from error
