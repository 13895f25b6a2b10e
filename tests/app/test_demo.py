"""The built-in demo: the shipped fields answer text prompts offline, and the demo pipeline trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from ovseg_app.demo import (
    DEMO_FIELDS_PATH,
    DEMO_PATH,
    demo_text_encoder,
    demo_vocabulary,
    load_demo_fields,
    load_demo_scene,
)
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.camera import orbit_cameras
from ovseg_core.fields import FieldQuery
from ovseg_core.fields.discovery import discover_fields
from ovseg_core.models.registry import text_encoder_for
from ovseg_core.render import make_renderer
from ovseg_core.synthetic import DEMO_OBJECTS

NAMES = [o.name for o in DEMO_OBJECTS]


@pytest.fixture(scope="module")
def shipped():
    scene = load_demo_scene()
    fields = load_demo_fields(scene)
    assert fields is not None, f"{DEMO_FIELDS_PATH} is missing or stale; run scripts/make_demo_fields.py"
    return scene, fields, demo_text_encoder(fields)


def test_shipped_fields_are_small_and_discoverable(shipped):
    scene, fields, enc = shipped
    assert DEMO_FIELDS_PATH.stat().st_size < 2_000_000
    found = discover_fields(DEMO_PATH, scene)
    assert found is not None and text_encoder_for(found).name == enc.name == fields.encoder_name
    assert enc.name.startswith("vocabulary:")


# Per-Gaussian relevancy alone (no spatial consistency): parts of objects resting on the table (the
# box's bottom face, the mug's rim in the table's fuzz) are seen by no view or only as slivers of
# table pixels, so their registered features are the table's. Measured on the shipped fields:
# table 0.87, red mug 0.91, yellow ball 0.84, blue box 0.75, green plant 0.74.
MIN_IOU = {"table": 0.85, "red mug": 0.88, "yellow ball": 0.8, "blue box": 0.72, "green plant": 0.7}


def test_shipped_fields_select_each_demo_object(shipped):
    scene, fields, enc = shipped
    query = FieldQuery(fields, enc)
    truth = scene.extras["object_id"]
    for k, name in enumerate(NAMES):
        rel, _ = query.gaussian_relevancy(name)
        selected, gt = rel > 0.5, truth == k
        iou = (selected & gt).sum() / (selected | gt).sum()
        assert iou >= MIN_IOU[name], f"{name}: per-Gaussian IoU {iou:.3f}"
    rel, _ = query.gaussian_relevancy("mug")  # a word of the name finds the same object
    assert np.array_equal(rel, query.gaussian_relevancy("red mug")[0])


def test_prompt_and_click_select_whole_demo_objects(shipped):
    """Spatial consistency (evidence against colour-weighted neighbours) brings the buried and unseen
    parts back: measured prompt IoU 0.97-1.0 and clicks covering 0.97-1.0 with no other object."""
    scene, fields, enc = shipped
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=enc)
    truth = scene.extras["object_id"]
    for k, name in enumerate(NAMES):
        session.set_prompt(positives=(name,))
        sel = session.prompt_selection()
        assert (sel & (truth == k)).sum() / (sel | (truth == k)).sum() >= 0.95, name
    renderer = make_renderer("cpu")
    onehot = F.one_hot(torch.from_numpy(truth).long(), len(NAMES)).float()
    for cam in orbit_cameras((0, 0, 0.8), 1.4, 3, elevation_deg=35, width=200, height=150):  # not training views
        weight = renderer.render(scene, cam, features=onehot).features[0].numpy()
        for k, name in enumerate(NAMES):
            # click where a user would: the pixel of the object's silhouette deepest inside it
            depth = distance_transform_edt(weight[..., k] > 0.5)
            y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
            session.click(cam, (x + 0.5, y + 0.5))
            sel = session.selection
            covered, others = sel[truth == k].mean(), (truth[sel] != k).mean()
            assert covered >= 0.95 and others < 0.02, (name, covered, others)


def test_shipped_fields_segment_the_mug_in_a_view(shipped):
    scene, fields, enc = shipped
    query = FieldQuery(fields, enc)
    renderer = make_renderer("cpu")
    cam = orbit_cameras((0, 0, 0.8), 1.4, 3, elevation_deg=35, width=200, height=150)[0]  # not a training view
    onehot = F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), len(NAMES)).float()
    weight, obj = renderer.render(scene, cam, features=onehot).features[0].max(dim=-1)
    gt = ((obj == 1) & (weight > 0.5)).numpy()
    pred = query.pixel_relevancy(renderer, scene, cam, "red mug")[0] > 0.5
    iou = (pred & gt).sum() / (pred | gt).sum()
    assert gt.sum() > 100 and iou >= 0.8, f"red mug pixel IoU {iou:.3f}"


def enc_name() -> str:
    return "vocabulary:" + demo_vocabulary().name
