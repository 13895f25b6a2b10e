"""``ovseg-bench scale``: seconds and peak memory per stage on a LERF-sized synthetic capture.

The capture (``ovseg_core.synthetic.scale_capture``) has by default 1,000,000 Gaussians with a real
splat's statistics (median opacity ~0.06, ~30 Gaussians blended per pixel, haze, floaters) and
150 views at 986x728 whose masks and mask features are planted per region. Stages:

- ``contributions``: one view's per-pixel blending contributions (what training caches per view);
- ``lifting``: training-free lifting of every view's features;
- ``training``: LangSplatV2 for ``--steps`` steps; its first pass (every view's contributions
  and the initial loss), the steps (extrapolated to 1k steps, and said so) and the final loss +
  registration are reported apart;
- ``instances``: 3D instances from every view's masks;
- ``query``: one text prompt -> per-Gaussian relevancy of the trained (else lifted) fields.

Peak RSS is sampled per stage (VmRSS of this process, every 10 ms, by a background thread) and the
process maximum (``getrusage``) is checked against ``--budget-gb``. With CUDA present the stages
run again with the scene on the GPU, adding ``torch.cuda.max_memory_allocated`` per stage.
Every stage first runs once on a tiny capture (numba JIT, lazy imports) outside the timings. Before
each stage, memory that earlier stages freed but the allocator kept is handed back to the OS (glibc
``malloc_trim``), so a stage's peak is its own plus what is live (as in a process that runs only
that stage, which is what ``ovseg train`` does); within a stage the allocator is left alone. The
process maximum (``getrusage``) is reported as well.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from benchmarks.machine import machine_info
from benchmarks.process_memory import current_rss_mb, peak_rss_mb, status_mb

if TYPE_CHECKING:  # torch and the fields load when the bench runs, not when ``ovseg --help`` lists it
    from ovseg_core.synthetic.faint_capture import FaintCapture

Stage = Literal["contributions", "lifting", "training", "instances", "query"]
STAGES: tuple[Stage, ...] = ("contributions", "lifting", "training", "instances", "query")
Device = Literal["cpu", "cuda"]
VIEW_CHUNK = 16
"""Views generated between two hand-backs of the generator's freed temporaries."""


@dataclasses.dataclass
class ScaleBench:
    """Seconds and peak RSS per stage (contributions, lifting, training, instances, query) on a
    LERF-sized synthetic capture, on the cpu and (when present) on CUDA."""

    gaussians: int = 1_000_000
    """Gaussians in the scene (half floor and wall, 1% floaters, 600 haze blobs, the rest objects)."""
    views: int = 150
    """Camera views (all are lifted, trained on and used for instances)."""
    width: int = 986
    height: int = 728
    steps: int = 200
    """Training steps timed; the per-1k-step figure is extrapolated from them."""
    stages: tuple[Stage, ...] = STAGES
    """Stages to run, in this order."""
    devices: tuple[Device, ...] | None = None
    """Devices to run on; default: cpu, plus cuda when torch sees a GPU."""
    objects: int = 8
    """Objects in the scene (at most 8); each is one planted mask feature."""
    level: int = 1
    """Feature level lifted, trained and used for instances."""
    contributions_top_k: int = 64
    """Gaussians kept per pixel for training's contributions (training's default)."""
    mask_downsample: int = 4
    """The planted masks are computed at 1/this resolution, then upsampled."""
    budget_gb: float = 16.0
    """Peak RSS budget: the report says whether the process stayed under it."""
    seed: int = 0
    json: Path | None = None
    """Also write the report as JSON here (atomically)."""

    def __post_init__(self) -> None:
        for name in ("gaussians", "views", "width", "height", "mask_downsample"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.steps < 2:
            raise ValueError(f"--steps must be >= 2 (a per-step rate needs two steps), got {self.steps}")
        if self.budget_gb <= 0:
            raise ValueError(f"--budget-gb must be positive, got {self.budget_gb}")
        if not 1 <= self.objects <= 8:
            raise ValueError(f"--objects must be in [1, 8], got {self.objects}")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")

    def execute(self) -> dict:
        import torch

        from ovseg_core.synthetic.scale_capture import scale_capture, scale_views

        devices = list(self.devices) if self.devices is not None else ["cpu"]
        if self.devices is None and torch.cuda.is_available():
            devices.append("cuda")
        if "cuda" in devices and not torch.cuda.is_available():
            raise ValueError("--devices cuda: torch sees no CUDA device")
        sampler = RssSampler()
        sampler.start()
        try:
            rows: list[dict[str, Any]] = []
            with measure(sampler, "setup", "cpu") as rec:
                capture = scale_capture(
                    self.gaussians, self.views, self.width, self.height, num_objects=self.objects, seed=self.seed
                )
                views = []
                for start in range(0, len(capture.cameras), VIEW_CHUNK):
                    cams = capture.cameras[start : start + VIEW_CHUNK]
                    views += scale_views(capture, cams, self.mask_downsample, first_index=start)
                    release_freed_memory()  # the generator's temporaries, not the pipeline's
                covered = float(sum(float((v.seg_maps[0] >= 0).float().mean()) for v in views) / len(views))
                rec["note"] = (
                    f"{capture.scene.num_gaussians:,} Gaussians, {len(views)} views at {self.width}x{self.height}, "
                    f"masks on {covered:.0%} of pixels"
                )
            rows.append(rec)
            print(_row_line(rec), flush=True)
            for device in devices:
                self._warm_up(device)
                rows += self._run_device(capture, views, device, sampler)
        finally:
            sampler.stop()
        process_peak = max(peak_rss_mb(), sampler.overall_peak_mb)
        report = {
            "machine": machine_info(),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()},
            "capture": {
                "gaussians": capture.scene.num_gaussians,
                "views": len(views),
                "resolution": f"{self.width}x{self.height}",
                "objects": capture.num_objects,
                "mask_coverage": covered,
            },
            "stages": rows,
            "peak_rss_mb": process_peak,
            "budget_gb": self.budget_gb,
            "under_budget": process_peak <= self.budget_gb * 1024,
            "rss_sampler": sampler.source,
        }
        table = markdown_table(rows)
        report["table"] = table
        print()
        print(table)
        print()
        verdict = "under" if report["under_budget"] else "OVER"
        print(f"process peak RSS {process_peak:,.0f} MB: {verdict} the {self.budget_gb:g} GB budget")
        if self.json is not None:
            from ovseg_core.io.atomic import atomic_write_bytes

            atomic_write_bytes(self.json, (json.dumps(report, indent=2) + "\n").encode())
            print(f"saved {self.json}")
        failed = [f"{r['stage']} ({r['device']})" for r in rows if r.get("error")]
        if failed:
            raise RuntimeError(f"stage(s) failed: {', '.join(failed)}; see the table above")
        return report

    # -- stages -------------------------------------------------------------------------------
    def _run_device(self, capture: FaintCapture, views: list, device: str, sampler: RssSampler) -> list[dict]:
        from ovseg_core.render import make_renderer

        scene = capture.scene if device == "cpu" else capture.scene.to(device)
        renderer = make_renderer("cpu") if device == "cpu" else make_renderer("auto")
        rows: list[dict] = []
        state: dict[str, Any] = {}
        for stage in self.stages:
            run = getattr(self, f"_{stage}")
            with measure(sampler, stage, device) as rec:
                try:
                    extra = run(capture, scene, views, renderer, state, sampler, rec)
                except Exception as e:  # a failed stage is reported; the others still run
                    rec["error"] = f"{type(e).__name__}: {e}"
                    traceback.print_exc()
                    extra = []
            rec["backend"] = renderer.name
            rows.append(rec)
            print(_row_line(rec), flush=True)
            for r in extra:  # sub-stages measured inside (training)
                r.update(backend=renderer.name)
                rows.append(r)
                print(_row_line(r), flush=True)
        del scene, state
        return rows

    def _contributions(self, capture, scene, views, renderer, state, sampler, rec) -> list:  # noqa: ANN001
        from ovseg_core.fields.view_contributions import compute_contributions

        view = views[0]
        valid = (view.seg_maps[self.level] >= 0).cpu().numpy()
        contrib = compute_contributions(renderer, scene, view.camera, valid, self.contributions_top_k, 0.0)
        size = contrib.nbytes() if callable(getattr(contrib, "nbytes", None)) else None
        rec["contributions_mb"] = size / 2**20 if size is not None else None
        rec["entries"] = int(contrib.num_entries) if hasattr(contrib, "num_entries") else None
        rec["note"] = f"one view, top-{self.contributions_top_k}, {int(valid.sum()):,} masked pixels" + (
            f", {rec['contributions_mb']:.0f} MB stored, {rec['entries']:,} entries" if size is not None else ""
        )
        return []

    def _lifting(self, capture, scene, views, renderer, state, sampler, rec) -> list:  # noqa: ANN001
        from ovseg_core.fields.config import LiftConfig
        from ovseg_core.fields.lifting import lift_language_fields

        fields = lift_language_fields(scene, views, [self.level], renderer, LiftConfig(), encoder_name="scale-bench")
        state["lifted"] = fields
        rec["note"] = f"{len(views)} views, level {self.level}"
        return []

    def _training(self, capture, scene, views, renderer, state, sampler, rec) -> list:  # noqa: ANN001
        from ovseg_core.fields.config import LanguageTrainConfig
        from ovseg_core.fields.training import LanguageFieldTrainer

        stamps: list[tuple[int, float, float]] = []  # (step, time, peak RSS since the previous mark)

        def on_step(p) -> None:  # noqa: ANN001
            now = time.perf_counter()
            if p.step in (1, self.steps - 1):  # the first pass ends at step 1; the steps at steps - 1
                stamps.append((p.step, now, sampler.peak_mb()))
                sampler.reset()

        cfg = LanguageTrainConfig(
            feature_level=self.level,
            max_steps=self.steps,
            log_every=self.steps,
            contributions_top_k=self.contributions_top_k,
        )
        t0 = time.perf_counter()
        trainer = LanguageFieldTrainer(
            scene, views, cfg, renderer=renderer, encoder_name="scale-bench", progress=on_step
        )
        state["trained"] = trainer.run()
        end, end_peak = time.perf_counter(), sampler.peak_mb()
        marks = {step: (t, peak) for step, t, peak in stamps}
        t1, peak1 = marks[1]
        tn, peakn = marks.get(self.steps - 1, (t1, peak1))
        per_step = (tn - t1) / max(self.steps - 2, 1) if self.steps > 2 else (end - t1)
        timed = max(self.steps - 2, 1)
        rec["note"] = (
            f"{self.steps} steps in all: first pass + steps + final loss and registration (rows below); "
            f"loss {trainer.initial_losses[self.level]:.4f} -> {trainer.final_losses[self.level]:.4f}"
        )
        rec["initial_loss"] = trainer.initial_losses[self.level]
        rec["final_loss"] = trainer.final_losses[self.level]
        cuda = rec_cuda_peak(rec["device"])
        sub = [
            {
                "stage": "training: first pass",
                "device": rec["device"],
                "seconds": t1 - t0,
                "peak_rss_mb": peak1,
                "cuda_peak_mb": cuda,
                "note": f"every view's contributions + initial loss ({len(views)} views) + step 1",
            },
            {
                "stage": "training: per 1k steps",
                "device": rec["device"],
                "seconds": per_step * 1000,
                "peak_rss_mb": peakn,
                "cuda_peak_mb": cuda,
                "extrapolated": True,
                "steps_timed": timed,
                "note": f"EXTRAPOLATED from {timed} timed steps ({per_step * 1000:.1f} ms/step)",
            },
            {
                "stage": "training: final loss + registration",
                "device": rec["device"],
                "seconds": end - tn,
                "peak_rss_mb": end_peak,
                "cuda_peak_mb": cuda,
                "note": "the last step, the final loss over every view, per-Gaussian registration",
            },
        ]
        return sub

    def _instances(self, capture, scene, views, renderer, state, sampler, rec) -> list:  # noqa: ANN001
        import numpy as np

        from ovseg_core.instances.build import instances_from_views
        from ovseg_core.instances.config import InstanceConfig

        lifted, merged = instances_from_views(scene, views, renderer, InstanceConfig(), level=self.level)
        truth = capture.object_ids
        found = 0
        for k in range(capture.num_objects):  # objects that one instance holds the majority of
            lab = merged.labels[truth == k]
            lab = lab[lab >= 0]
            found += bool(len(lab)) and np.bincount(lab).max() > 0.5 * (truth == k).sum()
        rec["instances"] = len(merged.sizes)
        rec["masks"] = int(lifted.members.shape[0])
        rec["objects_recovered"] = int(found)
        rec["note"] = (
            f"{len(views)} views, {rec['masks']} masks -> {rec['instances']} instances; "
            f"{found}/{capture.num_objects} objects held by one instance"
        )
        return []

    def _query(self, capture, scene, views, renderer, state, sampler, rec) -> list:  # noqa: ANN001
        import numpy as np

        from ovseg_core.fields.relevancy import FieldQuery
        from ovseg_core.models.palette_models import VocabularyTextEncoder

        which = "trained" if "trained" in state else "lifted"
        if which not in state:
            raise ValueError("the query stage needs fields: run lifting or training before it")
        query = FieldQuery(state[which], VocabularyTextEncoder(capture.vocabulary))
        names = capture.object_names
        query.gaussian_relevancy(names[-1])  # one-off preparation
        times, ious = [], []
        for k, name in enumerate(names):
            t = time.perf_counter()
            rel, _ = query.gaussian_relevancy(name)
            times.append(time.perf_counter() - t)
            sel, truth = rel > 0.5, capture.object_ids == k
            ious.append(float((sel & truth).sum() / max((sel | truth).sum(), 1)))
        rec["query_median_s"] = float(np.median(times))
        rec["mean_iou"] = float(np.mean(ious))
        rec["note"] = (
            f"{which} fields, median of {len(names)} prompts (the stage's seconds include preparing the query); "
            f"{1000 * rec['query_median_s']:.1f} ms per prompt, mean 3D IoU {rec['mean_iou']:.2f}"
        )
        return []

    def _warm_up(self, device: str) -> None:
        """Every stage once on a tiny capture: numba JIT and lazy imports stay out of the timings."""
        tiny = dataclasses.replace(self, gaussians=3000, views=2, width=48, height=36, steps=3, json=None)
        from ovseg_core.render import make_renderer
        from ovseg_core.synthetic.scale_capture import scale_capture, scale_views

        capture = scale_capture(3000, 2, 48, 36, num_objects=self.objects, seed=self.seed)
        views = scale_views(capture, downsample=1)
        scene = capture.scene if device == "cpu" else capture.scene.to(device)
        renderer = make_renderer("cpu") if device == "cpu" else make_renderer("auto")
        state: dict[str, Any] = {}
        sampler = RssSampler()
        for stage in self.stages:
            rec: dict[str, Any] = {"device": device}
            try:
                getattr(tiny, f"_{stage}")(capture, scene, views, renderer, state, sampler, rec)
            except Exception:  # noqa: BLE001 - the measured run reports the failure
                pass


# -- measuring --------------------------------------------------------------------------------
class RssSampler:
    """Peak resident set size of this process, sampled by a daemon thread (``/proc/self/status``
    VmRSS every ``interval`` s); without ``/proc`` it falls back on ``getrusage``'s process maximum."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.source = "VmRSS sampled every 10 ms" if status_mb("VmRSS") is not None else "getrusage ru_maxrss"
        self._peak = 0.0
        self.overall_peak_mb = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.reset()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def current_mb(self) -> float:
        return current_rss_mb()

    def sample(self) -> None:
        rss = self.current_mb()
        with self._lock:
            self._peak = max(self._peak, rss)
            self.overall_peak_mb = max(self.overall_peak_mb, rss)

    def reset(self) -> None:
        """Start a new peak from the current RSS."""
        rss = self.current_mb()
        with self._lock:
            self._peak = rss
            self.overall_peak_mb = max(self.overall_peak_mb, rss)

    def peak_mb(self) -> float:
        self.sample()
        return self.sampled_peak_mb()

    def sampled_peak_mb(self) -> float:
        """The peak of the samples taken so far, without taking one now."""
        with self._lock:
            return self._peak

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def release_freed_memory() -> bool:
    """Collect garbage and hand freed heap memory back to the OS (glibc ``malloc_trim``; elsewhere
    a no-op), so the next stage starts from what is live rather than from the heap earlier stages
    left fragmented. Called between stages only."""
    import ctypes
    import ctypes.util

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


def rec_cuda_peak(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


@contextmanager
def measure(sampler: RssSampler, stage: str, device: str) -> Iterator[dict[str, Any]]:
    """Time a stage and record its peak RSS (and CUDA memory) into the yielded dict."""
    import torch

    release_freed_memory()
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sampler.reset()
    rec: dict[str, Any] = {"stage": stage, "device": device, "rss_start_mb": sampler.current_mb()}
    t0 = time.perf_counter()
    try:
        yield rec
    finally:
        if cuda:
            torch.cuda.synchronize()
        rec["seconds"] = time.perf_counter() - t0
        rec["peak_rss_mb"] = sampler.peak_mb()
        rec["cuda_peak_mb"] = rec_cuda_peak(device)


# -- reporting --------------------------------------------------------------------------------
def _row_line(r: dict) -> str:
    cuda = f", CUDA peak {r['cuda_peak_mb']:,.0f} MB" if r.get("cuda_peak_mb") is not None else ""
    what = f"ERROR {r['error']}" if r.get("error") else r.get("note", "")
    return f"{r['stage']:>36} [{r['device']}] {r['seconds']:9.2f} s, peak RSS {r['peak_rss_mb']:8,.0f} MB{cuda}  {what}"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| stage | device | seconds | peak RSS MB | CUDA peak MB | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        cuda = f"{r['cuda_peak_mb']:,.0f}" if r.get("cuda_peak_mb") is not None else "-"
        secs = f"{r['seconds']:.1f}" + (" (extrapolated)" if r.get("extrapolated") else "")
        note = f"ERROR {r['error']}" if r.get("error") else r.get("note", "")
        lines.append(f"| {r['stage']} | {r['device']} | {secs} | {r['peak_rss_mb']:,.0f} | {cuda} | {note} |")
    return "\n".join(lines)
