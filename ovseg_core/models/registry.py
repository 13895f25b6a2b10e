"""Text encoders by name scheme. Every image encoder's ``name`` (stored in each fields checkpoint and
instance set as ``encoder_name``) starts with its scheme; the scheme's builder makes the matching
text tower again, so a query embeds prompts in the space the features were made in.

Adding a 2D model: its module (an image encoder whose ``name`` starts with a new scheme, and a
builder ``(record, clip) -> TextEncoder``) plus one line in ``TEXT_ENCODERS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

from ovseg_core.errors import ModelLoadError

if TYPE_CHECKING:
    from ovseg_core.models.config import OpenClipConfig
    from ovseg_core.models.protocols import TextEncoder

TEXT_ENCODERS: dict[str, str] = {
    "vocabulary:": "ovseg_core.models.palette_models:vocabulary_text_encoder",
    "open_clip:ovseg-tiny-clip:": "ovseg_core.models.open_clip_encoder:recorded_tiny_text_encoder",
    "open_clip:": "ovseg_core.models.open_clip_encoder:recorded_text_encoder",
}
"""Scheme (a name prefix) -> ``module:builder``; the longest matching scheme wins. Builders are
imported when used, so a scheme's dependencies (open_clip, sam2) load only for its encoders."""


class EncoderRecord(Protocol):
    """What fields and instance sets record about the encoder that made their features."""

    encoder_name: str
    embed_dim: int
    config: Any
    """Free-form settings; the ``vocabulary:`` scheme stores its vocabulary here."""
    source: Any
    """Where the record was loaded from (for messages), or None."""


def scheme_of(encoder_name: str) -> str | None:
    """The registered scheme ``encoder_name`` belongs to (the longest matching prefix), or None."""
    matches = [s for s in TEXT_ENCODERS if encoder_name.startswith(s)]
    return max(matches, key=len) if matches else None


def text_encoder_for(record: EncoderRecord, clip: OpenClipConfig | None = None) -> TextEncoder:
    """The text encoder matching ``record.encoder_name``; ``clip`` overrides OpenCLIP's model and
    weights (also for a name of no registered scheme). Raises ``ModelLoadError`` when no scheme fits."""
    scheme = scheme_of(record.encoder_name)
    if scheme is None:
        if clip is not None:
            scheme = "open_clip:"
        else:
            raise ModelLoadError(
                f"no text encoder is registered for the encoder {record.encoder_name!r} "
                f"(schemes: {', '.join(TEXT_ENCODERS)}); pass an OpenCLIP model (--clip-model/--clip-pretrained)"
            )
    module, _, builder = TEXT_ENCODERS[scheme].partition(":")
    return getattr(importlib.import_module(module), builder)(record, clip)
