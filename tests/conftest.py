"""Shared fixtures: tiny seeded scenes and cameras, ../shared/data when present, and the planted
training run (the expensive one: built once per session, used by the pipeline and viewer tests).

Markers (registered in pyproject.toml): ``slow`` (over ~10 s: tiny SAM 2/OpenCLIP runs, benches,
subprocess servers), ``browser`` (chromium through playwright, also slow). The quick loop is
``pytest -m "not slow"``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download weights, whatever the environment says

from ovseg_core.camera import Camera  # noqa: E402
from ovseg_core.synthetic import random_scene  # noqa: E402

SHARED_DATA = Path(os.environ.get("OVSEG_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
"""../shared/data beside the checkout (or $OVSEG_SHARED_DATA, e.g. from a git worktree elsewhere)."""


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001
    """Everything under tests/browser is a ``browser`` test, and slow."""
    browser_dir = Path(__file__).resolve().parent / "browser"
    for item in items:
        if browser_dir in item.path.resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def splat_transform():
    """PlayCanvas splat-transform, the peer for .ply/.spz/.sog/.ksplat (tests/splat_transform_peer.py); skips
    without node/npm, fails when npm is there but the pinned install fails."""
    from splat_transform_peer import install, node_tools_present

    if not node_tools_present():
        pytest.skip("node/npm absent: the splat-transform peer tests need them")
    return install()


@pytest.fixture
def tiny_scene():
    return random_scene(300, sh_degree=3, seed=3)


@pytest.fixture
def tiny_camera() -> Camera:
    return Camera.look_at([2.2, -1.8, 1.3], [0, 0, 0], width=40, height=30, fov_y_deg=55)


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory):
    """The floating-objects scene, a 24-view ring capture at 128x96 written to ``root`` (the returned
    directory) and LangSplatV2 fields trained 300 steps on planted features (level 0, every 6th view
    held out, run directory ``root/logs/planted``): (scene, root, result, encoder, masks, events).
    ``masks`` counts its calls (cache tests read the count before and after)."""
    import numpy as np
    from planted_models import ColourMaskGenerator, PlantedEncoder

    from ovseg_core.camera import orbit_cameras
    from ovseg_core.fields.config import LanguageTrainConfig
    from ovseg_core.pipeline import train_from_dataset
    from ovseg_core.synthetic import FLOATING_OBJECTS, floating_objects_scene, write_capture

    palette = np.array([o.color for o in FLOATING_OBJECTS])
    scene = floating_objects_scene()
    root = tmp_path_factory.mktemp("planted")
    cams = [
        c for el in (50, 10, -35) for c in orbit_cameras((0, 0, 0.05), 2.0, 8, elevation_deg=el, width=128, height=96)
    ]
    write_capture(scene, cams, root)
    masks = ColourMaskGenerator(palette)
    encoder = PlantedEncoder(palette, [o.name for o in FLOATING_OBJECTS])
    events = []
    result = train_from_dataset(
        scene,
        root,
        config=LanguageTrainConfig(feature_level=0, max_steps=300, log_every=20, val_every=100),
        use_every_n_as_val=6,
        log_path=root / "logs",
        run_name="planted",
        mask_generator=masks,
        image_encoder=encoder,
        progress=events.append,
    )
    return scene, root, result, encoder, masks, events
