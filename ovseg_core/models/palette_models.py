"""Demo models for scenes made of flat-coloured objects: a palette mask generator, a palette image
encoder and a fixed-vocabulary text encoder, all sharing one ``Vocabulary``.

These are **not** general-purpose models. They exist so that the built-in demo scene (a table with
a red mug, a yellow ball, a blue box and a green plant, each one flat colour) can be segmented and
queried by text fully offline, without SAM 2 or CLIP weights, through exactly the same protocols,
preprocessing, LangSplatV2 training and relevancy code as real models:

- ``PaletteMaskGenerator``: one mask per palette colour present in the image (pixels within
  ``tolerance`` of it and nearer to it than to any other entry), grouped into the four scales.
- ``PaletteImageEncoder``: a mask crop -> the feature of the palette entry nearest to the crop's
  mean lit colour. It knows nothing but colours.
- ``VocabularyTextEncoder``: a phrase -> the feature of the vocabulary entry whose name matches it
  best (exact name, else overlapping words: "mug", "the red mug" -> "red mug"); any other phrase
  -> the shared generic vector.

Features mimic how CLIP behaves for LERF relevancy: every entry's feature is
``unit(generic + own_k)`` (seeded random unit vectors), so all entries share a common component, and
phrases outside the vocabulary, such as the canonical negatives "object", "things", "stuff" and
"texture", embed as that common component. The standard relevancy formula then scores an entry's
own region high and everything else low.

The vocabulary serialises to plain lists, strings and tensors (``to_dict`` / ``from_dict``) so it can
ride inside a language-field checkpoint (``LanguageFields.config["vocabulary"]``) that loads with
``torch.load(weights_only=True)``; ``ovseg_core.models.registry.text_encoder_for`` rebuilds the text
encoder from it for fields whose encoder name starts with ``vocabulary:``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.models.mask_scales import group_by_scale
from ovseg_core.models.protocols import SCALES, MaskSet

if TYPE_CHECKING:
    from ovseg_core.models.registry import EncoderRecord

VOCABULARY_PREFIX = "vocabulary:"
"""Encoder names of the palette image encoder and the vocabulary text encoder start with this."""

_STOPWORDS = frozenset({"a", "an", "the", "of", "on", "in", "at", "with", "and", "some", "this", "that", "my"})


def _tokens(text: str) -> list[str]:
    """Lower-case words with a naive plural stripped ("mugs" -> "mug", "glass" stays)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]


@dataclasses.dataclass
class Vocabulary:
    """Named flat-coloured objects with one unit feature each, plus the generic (any other phrase) vector."""

    name: str
    """Identifies this vocabulary (part of the encoder names, so of cache keys and checkpoints);
    change it whenever names, colours or features change."""
    names: list[str]
    colors: torch.Tensor
    """``[K, 3]`` float32 RGB in [0, 1], the colour each object shows."""
    features: torch.Tensor
    """``[K, D]`` float32 unit vectors, one per name."""
    generic: torch.Tensor
    """``[D]`` float32 unit vector: what any phrase outside the vocabulary embeds as."""

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        self.colors = torch.as_tensor(self.colors, dtype=torch.float32).reshape(-1, 3)
        self.features = torch.as_tensor(self.features, dtype=torch.float32)
        self.generic = torch.as_tensor(self.generic, dtype=torch.float32).reshape(-1)
        K = len(self.names)
        if K == 0:
            raise ValueError("a vocabulary needs at least one name")
        if len(set(n.strip().lower() for n in self.names)) != K:
            raise ValueError(f"vocabulary names must be distinct, got {self.names}")
        if self.colors.shape[0] != K or self.features.ndim != 2 or self.features.shape[0] != K:
            raise ValueError(
                f"vocabulary of {K} names needs colors [{K}, 3] and features [{K}, D], "
                f"got {list(self.colors.shape)} and {list(self.features.shape)}"
            )
        if self.generic.shape[0] != self.features.shape[1]:
            raise ValueError(f"generic vector has {self.generic.shape[0]} dims, features have {self.features.shape[1]}")

    @property
    def embed_dim(self) -> int:
        return int(self.features.shape[1])

    @classmethod
    def build(
        cls, names: Sequence[str], colors: Any, *, dim: int = 64, seed: int = 0, name: str | None = None
    ) -> Vocabulary:
        """Seeded features ``unit(generic + own_k)``; ``name`` defaults to a digest of the inputs."""
        g = torch.Generator().manual_seed(seed)
        generic = F.normalize(torch.randn(dim, generator=g), dim=0)
        own = F.normalize(torch.randn(len(names), dim, generator=g), dim=1)
        features = F.normalize(generic + own, dim=1)
        colors_t = torch.as_tensor(np.asarray(colors, dtype=np.float32))
        if name is None:
            digest = hashlib.sha256(repr((list(names), colors_t.tolist(), dim, seed)).encode()).hexdigest()[:10]
            name = f"palette-{digest}"
        return cls(name=name, names=list(names), colors=colors_t, features=features, generic=generic)

    # -- serialisation (plain values only: checkpoints load with weights_only=True) -------------
    def to_dict(self) -> dict[str, Any]:
        """Strings and nested lists of floats (float32 values survive exactly), the form
        ``LanguageFields`` keeps in its checkpoint config; ``from_dict`` also accepts tensors."""
        return {
            "name": self.name,
            "names": list(self.names),
            "colors": self.colors.tolist(),
            "features": self.features.tolist(),
            "generic": self.generic.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Vocabulary:
        try:
            return cls(
                name=str(d["name"]),
                names=list(d["names"]),
                colors=d["colors"],
                features=d["features"],
                generic=d["generic"],
            )
        except KeyError as e:
            raise ValueError(f"vocabulary record lacks {e.args[0]!r} (has {sorted(d)})") from e

    # -- matching ------------------------------------------------------------------------------
    def match(self, phrase: str) -> int | None:
        """Index of the entry ``phrase`` names, or None. Exact name (case, spacing and punctuation
        ignored) first; else the entry sharing the most words with it, the entry's last word (its
        noun) counting double; ties and no shared word -> None."""
        words = [w for w in _tokens(phrase) if w not in _STOPWORDS]
        if not words:
            return None
        for k, n in enumerate(self.names):
            if [w for w in _tokens(n) if w not in _STOPWORDS] == words:
                return k
        scores = []
        for n in self.names:
            toks = [w for w in _tokens(n) if w not in _STOPWORDS]
            scores.append(sum((2 if i == len(toks) - 1 else 1) for i, w in enumerate(toks) if w in words))
        best = max(scores)
        if best == 0 or scores.count(best) > 1:
            return None
        return scores.index(best)

    def nearest_colour(self, rgb: torch.Tensor) -> int:
        return int(torch.linalg.norm(self.colors - rgb.reshape(1, 3).float(), dim=1).argmin())


class PaletteMaskGenerator:
    """One mask per palette colour present (demo scenes of flat-coloured objects only)."""

    def __init__(self, palette: Any, tolerance: float = 0.2, min_pixels: int = 4) -> None:
        self.palette = np.asarray(palette, np.float32).reshape(-1, 3)
        if tolerance <= 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        self.tolerance = float(tolerance)
        self.min_pixels = int(min_pixels)
        digest = hashlib.sha256(self.palette.tobytes()).hexdigest()[:10]
        self.name = f"palette-masks:{digest}:tol{self.tolerance:g}:min{self.min_pixels}"

    def generate(self, image: np.ndarray) -> dict[str, MaskSet]:
        rgb = np.asarray(image).astype(np.float32) / 255.0
        H, W = rgb.shape[:2]
        dist = np.linalg.norm(rgb[:, :, None, :] - self.palette[None, None], axis=-1)  # [H, W, K]
        nearest = dist.argmin(-1)
        close = dist.min(-1) < self.tolerance
        segs = [s for s in ((nearest == k) & close for k in range(len(self.palette))) if s.sum() >= self.min_pixels]
        if not segs:
            return {s: MaskSet.empty(H, W) for s in SCALES}
        seg = np.stack(segs)
        boxes = []
        for s in seg:
            ys, xs = np.nonzero(s)
            boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
        masks = MaskSet(
            segmentations=seg,
            bboxes=np.asarray(boxes, np.float32),
            areas=seg.reshape(len(seg), -1).sum(1).astype(np.int64),
            predicted_ious=np.ones(len(seg), np.float32),
            stability_scores=np.ones(len(seg), np.float32),
        )
        return group_by_scale(masks, H * W)


class PaletteImageEncoder:
    """A mask crop -> the vocabulary feature of the colour it shows (demo scenes only)."""

    def __init__(self, vocabulary: Vocabulary, input_size: int = 32, lit_threshold: float = 0.05) -> None:
        self.vocabulary = vocabulary
        self.name = VOCABULARY_PREFIX + vocabulary.name
        self.embed_dim = vocabulary.embed_dim
        self.input_size = int(input_size)
        self.lit_threshold = float(lit_threshold)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for img in images.float().cpu():
            lit = img.sum(0) > self.lit_threshold  # crops are zero outside the mask
            colour = img[:, lit].mean(dim=1) if lit.any() else torch.zeros(3)
            out.append(self.vocabulary.features[self.vocabulary.nearest_colour(colour)])
        return torch.stack(out) if out else torch.zeros(0, self.embed_dim)


class VocabularyTextEncoder:
    """Text encoder over a fixed vocabulary: a phrase naming an entry -> its feature, else the
    generic vector (demo scenes only; it understands nothing beyond the vocabulary's names)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.name = VOCABULARY_PREFIX + vocabulary.name
        self.embed_dim = vocabulary.embed_dim

    @property
    def names(self) -> list[str]:
        return list(self.vocabulary.names)

    def match(self, phrase: str) -> str | None:
        """The vocabulary name ``phrase`` resolves to, or None (it embeds as the generic vector)."""
        k = self.vocabulary.match(phrase)
        return None if k is None else self.vocabulary.names[k]

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            k = self.vocabulary.match(t)
            rows.append(self.vocabulary.generic if k is None else self.vocabulary.features[k])
        return torch.stack(rows).clone() if rows else torch.zeros(0, self.embed_dim)


def palette_models(
    vocabulary: Vocabulary, tolerance: float = 0.2
) -> tuple[PaletteMaskGenerator, PaletteImageEncoder, VocabularyTextEncoder]:
    """The mask generator, image encoder and text encoder of one vocabulary."""
    return (
        PaletteMaskGenerator(vocabulary.colors.numpy(), tolerance),
        PaletteImageEncoder(vocabulary),
        VocabularyTextEncoder(vocabulary),
    )


def vocabulary_text_encoder(fields: EncoderRecord, clip: Any = None) -> VocabularyTextEncoder:
    """The fixed-vocabulary text encoder stored in ``fields.config["vocabulary"]`` (fields trained
    with ``PaletteImageEncoder``; ``clip`` is ignored). Raises ``FieldMismatchError`` when it is
    missing or does not belong to the fields' encoder. Registered for the ``vocabulary:`` scheme."""
    from ovseg_core.errors import FieldMismatchError

    where = f" in {fields.source}" if fields.source else ""
    record = fields.config.get("vocabulary") if isinstance(fields.config, dict) else None
    if not isinstance(record, dict):
        raise FieldMismatchError(
            f"language fields{where} were trained with the fixed-vocabulary encoder {fields.encoder_name!r} "
            "but carry no vocabulary (config['vocabulary']); regenerate them with the vocabulary stored"
        )
    try:
        vocabulary = Vocabulary.from_dict(record)
    except (ValueError, TypeError, RuntimeError) as e:
        raise FieldMismatchError(f"language fields{where}: unreadable vocabulary ({e})") from e
    encoder = VocabularyTextEncoder(vocabulary)
    if encoder.name != fields.encoder_name or encoder.embed_dim != fields.embed_dim:
        raise FieldMismatchError(
            f"language fields{where} were trained with {fields.encoder_name!r} ({fields.embed_dim} dims) but "
            f"store the vocabulary {encoder.name!r} ({encoder.embed_dim} dims)"
        )
    return encoder


__all__ = [
    "VOCABULARY_PREFIX",
    "PaletteImageEncoder",
    "PaletteMaskGenerator",
    "Vocabulary",
    "VocabularyTextEncoder",
    "palette_models",
    "vocabulary_text_encoder",
]
