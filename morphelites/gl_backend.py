"""Which OpenGL backend MuJoCo should use (``MUJOCO_GL``), and what to advise when it fails.

MuJoCo reads ``MUJOCO_GL`` when it is first imported and refuses, at import, a value its platform
does not have (``egl`` outside Linux), so a default must depend on the operating system.
"""

from __future__ import annotations

import ctypes.util
import platform
from collections.abc import Callable

#: The backend per ``platform.system()`` that renders without a display, and its fallbacks.
_HEADLESS: dict[str, tuple[str, str]] = {
    "Linux": ("egl", "osmesa where EGL is missing (install libosmesa6), glfw to render through a display, or "
                     "disable for a run that renders nothing"),
    "Darwin": ("cgl", "or glfw"),
    "Windows": ("wgl", "or glfw"),
}


#: The OpenGL libraries PyOpenGL's EGL platform loads beside libEGL (one suffices): libEGL alone
#: (Debian's libegl1 without libgl1 or libgles2) fails mujoco's import as a missing libEGL does.
_EGL_GL_LIBRARIES = ("OpenGL", "GL", "GLESv2", "GLESv1_CM")


def headless_default(system: str | None = None,
                     find_library: Callable[[str], str | None] = ctypes.util.find_library) -> str | None:
    """The ``MUJOCO_GL`` to set when the user set none. On Linux a backend that needs no display
    and whose libraries this machine has: ``egl`` (libEGL, and an OpenGL library beside it, which
    PyOpenGL's EGL platform loads too), else ``osmesa``, else None. None elsewhere, where MuJoCo's
    own default already needs no display and ``egl`` would break its import.

    Naming a backend whose library is missing would break more than rendering: mujoco loads it
    as it is first imported, so every simulation (training included) would fail. With neither,
    MuJoCo's own default (glfw) imports, and only rendering needs a display.
    """
    if (system or platform.system()) != "Linux":
        return None
    if find_library("EGL") is not None and any(find_library(gl) is not None for gl in _EGL_GL_LIBRARIES):
        return "egl"
    if find_library("OSMesa") is not None:
        return "osmesa"
    return None


def backend_advice(system: str | None = None) -> str:
    """What to set ``MUJOCO_GL`` to on this system, e.g. ``MUJOCO_GL=cgl (or glfw)`` on macOS."""
    backend, fallbacks = _HEADLESS.get(system or platform.system(), ("glfw", "through a display"))
    return f"MUJOCO_GL={backend} ({fallbacks})"
