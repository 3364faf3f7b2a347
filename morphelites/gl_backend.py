"""Which OpenGL backend MuJoCo should use (``MUJOCO_GL``), and what to advise when it fails.

MuJoCo reads ``MUJOCO_GL`` when it is first imported and refuses, at import, a value its platform
does not have (``egl`` outside Linux), so a default must depend on the operating system.
"""

from __future__ import annotations

import platform

#: The backend per ``platform.system()`` that renders without a display, and its fallbacks.
_HEADLESS: dict[str, tuple[str, str]] = {
    "Linux": ("egl", "osmesa where EGL is missing (install libosmesa6), or glfw to render through a display"),
    "Darwin": ("cgl", "or glfw"),
    "Windows": ("wgl", "or glfw"),
}


def headless_default(system: str | None = None) -> str | None:
    """The ``MUJOCO_GL`` to set when the user set none: ``egl`` on Linux (it needs no display),
    None elsewhere, where MuJoCo's own default already needs none and ``egl`` would break its import."""
    return "egl" if (system or platform.system()) == "Linux" else None


def backend_advice(system: str | None = None) -> str:
    """What to set ``MUJOCO_GL`` to on this system, e.g. ``MUJOCO_GL=cgl (or glfw)`` on macOS."""
    backend, fallbacks = _HEADLESS.get(system or platform.system(), ("glfw", "through a display"))
    return f"MUJOCO_GL={backend} ({fallbacks})"
