"""``ovseg-train``: LangSplatV2 language fields for a reconstruction, with the reference's flags.

    ovseg-train --sfm-dataset-path scene/ --reconstruction-path point_cloud.ply \\
        --config.feature-level 1 --log-path langsplatv2_logs
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import tyro

from ovseg_core.errors import Cancelled, FieldMismatchError, ModelLoadError, SceneFormatError
from ovseg_core.fields import LanguageTrainConfig
from ovseg_core.fields.from_dataset import IOConfig, PipelineProgress, PreprocessConfig, train_from_dataset
from ovseg_core.fields.lifting import LiftConfig
from ovseg_core.io import load_scene
from ovseg_core.render import make_renderer


@dataclasses.dataclass
class TrainCommand:
    """Train LangSplatV2 language fields on a frozen Gaussian splat."""

    sfm_dataset_path: Path
    """Capture: a COLMAP scene (images/ + sparse/), or a transforms.json (or its folder)."""
    reconstruction_path: Path
    """The splat (.ply INRIA/fVDB, compressed .ply or .splat) trained on that capture."""
    config: LanguageTrainConfig = LanguageTrainConfig()
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    io: IOConfig = IOConfig()
    log_path: Path | None = Path("langsplatv2_logs")
    """Directory for run subdirectories (checkpoints, metrics, images). None: save nothing."""
    run_name: str | None = None
    """Run directory name (default run_<timestamp>)."""
    use_every_n_as_val: int = -1
    """Hold out every N-th image for validation (e.g. 5); -1: no validation."""
    backend: Literal["auto", "fvdb", "cpu", "torch"] = "auto"
    """Renderer for the per-view contributions (fvdb on CUDA, else the cpu rasteriser)."""
    method: Literal["langsplatv2", "lift", "instances"] = "langsplatv2"
    """langsplatv2: train sparse codebook fields. lift: training-free, visibility-weighted average
    of the 2D mask features per Gaussian (OpenScene-style), stored the same way. instances: build
    class-agnostic 3D instances from the views' masks (the file ``ovseg-query --instances`` and
    ``ovseg-view`` read)."""
    instances_output: Path | None = None
    """Where ``--method instances`` writes; default ``<reconstruction>.instances.pt`` beside the
    splat (where ``ovseg-view`` finds it). An existing file is never replaced."""
    lift: LiftConfig = LiftConfig()


class _TerminalProgress:
    """One tqdm bar per phase, with the loss and ETA in its postfix."""

    def __init__(self) -> None:
        self.phase = ""
        self.offset = 0.0
        self.bar = None

    def __call__(self, p: PipelineProgress) -> None:
        from tqdm import tqdm

        if p.phase == "load":
            print(p.message, file=sys.stderr)
            return
        if p.phase != self.phase:
            self.close()
            self.phase = p.phase
            total = p.train.total_steps if p.train else 100
            self.offset = 0.0 if p.phase == "preprocess" else 0.3
            self.bar = tqdm(total=total, desc=p.phase, unit="step" if p.train else "%", dynamic_ncols=True)
        assert self.bar is not None
        if p.train is not None:
            self.bar.n = p.train.step
            self.bar.set_postfix(level=p.train.level, loss=f"{p.train.cosine_loss_valid:.4f}", refresh=False)
        else:
            self.bar.n = round(100 * (p.fraction - self.offset) / (0.3 if p.phase == "preprocess" else 0.7))
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def main(argv: list[str] | None = None) -> int:
    cmd = tyro.cli(TrainCommand, args=argv)
    progress = _TerminalProgress()
    try:
        scene = load_scene(cmd.reconstruction_path)
        renderer = make_renderer("torch" if cmd.config.method == "dense" else cmd.backend)
        if cmd.method == "instances":
            return _build_instances(cmd, scene, renderer)
        result = train_from_dataset(
            scene,
            cmd.sfm_dataset_path,
            config=cmd.config,
            preprocess=cmd.preprocess,
            use_every_n_as_val=cmd.use_every_n_as_val,
            log_path=cmd.log_path,
            run_name=cmd.run_name,
            io=cmd.io,
            renderer=renderer,
            progress=progress,
            method=cmd.method,
            lift=cmd.lift,
        )
    except (Cancelled, KeyboardInterrupt):
        progress.close()
        print("ovseg-train: interrupted; finished cache entries and checkpoints are kept", file=sys.stderr)
        return 130
    except (SceneFormatError, FieldMismatchError, ModelLoadError, ValueError, FileNotFoundError, FileExistsError) as e:
        progress.close()
        print(f"ovseg-train: error: {e}", file=sys.stderr)
        return 2
    progress.close()
    for level in sorted(result.final_losses):
        print(
            f"level {level}: masked cosine loss {result.initial_losses[level]:.4f} -> {result.final_losses[level]:.4f}"
        )
    if result.checkpoint is not None:
        print(f"wrote {result.checkpoint}")
    return 0


def _build_instances(cmd: TrainCommand, scene, renderer) -> int:  # noqa: ANN001
    """``--method instances``: 3D instances from the capture's masks, saved as an instances file."""
    from ovseg_core.instances import build_instances_from_dataset

    out = cmd.instances_output or cmd.reconstruction_path.with_suffix(".instances.pt")
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it or pass --instances-output elsewhere")
    instances = build_instances_from_dataset(scene, cmd.sfm_dataset_path, preprocess=cmd.preprocess, renderer=renderer)
    path = instances.save(out)
    print(f"{len(instances.sizes)} instances; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
