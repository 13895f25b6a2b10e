"""Class-agnostic 3D instances of a splat: per-Gaussian labels plus one CLIP feature per instance,
classified against any prompt list; saved as a ``torch.save`` dict (``weights_only`` loadable)."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.errors import FieldMismatchError, MissingFileError
from ovseg_core.fields.checkpoint_checks import check_instance_tensors
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.tensor_file import load_tagged_payload
from ovseg_core.models.protocols import TextEncoder
from ovseg_core.scene import GaussianScene

INSTANCES_FORMAT = "ovseg-instances"
INSTANCES_VERSION = 1
RELEVANCY_TEMPERATURE = 10.0
"""LERF's softmax temperature on cosine similarities."""


@dataclasses.dataclass
class InstanceSet:
    """Instances ``0..K-1`` of a scene with ``N`` Gaussians."""

    labels: np.ndarray
    """``[N]`` int64 instance of each Gaussian, -1 = none."""
    features: np.ndarray
    """``[K, D]`` float32 L2-normalised mean of the instance's mask features."""
    sizes: np.ndarray
    """``[K]`` int64 Gaussians per instance."""
    support: np.ndarray
    """``[K]`` int64 views whose masks built the instance."""
    scene_fingerprint: str
    encoder_name: str = ""
    """The image encoder the features came from; text prompts must use its text tower."""
    names: list[str] = dataclasses.field(default_factory=list)
    """``[K]`` best prompt per instance after ``classify`` ("" = unnamed)."""
    scores: np.ndarray | None = None
    """``[K]`` float32 score of that prompt (cosine, or relevancy with negatives)."""
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Build settings (and, for ``vocabulary:`` encoders, the vocabulary as ``config["vocabulary"]``)."""
    source: str = ""
    """The file these were loaded from, if any."""

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.features = np.asarray(self.features, dtype=np.float32)
        self.sizes = np.asarray(self.sizes, dtype=np.int64).reshape(-1)
        self.support = np.asarray(self.support, dtype=np.int64).reshape(-1)
        K = len(self.sizes)
        if self.features.ndim != 2 or self.features.shape[0] != K or self.support.shape != (K,):
            raise ValueError(
                f"features [{K}, D] and support [{K}] must match sizes [{K}]; got "
                f"{list(self.features.shape)} and {list(self.support.shape)}"
            )
        if self.labels.size and (self.labels.min() < -1 or self.labels.max() >= K):
            raise ValueError(f"labels must lie in -1..{K - 1}, got {self.labels.min()}..{self.labels.max()}")
        self.names = [str(n) for n in self.names] or [""] * K
        if len(self.names) != K:
            raise ValueError(f"names must hold {K} entries, got {len(self.names)}")
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float32).reshape(K)

    @property
    def num_instances(self) -> int:
        return len(self.sizes)

    @property
    def num_gaussians(self) -> int:
        return len(self.labels)

    @property
    def embed_dim(self) -> int:
        return int(self.features.shape[1])

    def mask(self, k: int) -> np.ndarray:
        """``[N]`` bool Gaussians of instance ``k``."""
        if not 0 <= k < self.num_instances:
            raise IndexError(f"instance {k} out of range (0..{self.num_instances - 1})")
        return self.labels == k

    def check_scene(self, scene: GaussianScene) -> None:
        """Raise ``FieldMismatchError`` unless these instances were built on ``scene``."""
        where = f" in {self.source}" if self.source else ""
        scene.check_same(
            self.scene_fingerprint,
            self.num_gaussians,
            f"instances{where} were built",
            "Build instances for this splat or load the splat they belong to.",
        )

    def similarity(self, text_encoder: TextEncoder, prompts: Sequence[str]) -> np.ndarray:
        """``[K, P]`` cosine similarity of every instance to every prompt."""
        return self.features @ self._embed(text_encoder, prompts).T

    def relevancy(self, text_encoder: TextEncoder, prompts: Sequence[str], negatives: Sequence[str]) -> np.ndarray:
        """``[K, P]`` LERF relevancy: min over negatives n of softmax(10 * [cos(f, p), cos(f, n)])[p]."""
        pos = self.similarity(text_encoder, prompts)  # [K, P]
        if not negatives:
            raise ValueError("relevancy needs at least one negative phrase")
        neg = self.features @ self._embed(text_encoder, negatives).T  # [K, Q]
        diff = RELEVANCY_TEMPERATURE * (pos[:, :, None] - neg[:, None, :])
        return (1.0 / (1.0 + np.exp(-diff))).min(axis=2).astype(np.float32)

    def classify(
        self, text_encoder: TextEncoder, prompts: Sequence[str], negatives: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best prompt per instance by cosine (or LERF relevancy when ``negatives`` are given);
        sets ``names`` and ``scores``. -> (``[K]`` int64 prompt index, ``[K]`` float32 score)."""
        prompts = list(prompts)
        if not prompts:
            raise ValueError("classify needs at least one prompt")
        scores = (
            self.relevancy(text_encoder, prompts, negatives) if negatives else self.similarity(text_encoder, prompts)
        )
        best = scores.argmax(axis=1) if self.num_instances else np.zeros(0, np.int64)
        top = scores[np.arange(self.num_instances), best].astype(np.float32)
        self.names = [prompts[b] for b in best]
        self.scores = top
        return best.astype(np.int64), top

    def _embed(self, text_encoder: TextEncoder, texts: Sequence[str]) -> np.ndarray:
        if int(text_encoder.embed_dim) != self.embed_dim:
            raise FieldMismatchError(
                f"text encoder {text_encoder.name!r} embeds in {text_encoder.embed_dim} dims; "
                f"the instance features ({self.encoder_name!r}) have {self.embed_dim}"
            )
        with torch.inference_mode():
            emb = F.normalize(text_encoder.encode_texts(list(texts)).float().cpu(), dim=-1)
        return emb.numpy().astype(np.float32)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically; loadable with ``torch.load(weights_only=True)``."""
        payload = {
            "format": INSTANCES_FORMAT,
            "version": INSTANCES_VERSION,
            "scene": {"fingerprint": self.scene_fingerprint, "num_gaussians": self.num_gaussians},
            "encoder": {"name": self.encoder_name, "embed_dim": self.embed_dim},
            "labels": torch.from_numpy(self.labels),
            "features": torch.from_numpy(self.features),
            "sizes": torch.from_numpy(self.sizes),
            "support": torch.from_numpy(self.support),
            "names": list(self.names),
            "scores": None if self.scores is None else torch.from_numpy(self.scores),
            "config": self.config,
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        return atomic_write_bytes(Path(path), buf.getvalue())


MAX_SUPPORT = 10_000_000
"""Most views an instance can be built from (captures hold hundreds to thousands)."""


def check_counts(instances: InstanceSet, source: str) -> None:
    """Raise ``FieldMismatchError`` naming ``source`` unless each instance's ``sizes`` entry is the
    number of Gaussians labelled with it and ``support`` is a plausible view count: reports print them."""
    labels = instances.labels
    counts = np.bincount(labels[labels >= 0], minlength=instances.num_instances)
    wrong = np.flatnonzero(counts != instances.sizes)
    if len(wrong):
        k = int(wrong[0])
        raise FieldMismatchError(
            f"{source}: instance {k} claims {int(instances.sizes[k]):,} Gaussians but {int(counts[k]):,} are "
            f"labelled with it ({len(wrong)} instances disagree); the file is corrupt or was edited"
        )
    if instances.num_instances and int(instances.support.max()) > MAX_SUPPORT:
        k = int(instances.support.argmax())
        raise FieldMismatchError(
            f"{source}: instance {k} claims {int(instances.support[k]):,} supporting views (at most {MAX_SUPPORT:,})"
        )


def load_instances(path: str | os.PathLike[str], scene: GaussianScene | None = None) -> InstanceSet:
    """Read an instances file; with ``scene``, refuse one built on another splat (``FieldMismatchError``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such instances file")
    payload = load_tagged_payload(path, INSTANCES_FORMAT, INSTANCES_VERSION, "instances file")
    check_instance_tensors(payload, str(path))
    try:
        scores = payload.get("scores")
        instances = InstanceSet(
            labels=payload["labels"].numpy(),
            features=payload["features"].numpy(),
            sizes=payload["sizes"].numpy(),
            support=payload["support"].numpy(),
            scene_fingerprint=str(payload["scene"]["fingerprint"]),
            encoder_name=str(payload["encoder"]["name"]),
            names=list(payload.get("names") or []),
            scores=None if scores is None else scores.numpy(),
            config=dict(payload.get("config") or {}),
            source=str(path),
        )
        if int(payload["scene"]["num_gaussians"]) != instances.num_gaussians:
            raise FieldMismatchError(
                f"{instances.num_gaussians} labels for {payload['scene']['num_gaussians']} Gaussians"
            )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise FieldMismatchError(f"{path}: malformed instances file ({e})") from e
    check_counts(instances, str(path))
    if scene is not None:
        instances.check_scene(scene)
    return instances
