"""Language-field training as a background job: progress, ETA, a loss history and a cancel flag.

The viewer keeps rendering meanwhile: training takes the shared device lock only around its own
renders (contribution precomputation), and the render loop takes it per frame.
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

from ovseg_core.errors import Cancelled
from ovseg_core.fields import LanguageFields, LanguageTrainConfig
from ovseg_core.fields.from_dataset import PipelineProgress, PipelineResult, PreprocessConfig, train_from_dataset
from ovseg_core.models import Sam2Config
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
    log_path: Path | None = None
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
        if self.model_size == "tiny-random":
            return PreprocessConfig(image_downsample_factor=self.image_downsample_factor, tiny_models=True)
        return PreprocessConfig(
            image_downsample_factor=self.image_downsample_factor, sam2=Sam2Config(checkpoint=self.model_size)
        )


class TrainingJob:
    """At most one training run at a time for a scene; everything a GUI shows is an attribute."""

    def __init__(
        self,
        scene: GaussianScene,
        renderer: Renderer,
        device_lock: threading.RLock,
        on_finished: Callable[[LanguageFields], None] | None = None,
        on_instances: Callable[[object], None] | None = None,
    ) -> None:
        self.on_instances = on_instances
        self.scene = scene
        self.renderer = renderer
        self.device_lock = device_lock
        self.on_finished = on_finished
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
            self.state, self.fraction, self.message, self.eta_s = "running", 0.0, "starting", None
            self.losses, self.error, self.result = [], None, None
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
        self.fraction, self.message = p.fraction, p.message
        if p.train is not None:
            self.losses.append((p.train.step, p.train.cosine_loss_valid))
            self.eta_s = p.train.eta_s if p.train.eta_s != float("inf") else None

    def _build_instances(self, request: TrainingRequest, preprocess: PreprocessConfig, started: float) -> None:
        from ovseg_core.instances import build_instances_from_dataset
        from ovseg_core.instances.instance_set import text_encoder_for_instances

        def progress(done: int, total: int) -> None:
            if self._cancel.is_set():
                raise Cancelled("instance building cancelled")
            self.fraction, self.message = done / max(total, 1), f"instances: view {done}/{total}"

        with self.device_lock:  # short (one render per view); the viewer waits a moment
            instances = build_instances_from_dataset(
                self.scene, request.dataset_path, preprocess=preprocess, renderer=self.renderer, progress=progress
            )
        if self.on_instances is not None:
            self.on_instances((instances, text_encoder_for_instances(instances)))
        self.fraction, self.state = 1.0, "done"
        self.message = (
            f"{len(instances.sizes)} instances in {time.perf_counter() - started:.0f} s; click one to select it"
        )

    def _run(self, request: TrainingRequest, config: LanguageTrainConfig, preprocess: PreprocessConfig) -> None:
        started = time.perf_counter()
        try:
            if request.method == "instances":
                self._build_instances(request, preprocess, started)
                return
            result = train_from_dataset(
                self.scene,
                request.dataset_path,
                config=config,
                preprocess=preprocess,
                log_path=request.log_path,
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
            self.message = f"done in {time.perf_counter() - started:.0f} s; the new fields are in use"
        except Cancelled:
            self.state, self.message = "cancelled", "cancelled; the previous fields stay in use"
        except Exception as e:  # any failure is reported in the GUI, never crashes the viewer
            log.error("training failed:\n%s", traceback.format_exc())
            self.state, self.error = "failed", f"{type(e).__name__}: {e}"
            self.message = f"failed: {self.error}"
