"""Palette demo models and the vocabulary in a fields checkpoint (the shipped demo fields are tested
in tests/app/test_demo.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovseg_app.demo import (
    demo_vocabulary,
)
from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields import LanguageFields, LevelCodes, load_fields
from ovseg_core.models import ImageEncoder, MaskGenerator, TextEncoder
from ovseg_core.models.palette_models import (
    PaletteImageEncoder,
    PaletteMaskGenerator,
    Vocabulary,
    VocabularyTextEncoder,
)
from ovseg_core.models.registry import text_encoder_for
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
