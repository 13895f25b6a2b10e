"""The registries: renderer backends by name (ovseg_core.render.BACKENDS) and text encoders by the
scheme of an encoder's name (ovseg_core.models.registry.TEXT_ENCODERS)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from ovseg_core.errors import FieldMismatchError, ModelLoadError
from ovseg_core.render import BACKENDS, Backend, BackendName, Renderer, RenderSettings, make_renderer


def test_backend_names_follow_the_registry():
    assert typing.get_args(BackendName) == ("auto", *BACKENDS)
    assert {"cpu", "torch", "fvdb"} <= set(BACKENDS)
    for name, backend in BACKENDS.items():
        cls = backend.renderer_class()
        assert cls.name == name  # a renderer reports the name it is registered under
    renderer = make_renderer("cpu", RenderSettings(background=(1.0, 0.0, 0.0)))
    assert isinstance(renderer, Renderer) and renderer.settings.background == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="unknown render backend 'nope'; choose one of auto, fvdb, cpu, torch"):
        make_renderer("nope")


class _Background:
    """A renderer module of its own would hold this; registering it is one BACKENDS entry."""

    name = "flat"

    def __init__(self, settings: RenderSettings | None = None) -> None:
        self.settings = settings or RenderSettings()


class _First(_Background):
    name = "first"


def _never() -> bool:
    return False


def test_auto_takes_the_first_available_backend_it_may_take():
    saved = dict(BACKENDS)
    BACKENDS.clear()
    BACKENDS.update(
        {
            "missing": Backend(f"{__name__}:_Background", available=f"{__name__}:_never"),
            "manual": Backend(f"{__name__}:_Background", auto=False),
            "first": Backend(f"{__name__}:_First"),
            "flat": Backend(f"{__name__}:_Background"),
        }
    )
    try:
        assert make_renderer("auto").name == "first"  # not the unavailable one, nor the one auto may not take
        BACKENDS["first"] = Backend(f"{__name__}:_First", auto=False)
        assert make_renderer("auto").name == "flat"
    finally:
        BACKENDS.clear()
        BACKENDS.update(saved)


def test_a_new_backend_is_one_registry_entry():
    BACKENDS["flat"] = Backend(f"{__name__}:_Background", auto=False)
    try:
        renderer = make_renderer("flat")
        assert isinstance(renderer, _Background) and renderer.settings == RenderSettings()
        assert make_renderer("auto").name != "flat"  # auto=False keeps it out of the automatic choice
    finally:
        del BACKENDS["flat"]


@dataclasses.dataclass
class Record:
    encoder_name: str
    embed_dim: int = 32
    config: dict = dataclasses.field(default_factory=dict)
    source: str | None = "fields.pt"


def test_text_encoders_by_scheme():
    from ovseg_core.models.palette_models import Vocabulary, VocabularyTextEncoder
    from ovseg_core.models.registry import scheme_of, text_encoder_for

    assert scheme_of("open_clip:ovseg-tiny-clip:random-seed3") == "open_clip:ovseg-tiny-clip:"
    assert scheme_of("open_clip:ViT-B-16:laion2b_s34b_b88k") == "open_clip:"
    assert scheme_of("something-else") is None

    tiny = text_encoder_for(Record("open_clip:ovseg-tiny-clip:random-seed3"))
    assert tiny.name == "open_clip:ovseg-tiny-clip:random-seed3"

    vocab = Vocabulary.build(["mug", "ball"], [(1, 0, 0), (0, 0, 1)], dim=16, name="reg")
    name = VocabularyTextEncoder(vocab).name
    enc = text_encoder_for(Record(name, 16, {"vocabulary": vocab.to_dict()}))
    assert isinstance(enc, VocabularyTextEncoder) and enc.name == name
    with pytest.raises(FieldMismatchError, match="carry no vocabulary"):
        text_encoder_for(Record(name, 16))

    with pytest.raises(ModelLoadError, match="no text encoder is registered for the encoder 'something-else'"):
        text_encoder_for(Record("something-else"))
