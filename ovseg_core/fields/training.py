"""LangSplatV2 training on a frozen splat.

Faithful to the reference (REFERENCE.md §3): zero-initialised logits, K-means codebooks, top-k
sparse codes, residual layer schedule, masked cosine loss scaled by the mask fraction, Adam
(lr 0.0025, eps 1e-15), one shuffled view per step, seed 42.

Two ways to compute a step, with the same loss:
- ``sparse`` (default): per-view contributions are computed once (the splat is frozen); a step
  blends only the k non-zero code entries of the view's Gaussians into its valid pixels and
  evaluates the cosine in codebook space (never forming [P, D] features).
- ``dense``: the reference approach, re-rasterising all L*S code channels through the renderer
  every step, then decoding [H, W, D] features. Kept as the slow twin for tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.camera import Camera
from ovseg_core.errors import Cancelled, UsageError
from ovseg_core.fields.codebook_field import CodebookField
from ovseg_core.fields.config import LanguageTrainConfig
from ovseg_core.fields.contribution_cache import ContributionCache
from ovseg_core.fields.language_fields import LEVEL_NAMES, LanguageFields, LevelCodes
from ovseg_core.fields.registration import register_level
from ovseg_core.fields.view_contributions import (
    ViewContributions,
    blend_sparse_codes,
    compute_contributions,
    resolve_blend_backend,
)
from ovseg_core.render import Renderer, make_renderer
from ovseg_core.scene import GaussianScene


@dataclasses.dataclass
class TrainingView:
    """A view with its mask features (from preprocessing)."""

    name: str
    camera: Camera
    features: torch.Tensor
    """``[M, D]`` float32 L2-normalised CLIP features of all masks of the view."""
    seg_maps: torch.Tensor
    """``[4, H, W]`` int32 (or int64) pixel -> row of ``features`` per scale, -1 = no mask."""

    def __post_init__(self) -> None:
        H, W = self.camera.height, self.camera.width
        if self.seg_maps.ndim != 3 or self.seg_maps.shape[1:] != (H, W):
            raise ValueError(f"view {self.name}: seg_maps {list(self.seg_maps.shape)} do not match the {W}x{H} camera")
        if self.features.ndim != 2:
            raise ValueError(f"view {self.name}: features must be [M, D], got {list(self.features.shape)}")
        if self.seg_maps.numel() and int(self.seg_maps.max()) >= self.features.shape[0]:
            raise ValueError(f"view {self.name}: seg_maps index past its {self.features.shape[0]} features")


@dataclasses.dataclass
class TrainProgress:
    """A snapshot for progress bars and plots."""

    level: int
    step: int
    """Steps done in the whole run (all levels)."""
    total_steps: int
    loss: float
    cosine_loss_valid: float
    elapsed_s: float
    phase: str = "train"
    """``contributions``: precomputing view ``views_done`` of ``views_total`` before ``level``'s
    first step (no loss yet); ``train``: a step; ``register``: registering ``level`` before a checkpoint is saved (periodic or final)."""
    views_done: int = 0
    views_total: int = 0

    @property
    def fraction(self) -> float:
        return self.step / max(self.total_steps, 1)

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / self.step * (self.total_steps - self.step) if self.step else math.inf


class TrainingObserver(Protocol):
    """Where a run reports to (the run directory writer, a GUI, a test)."""

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None: ...

    def save_checkpoint(self, step: int, fields: LanguageFields) -> None: ...

    def save_images(self, step: int, images: dict[str, np.ndarray]) -> None: ...


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class LanguageFieldTrainer:
    """Trains one CodebookField per requested level on a frozen ``scene``, on the scene's device.

    The sparse method caches per-view contributions within ``contributions_cache_gb`` and spills
    the rest to a temporary directory, removed when ``run`` ends (also on cancel or error), on
    ``close()`` / leaving a ``with`` block, and when the trainer is garbage-collected."""

    def __init__(
        self,
        scene: GaussianScene,
        train_views: Sequence[TrainingView],
        config: LanguageTrainConfig = LanguageTrainConfig(),
        *,
        renderer: Renderer | None = None,
        val_views: Sequence[TrainingView] = (),
        encoder_name: str = "",
        observer: TrainingObserver | None = None,
        progress: Callable[[TrainProgress], None] | None = None,
        cancel: CancelFlag | None = None,
    ) -> None:
        if not train_views:
            raise UsageError("language-field training needs at least one training view")
        dims = {v.features.shape[1] for v in [*train_views, *val_views] if v.features.shape[0]}
        if len(dims) > 1:
            raise UsageError(f"views carry features of different sizes {sorted(dims)}; were they encoded by one model?")
        self.scene = scene
        self.train_views = list(train_views)
        self.val_views = list(val_views)
        self.embed_dim = dims.pop() if dims else config.field.embed_dim
        self.config = dataclasses.replace(config, field=dataclasses.replace(config.field, embed_dim=self.embed_dim))
        # The sparse path reads contributions from any backend; the dense path needs gradients.
        self.renderer = renderer or make_renderer("cpu" if self.config.method == "sparse" else "torch")
        if self.config.method == "dense" and self.renderer.name != "torch":
            raise UsageError("the dense (reference) method needs the differentiable torch renderer")
        self.encoder_name = encoder_name
        self.observer = observer
        self.progress = progress
        self.cancel = cancel
        self.fields: dict[int, CodebookField] = {}
        self.gaussian_levels: dict[int, LevelCodes] = {}
        """Level -> registered per-Gaussian codes (after ``run``, and as of the last saved checkpoint)."""
        self._trained_at: dict[int, int] = {}  # level -> run step of its last update
        self._registered_at: dict[int, int] = {}  # level -> the ``_trained_at`` its registration reflects
        self.unseen: dict[int, int] = {}
        self.history: list[dict[str, float]] = []
        self.initial_losses: dict[int, float] = {}
        """Level -> mean masked cosine loss over all training views before the first step."""
        self.final_losses: dict[int, float] = {}
        """Level -> the same after the last step (deterministic, unlike per-step losses)."""
        self.steps_per_level = self.config.steps_per_level(len(self.train_views))
        self.total_steps = self.steps_per_level * len(self.config.levels)
        self.step = 0
        self._started = 0.0
        self.device = scene.device
        # Validated here so a forced numba blend on a GPU scene fails before any work.
        self.blend_backend = resolve_blend_backend(self.config.blend_backend, self.device)
        self._cache = ContributionCache(
            int(self.config.contributions_cache_gb * 2**30), self.config.contributions_spill_dir
        )

    def close(self) -> None:
        """Drop the cached contributions and delete their spill files (the trainer stays usable)."""
        self._cache.close()

    def __enter__(self) -> LanguageFieldTrainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public -------------------------------------------------------------------------------
    def run(self) -> LanguageFields:
        """Train every level; returns the fields (also handed to the observer at save points)."""
        torch.manual_seed(self.config.seed)
        self._started = time.perf_counter()
        try:
            for level in self.config.levels:
                self._train_level(level)
        finally:
            self._cache.close()  # registration and the outputs below need no contributions
        if self.config.registration.enabled:
            self.register()
        fields = self.language_fields()
        if self.observer is not None:
            self.observer.save_checkpoint(self.step, fields)
            self.observer.save_images(self.step, self.feature_images())
        return fields

    def register(self) -> None:
        """Register every trained level onto the Gaussians over the training views (``registration``);
        levels unchanged since their last registration keep it."""
        for level, field in self.fields.items():
            if level in self.gaussian_levels and self._registered_at.get(level) == self._trained_at.get(level):
                continue
            self._phase_report(level, "register", 0, len(self.train_views))
            with torch.no_grad():
                codes = LevelCodes.from_codebook_field(field)
            self.gaussian_levels[level], self.unseen[level] = register_level(
                self.scene,
                codes,
                self.train_views,
                level,
                self.renderer,
                self.config.registration,
            )
            self._registered_at[level] = self._trained_at.get(level, 0)

    def language_fields(self) -> LanguageFields:
        fields = LanguageFields.from_codebook_fields(
            self.fields,
            self.scene,
            encoder_name=self.encoder_name,
            step=self.step,
            config={"train": dataclasses.asdict(self.config), "unseen": dict(self.unseen)},
        )
        fields.gaussian_levels = {k: v for k, v in self.gaussian_levels.items() if k in self.fields}
        return fields

    def evaluate(self, views: Sequence[TrainingView], level: int) -> dict[str, float]:
        """Mean masked cosine loss (and the scaled loss) of ``level`` over ``views``, no gradients."""
        field = self.fields[level]
        total, valid_sum, n = 0.0, 0.0, 0
        loss_fn = self._dense_loss if self.config.method == "dense" else self._sparse_loss
        with torch.no_grad():
            for v in views:
                loss, cos_valid = loss_fn(field, v, level, field.config.num_layers - 1)
                if cos_valid is None:
                    continue
                total += float(loss)
                valid_sum += cos_valid
                n += 1
        return {"loss": total / max(n, 1), "cosine_loss_valid": valid_sum / max(n, 1)}

    def feature_images(self, max_views: int = 2) -> dict[str, np.ndarray]:
        """PCA-coloured rendered features of the first validation (else training) views, uint8 [H, W, 3]."""
        from ovseg_core.fields.feature_pca import pca_colors

        out: dict[str, np.ndarray] = {}
        views = (self.val_views or self.train_views)[:max_views]
        for level, field in self.fields.items():
            with torch.no_grad():
                codes = field.dense_codes()
                basis = field.stacked_codebooks()
                for v in views:
                    rendered = self._render_features(v.camera, codes)  # on the renderer's device
                    feats = rendered @ basis.to(rendered.device)
                    out[f"level{level}_{v.name}"] = pca_colors(feats.cpu())
        return out

    # -- internals ----------------------------------------------------------------------------
    def _render_features(self, camera: Camera, codes: torch.Tensor) -> torch.Tensor:
        return self.renderer.render(self.scene, camera, features=codes).features[0]

    def _train_level(self, level: int) -> None:
        cfg = self.config
        field = CodebookField(self.scene.num_gaussians, cfg.field, seed=cfg.seed).to(self.device)
        pooled = [v.features for v in self.train_views if v.features.shape[0]]
        if not pooled:
            raise UsageError("no training view has any mask features; preprocessing found no masks")
        if not any(bool((v.seg_maps[level] >= 0).any()) for v in self.train_views):
            raise UsageError(
                f"no training view has a mask at feature level {level} ({LEVEL_NAMES[level]}); "
                "pick another feature level (masks are grouped by area: small < 1%, medium 1-10%, large >= 10%)"
            )
        field.init_codebooks(torch.cat(pooled).float(), seed=cfg.seed)
        self.fields[level] = field
        opt = torch.optim.Adam(field.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        gen = torch.Generator().manual_seed(cfg.seed + level)
        order: list[int] = []
        L = cfg.field.num_layers
        steps = self.steps_per_level
        if cfg.method == "sparse":
            self._precompute_contributions(level)
        self.initial_losses[level] = self.evaluate(self.train_views, level)["cosine_loss_valid"]
        for local_step in range(steps):
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled(f"training cancelled at step {self.step} of {self.total_steps}")
            if not order:
                order = torch.randperm(len(self.train_views), generator=gen).tolist()
            view = self.train_views[order.pop()]
            active = min(int(local_step / steps * L), L - 1)
            if cfg.method == "sparse":
                loss, cos_valid = self._sparse_loss(field, view, level, active)
            else:
                loss, cos_valid = self._dense_loss(field, view, level, active)
            opt.zero_grad(set_to_none=True)
            if loss.requires_grad:
                loss.backward()
                opt.step()
            self.step += 1
            self._trained_at[level] = self.step
            if local_step + 1 == steps:
                self.final_losses[level] = self.evaluate(self.train_views, level)["cosine_loss_valid"]
            self._report(level, float(loss.detach()), cos_valid, local_step + 1 == steps)

    def _report(self, level: int, loss: float, cos_valid: float | None, last: bool) -> None:
        cfg = self.config
        metrics = {
            "train/loss": loss,
            "train/cosine_loss_valid": cos_valid if cos_valid is not None else float("nan"),
            "train/level": float(level),
        }
        if self.val_views and (self.step % cfg.val_every == 0 or last):
            val = self.evaluate(self.val_views, level)
            metrics.update({"val/loss": val["loss"], "val/cosine_loss_valid": val["cosine_loss_valid"]})
        if self.step % cfg.log_every == 0 or last or "val/loss" in metrics:
            self.history.append({"step": float(self.step), **metrics})
            if self.observer is not None:
                self.observer.log_metrics(self.step, metrics)
        if (
            self.observer is not None
            and cfg.save_every
            and self.step % cfg.save_every == 0
            and self.step < self.total_steps
        ):
            # Registered like the final checkpoint: raw trained codes only fit blends, and a run that
            # is cancelled or interrupted leaves these as its answer.
            if cfg.registration.enabled:
                self.register()
            self.observer.save_checkpoint(self.step, self.language_fields())
        if self.progress is not None:
            self.progress(
                TrainProgress(
                    level=level,
                    step=self.step,
                    total_steps=self.total_steps,
                    loss=loss,
                    cosine_loss_valid=cos_valid if cos_valid is not None else float("nan"),
                    elapsed_s=time.perf_counter() - self._started,
                )
            )

    def _phase_report(self, level: int, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            elapsed = time.perf_counter() - self._started
            nan = float("nan")
            self.progress(TrainProgress(level, self.step, self.total_steps, nan, nan, elapsed, phase, done, total))

    def _precompute_contributions(self, level: int) -> None:
        """Each training view's contributions, once, before the level's first step (the slow part
        on big scenes), with a ``contributions`` progress report per view and a cancel check."""
        total = len(self.train_views)
        for done, view in enumerate(self.train_views):
            self._phase_report(level, "contributions", done, total)
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled(f"training cancelled while precomputing contributions ({done}/{total} views)")
            self._contributions(view, level)
        self._phase_report(level, "contributions", total, total)

    def _contributions(self, view: TrainingView, level: int) -> ViewContributions:
        key = (view.name, id(view), level)
        contrib = self._cache.get(key)
        if contrib is None:
            valid = (view.seg_maps[level] >= 0).cpu().numpy()
            contrib = compute_contributions(
                self.renderer,
                self.scene,
                view.camera,
                valid,
                self.config.contributions_top_k,
                self.config.contributions_min_weight,
            )
            self._cache.put(key, contrib)
        return contrib

    def _sparse_loss(self, field: CodebookField, view: TrainingView, level: int, active: int):
        contrib = self._contributions(view, level)
        if len(contrib.pixels) == 0:
            return torch.zeros(()), None
        dev = field.logits.device
        seg = view.seg_maps[level].reshape(-1)[torch.from_numpy(contrib.pixels)].to(dev)
        idx, val = field.flat_sparse_codes(torch.from_numpy(contrib.gaussian_ids).to(dev), active)
        S = field.config.codebook_size
        width = (active + 1) * S
        backend = resolve_blend_backend(self.config.blend_backend, dev)
        pixel_codes = blend_sparse_codes(contrib, idx, val, width, backend).to(dev)  # [P, (a+1)*S]
        C = field.stacked_codebooks(active)[:width]  # [(a+1)*S, D]
        # cos(f, t) with f = c @ C and |t| = 1: f.t = c . (C t), |f|^2 = c^T (C C^T) c.
        targets_in_code_space = view.features.to(dev).float() @ C.T  # [M, (a+1)*S]
        # index_select: its backward is index_add_, not advanced indexing's slow accumulate.
        dots = (pixel_codes * torch.index_select(targets_in_code_space, 0, seg)).sum(dim=1)
        sq_norms = ((pixel_codes @ (C @ C.T)) * pixel_codes).sum(dim=1)
        cos = dots / sq_norms.clamp_min(1e-16).sqrt().clamp_min(1e-8)
        per_pixel = 1.0 - cos
        H, W = view.camera.height, view.camera.width
        return per_pixel.sum() / (H * W), float(per_pixel.detach().mean())

    def _dense_loss(self, field: CodebookField, view: TrainingView, level: int, active: int):
        seg = view.seg_maps[level].reshape(-1)
        valid = seg >= 0
        if not bool(valid.any()):
            return torch.zeros(()), None
        codes = field.dense_codes(active_layer=active)  # [N, L*S]
        rendered = self.renderer.render(self.scene, view.camera, features=codes).features[0]  # [H, W, L*S]
        feats = rendered.reshape(-1, rendered.shape[-1])[valid.to(rendered.device)] @ field.stacked_codebooks(active)
        cos = F.cosine_similarity(feats, view.features.float()[seg[valid]].to(feats.device), dim=1)
        per_pixel = 1.0 - cos
        H, W = view.camera.height, view.camera.width
        return per_pixel.sum() / (H * W), float(per_pixel.detach().mean())
