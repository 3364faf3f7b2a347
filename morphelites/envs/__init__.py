"""Tasks the bodies are scored on."""

from morphelites.envs.reach import FEATURES_PER_JOINT, ObservationLayout, ReachEnv
from morphelites.envs.scenes import SCENES, Scene, Wall, make_scene

__all__ = ["ReachEnv", "ObservationLayout", "FEATURES_PER_JOINT", "Scene", "Wall", "make_scene", "SCENES"]
