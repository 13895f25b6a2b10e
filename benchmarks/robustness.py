"""``ovseg-bench robustness``: hostile inputs must end in a clear error, never a crash, hang or blow-up.

Part 1, reader fuzz: seeded mutations of every scene flavour (``benchmarks.fuzz_inputs``) plus a FIFO,
a directory, empty files and crafted cases are loaded in a worker process. Each case must either load
a scene with only finite values that renders from ``ovseg-render``'s default camera, or raise
``SceneFormatError``; anything else is a non-domain exception. The scene's hostile companions
(``benchmarks.hostile_companions``: oversized or overflowing fields, lying or empty instance sets,
degenerate camera JSON) run in the same watched worker and must be refused with an ``OvsegError``
or work without a numeric warning. The worker is killed and the case counted as a hang past ``timeout_s`` and as a blow-up
past ``max_rss_gib``; its peak RSS is reported.

Part 2, CLI abuse (``benchmarks.cli_abuse``): each hostile invocation runs as a subprocess; it must exit
non-zero with a one-line ``error:`` message and no traceback.

Part 3, a flooding viewer client (``benchmarks.view_flood``): a raw client sends GUI updates, then new
prompts, as fast as its socket takes them while another tab orbits; the bystander must keep 80% of its
frame rate during the flood and 95% from 2 s after it.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.cli_abuse import run_cli_abuse
from benchmarks.process_memory import status_mb
from benchmarks.view_flood import run_floods

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def check_scene_file(path: str | os.PathLike[str], render: bool = True) -> tuple[str, str]:
    """``("loaded" | "refused" | "failed", detail)`` for one file: refused = ``SceneFormatError``;
    failed = any other exception, or a loaded scene with non-finite values or that does not render."""
    import warnings

    import numpy as np
    import torch

    from ovseg_core.errors import SceneFormatError
    from ovseg_core.io import load_scene
    from ovseg_core.orientation import default_orbit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scene = load_scene(path)
    except SceneFormatError as e:
        return "refused", str(e).splitlines()[0][:200]
    except Exception as e:  # noqa: BLE001 (counting what escapes is the point)
        return "failed", f"load: {type(e).__name__}: {e}"[:300]
    for name in ("means", "quats", "log_scales", "logit_opacities", "sh0", "shN"):
        if not torch.isfinite(getattr(scene, name)).all():
            return "failed", f"loaded with non-finite {name}"
    for key, value in scene.metadata.items():
        if isinstance(value, (float, np.ndarray)) and not np.isfinite(value).all():
            return "failed", f"loaded with non-finite metadata {key!r}"
    try:
        from ovseg_core.render import make_renderer

        cam = default_orbit(scene, 1, width=16, height=12)[0]  # ovseg-render's default view
        if not render:
            return "loaded", f"{scene.num_gaussians} Gaussians"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_renderer("cpu").render(scene, cam)
    except Exception as e:  # noqa: BLE001
        return "failed", f"view: {type(e).__name__}: {e}"[:300]
    return "loaded", f"{scene.num_gaussians} Gaussians"


def _worker(tasks: mp.Queue, results: mp.Queue, render: bool, warmup: str) -> None:
    from benchmarks.hostile_companions import check_companion

    results.put(("ready", check_scene_file(warmup, render=render)[1]))  # imports and numba compiles, untimed
    while (task := tasks.get()) is not None:
        kind, path = task
        try:
            # companions (fields, instances, cameras) belong to the warm-up scene
            outcome = check_scene_file(path, render=render) if kind == "scene" else check_companion(kind, path, warmup)
        except BaseException as e:  # noqa: BLE001
            outcome = ("failed", f"checker: {type(e).__name__}: {e}\n{traceback.format_exc()[-500:]}")
        results.put(outcome)


@dataclasses.dataclass
class FuzzReport:
    cases: int = 0
    loaded: int = 0
    refused: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)
    hangs: list[str] = dataclasses.field(default_factory=list)
    blowups: list[str] = dataclasses.field(default_factory=list)
    peak_rss_mib: float = 0.0
    slowest_s: float = 0.0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.failed or self.hangs or self.blowups)


def run_reader_fuzz(
    cases: int,
    workdir: Path,
    *,
    seed: int = 0,
    shared_data: Path | None = None,
    timeout_s: float = 10.0,
    max_rss_gib: float = 2.0,
    render: bool = True,
    specials: bool = True,
) -> FuzzReport:
    """Write ``cases`` mutated files under ``workdir`` and check each in a watched worker process;
    ``specials`` adds a FIFO, a directory, empty files, the crafted reader cases and the hostile
    companions (fields, instances, cameras) of the first seed."""
    from benchmarks.fuzz_inputs import crafted_cases, mutated_cases, seed_files
    from benchmarks.hostile_companions import companion_cases

    workdir.mkdir(parents=True, exist_ok=True)
    paths: list[tuple[str, str, str]] = []  # (kind, path, summary)
    seeds = seed_files(shared_data)
    warmup = workdir / "warmup.ply"
    warmup.write_bytes(seeds[0][1])
    specials_made = crafted_cases() if specials else []
    for name, summary, data in [*mutated_cases(seeds, cases, seed=seed), *specials_made]:
        path = workdir / name
        path.write_bytes(data)
        paths.append(("scene", str(path), summary))
    if specials:
        fifo = workdir / "fifo.ply"
        if not fifo.exists():
            os.mkfifo(fifo)
        (workdir / "folder.ply").mkdir(exist_ok=True)
        (workdir / "empty.ply").write_bytes(b"")
        (workdir / "empty.splat").write_bytes(b"")
        paths += [
            ("scene", str(workdir / n), "special") for n in ("fifo.ply", "folder.ply", "empty.ply", "empty.splat")
        ]
        paths += companion_cases(warmup, workdir / "companions")
    ctx = mp.get_context("spawn")
    report = FuzzReport(cases=len(paths))
    start = time.perf_counter()
    proc = tasks = results = None
    peak_by_worker: dict[int, int] = {}
    for kind, path, summary in paths:
        if proc is None:
            tasks, results = ctx.Queue(), ctx.Queue()
            proc = ctx.Process(target=_worker, args=(tasks, results, render, str(warmup)), daemon=True)
            proc.start()
            results.get(timeout=600)
        tasks.put((kind, path))
        t0 = time.perf_counter()
        outcome = None
        while outcome is None:
            try:
                outcome = results.get(timeout=0.05)
            except Exception:  # noqa: BLE001 (queue.Empty)
                rss = int((status_mb("VmRSS", proc.pid) or 0) * 2**20)
                peak_by_worker[proc.pid] = max(peak_by_worker.get(proc.pid, 0), rss)
                elapsed = time.perf_counter() - t0
                if rss > max_rss_gib * 2**30 or elapsed > timeout_s or not proc.is_alive():
                    kind = "blowup" if rss > max_rss_gib * 2**30 else "hang" if elapsed > timeout_s else "crash"
                    proc.kill()
                    proc.join()
                    outcome = (kind, f"{elapsed:.1f} s, {rss / 2**20:.0f} MiB, exit {proc.exitcode}")
                    proc = None
        report.slowest_s = max(report.slowest_s, time.perf_counter() - t0)
        if proc is not None:
            peak_by_worker[proc.pid] = max(
                peak_by_worker.get(proc.pid, 0), int((status_mb("VmHWM", proc.pid) or 0) * 2**20)
            )
        kind, detail = outcome
        line = f"{Path(path).name} [{summary}]: {detail}"
        if kind == "loaded":
            report.loaded += 1
        elif kind == "refused":
            report.refused += 1
        elif kind == "hang":
            report.hangs.append(line)
        elif kind == "blowup":
            report.blowups.append(line)
        else:
            report.failed.append(line)
    if proc is not None:
        tasks.put(None)
        proc.join(timeout=10)
    report.seconds = time.perf_counter() - start
    report.peak_rss_mib = max(peak_by_worker.values(), default=0) / 2**20
    return report


@dataclasses.dataclass
class RobustnessBench:
    """Reader fuzz (>= 2,000 hostile files) and the CLI abuse list; writes a JSON report."""

    cases: int = 2000
    """Mutated scene files (a FIFO, a directory and empty files are added)."""
    seed: int = 0
    """Mutation seed; every case is reproducible from (seed, index)."""
    timeout_s: float = 10.0
    """A case running longer than this is a hang."""
    max_rss_gib: float = 2.0
    """A worker above this resident size is a memory blow-up."""
    render: bool = True
    """Render every loaded scene (16x12, CPU) to prove it is usable."""
    cli: bool = True
    """Also run the CLI abuse list (each case is a subprocess: about a minute in all)."""
    flood: bool = True
    """Also flood the viewer from one raw client while another orbits (about a minute and a half)."""
    shared_data: Path | None = None
    """Folder of the real seed files; default: ../shared/data beside the checkout, when present."""
    output: Path = Path("bench_results/robustness.json")

    def execute(self) -> dict:
        shared = self.shared_data or (SHARED_DATA if SHARED_DATA.is_dir() else None)
        with tempfile.TemporaryDirectory(prefix="ovseg-fuzz-") as tmp:
            fuzz = run_reader_fuzz(
                self.cases, Path(tmp) / "fuzz", seed=self.seed, shared_data=shared,
                timeout_s=self.timeout_s, max_rss_gib=self.max_rss_gib, render=self.render,
            )  # fmt: skip
            print(
                f"reader fuzz and companions: {fuzz.cases} inputs in {fuzz.seconds:.0f} s: {fuzz.loaded} loaded, "
                f"{fuzz.refused} refused (SceneFormatError or another OvsegError), {len(fuzz.failed)} other "
                f"exceptions, {len(fuzz.hangs)} hangs > {self.timeout_s:g} s, {len(fuzz.blowups)} blow-ups; slowest {fuzz.slowest_s:.2f} s; "
                f"worker peak RSS {fuzz.peak_rss_mib:.0f} MiB (shared seeds: {'yes' if shared else 'absent'})"
            )
            for line in (fuzz.failed + fuzz.hangs + fuzz.blowups)[:20]:
                print("  " + line)
            cli = run_cli_abuse(Path(tmp) / "cli") if self.cli else []
        for row in cli:
            print(f"  {'ok ' if row['ok'] else 'BAD'} {row['case']}: exit {row['exit']}, {row['message']}")
        if cli:
            print(f"CLI abuse: {sum(r['ok'] for r in cli)}/{len(cli)} one-line errors without a traceback")
        floods = run_floods() if self.flood else []
        for row in floods:
            print(
                f"  {'ok ' if row['ok'] else 'BAD'} {row['kind']} flood ({row['sent_per_s']:,.0f} messages/s got in): "
                f"bystander {row['before']:.1f} -> {row['during']:.1f} -> {row['after']:.1f} frames/s, "
                f"flooder's backlog drained in {row['drain_s']:.1f} s"
            )
        result = {"reader_fuzz": dataclasses.asdict(fuzz), "cli_abuse": cli, "viewer_flood": floods}
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(result, indent=2))
        return result


if __name__ == "__main__":
    RobustnessBench(cases=int(sys.argv[1]) if len(sys.argv) > 1 else 2000, cli=False).execute()
