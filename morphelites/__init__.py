"""morphelites: MAP-Elites over robot bodies, each scored by a shared, morphology-conditioned PPO policy."""

import os as _os

from morphelites.gl_backend import headless_default as _headless_default

# Headless rendering by default on Linux: MuJoCo reads MUJOCO_GL when it is first imported.
if "MUJOCO_GL" not in _os.environ and (_backend := _headless_default()) is not None:
    _os.environ["MUJOCO_GL"] = _backend

__version__ = "0.1.0"
