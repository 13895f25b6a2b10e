"""Language-field training as a background job: progress, ETA, a loss history and a cancel flag.

The viewer keeps rendering meanwhile: the job is given the viewer's ``LockedRenderer``, whose
every render holds the device lock only while it runs, so frames interleave with training, lifting
and instance building (SAM2/CLIP preprocessing never holds it).

Before anything slow, ``start`` runs the camera preflight of ``ovseg_core.pipeline.preflight``
(seconds): the capture loads, and enough of its cameras see the loaded splat. The job thread then
compares a few photos with renders (a warning when they disagree) and preprocesses with the mask
census, which refuses a level without masks in seconds (as ``ovseg train`` does).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ovseg_core.errors import Cancelled, ModelLoadError, UsageError
from ovseg_core.fields import LanguageFields, LanguageTrainConfig
from ovseg_core.models import Sam2Config
from ovseg_core.models.open_clip_encoder import OpenClipConfig
from ovseg_core.models.sam2_masks import SAM2_INSTALL_HINT
from ovseg_core.pipeline import PipelineProgress, PipelineResult, PreprocessConfig, train_from_dataset
from ovseg_core.pipeline.progress import EtaModel
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene

log = logging.getLogger(__name__)

ModelSize = Literal["demo-palette", "tiny-random", "tiny", "small", "base_plus", "large"]
MODEL_SIZES: tuple[str, ...] = ("demo-palette", "tiny-random", "tiny", "small", "base_plus", "large")
JobState = Literal["idle", "running", "done", "failed", "cancelled"]
MODEL_ADVICE = (
    " -- in the panel: give local SAM2 checkpoint and CLIP weights files (without them the weights are "
    "downloaded from the Hugging Face hub, which needs network access); every SAM2 size, and Models = "
    f"tiny-random (a smoke run), needs SAM 2 installed: {SAM2_INSTALL_HINT}. The built-in demo scene "
    "trains offline with Models = demo-palette"
)
"""Appended to a model-loading error in the GUI (the library's advice names Python configs)."""


@dataclasses.dataclass(frozen=True)
class TrainingRequest:
    """What the training panel asks for."""

    dataset_path: Path
    levels: tuple[int, ...] = (1,)
    """Feature levels to train: one, or (1, 2, 3)."""
    steps: int = 10_000
    """Steps per level."""
    model_size: ModelSize = "large"
    """SAM2 size; ``tiny-random`` uses tiny random SAM2 + OpenCLIP (a smoke run, fields mean nothing);
    ``demo-palette`` the colour-palette models of the built-in demo (offline, only for its scene)."""
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
        common: dict[str, Any] = dict(max_steps=self.steps, log_every=max(1, self.steps // 200))
        if self.model_size == "demo-palette":
            # as scripts/make_demo_fields.py: the demo's Gaussians are nearly opaque, so a pixel's
            # first 16 carry its weight, and only Gaussians at least slightly visible learn
            common.update(contributions_top_k=16, contributions_min_weight=0.02)
        if self.levels == (1, 2, 3):
            return LanguageTrainConfig(all_levels=True, **common)
        if len(self.levels) != 1:
            raise UsageError(f"train one level or all of 1, 2, 3; got {self.levels}")
        return LanguageTrainConfig(feature_level=self.levels[0], **common)

    def preprocess_config(self) -> PreprocessConfig:
        if not 1 <= self.image_downsample_factor <= 64:
            raise UsageError(f"image downsample must be 1-64, got {self.image_downsample_factor}")
        if self.model_size in ("tiny-random", "demo-palette"):
            return PreprocessConfig(
                image_downsample_factor=self.image_downsample_factor,
                tiny_models=self.model_size == "tiny-random",
                cache_dir=self.cache_dir,
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

    def build_models(self, preprocess: PreprocessConfig) -> tuple[Any, Any]:
        """(mask generator, image encoder) this request names."""
        if self.model_size == "demo-palette":
            from ovseg_app.demo import demo_models

            return demo_models()
        from ovseg_core.pipeline import build_models

        return build_models(preprocess)

    def fields_config(self) -> dict[str, Any]:
        """What the trained fields must carry to answer prompts (the palette models' vocabulary)."""
        if self.model_size != "demo-palette":
            return {}
        from ovseg_app.demo import demo_vocabulary

        return {"vocabulary": demo_vocabulary().to_dict()}


def preflight_capture(scene: GaussianScene, request: TrainingRequest):  # noqa: ANN201 - (str, ViewDataset)
    """Load the capture aligned with ``scene`` and check that its cameras see it (seconds, no
    images read): (one-line summary, the dataset); raises ValueError naming the problem."""
    from ovseg_core.data.view_dataset import DatasetConfig, load_dataset
    from ovseg_core.pipeline.preflight import check_cameras

    if not Path(request.dataset_path).exists():
        raise FileNotFoundError(f"dataset {request.dataset_path} does not exist")
    dataset = load_dataset(
        request.dataset_path,
        DatasetConfig(image_downsample_factor=request.image_downsample_factor),
        reconstruction_metadata=scene.metadata,
    )
    return check_cameras(scene, dataset), dataset


class TrainingJob:
    """At most one training run at a time for a scene; everything a GUI shows is an attribute."""

    def __init__(
        self,
        scene: GaussianScene,
        renderer: Renderer,
        on_finished: Callable[[LanguageFields], None] | None = None,
        on_instances: Callable[[object], None] | None = None,
        models: tuple | None = None,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """``models``: (mask generator, image encoder) to use instead of the ones each request
        names (tests pass small planted ones). ``on_change``: called (from any thread) after every
        change of ``state``, ``fraction``, ``message`` or ``losses``, so a GUI can show them."""
        self.models = models
        self.on_instances = on_instances
        self.scene = scene
        self.renderer = renderer
        self.on_finished = on_finished
        self.on_change = on_change
        self.preflight = ""
        self.warning = ""
        """'' or a one-line warning from the preflight (photos that do not look like the splat)."""
        self.instances_path: Path | None = None
        self.state: JobState = "idle"
        self.fraction = 0.0
        self.message = ""
        self.eta_s: float | None = None
        self.losses: list[tuple[int, float]] = []
        self.error: str | None = None
        self.result: PipelineResult | None = None
        self._eta = EtaModel()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self.state == "running"

    def _set(self, **changes: Any) -> None:
        """Change attributes, then tell ``on_change`` (whose errors are logged, never raised here)."""
        for name, value in changes.items():
            setattr(self, name, value)
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # noqa: BLE001 - a GUI's failure must not stop the run
                log.exception("training job on_change failed")

    def start(self, request: TrainingRequest) -> None:
        with self._lock:
            if self.running:
                raise RuntimeError("a training run is already in progress; cancel it first")
            config, preprocess = request.train_config(), request.preprocess_config()  # validate before starting
            summary, dataset = preflight_capture(self.scene, request)
            self.preflight, self.warning = summary, ""
            self.error, self.result, self.instances_path, self.eta_s = None, None, None, None
            self._eta = EtaModel(len(request.levels), len(dataset))
            self._cancel.clear()
            self._set(state="running", fraction=0.0, message="starting", losses=[])
            self._thread = threading.Thread(
                target=self._run, args=(request, config, preprocess, dataset), daemon=True, name="ovseg-training"
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
        message = self._eta.update(p)
        if p.checked:
            self.preflight += f"; {p.checked}"
        t = p.train
        if t is not None and t.phase not in ("contributions", "register"):
            self.losses.append((t.step, t.cosine_loss_valid))
        self._set(fraction=p.fraction, message=message, eta_s=self._eta.eta_s)

    def _check_photos(self, request: TrainingRequest, dataset) -> None:  # noqa: ANN001 - ViewDataset
        from ovseg_core.pipeline.preflight import check_photos

        self._set(message="comparing a few photos with renders of the splat")
        check = check_photos(self.scene, dataset, self.renderer)
        self.warning = check.warning(request.dataset_path)
        self.preflight += f"; {check.summary()}" + (f". **Warning**: {self.warning}" if self.warning else "")
        if self.warning:
            log.warning("%s", self.warning)

    def _build_instances(self, request: TrainingRequest, preprocess: PreprocessConfig, models, started: float) -> str:  # noqa: ANN001
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
        return f"{len(instances.sizes)} instances in {time.perf_counter() - started:.0f} s; click one to select it"

    def _train(self, request: TrainingRequest, config, preprocess: PreprocessConfig, models, started: float) -> str:  # noqa: ANN001
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
            fields_config=request.fields_config(),
        )
        self.result = result
        if self.on_finished is not None:
            self.on_finished(result.fields)
        where = f"; saved in {result.run_dir}" if result.run_dir else ""
        return f"done in {time.perf_counter() - started:.0f} s; the new fields are in use{where}"

    def _run(
        self, request: TrainingRequest, config: LanguageTrainConfig, preprocess: PreprocessConfig, dataset
    ) -> None:  # noqa: ANN001
        started = time.perf_counter()
        try:
            self._check_photos(request, dataset)
            self._set(message="loading the mask generator and image encoder")
            models = self.models or request.build_models(preprocess)
            if self._cancel.is_set():
                raise Cancelled("cancelled")
            if request.method == "instances":
                message = self._build_instances(request, preprocess, models, started)
            else:
                message = self._train(request, config, preprocess, models, started)
            if self.warning:
                message += f". Warning: {self.warning}"
            self._set(state="done", fraction=1.0, eta_s=None, message=message)
        except Cancelled:
            self._set(state="cancelled", eta_s=None, message="cancelled; the previous fields stay in use")
        except Exception as e:  # any failure is reported in the GUI, never crashes the viewer
            log.error("training failed:\n%s", traceback.format_exc())
            error = f"{type(e).__name__}: {e}"
            if isinstance(e, ModelLoadError):
                error += MODEL_ADVICE
            self.error = error
            self._set(state="failed", eta_s=None, message=f"failed: {error}")
