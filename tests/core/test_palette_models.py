"""Palette demo models, the vocabulary in a fields checkpoint, and the shipped demo fields
answering text prompts offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovseg_app.demo import (
    DEMO_FIELDS_PATH,
    DEMO_PATH,
    demo_capture_cameras,
    demo_text_encoder,
    demo_vocabulary,
    load_demo_fields,
    load_demo_scene,
    train_demo_fields,
)
from ovseg_core.camera import orbit_cameras
from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields import FieldQuery, LanguageFields, LevelCodes, load_fields
from ovseg_core.fields.discovery import discover_fields, text_encoder_for
from ovseg_core.models import ImageEncoder, MaskGenerator, TextEncoder
from ovseg_core.models.palette_models import (
    PaletteImageEncoder,
    PaletteMaskGenerator,
    Vocabulary,
    VocabularyTextEncoder,
)
from ovseg_core.render import make_renderer
from ovseg_core.synthetic import DEMO_OBJECTS

NAMES = [o.name for o in DEMO_OBJECTS]


def test_vocabulary_text_encoder_matches_phrases():
    enc = VocabularyTextEncoder(demo_vocabulary())
    assert isinstance(enc, TextEncoder) and enc.name == "vocabulary:ovseg-demo-tabletop-v1" and enc.embed_dim == 64
    cases = {
        "red mug": "red mug",
        "Red Mug!": "red mug",
        "mug": "red mug",
        "the red mug": "red mug",
        "mugs": "red mug",
        "ball": "yellow ball",
        "a yellow ball": "yellow ball",
        "red ball": "yellow ball",
        "box": "blue box",
        "plant": "green plant",
        "the table": "table",
        "red": "red mug",
    }
    for phrase, name in cases.items():
        assert enc.match(phrase) == name, phrase
    for phrase in ("object", "things", "stuff", "texture", "a cat", "", "the"):
        assert enc.match(phrase) is None, phrase
    e = enc.encode_texts(["mug", "red mug", "object", "zebra"])
    assert e.shape == (4, 64) and torch.allclose(e.norm(dim=1), torch.ones(4))
    assert torch.equal(e[0], e[1]) and torch.equal(e[2], e[3])
    assert torch.equal(e[2], enc.vocabulary.generic)
    # like CLIP: entries share a common component, so each is nearer "object" than to each other
    sims = enc.vocabulary.features @ enc.vocabulary.features.T
    assert (sims[~torch.eye(5, dtype=bool)] < (enc.vocabulary.features @ enc.vocabulary.generic).min()).all()


def test_palette_masks_and_image_encoder():
    vocab = demo_vocabulary()
    masks, enc = PaletteMaskGenerator(vocab.colors.numpy()), PaletteImageEncoder(vocab)
    assert isinstance(masks, MaskGenerator) and isinstance(enc, ImageEncoder)
    img = np.zeros((40, 60, 3), np.uint8)
    img[:20, :30] = np.round(np.array(DEMO_OBJECTS[1].color) * 255)
    img[20:, 30:] = np.round(np.array(DEMO_OBJECTS[3].color) * 255)
    out = masks.generate(img)
    assert set(out) == {"default", "s", "m", "l"} and len(out["default"]) == 2 and len(out["l"]) == 2
    crops = torch.zeros(2, 3, enc.input_size, enc.input_size)
    crops[0, :, 4:20, 4:20] = torch.tensor(DEMO_OBJECTS[1].color)[:, None, None]
    crops[1, :, 10:12, 10:30] = torch.tensor(DEMO_OBJECTS[3].color)[:, None, None]
    assert torch.equal(enc.encode_images(crops), vocab.features[[1, 3]])


def test_vocabulary_round_trips_through_a_checkpoint(tmp_path):
    vocab = Vocabulary.build(["a", "b c"], [[1, 0, 0], [0, 1, 0]], dim=8, seed=3)
    fields = LanguageFields(
        levels={
            0: LevelCodes(idx=torch.zeros(3, 2, dtype=torch.long), val=torch.full((3, 2), 0.5), basis=torch.randn(4, 8))
        },
        method="langsplatv2",
        encoder_name=PaletteImageEncoder(vocab).name,
        embed_dim=8,
        scene_fingerprint="x",
        num_gaussians=3,
        config={"vocabulary": vocab.to_dict()},
    )
    loaded = load_fields(fields.save(tmp_path / "f.pt"))  # weights_only loading
    back = Vocabulary.from_dict(loaded.config["vocabulary"])
    assert back.name == vocab.name and back.names == vocab.names
    for a in ("colors", "features", "generic"):
        assert torch.equal(getattr(back, a), getattr(vocab, a))
    enc = text_encoder_for(loaded)
    assert isinstance(enc, VocabularyTextEncoder) and enc.name == loaded.encoder_name
    assert torch.equal(enc.encode_texts(["c"]), vocab.features[[1]])
    del loaded.config["vocabulary"]
    with pytest.raises(FieldMismatchError, match="carry no vocabulary"):
        text_encoder_for(loaded)


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


# Parts of objects resting on the table (the box's whole bottom face, the ball's and mug's lowest
# rim) are in no view; they take their nearest observed neighbour's codes, often the table's, so
# a per-Gaussian IoU of 1 is impossible. Measured on the shipped fields: table 0.81, red mug 0.77,
# yellow ball 0.74, blue box 0.70, green plant 0.86.
MIN_IOU = {"table": 0.75, "red mug": 0.7, "yellow ball": 0.7, "blue box": 0.68, "green plant": 0.7}


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


def test_demo_pipeline_trains_in_small(tmp_path):
    scene = load_demo_scene()
    cams = demo_capture_cameras(64, 48, per_ring=2)
    result = train_demo_fields(scene, tmp_path, cameras=cams, max_steps=20)
    assert result.final_losses[0] < 0.5 * result.initial_losses[0], (result.initial_losses, result.final_losses)
    fields = result.fields
    assert fields.encoder_name == enc_name() and fields.state == {}  # filled: factored form only
    assert Vocabulary.from_dict(fields.config["vocabulary"]).names == NAMES
    fields.save(tmp_path / "f.pt")
    assert text_encoder_for(load_fields(tmp_path / "f.pt", scene)).name == enc_name()


def enc_name() -> str:
    return "vocabulary:" + demo_vocabulary().name
