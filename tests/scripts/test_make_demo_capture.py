"""scripts/make_demo_capture.py: the shipped demo capture is what the script renders from the demo scene."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ovseg_app.demo import DEMO_CAPTURE_DIR, demo_capture_for, load_demo_scene

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script():
    sys.path.insert(0, str(SCRIPTS))  # the script imports its sibling make_demo_fields
    try:
        spec = importlib.util.spec_from_file_location("make_demo_capture", SCRIPTS / "make_demo_capture.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


def test_the_script_reproduces_the_shipped_capture(tmp_path):
    out = _script().make_demo_capture(tmp_path / "capture")
    assert json.loads((out / "scene.json").read_text()) == json.loads((DEMO_CAPTURE_DIR / "scene.json").read_text())
    made = json.loads((out / "transforms.json").read_text())["frames"]
    shipped = json.loads((DEMO_CAPTURE_DIR / "transforms.json").read_text())["frames"]
    assert [f["file_path"] for f in made] == [f["file_path"] for f in shipped]
    for a, b in zip(made, shipped):
        np.testing.assert_allclose(a["transform_matrix"], b["transform_matrix"], atol=1e-9)
        assert (a["w"], a["h"], a["fl_x"]) == (b["w"], b["h"], b["fl_x"])
        new = np.asarray(Image.open(out / a["file_path"]), np.int16)
        old = np.asarray(Image.open(DEMO_CAPTURE_DIR / b["file_path"]), np.int16)
        assert np.abs(new - old).max() <= 1, a["file_path"]  # rounding of the last bit at most
    assert demo_capture_for(load_demo_scene()) == DEMO_CAPTURE_DIR
