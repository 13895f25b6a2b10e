"""``ovseg train`` (alias ``ovseg-train``): language fields for a reconstruction, with the reference's
flags. ``langsplatv2`` trains sparse codebook fields; ``lift`` averages the 2D features per Gaussian
without training; ``instances`` builds 3D instances. All three run ``ovseg_core.pipeline``, as the
viewer's training job does."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import tyro

from ovseg_app.cli_checks import check_train_args, sigterm_as_interrupt
from ovseg_app.command_runner import describe, run_cli
from ovseg_core.errors import UsageError
from ovseg_core.fields.config import IOConfig, LanguageTrainConfig, LiftConfig, PreprocessConfig
from ovseg_core.pipeline.progress import PREPROCESS_SHARE
from ovseg_core.render import BackendName

if TYPE_CHECKING:
    from ovseg_core.pipeline import PipelineProgress, PipelineResult

EXAMPLES_LANGSPLATV2 = """
ovseg train langsplatv2 --sfm-dataset-path scene/ --reconstruction-path point_cloud.ply --config.feature-level 1
ovseg train langsplatv2 --sfm-dataset-path scene/ --reconstruction-path point_cloud.ply --config.all-levels --config.max-steps 3000
ovseg train langsplatv2 --sfm-dataset-path scene/ --reconstruction-path point_cloud.ply --config.method dense  # the reference's re-rasterising trainer (slow)
"""
EXAMPLES_INSTANCES = """
ovseg train instances --sfm-dataset-path scene/ --reconstruction-path point_cloud.ply   # writes point_cloud.instances.pt
"""
EXAMPLES_LIFT = """
ovseg train lift --sfm-dataset-path scene/ --reconstruction-path point_cloud.ply --config.all-levels
"""


@dataclasses.dataclass
class TrainCommand:
    """Train LangSplatV2 language fields on a frozen Gaussian splat."""

    sfm_dataset_path: Path
    """Capture: a COLMAP scene (images/ + sparse/), or a transforms.json (or its folder)."""
    reconstruction_path: Path
    """The splat (.ply INRIA/fVDB, compressed .ply, .spz, .splat or a gsplat/fVDB checkpoint) trained on that capture."""
    config: LanguageTrainConfig = LanguageTrainConfig()
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    io: IOConfig = IOConfig()
    log_path: Path | None = Path("langsplatv2_logs")
    """Directory for run subdirectories (checkpoints, metrics, images). None: save nothing."""
    run_name: str | None = None
    """Run directory name (default run_<timestamp>)."""
    use_every_n_as_val: int = -1
    """Hold out every N-th image for validation (e.g. 5); -1: no validation."""
    backend: BackendName = "auto"
    """Renderer for the per-view contributions (fvdb on CUDA, else the cpu rasteriser)."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """Where the splat and the fields live, and so where training steps, lifting, registration and
    instance voting run (``auto``: cuda when a GPU is present). The cpu rasteriser renders a GPU
    scene through a copy; fvdb renders it in place."""
    method: Literal["langsplatv2", "lift", "instances"] = "langsplatv2"
    """langsplatv2: train sparse codebook fields. lift: training-free, visibility-weighted average
    of the 2D mask features per Gaussian (OpenScene-style), stored the same way. instances: build
    class-agnostic 3D instances from the views' masks (the file ``ovseg query instances`` and
    ``ovseg view`` read). Set by the subcommand."""
    instances_output: Path | None = None
    """Where ``ovseg train instances`` writes; default ``<reconstruction>.instances.pt`` beside the
    splat (where ``ovseg-view`` finds it). An existing file is never replaced."""
    lift: LiftConfig = LiftConfig()

    def __post_init__(self) -> None:
        check_train_args(self)

    def execute(self) -> PipelineResult | Path:
        from ovseg_core.errors import Cancelled
        from ovseg_core.io import load_scene
        from ovseg_core.pipeline import train_from_dataset
        from ovseg_core.render import make_renderer

        sigterm_as_interrupt()  # SIGTERM stops like Ctrl-C: one line, finished outputs kept
        progress = _TerminalProgress()
        try:
            from ovseg_core.models._device import resolve_device

            scene = load_scene(self.reconstruction_path).to(resolve_device(self.device))
            renderer = make_renderer("torch" if self.config.method == "dense" else self.backend)
            preflight(scene, self.sfm_dataset_path, self.preprocess.image_downsample_factor, renderer)
            if self.method == "instances":
                return _build_instances(self, scene, renderer, progress)
            result = train_from_dataset(
                scene,
                self.sfm_dataset_path,
                config=self.config,
                preprocess=self.preprocess,
                use_every_n_as_val=self.use_every_n_as_val,
                log_path=self.log_path,
                run_name=self.run_name,
                io=self.io,
                renderer=renderer,
                progress=progress,
                method=self.method,
                lift=self.lift,
            )
        except (Cancelled, KeyboardInterrupt):
            progress.close()
            print("stopping: finished cache entries and checkpoints are kept", file=sys.stderr)
            raise
        finally:
            progress.close()
        return result


def preflight(scene, dataset_path: Path, image_downsample_factor: int, renderer) -> None:  # noqa: ANN001
    """Before models load: refuse a capture whose cameras do not see the splat (ValueError: one
    error line), warn when its photos do not look like the splat; prints what was checked."""
    from ovseg_core.data import DatasetConfig, load_dataset
    from ovseg_core.pipeline.preflight import check_cameras, check_photos

    dataset = load_dataset(
        dataset_path,
        DatasetConfig(image_downsample_factor=image_downsample_factor),
        reconstruction_metadata=scene.metadata,
    )
    summary = check_cameras(scene, dataset)
    photos = check_photos(scene, dataset, renderer)
    print(f"preflight: {summary}; {photos.summary()}", file=sys.stderr)
    if photos.warning(dataset_path):
        print(f"warning: {photos.warning(dataset_path)}", file=sys.stderr)


class _TerminalProgress:
    """One tqdm bar per phase, with the loss and ETA in its postfix."""

    def __init__(self) -> None:
        self.phase = ""
        self.offset = 0.0
        self.bar = None

    def __call__(self, p: PipelineProgress) -> None:
        from tqdm import tqdm

        if p.phase == "load" or p.checked:
            self.close()
            print(p.message, file=sys.stderr)
            return
        if p.phase != self.phase:
            self.close()
            self.phase = p.phase
            total = p.train.total_steps if p.train else 100
            self.offset = 0.0 if p.phase == "preprocess" else PREPROCESS_SHARE
            self.bar = tqdm(total=total, desc=p.phase, unit="step" if p.train else "%", dynamic_ncols=True)
        assert self.bar is not None
        if p.train is not None:
            self.bar.n = p.train.step
            t = p.train
            if t.phase == "train":
                self.bar.set_postfix(level=t.level, loss=f"{t.cosine_loss_valid:.4f}", refresh=False)
            else:  # before the first step (view contributions) or after the last (registration)
                self.bar.set_postfix(level=t.level, phase=f"{t.phase} {t.views_done}/{t.views_total}", refresh=False)
        else:
            span = PREPROCESS_SHARE if p.phase == "preprocess" else 1 - PREPROCESS_SHARE
            self.bar.n = round(100 * (p.fraction - self.offset) / span)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@dataclasses.dataclass
class TrainLangSplatV2(TrainCommand):
    """Train LangSplatV2 sparse-codebook language fields on a frozen Gaussian splat."""

    method: tyro.conf.Suppress[Literal["langsplatv2", "lift", "instances"]] = "langsplatv2"
    lift: tyro.conf.Suppress[LiftConfig] = LiftConfig()
    instances_output: tyro.conf.Suppress[Path | None] = None


@dataclasses.dataclass
class TrainLift(TrainCommand):
    """Training-free fields: the visibility-weighted average of the 2D mask features per Gaussian
    (OpenScene-style), stored like LangSplatV2's. Of --config only the levels apply."""

    method: tyro.conf.Suppress[Literal["langsplatv2", "lift", "instances"]] = "lift"
    instances_output: tyro.conf.Suppress[Path | None] = None


@dataclasses.dataclass
class TrainInstances(TrainCommand):
    """Class-agnostic 3D instances (OpenMask3D-style) from the capture's multi-view masks, saved as the
    instances file that ``ovseg query instances`` and ``ovseg view`` read. Of --config only the
    renderer choice applies."""

    method: tyro.conf.Suppress[Literal["langsplatv2", "lift", "instances"]] = "instances"
    lift: tyro.conf.Suppress[LiftConfig] = LiftConfig()


COMMAND = (
    Annotated[
        TrainLangSplatV2,
        tyro.conf.subcommand("langsplatv2", description=describe(TrainLangSplatV2, EXAMPLES_LANGSPLATV2)),
    ]
    | Annotated[TrainLift, tyro.conf.subcommand("lift", description=describe(TrainLift, EXAMPLES_LIFT))]
    | Annotated[
        TrainInstances, tyro.conf.subcommand("instances", description=describe(TrainInstances, EXAMPLES_INSTANCES))
    ]
)
"""The ``ovseg train`` modes."""
DESCRIPTION = "Language fields for a Gaussian splat from its capture: train LangSplatV2 or lift 2D features."


def report(result: PipelineResult | Path) -> str:
    if isinstance(result, Path):  # ovseg train instances
        return f"wrote {result}"
    lines = [
        f"level {level}: masked cosine loss {result.initial_losses[level]:.4f} -> {result.final_losses[level]:.4f}"
        for level in sorted(result.final_losses)
    ]
    if result.checkpoint is not None:
        lines.append(f"wrote {result.checkpoint}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "ovseg-train") -> int:
    return run_cli(prog, COMMAND, argv, description=DESCRIPTION, report=report)


def _build_instances(cmd: TrainCommand, scene, renderer, progress: _TerminalProgress) -> Path:  # noqa: ANN001
    """``ovseg train instances``: 3D instances from the capture's masks, saved as an instances file."""
    from ovseg_core.pipeline import build_instances_from_dataset

    out = cmd.instances_output or cmd.reconstruction_path.with_suffix(".instances.pt")
    if out.exists():
        raise UsageError(f"{out} exists; remove it or pass --instances-output elsewhere")
    instances = build_instances_from_dataset(
        scene, cmd.sfm_dataset_path, preprocess=cmd.preprocess, renderer=renderer, progress=progress
    )
    progress.close()
    path = instances.save(out)
    print(f"{len(instances.sizes)} instances")
    return path


if __name__ == "__main__":
    sys.exit(main())
