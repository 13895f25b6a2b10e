"""Language-field training as a background job: progress, ETA, a loss history and a cancel flag.

The viewer keeps rendering meanwhile: the job is given the viewer's ``LockedRenderer``, whose
every render holds the device lock only while it runs, so frames interleave with training, lifting
and instance building (SAM2/CLIP preprocessing never holds it).

Before anything slow, ``start`` runs a preflight (seconds): the capture loads, and enough of its
cameras see the loaded splat; the job thread then checks on the first view that the chosen levels
have masks before preprocessing the rest.
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
from ovseg_core.models import Sam2Config
from ovseg_core.models.open_clip_encoder import OpenClipConfig
from ovseg_core.pipeline import PipelineProgress, PipelineResult, PreprocessConfig, train_from_dataset
from ovseg_core.pipeline.progress import PREPROCESS_SHARE
from ovseg_core.render.base import Renderer
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
            return PreprocessConfig(image_downsample_factor=self.image_downsample_factor, tiny_models=True)
        for what, path in (("SAM2 checkpoint", self.sam2_checkpoint_path), ("CLIP weights", self.clip_weights)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{what} {path} is not a file")
        sam2 = Sam2Config(
            checkpoint=self.model_size,
            checkpoint_path=str(self.sam2_checkpoint_path) if self.sam2_checkpoint_path else None,
        )
        clip = OpenClipConfig(pretrained=str(self.clip_weights)) if self.clip_weights else OpenClipConfig()
        return PreprocessConfig(image_downsample_factor=self.image_downsample_factor, sam2=sam2, clip=clip)


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
        p = means @ cam.w2c[:3, :3].T + cam.w2c[:3, 3]
        z = p[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = p @ cam.K.T
            x, y = uv[:, 0] / z, uv[:, 1] / z
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


def check_first_view_masks(dataset_path: Path, scene: GaussianScene, preprocess: PreprocessConfig, models, levels):  # noqa: ANN001, ANN201
    """Preprocess the first view only (cached, so not wasted) and refuse levels it has no mask at."""
    from ovseg_core.data.view_dataset import DatasetConfig, load_dataset
    from ovseg_core.preprocess import preprocess_views

    dataset = load_dataset(
        dataset_path,
        DatasetConfig(image_downsample_factor=preprocess.image_downsample_factor),
        reconstruction_metadata=scene.metadata,
    )
    features = preprocess_views(dataset, models[0], models[1], preprocess.cache_dir, indices=[0])
    counts = [int(c) for c in np.asarray(features[0].lengths)]
    if not any(counts):
        raise ValueError("SAM2 found no mask at all in the first view; use less image downsampling")
    missing = [lvl for lvl in levels if counts[lvl] == 0]
    if missing:
        have = ", ".join(f"level {k}: {c}" for k, c in enumerate(counts))
        raise ValueError(
            f"the first view has no SAM2 masks at level {', '.join(map(str, missing))} ({have}); "
            "choose a level that has masks, or use less image downsampling"
        )


class TrainingJob:
    """At most one training run at a time for a scene; everything a GUI shows is an attribute."""

    def __init__(
        self,
        scene: GaussianScene,
        renderer: Renderer,
        device_lock: threading.RLock | None = None,
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
        self.device_lock = device_lock
        """Only for renderers that do not lock themselves (the viewer passes a ``LockedRenderer``)."""
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
            self._phase, self._phase_started = "", time.perf_counter()
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

    def _progress(self, p: PipelineProgress) -> None:
        now = time.perf_counter()
        if p.phase != self._phase:
            self._phase, self._phase_started, self._phase_fraction = p.phase, now, p.fraction
        self.fraction, self.message = p.fraction, p.message
        if p.train is not None:
            self.losses.append((p.train.step, p.train.cosine_loss_valid))
            # the trainer's own ETA is steps-based; ignore it until a few steps give a rate
            eta = p.train.eta_s if p.train.step >= 5 and p.train.eta_s != float("inf") else None
            self.eta_s = eta
        elif p.phase != "load":  # preprocessing, lifting, instances: ETA of the phase from its own rate
            end = PREPROCESS_SHARE if p.phase == "preprocess" else 1.0  # preprocessing spans the first 30 %
            done = p.fraction - self._phase_fraction
            elapsed = now - self._phase_started
            share = end - self._phase_fraction
            self.eta_s = elapsed * (share - done) / done if done > 0 and elapsed > 1.0 else None
            if self.eta_s is not None:
                what = "in preprocessing; training not timed yet" if p.phase == "preprocess" else f"in {p.phase}"
                self.message = f"{p.message} (~{self.eta_s:.0f} s left {what})"

    def _build_instances(self, request: TrainingRequest, preprocess: PreprocessConfig, models, started: float) -> None:  # noqa: ANN001
        from ovseg_core.instances.instance_set import text_encoder_for_instances
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
            self.on_instances((instances, text_encoder_for_instances(instances)))
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
            self.message = "checking the first view's masks"
            levels = () if request.method == "instances" else request.levels
            check_first_view_masks(request.dataset_path, self.scene, preprocess, models, levels)
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
                device_lock=self.device_lock,
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
