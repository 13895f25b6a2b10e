"""``ovseg-preprocess``: SAM 2 masks + CLIP features of every image of a capture, into the cache
that ``ovseg-train``, lifting and the viewer read. Already-cached images are skipped, so a crashed
or cancelled run resumes where it stopped.

    ovseg-preprocess capture/                               # this process
    ovseg-preprocess capture/ --executor ray                # a local Ray instance, one actor per CPU/GPU
    ovseg-preprocess /shared/capture --executor ray --ray.address auto \\
        --preprocess.cache-dir /shared/ovseg_cache          # every node of a running Ray cluster
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tyro

from ovseg_app.command_runner import run_cli
from ovseg_core.preprocess.config import PreprocessConfig, RayConfig

if TYPE_CHECKING:
    from ovseg_core.preprocess.executor import PreprocessRun


@dataclasses.dataclass
class PreprocessCommand:
    """Fill the preprocessing cache of a capture (masks + CLIP features per image)."""

    sfm_dataset_path: tyro.conf.Positional[Path]
    """Capture: a COLMAP scene (images/ + sparse/), or a transforms.json (or its folder)."""
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    executor: Literal["local", "ray"] = "local"
    """local: this process. ray: Ray Data actors on a local Ray instance or the cluster at --ray.address."""
    ray: RayConfig = RayConfig()

    def execute(self) -> PreprocessRun:
        # heavy imports here, after parsing, so --help stays quick
        from ovseg_core.data import DatasetConfig, load_dataset
        from ovseg_core.pipeline import build_models
        from ovseg_core.preprocess.executor import import_ray, run_preprocessing

        if self.executor == "ray":
            import_ray()  # fail before loading anything when Ray is missing
        dataset = load_dataset(  # absolute: Ray actors have other working directories
            self.sfm_dataset_path.absolute(),
            DatasetConfig(image_downsample_factor=self.preprocess.image_downsample_factor),
        )
        return run_preprocessing(
            dataset,
            functools.partial(build_models, self.preprocess),
            executor=self.executor,
            cache_dir=self.preprocess.cache_dir,
            ray_config=self.ray,
            fuse_global=self.preprocess.concept_fusion,
            fusion_temperature=self.preprocess.fusion_temperature,
            progress=_ViewsBar(),
        )


class _ViewsBar:
    """The terminal's progress bar, fed by the library's ``progress(done, total)``."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="Preprocessing views (masks + CLIP)", unit="view", disable=None)
        self.bar.n = done
        self.bar.refresh()
        if done >= total:
            self.bar.close()


COMMAND = PreprocessCommand
DESCRIPTION = __doc__


def report(run: PreprocessRun) -> str:
    n = len(run.computed_indices)
    compute = run.seconds - run.startup_seconds
    rate = f", {n / compute:.3f} images/s after start-up" if n and compute > 0 else ""
    return (
        f"computed {n} of {len(run.features)} images ({len(run.cached_indices)} already cached) with "
        f"{run.workers} worker(s) in {run.seconds:.1f} s ({run.startup_seconds:.1f} s start-up{rate})\n"
        f"cache: {run.features.cache_dir}"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the atomic writes, which delete their temporary files


def main(argv: list[str] | None = None, prog: str = "ovseg-preprocess") -> int:
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a killed run unwinds like ctrl-C
    try:
        status = run_cli(prog, COMMAND, argv, description=DESCRIPTION, report=report)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if status == 130:
        print(f"{prog}: finished cache entries are kept", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
