"""Shared fixtures: tiny seeded scenes and cameras, and ../shared/data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download weights, whatever the environment says

from ovseg_core.camera import Camera  # noqa: E402
from ovseg_core.synthetic import random_scene  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture
def tiny_scene():
    return random_scene(300, sh_degree=3, seed=3)


@pytest.fixture
def tiny_camera() -> Camera:
    return Camera.look_at([2.2, -1.8, 1.3], [0, 0, 0], width=40, height=30, fov_y_deg=55)
