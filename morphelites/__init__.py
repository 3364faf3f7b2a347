"""morphelites: MAP-Elites over robot bodies, each scored by a shared, morphology-conditioned PPO policy."""

import os as _os

# Headless rendering by default: MuJoCo reads MUJOCO_GL when it is first imported.
_os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"
