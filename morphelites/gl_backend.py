"""Which OpenGL backend MuJoCo should use (``MUJOCO_GL``), and what to advise when it fails.

MuJoCo reads ``MUJOCO_GL`` when it is first imported and refuses, at import, a value its platform
does not have (``egl`` outside Linux), so a default must depend on the operating system.
"""

from __future__ import annotations

import ctypes
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


def loadable(name: str) -> bool:
    """Whether ``lib<name>.so`` loads here, tried as PyOpenGL loads it (``lib<name>.so``, then
    ``.so.9`` down to ``.so.0``, by the dynamic loader: LD_LIBRARY_PATH and the ldconfig cache).
    ``ctypes.util.find_library`` sees only the ldconfig cache and missed libraries that an HPC
    module, conda or a GPU node put on LD_LIBRARY_PATH (a second review)."""
    for filename in [f"lib{name}.so", *(f"lib{name}.so.{i}" for i in range(9, -1, -1))]:
        try:
            ctypes.CDLL(filename)
        except OSError:
            continue
        return True
    return False


def headless_default(system: str | None = None, loadable: Callable[[str], bool] = loadable) -> str | None:
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
    if loadable("EGL") and any(loadable(gl) for gl in _EGL_GL_LIBRARIES):
        return "egl"
    if loadable("OSMesa"):
        return "osmesa"
    return None


def backend_advice(system: str | None = None) -> str:
    """What to set ``MUJOCO_GL`` to on this system, e.g. ``MUJOCO_GL=cgl (or glfw)`` on macOS."""
    backend, fallbacks = _HEADLESS.get(system or platform.system(), ("glfw", "through a display"))
    return f"MUJOCO_GL={backend} ({fallbacks})"
