"""scripts/make_demo_fields.py: the demo fields are made by the ordinary pipeline with the palette models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ovseg_app.demo import demo_vocabulary, load_demo_scene
from ovseg_core.fields import load_fields
from ovseg_core.models.palette_models import Vocabulary
from ovseg_core.models.registry import text_encoder_for
from ovseg_core.synthetic import DEMO_OBJECTS

NAMES = [o.name for o in DEMO_OBJECTS]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_demo_fields.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_demo_fields", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_pipeline_trains_in_small(tmp_path):
    make = _script()
    scene = load_demo_scene()
    cams = make.demo_capture_cameras(64, 48, per_ring=2)
    result = make.train_demo_fields(scene, tmp_path, cameras=cams, max_steps=20)
    assert result.final_losses[0] < 0.5 * result.initial_losses[0], (result.initial_losses, result.final_losses)
    fields = result.fields
    assert fields.encoder_name == enc_name() and fields.state == {}  # filled: factored form only
    assert Vocabulary.from_dict(fields.config["vocabulary"]).names == NAMES
    fields.save(tmp_path / "f.pt")
    assert text_encoder_for(load_fields(tmp_path / "f.pt", scene)).name == enc_name()


def enc_name() -> str:
    return "vocabulary:" + demo_vocabulary().name
