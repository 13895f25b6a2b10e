"""Settings of language-field training, lifting, preprocessing and queries (no torch: CLIs parse
them before torch loads)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from ovseg_core.errors import UsageError
from ovseg_core.preprocess.config import PreprocessConfig, RayConfig  # noqa: F401 - preprocessing's own settings

DEFAULT_NEGATIVES: tuple[str, ...] = ("object", "things", "stuff", "texture")
MAX_BASIS_ROWS = 1024
"""Most basis entries (codebook layers x entries) a field may have: 16x LangSplatV2's one layer of
64. Queries form an ``[E, E]`` Gram matrix and code renders ``[N, E]`` arrays, so a checkpoint claiming
more is refused before anything that size is allocated."""
MAX_EMBED_DIM = 16384
"""Widest feature accepted (CLIP/SigLIP towers embed into 512-1280 dims)."""


@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """Shape of a LangSplatV2 field (the reference's defaults)."""

    num_layers: int = 1
    """Residual codebook layers L."""
    codebook_size: int = 64
    """Entries S per codebook."""
    top_k: int = 4
    """Non-zero entries kept per layer code."""
    embed_dim: int = 512
    """Feature dimension D (the CLIP embedding size)."""
    logit_init_std: float = 0.0
    """Std of the seeded noise added to the zero-initialised logits (0 = the reference)."""

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise UsageError(f"num_layers must be >= 1, got {self.num_layers}")
        if not 1 <= self.top_k <= self.codebook_size:
            raise UsageError(
                f"need 1 <= top_k <= codebook_size, got top_k={self.top_k}, codebook_size={self.codebook_size}"
            )
        if not 1 <= self.embed_dim <= MAX_EMBED_DIM:
            raise UsageError(f"embed_dim must lie in 1..{MAX_EMBED_DIM}, got {self.embed_dim}")
        if self.num_layers * self.codebook_size > MAX_BASIS_ROWS:
            raise UsageError(
                f"num_layers x codebook_size = {self.num_layers * self.codebook_size} basis entries; "
                f"at most {MAX_BASIS_ROWS} are supported"
            )


@dataclasses.dataclass(frozen=True)
class BackprojectionConfig:
    """Which contributions a back-projection takes and how much memory it may use."""

    min_weight: float = 1.0 / 256.0
    """Contributions (alpha * T) below this are ignored; all above are taken."""
    max_entries: int = 4_000_000
    """Contributions held at once (a band of rows x width x ceil(1 / min_weight)); ~48 MB."""
    backend: Literal["auto", "numba", "torch"] = "auto"
    """Where contributions are summed onto Gaussians: ``numba`` (CPU kernels), ``torch`` (on the
    scene's device), ``auto``: torch when the scene is on a GPU, else numba."""

    def __post_init__(self) -> None:
        if not 0.0 < self.min_weight <= 1.0:
            raise UsageError(f"min_weight must lie in (0, 1], got {self.min_weight}")
        if self.max_entries < 1:
            raise UsageError(f"max_entries must be >= 1, got {self.max_entries}")

    @property
    def top_k(self) -> int:
        return math.ceil(1.0 / self.min_weight - 1e-9)


@dataclasses.dataclass(frozen=True)
class RegistrationConfig:
    """How trained codes are registered onto Gaussians for 3D queries."""

    enabled: bool = True
    """Off: 3D queries read the trained per-Gaussian codes directly (the reference's behaviour)."""
    top_k: int = 16
    """Basis entries kept per Gaussian. A long-trained field renders mixtures of most of its
    codebook: on ``ovseg-bench quality`` 8 entries lose 0.007 3D IoU between 1,000 and 3,000
    steps, 16 lose 0.002 (all 64: 0.0015, the field's own drift); a 3D query costs ~J."""
    refit: bool = True
    """Refit the kept entries' values by least squares in feature space (off: plain truncation,
    which turns the direction of the mixtures a long-trained field renders)."""
    min_alpha: float = 0.5
    """Pixels whose rendered opacity is below this are not back-projected (mostly background)."""
    contributions: BackprojectionConfig = BackprojectionConfig()


@dataclasses.dataclass(frozen=True)
class LanguageTrainConfig:
    """How a language field trains (defaults are the reference's)."""

    feature_level: int = 1
    """Mask scale to learn: 0 default, 1 small, 2 medium, 3 large."""
    all_levels: bool = False
    """Train levels 1, 2 and 3 in one run (one after the other) instead of ``feature_level`` only."""
    max_steps: int | None = None
    """Steps per level; None: ``max_epochs`` epochs if set, else 10,000."""
    max_epochs: int | None = None
    """Passes over the training views per level, used when ``max_steps`` is None."""
    lr: float = 0.0025
    """Adam learning rate for logits and codebooks (constant)."""
    adam_eps: float = 1e-15
    seed: int = 42
    field: FieldConfig = FieldConfig()
    """Codebook layers, size and top-k (embed_dim follows the encoder)."""
    method: Literal["sparse", "dense"] = "sparse"
    """``sparse``: reuse per-view contributions (fast). ``dense``: re-rasterise every step (the reference)."""
    contributions_top_k: int = 64
    """Gaussians kept per pixel when contributions are precomputed (sparse method); 64 keeps the
    final loss within 0.1% of the dense reference in ``ovseg-bench train`` (32: within 1%)."""
    contributions_min_weight: float = 0.0
    """Contributions with a smaller blending weight are dropped (sparse method; memory vs exactness)."""
    contributions_cache_gb: float = 4.0
    """Memory for cached per-view contributions (sparse method, GiB); views past it spill to a
    temporary directory and are read back when trained on. A LERF-sized view (986x728, top-64)
    takes ~90 MB, so 4 GiB holds ~45 views. The default keeps a 200-view LERF capture's training
    under 16 GB: beside the cache it holds the views' mask maps (~23 MB a view: 4.6 GB), the
    scene, logits with their Adam state (~1.3 GB at 1M Gaussians), one step's [pixels, L*S]
    temporaries (~1.5 GB) and the torch/numba runtime (~1 GB)."""
    contributions_spill_dir: str | None = None
    """Where spilled contributions go (a private directory inside it, removed when training
    ends); None: the system's temporary directory. Needs ~6 bytes per contribution of every view."""
    blend_backend: Literal["auto", "numba", "torch"] = "auto"
    """Sparse blend and its backward: ``numba`` (CPU kernels), ``torch`` (plain torch on the
    scene's device), ``auto``: torch when the scene is on a GPU, else numba."""
    registration: RegistrationConfig = RegistrationConfig()
    """After training, give each Gaussian the average of the field's rendered pixel codes it
    contributes to (for 3D queries; the trained codes alone only fit blends)."""
    log_every: int = 10
    """Steps between metric log entries."""
    val_every: int = 500
    """Steps between validation passes (when there are validation views)."""
    save_every: int | None = None
    """Steps between checkpoints; None saves at the end of the run only. Each checkpoint is
    registered (``registration``) as the final one is, at the cost of one pass over the training views."""

    @property
    def levels(self) -> tuple[int, ...]:
        return (1, 2, 3) if self.all_levels else (self.feature_level,)

    def steps_per_level(self, num_train_views: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        if self.max_epochs is not None:
            return self.max_epochs * max(num_train_views, 1)
        return 10_000

    def __post_init__(self) -> None:
        if self.feature_level not in (0, 1, 2, 3):
            raise UsageError(
                f"feature_level must be 0 (default), 1 (small), 2 (medium) or 3 (large), got {self.feature_level}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.lr <= 0:
            raise UsageError(f"lr must be > 0, got {self.lr}")
        if self.contributions_top_k < 1:
            raise UsageError(f"contributions_top_k must be >= 1, got {self.contributions_top_k}")
        if not self.contributions_cache_gb >= 0:
            raise UsageError(f"contributions_cache_gb must be >= 0, got {self.contributions_cache_gb}")


@dataclasses.dataclass(frozen=True)
class LiftConfig:
    """How features are lifted."""

    codebook_size: int = 64
    """K-means entries the 2D mask features are quantised to (the basis of the stored field)."""
    top_k: int = 4
    """Codebook entries kept per Gaussian."""
    contributions: BackprojectionConfig = BackprojectionConfig()
    """Which blending contributions count (every one above a weight floor) and the memory bound."""
    seed: int = 42

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= self.codebook_size <= MAX_BASIS_ROWS:
            raise UsageError(
                f"need 1 <= top_k <= codebook_size <= {MAX_BASIS_ROWS}, got top_k={self.top_k}, "
                f"codebook_size={self.codebook_size}"
            )


@dataclasses.dataclass(frozen=True)
class IOConfig:
    """What a run writes under its run directory."""

    use_tensorboard: bool = False
    """Log scalars and feature images to ``tensorboard/``."""
    save_images: bool = True
    """PCA feature renders in ``images/`` at save points."""
    save_checkpoints: bool = True
    """``checkpoints/<step>/langsplatv2_ckpt.pt``."""
