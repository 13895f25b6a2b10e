"""``ovseg-bench preprocess``: images/s of the preprocessing executors, ``local`` (this process, torch
on every core) vs ``ray`` (a local Ray instance with N one-CPU actors), Ray's start-up stated apart.

Each executor fills its own fresh cache from the same capture (a synthetic one by default, or
``--capture``), so nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tempfile
import time
from pathlib import Path
from typing import Literal

from ovseg_core.fields.config import PreprocessConfig


@dataclasses.dataclass
class PreprocessBench:
    """Preprocessing throughput: local executor vs Ray Data actors."""

    num_images: int = 4
    """Images of the synthetic capture (ignored with --capture)."""
    width: int = 64
    """Synthetic image width (SAM 2 encodes at 1024 px whatever the size)."""
    height: int = 48
    """Synthetic image height."""
    capture: Path | None = None
    """A capture to preprocess instead of the synthetic one."""
    preprocess: PreprocessConfig = PreprocessConfig(tiny_models=True)
    """Models and settings (default: the tiny random SAM 2 + CLIP, so it runs offline)."""
    ray_workers: int = 2
    """One-CPU Ray actors (and CPUs of the local Ray instance)."""
    executors: tuple[Literal["local", "ray"], ...] = ("local", "ray")
    """Executors to time, in this order."""
    output: Path = Path("bench_results/preprocess.json")
    """Where to save the JSON results."""

    def execute(self) -> dict:
        from ovseg_core.data import DatasetConfig, load_dataset
        from ovseg_core.pipeline import build_models
        from ovseg_core.preprocess.executor import RayConfig, import_ray, run_preprocessing

        with tempfile.TemporaryDirectory(prefix="ovseg-bench-preprocess-") as tmp:
            capture = self.capture or self._synthetic_capture(Path(tmp) / "capture")
            dataset = load_dataset(
                capture, DatasetConfig(image_downsample_factor=self.preprocess.image_downsample_factor)
            )
            factory = functools.partial(build_models, self.preprocess)
            rows = []
            for executor in self.executors:
                cache = Path(tmp) / f"cache-{executor}"
                ray_init = 0.0
                if executor == "ray":
                    ray = import_ray()
                    start = time.perf_counter()
                    ray.init(num_cpus=self.ray_workers, include_dashboard=False, log_to_driver=False)
                    ray_init = time.perf_counter() - start
                try:
                    run = run_preprocessing(
                        dataset,
                        factory,
                        executor=executor,
                        cache_dir=cache,
                        ray_config=RayConfig(concurrency=self.ray_workers),
                        fuse_global=self.preprocess.concept_fusion,
                        fusion_temperature=self.preprocess.fusion_temperature,
                    )
                finally:
                    if executor == "ray":
                        ray.shutdown()
                n = len(run.computed_indices)
                wall = ray_init + run.seconds
                startup = ray_init + run.startup_seconds
                rows.append(
                    {
                        "executor": executor,
                        "workers": run.workers,
                        "images": n,
                        "wall_seconds": wall,
                        "startup_seconds": startup,
                        "ray_init_seconds": ray_init if executor == "ray" else None,
                        "images_per_s": n / wall,
                        "images_per_s_after_startup": n / max(wall - startup, 1e-9),
                    }
                )
                print(_row(rows[-1]), flush=True)
        result = {"capture": str(self.capture or "synthetic"), "models": _models(self.preprocess), "rows": rows}
        print()
        print(markdown_table(rows))
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(result, indent=2))
        print(f"\nsaved {self.output}")
        return result

    def _synthetic_capture(self, root: Path) -> Path:
        from ovseg_core.camera import orbit_cameras
        from ovseg_core.synthetic import floating_objects_scene, write_capture

        cams = orbit_cameras((0, 0, 0.05), 2.0, self.num_images, elevation_deg=30, width=self.width, height=self.height)
        write_capture(floating_objects_scene(points_per_object=200, backdrop=1500), cams, root)
        return root


def _models(config: PreprocessConfig) -> str:
    return (
        "tiny random SAM 2 + CLIP" if config.tiny_models else f"SAM 2.1 {config.sam2.checkpoint} + {config.clip.model}"
    )


def _row(r: dict) -> str:
    return (
        f"{r['executor']:>6} x{r['workers']}: {r['images']} images in {r['wall_seconds']:.1f} s "
        f"({r['startup_seconds']:.1f} s start-up): {r['images_per_s']:.3f} images/s, "
        f"{r['images_per_s_after_startup']:.3f} after start-up"
    )


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| executor | workers | images | wall s | start-up s | images/s | images/s after start-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['executor']} | {r['workers']} | {r['images']} | {r['wall_seconds']:.1f} | "
            f"{r['startup_seconds']:.1f} | {r['images_per_s']:.3f} | {r['images_per_s_after_startup']:.3f} |"
        )
    return "\n".join(lines)
