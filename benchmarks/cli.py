"""``ovseg-bench``: speed and memory benchmarks (targets are checked here, never in unit tests).

``ovseg-bench render``: frames per second per backend and scene size, plus peak RSS of a
1M-Gaussian 1280x720 CPU render measured in a fresh subprocess.
``ovseg-bench train``: LangSplatV2 seconds per 1k steps, sparse contributions vs dense reference.
``ovseg-bench query``: text query -> per-Gaussian relevancy on 1M Gaussians.
``ovseg-bench lift``: training-free lifting vs LangSplatV2 training (time, per-object IoU).
``ovseg-bench instances``: building 3D instances from multi-view masks.
``ovseg-bench quality``: segment quality on a faint, capture-like scene (3D/2D IoU, instances).
``ovseg-bench view``: viewer latencies (prompt -> frame, click -> highlight, orbit frames/s).
``ovseg-bench preprocess``: images/s of the local and ray preprocessing executors.
``ovseg-bench scale``: seconds and peak RSS per stage on a LERF-sized capture (1M Gaussians, 150 views).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import tyro

from benchmarks.instances import InstancesBench
from benchmarks.machine import machine_info
from benchmarks.preprocess import PreprocessBench
from benchmarks.process_memory import peak_rss_mb
from benchmarks.quality import QualityBench
from benchmarks.robustness import RobustnessBench
from benchmarks.scale import ScaleBench
from benchmarks.train import LiftBench, QueryBench, TrainBench
from benchmarks.view import ViewBench
from ovseg_app.command_runner import run_cli
from ovseg_core.camera import Camera
from ovseg_core.render import fvdb_available, make_renderer

if TYPE_CHECKING:
    import torch

    from ovseg_core.scene import GaussianScene

GARDEN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsplat_test_garden" / "test_garden.npz"


def realistic_camera(width: int, height: int) -> Camera:
    """The benchmark view of ``realistic_scene``: standing in the room, looking at the back wall."""
    return Camera.look_at([0, -7.5, 2.2], [0, 1.5, 0.8], width=width, height=height, fov_y_deg=60)


@dataclasses.dataclass
class RenderBench:
    """Frames/s of each backend on synthetic scenes (and the real garden points when ../shared is present)."""

    sizes: tuple[int, ...] = (100_000, 300_000, 1_000_000)
    """Gaussian counts of the synthetic scenes."""
    resolutions: tuple[str, ...] = ("512x384", "1280x720")
    """Image sizes, WIDTHxHEIGHT."""
    backends: tuple[Literal["cpu", "torch", "fvdb"], ...] = ("cpu", "torch", "fvdb")
    """Backends to time (fvdb is skipped without CUDA)."""
    feature_cases: tuple[str, ...] = ("1000000@986x728x64",)
    """Feature renders, N@WIDTHxHEIGHTxD: N Gaussians blending D per-Gaussian feature channels along
    with RGB (the language-field case; cpu and fvdb only)."""
    torch_max_gaussians: int = 300_000
    """The torch reference is slow: time it only up to this many Gaussians, at the first resolution."""
    frames: int = 5
    """Timed frames per case (after one warm-up frame); the median is reported."""
    torch_frames: int = 3
    """Timed frames of the slow torch reference: one frame of it varied 2.6-3.5 s from run to run
    here, which moved the cpu-vs-torch ratio by a third; the median of three holds it steadier."""
    memory: bool = True
    """Also measure peak RSS of a 1M-Gaussian 1280x720 CPU render in a subprocess."""
    garden: bool = True
    """Also time the real garden points (138k Gaussians, full-size views) when ../shared/data has them."""
    output: Path = Path("bench_results/render.json")
    """Where to save the JSON results."""

    def execute(self) -> dict:
        import torch

        from ovseg_core.synthetic import realistic_scene, scene_from_points

        rows = []
        backends = [b for b in self.backends if b != "fvdb" or fvdb_available()]
        for n in self.sizes:
            scene = realistic_scene(n)
            for res in self.resolutions:
                w, h = _parse_res(res)
                for backend in backends:
                    if backend == "torch" and (n > self.torch_max_gaussians or res != self.resolutions[0]):
                        continue
                    rows.append(self._time(scene, f"synthetic-{n // 1000}k", [realistic_camera(w, h)], backend))
                    _print_row(rows[-1])
        for case in self.feature_cases:
            n, w, h, dims = _parse_feature_case(case)
            scene = realistic_scene(n)
            feats = torch.randn(n, dims, generator=torch.Generator().manual_seed(0))
            for backend in backends:
                if backend == "torch":
                    continue
                rows.append(
                    self._time(scene, f"synthetic-{n // 1000}k", [realistic_camera(w, h)], backend, features=feats)
                )
                _print_row(rows[-1])
        if self.garden and GARDEN.exists():
            data = np.load(GARDEN)
            scene = scene_from_points(data["means3d"], data["colors"])
            cams = [
                Camera(data["viewmats"][i], data["Ks"][i], int(data["width"]), int(data["height"]))
                for i in range(len(data["viewmats"]))
            ]
            for backend in backends:
                if backend == "torch" and scene.num_gaussians > self.torch_max_gaussians:
                    continue
                rows.append(self._time(scene, "garden-points", cams, backend))
                _print_row(rows[-1])
        result = {"machine": machine_info(), "render": rows, "cpu_vs_torch": cpu_vs_torch(rows)}
        for r in result["cpu_vs_torch"]:
            print(f"cpu vs torch, {r['scene']} at {r['resolution']}: {r['speedup']:.0f}x")
        if self.memory:
            result["memory"] = measure_peak_rss(1_000_000, 1280, 720)
            print(f"peak RSS, cpu, 1M Gaussians at 1280x720: {result['memory']['peak_rss_mb']:.0f} MB")
        print()
        print(markdown_table(rows))
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(result, indent=2))
        print(f"\nsaved {self.output}")
        return result

    def _time(
        self, scene: GaussianScene, name: str, cams: list[Camera], backend: str, features: torch.Tensor | None = None
    ) -> dict:
        renderer = make_renderer(backend)
        renderer.render(scene, cams[0], features=features)  # warm-up: JIT compile, caches, CUDA context
        frames = self.frames if backend != "torch" else self.torch_frames
        times, stages = [], []
        for i in range(frames):
            t0 = time.perf_counter()
            renderer.render(scene, cams[i % len(cams)], features=features)
            if backend == "fvdb":
                import torch

                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            stages.append(getattr(renderer, "last_timings", {}))
        sec = float(np.median(times))
        row = {
            "scene": name,
            "num_gaussians": scene.num_gaussians,
            "resolution": f"{cams[0].width}x{cams[0].height}",
            "features": 0 if features is None else int(features.shape[1]),
            "backend": backend,
            "seconds_per_frame": sec,
            "fps": 1.0 / sec,
            "frames_timed": frames,
        }
        if stages and stages[0]:  # the cpu backend reports where a frame's time goes
            row["stages_ms"] = {k: float(np.median([s[k] for s in stages])) * 1000 for k in stages[0]}
        return row


@dataclasses.dataclass
class MemoryProbe:
    """Internal: render once on the CPU and print peak RSS as JSON (run in a fresh process)."""

    num_gaussians: int = 1_000_000
    width: int = 1280
    height: int = 720

    def execute(self) -> dict:
        from ovseg_core.synthetic import realistic_scene

        scene = realistic_scene(self.num_gaussians)
        after_scene = peak_rss_mb()
        make_renderer("cpu").render(scene, realistic_camera(self.width, self.height))
        result = {"peak_rss_mb": peak_rss_mb(), "peak_rss_after_scene_mb": after_scene}
        print(json.dumps(result))
        return result


def measure_peak_rss(n: int, width: int, height: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.cli",
        "memory-probe",
        "--num-gaussians",
        str(n),
        "--width",
        str(width),
        "--height",
        str(height),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update({"num_gaussians": n, "resolution": f"{width}x{height}", "backend": "cpu"})
    return result


def cpu_vs_torch(rows: list[dict]) -> list[dict]:
    """cpu speed-up over the torch reference for every case both were timed on."""
    key = lambda r: (r["scene"], r["num_gaussians"], r["resolution"], r.get("features", 0))  # noqa: E731
    torch_rows = {key(r): r for r in rows if r["backend"] == "torch"}
    return [
        {
            "scene": r["scene"],
            "resolution": r["resolution"],
            "speedup": torch_rows[key(r)]["seconds_per_frame"] / r["seconds_per_frame"],
        }
        for r in rows
        if r["backend"] == "cpu" and key(r) in torch_rows
    ]


def _parse_feature_case(case: str) -> tuple[int, int, int, int]:
    try:
        n, rest = case.lower().split("@")
        w, h, d = (int(v) for v in rest.split("x"))
        return int(n), w, h, d
    except ValueError:
        raise ValueError(f"feature case must look like 1000000@986x728x64, got {case!r}") from None


def _parse_res(res: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in res.lower().split("x"))
    except ValueError:
        raise ValueError(f"resolution must look like 512x384, got {res!r}") from None
    return w, h


def _print_row(r: dict) -> None:
    feats = f" +{r['features']}ch" if r.get("features") else ""
    stages = " ".join(f"{k} {v:.0f}" for k, v in r.get("stages_ms", {}).items())
    print(
        f"{r['scene']:>16} {r['resolution']:>9}{feats} {r['backend']:>6}: {r['fps']:8.2f} fps "
        f"({r['seconds_per_frame'] * 1000:.0f} ms){'  [ms: ' + stages + ']' if stages else ''}",
        flush=True,
    )


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| scene | Gaussians | resolution | features | backend | ms/frame | frames/s |",
        "|---|---:|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scene']} | {r['num_gaussians']:,} | {r['resolution']} | {r.get('features', 0)} | {r['backend']} | "
            f"{r['seconds_per_frame'] * 1000:.0f} | {r['fps']:.2f} |"
        )
    return "\n".join(lines)


COMMAND = (
    Annotated[RenderBench, tyro.conf.subcommand("render")]
    | Annotated[MemoryProbe, tyro.conf.subcommand("memory-probe")]
    | Annotated[TrainBench, tyro.conf.subcommand("train")]
    | Annotated[QueryBench, tyro.conf.subcommand("query")]
    | Annotated[ViewBench, tyro.conf.subcommand("view")]
    | Annotated[LiftBench, tyro.conf.subcommand("lift")]
    | Annotated[InstancesBench, tyro.conf.subcommand("instances")]
    | Annotated[PreprocessBench, tyro.conf.subcommand("preprocess")]
    | Annotated[RobustnessBench, tyro.conf.subcommand("robustness")]
    | Annotated[QualityBench, tyro.conf.subcommand("quality")]
    | Annotated[ScaleBench, tyro.conf.subcommand("scale")]
)
"""The ``ovseg bench`` benchmarks (one registration line each)."""
DESCRIPTION = "Speed and memory benchmarks; each writes its figures as JSON under bench_results/."


def main(argv: list[str] | None = None, prog: str = "ovseg-bench") -> int:
    return run_cli(prog, COMMAND, argv, description=DESCRIPTION)


if __name__ == "__main__":
    sys.exit(main())
