"""Language-field training as a background job: progress, ETA, a loss history and a cancel flag.

The viewer keeps rendering meanwhile: the job is given the viewer's ``LockedRenderer``, whose
every render holds the device lock only while it runs, so frames interleave with training, lifting
and instance building (SAM2/CLIP preprocessing never holds it).

Before anything slow, ``start`` runs a preflight (seconds): the capture loads, and enough of its
cameras see the loaded splat. The job thread then checks that the chosen levels have SAM2 masks in
every view, from the preprocessing cache (a few bytes a view): cached views at once, then the
first, middle and last views (a level none of them has is refused in seconds), then the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from ovseg_core.errors import Cancelled, ModelLoadError
from ovseg_core.fields import LanguageFields, LanguageTrainConfig
from ovseg_core.fields.language_fields import LEVEL_NAMES
from ovseg_core.models import Sam2Config
from ovseg_core.models.open_clip_encoder import OpenClipConfig
from ovseg_core.pipeline import PipelineProgress, PipelineResult, PreprocessConfig, train_from_dataset
from ovseg_core.pipeline.progress import PREPROCESS_SHARE
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene

log = logging.getLogger(__name__)

ModelSize = Literal["tiny-random", "tiny", "small", "base_plus", "large"]
MODEL_SIZES: tuple[str, ...] = ("tiny-random", "tiny", "small", "base_plus", "large")
JobState = Literal["idle", "running", "done", "failed", "cancelled"]


@dataclasses.dataclass(frozen=True)
class TrainingRequest:
    """What the training panel asks for."""

    dataset_path: Path
    levels: tuple[int, ...] = (1,)
    """Feature levels to train: one, or (1, 2, 3)."""
    steps: int = 10_000
    """Steps per level."""
    model_size: ModelSize = "large"
    """SAM2 size; ``tiny-random`` uses tiny random SAM2 + OpenCLIP (a smoke run, fields mean nothing)."""
    image_downsample_factor: int = 1
    """Shrink the photos (and cameras) by this factor before SAM2/CLIP: 4 turns 1080p into 270p."""
    sam2_checkpoint_path: Path | None = None
    """Local SAM 2.1 ``.pt`` of ``model_size`` (skips the hub download)."""
    clip_weights: Path | None = None
    """Local OpenCLIP ViT-B-16 weights file (skips the hub download)."""
    log_path: Path | None = None
    """Folder for the run directory (as ``ovseg-train --log-path``); None: nothing is written."""
    cache_dir: Path | None = None
    """Preprocessing cache root; None: ``<capture>/.ovseg_cache/preprocess`` (as ``ovseg-train``)."""
    method: Literal["langsplatv2", "lift", "instances"] = "langsplatv2"
    """langsplatv2 trains; lift averages the 2D features onto the Gaussians (no training);
    instances builds class-agnostic 3D instances from the views' masks."""

    def train_config(self) -> LanguageTrainConfig:
        if self.levels == (1, 2, 3):
            return LanguageTrainConfig(all_levels=True, max_steps=self.steps, log_every=max(1, self.steps // 200))
        if len(self.levels) != 1:
            raise ValueError(f"train one level or all of 1, 2, 3; got {self.levels}")
        return LanguageTrainConfig(
            feature_level=self.levels[0], max_steps=self.steps, log_every=max(1, self.steps // 200)
        )

    def preprocess_config(self) -> PreprocessConfig:
        if not 1 <= self.image_downsample_factor <= 64:
            raise ValueError(f"image downsample must be 1-64, got {self.image_downsample_factor}")
        if self.model_size == "tiny-random":
            return PreprocessConfig(
                image_downsample_factor=self.image_downsample_factor, tiny_models=True, cache_dir=self.cache_dir
            )
        for what, path in (("SAM2 checkpoint", self.sam2_checkpoint_path), ("CLIP weights", self.clip_weights)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{what} {path} is not a file")
        sam2 = Sam2Config(
            checkpoint=self.model_size,
            checkpoint_path=str(self.sam2_checkpoint_path) if self.sam2_checkpoint_path else None,
        )
        clip = OpenClipConfig(pretrained=str(self.clip_weights)) if self.clip_weights else OpenClipConfig()
        return PreprocessConfig(
            image_downsample_factor=self.image_downsample_factor, sam2=sam2, clip=clip, cache_dir=self.cache_dir
        )


MIN_VISIBLE_FRACTION = 0.05
"""A view sees the splat when at least this share of (sampled) Gaussian centres projects into it."""
MIN_SEEING_VIEWS = 0.5
"""The preflight refuses a capture where fewer than this share of views see the splat."""


def preflight_capture(scene: GaussianScene, request: TrainingRequest) -> str:
    """Load the capture's cameras and check that they see ``scene`` (seconds, no images read).
    Returns a one-line summary; raises ValueError naming the problem otherwise."""
    from ovseg_core.data.view_dataset import DatasetConfig, load_dataset

    dataset = load_dataset(
        request.dataset_path,
        DatasetConfig(image_downsample_factor=request.image_downsample_factor),
        reconstruction_metadata=scene.metadata,
    )
    means = scene.means.detach().cpu().double().numpy()
    if len(means) > 20_000:
        means = means[np.random.default_rng(0).choice(len(means), 20_000, replace=False)]
    seen = []
    for view in dataset:
        cam = view.camera
        uv, z = cam.project(means)
        x, y = uv[:, 0], uv[:, 1]
        inside = (z > 1e-6) & (x >= 0) & (x < cam.width) & (y >= 0) & (y < cam.height)
        seen.append(float(inside.mean()))
    seeing = sum(f >= MIN_VISIBLE_FRACTION for f in seen)
    if seeing < MIN_SEEING_VIEWS * len(seen):
        raise ValueError(
            f"the capture's cameras do not see the loaded splat: only {seeing} of {len(seen)} views show at least "
            f"{MIN_VISIBLE_FRACTION:.0%} of its Gaussians (median {np.median(seen):.1%}); is {request.dataset_path} "
            "the capture this splat was reconstructed from?"
        )
    cam = dataset[0].camera
    return f"{len(seen)} views at {cam.width}x{cam.height}; {seeing} see the splat (median {np.median(seen):.0%})"


PROBE_VIEWS = 3
"""Views (first, middle, last) preprocessed first: a level none of them has a mask at is refused
in seconds instead of after the whole capture."""


def _cached_lengths(path: Path, image_sha256: str, image_shape: tuple[int, int, int]) -> np.ndarray | None:
    """Masks per level of a cache entry that is valid for this image, reading only its small keys
    (no features, seg maps or masks); None when absent, stale or unreadable."""
    from ovseg_core.preprocess.cache import CACHE_FORMAT_VERSION

    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            if int(npz["format_version"]) != CACHE_FORMAT_VERSION or str(npz["image_sha256"]) != image_sha256:
                return None
            if tuple(int(v) for v in npz["image_shape"]) != tuple(image_shape):
                return None
            lengths = np.asarray(npz["lengths"], np.int64)
    except Exception:  # noqa: BLE001 - a corrupt entry is recomputed by preprocessing
        return None
    return lengths if lengths.shape == (4,) else None


class MaskCensus:
    """Which views have SAM2 masks at which level, from the preprocessing cache (each entry's
    ``lengths``: a few bytes a view), so every view is checked, not just the first."""

    def __init__(self, dataset, cache) -> None:  # noqa: ANN001 - ViewDataset, FeatureCache
        from ovseg_core.preprocess.cache import file_sha256

        self.dataset, self.cache = dataset, cache
        self._sha = file_sha256
        self.lengths: dict[int, np.ndarray] = {}

    def read(self, index: int) -> bool:
        """Record view ``index`` if its cache entry is valid; False when it needs preprocessing."""
        view = self.dataset[index]
        shape = (view.camera.height, view.camera.width, 3)
        lengths = _cached_lengths(self.cache.path_for(view.name), self._sha(view.image_path), shape)
        if lengths is not None:
            self.lengths[index] = lengths
        return lengths is not None

    def views_with(self, level: int) -> list[int]:
        return sorted(i for i, n in self.lengths.items() if n[level] > 0)

    def summary(self) -> str:
        n = len(self.lengths)
        return ", ".join(f"level {k} ({LEVEL_NAMES[k]}): {len(self.views_with(k))}/{n}" for k in range(4))

    def check(self, levels: tuple[int, ...], complete: bool) -> str:
        """Raise ValueError naming the level(s) no checked view has a mask at (and every view's
        per-level coverage); returns a note on partial coverage ('' if full). ``complete``: every
        view of the capture has been checked (else only a probe has)."""
        n, total = len(self.lengths), len(self.dataset)
        checked = (
            f"any of the capture's {total} views" if complete else f"any of the {n} views checked so far (of {total})"
        )
        if not any(int(v.sum()) for v in self.lengths.values()):
            raise ValueError(
                f"SAM2 found no mask at all in {checked}; use less image downsampling (or other SAM2 weights)"
            )
        missing = [lvl for lvl in levels if not self.views_with(lvl)]
        if missing:
            names = ", ".join(f"{lvl} ({LEVEL_NAMES[lvl]})" for lvl in missing)
            raise ValueError(
                f"no SAM2 mask at level {names} in {checked}; views with masks per level: "
                f"{self.summary()}. Choose a level that has masks, or use less image downsampling"
            )
        thin = [(lvl, len(self.views_with(lvl))) for lvl in levels if len(self.views_with(lvl)) < n]
        return "; ".join(f"level {lvl} has masks in {k} of {n} views" for lvl, k in thin)


def _probe_order(indices: list[int]) -> list[int]:
    """``indices`` with the first, middle and last up front."""
    if len(indices) <= PROBE_VIEWS:
        return list(indices)
    probe = list(dict.fromkeys([indices[0], indices[len(indices) // 2], indices[-1]]))
    return probe + [i for i in indices if i not in probe]


class TrainingJob:
    """At most one training run at a time for a scene; everything a GUI shows is an attribute."""

    def __init__(
        self,
        scene: GaussianScene,
        renderer: Renderer,
        on_finished: Callable[[LanguageFields], None] | None = None,
        on_instances: Callable[[object], None] | None = None,
        models: tuple | None = None,
    ) -> None:
        """``models``: (mask generator, image encoder) to use instead of the ones each request
        names (tests pass small planted ones)."""
        self.models = models
        self.on_instances = on_instances
        self.scene = scene
        self.renderer = renderer
        self.on_finished = on_finished
        self.preflight = ""
        self.instances_path: Path | None = None
        self.state: JobState = "idle"
        self.fraction = 0.0
        self.message = ""
        self.eta_s: float | None = None
        self.losses: list[tuple[int, float]] = []
        self.error: str | None = None
        self.result: PipelineResult | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self.state == "running"

    def start(self, request: TrainingRequest) -> None:
        with self._lock:
            if self.running:
                raise RuntimeError("a training run is already in progress; cancel it first")
            config, preprocess = request.train_config(), request.preprocess_config()  # validate before starting
            if not Path(request.dataset_path).exists():
                raise FileNotFoundError(f"dataset {request.dataset_path} does not exist")
            self.preflight = preflight_capture(self.scene, request)
            self.state, self.fraction, self.message, self.eta_s = "running", 0.0, "starting", None
            self.losses, self.error, self.result, self.instances_path = [], None, None, None
            self._reset_timing(len(request.levels))
            self._cancel.clear()
            self._thread = threading.Thread(
                target=self._run, args=(request, config, preprocess), daemon=True, name="ovseg-training"
            )
            self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self.running

    def _reset_timing(self, levels: int) -> None:
        self._phase, self._phase_started, self._phase_fraction = "", time.perf_counter(), 0.0
        self._preprocessed, self._views, self._levels = False, 0, levels
        self._contrib_started, self._contrib_view_s = time.perf_counter(), None
        self._last_step, self._step_s, self._steps_timed = None, 0.0, 0

    def _progress(self, p: PipelineProgress, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        if p.phase != self._phase:
            self._phase, self._phase_started, self._phase_fraction = p.phase, now, p.fraction
        self.fraction, self.message = p.fraction, p.message
        t = p.train
        if t is not None and t.phase == "contributions":
            self._contributions_progress(t, now)
        elif t is not None and t.phase == "register":
            self.eta_s, self._last_step = None, None
            self.message = f"level {t.level}: registering the trained codes onto the Gaussians (all steps done)"
        elif t is not None:
            self._step_progress(t, now)
        elif p.phase != "load":  # preprocessing, lifting, instances: ETA of the phase from its own rate
            end = PREPROCESS_SHARE if p.phase == "preprocess" else 1.0  # preprocessing spans the first 30 %
            done = p.fraction - self._phase_fraction
            elapsed = now - self._phase_started
            share = end - self._phase_fraction
            self.eta_s = elapsed * (share - done) / done if done > 0 and elapsed > 1.0 else None
            if self._preprocessed and p.phase == "preprocess":  # the job's own pass computed everything
                self.message = p.message.replace("preprocessing view", "reading cached view")
            elif self.eta_s is not None:
                what = "in preprocessing; training not timed yet" if p.phase == "preprocess" else f"in {p.phase}"
                self.message = f"{p.message} (~{self.eta_s:.0f} s left {what})"

    def _contributions_progress(self, t, now: float) -> None:  # noqa: ANN001 - TrainProgress
        """Before a level's first step the trainer renders every view's contributions once; the ETA
        comes from this phase's own rate (and is kept to estimate later levels)."""
        self._last_step = None  # steps after this phase are timed afresh
        if t.views_done == 0:
            self._contrib_started = now
        elapsed = now - self._contrib_started
        if t.views_done:
            self._contrib_view_s = elapsed / t.views_done
        left = t.views_total - t.views_done
        self.eta_s = self._contrib_view_s * left if t.views_done and self._contrib_view_s is not None else None
        eta = f" (~{self.eta_s:.0f} s left" if self.eta_s is not None else " (timing the first view"
        self.message = (
            f"level {t.level}: precomputing view contributions {t.views_done}/{t.views_total}{eta}; "
            "training steps follow)"
        )

    def _step_progress(self, t, now: float) -> None:  # noqa: ANN001 - TrainProgress
        """A training step: the ETA counts only time spent in steps (not the contributions phase,
        which the trainer's own elapsed-time ETA includes), plus later levels' contributions."""
        self.losses.append((t.step, t.cosine_loss_valid))
        if self._last_step is not None and t.step > self._last_step[1]:
            self._step_s += now - self._last_step[0]
            self._steps_timed += t.step - self._last_step[1]
        self._last_step = (now, t.step)
        self.eta_s = None
        if self._steps_timed >= 5:
            per_level = t.total_steps // max(self._levels, 1)
            later_levels = max(0, self._levels - 1 - (t.step - 1) // max(per_level, 1))
            contrib = (self._contrib_view_s or 0.0) * self._views * later_levels
            self.eta_s = self._step_s / self._steps_timed * (t.total_steps - t.step) + contrib
        eta = f", ~{self.eta_s:.0f} s left" if self.eta_s is not None else ""
        self.message = f"level {t.level} step {t.step}/{t.total_steps}, loss {t.cosine_loss_valid:.4f}{eta}"

    def _check_masks(self, request: TrainingRequest, preprocess: PreprocessConfig, models) -> None:  # noqa: ANN001
        """Preprocess the capture (cached; ``train_from_dataset`` then only reads it) with every
        view's mask counts checked: cached views first (free), then the first, middle and last
        views (seconds), then the rest; a chosen level without masks is refused as soon as that is
        known, and thin coverage is reported in ``preflight``."""
        from ovseg_core.data.view_dataset import DatasetConfig, load_dataset
        from ovseg_core.preprocess import preprocess_views
        from ovseg_core.preprocess.pipeline import feature_cache_for

        levels = () if request.method == "instances" else request.levels
        fuse = preprocess.concept_fusion and request.method != "instances"  # instance building never fuses
        dataset = load_dataset(
            request.dataset_path,
            DatasetConfig(image_downsample_factor=preprocess.image_downsample_factor),
            reconstruction_metadata=self.scene.metadata,
        )
        cache = feature_cache_for(
            dataset, models[0], models[1], preprocess.cache_dir, fuse_global=fuse,
            fusion_temperature=preprocess.fusion_temperature,
        )  # fmt: skip
        census = MaskCensus(dataset, cache)
        self.message = "checking the preprocessing cache"
        todo = [i for i in range(len(dataset)) if not census.read(i)]
        self._views = len(dataset)
        if not todo:
            note = census.check(levels, complete=True)
        else:
            order = _probe_order(todo)
            # after the probe views (plus any cached ones) a level none of them has masks at is refused
            probe_at = len(census.lengths) + PROBE_VIEWS if len(order) > PROBE_VIEWS else -1

            def on_view(index: int, computed: bool) -> None:
                census.read(index)
                if len(census.lengths) == probe_at:
                    census.check(levels, complete=False)

            def on_progress(done: int, total: int) -> None:
                self._progress(
                    PipelineProgress("preprocess", 0.3 * done / max(total, 1), f"preprocessing view {done}/{total}")
                )

            preprocess_views(
                dataset, models[0], models[1], preprocess.cache_dir, indices=order, progress=on_progress,
                cancel=self._cancel, fuse_global=fuse, fusion_temperature=preprocess.fusion_temperature,
                on_view=on_view,
            )  # fmt: skip
            for i in todo:  # entries written by an earlier, interrupted pass are in the cache as well
                census.read(i)
            note = census.check(levels, complete=True)
        self._preprocessed = True
        self.preflight += f"; masks in all {len(dataset)} views checked" + (f" ({note})" if note else "")

    def _build_instances(self, request: TrainingRequest, preprocess: PreprocessConfig, models, started: float) -> None:  # noqa: ANN001
        from ovseg_core.models.registry import text_encoder_for
        from ovseg_core.pipeline import build_instances_from_dataset

        # no lock around the build: SAM2/CLIP preprocessing runs while every tab keeps rendering;
        # the renderer locks each of its own renders
        instances = build_instances_from_dataset(
            self.scene,
            request.dataset_path,
            models[0],
            models[1],
            preprocess=preprocess,
            renderer=self.renderer,
            progress=self._progress,
            cancel=self._cancel,
        )
        if request.log_path is not None:
            folder = Path(request.log_path) / time.strftime("instances_%Y-%m-%d_%H-%M-%S")
            self.instances_path = instances.save(folder / "scene.instances.pt")
        if self.on_instances is not None:
            self.on_instances((instances, text_encoder_for(instances)))
        self.fraction, self.state = 1.0, "done"
        self.message = (
            f"{len(instances.sizes)} instances in {time.perf_counter() - started:.0f} s; click one to select it"
        )

    def _run(self, request: TrainingRequest, config: LanguageTrainConfig, preprocess: PreprocessConfig) -> None:
        started = time.perf_counter()
        try:
            from ovseg_core.pipeline import build_models

            self.message = "loading SAM2 and OpenCLIP"
            models = self.models or build_models(preprocess)
            self._check_masks(request, preprocess, models)
            if self._cancel.is_set():
                raise Cancelled("cancelled")
            if request.method == "instances":
                self._build_instances(request, preprocess, models, started)
                return
            result = train_from_dataset(
                self.scene,
                request.dataset_path,
                config=config,
                preprocess=preprocess,
                log_path=request.log_path,
                mask_generator=models[0],
                image_encoder=models[1],
                renderer=self.renderer,
                progress=self._progress,
                cancel=self._cancel,
                method=request.method,
            )
            self.result = result
            if self.on_finished is not None:
                self.on_finished(result.fields)
            self.fraction, self.state = 1.0, "done"
            where = f"; saved in {result.run_dir}" if result.run_dir else ""
            self.message = f"done in {time.perf_counter() - started:.0f} s; the new fields are in use{where}"
        except Cancelled:
            self.state, self.message = "cancelled", "cancelled; the previous fields stay in use"
        except Exception as e:  # any failure is reported in the GUI, never crashes the viewer
            log.error("training failed:\n%s", traceback.format_exc())
            self.state, self.error = "failed", f"{type(e).__name__}: {e}"
            if isinstance(e, ModelLoadError):  # the library's advice names Python configs; a GUI user has fields
                self.error += (
                    " -- in the panel: give the SAM2 checkpoint and CLIP weights files, or pick Models = "
                    "tiny-random for a smoke run"
                )
            self.message = f"failed: {self.error}"
