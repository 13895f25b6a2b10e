"""Settings of preprocessing (masks and CLIP features per view, cached) and of its Ray executor
(no torch: CLIs parse them before torch loads)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ovseg_core.errors import UsageError
from ovseg_core.models.config import OpenClipConfig, Sam2Config


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Masks and CLIP features for every view (cached under the dataset)."""

    image_downsample_factor: int = 1
    """Shrink images (and cameras) by this factor before SAM2/CLIP (e.g. 2 for speed)."""
    sam2: Sam2Config = dataclasses.field(default_factory=Sam2Config)
    clip: OpenClipConfig = dataclasses.field(default_factory=OpenClipConfig)
    tiny_models: bool = False
    """Use tiny randomly initialised SAM2/OpenCLIP instead (smoke runs without weights; the
    resulting fields are meaningless)."""
    cache_dir: Path | None = None
    """Where the cache lives; default ``<dataset>/.ovseg_cache/preprocess``."""
    concept_fusion: bool = False
    """Fuse each mask's feature with the image's global feature, weighted by their similarity
    (ConceptFusion), before training or lifting."""
    fusion_temperature: float = 1.0
    """Softmax temperature of that fusion."""


@dataclasses.dataclass(frozen=True)
class RayConfig:
    """Where and how wide the ``ray`` executor runs."""

    address: str | None = None
    """Cluster to join: ``auto`` (the one ``ray start`` set up on this node), ``HOST:6379`` or
    ``ray://HOST:10001``. None: start a local Ray instance for this run. When this process has
    already called ``ray.init``, that instance is used (and left running) whatever the address."""
    concurrency: int | None = None
    """Actors, each loading the models once. None: one per GPU in the cluster when actors take
    GPUs, else one per ``num_cpus_per_actor`` CPUs (each actor holds its own copy of the models:
    cap this when memory is short)."""
    num_gpus_per_actor: float | None = None
    """GPUs per actor (fractions share a GPU). None: 1 when the cluster has GPUs, else 0."""
    num_cpus_per_actor: float = 1.0
    """CPUs reserved per actor; Ray gives torch in the actor that many threads."""

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise UsageError(f"ray concurrency must be at least 1, got {self.concurrency}")
        if self.num_gpus_per_actor is not None and self.num_gpus_per_actor < 0:
            raise UsageError(f"num_gpus_per_actor must not be negative, got {self.num_gpus_per_actor}")
        if self.num_cpus_per_actor <= 0:
            raise UsageError(f"num_cpus_per_actor must be positive, got {self.num_cpus_per_actor}")
