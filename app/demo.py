"""The built-in demo scene: ``assets/demo_scene.ply`` in a checkout, regenerated if absent."""

from __future__ import annotations

from pathlib import Path

from ovseg_core.io import load_scene
from ovseg_core.scene import GaussianScene
from ovseg_core.synthetic import demo_scene

DEMO_PATH = Path(__file__).resolve().parents[1] / "assets" / "demo_scene.ply"


def load_demo_scene() -> GaussianScene:
    """The shipped demo PLY when present (checkout / editable install), else the same scene built in memory."""
    if DEMO_PATH.exists():
        return load_scene(DEMO_PATH)
    return demo_scene()
