"""What a large screenshot adds to the viewer's memory: the demo session's PNG of a 4096x4096 frame
in each mode, rendered in strips (what the Display panel does) or as one render (what it did), each
in a fresh process, peak RSS (``VmHWM``) over the RSS before it.

    python -m benchmarks.screenshot_memory [--size 4096] [--whole]
"""

from __future__ import annotations

import json
import subprocess
import sys

MODES = (("rgb", None), ("relevancy", "chair"), ("depth", None))
"""(view mode, prompt) cases: a plain frame, a prompt's (two passes over the strips), depth (two passes)."""


def measure(mode: str, prompt: str | None, size: int, whole: bool) -> dict:
    """One screenshot in this process: seconds, PNG size and peak RSS over the RSS before (MiB)."""
    import tempfile
    import time

    import imageio.v3 as iio

    from benchmarks.process_memory import status_mb
    from ovseg_app.viewer import view_frames
    from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
    from ovseg_app.viewer.session import ViewerSession
    from ovseg_core.camera import Camera
    from ovseg_core.render import make_renderer

    scene, fields, encoder, _ = load_session_inputs(ViewCommand())
    session = ViewerSession(
        scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=tempfile.mkdtemp()
    )
    if prompt:
        session.set_prompt(positives=[prompt])

    def shot(width: int, height: int) -> bytes:
        camera = Camera.look_at([0.0, -3.0, 1.5], [0.0, 0.0, 0.3], width=width, height=height)
        if whole:
            return iio.imwrite("<bytes>", view_frames.render(session, session.state, camera, mode), extension=".png")
        return session.relevancy_png(camera, mode)

    shot(256, 256)  # compiles and caches what any frame needs, untimed
    before = status_mb("VmRSS") or 0.0
    t = time.perf_counter()
    png = shot(size, size)
    seconds = time.perf_counter() - t
    peak = status_mb("VmHWM") or 0.0
    return {"mode": mode, "prompt": prompt, "size": size, "whole": whole, "seconds": round(seconds, 2),
            "png_mb": round(len(png) / 1e6, 2), "rss_before_mb": round(before), "added_mb": round(peak - before)}  # fmt: skip


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--one":  # the child: one case
        mode, prompt, size, whole = args[1], args[2] or None, int(args[3]), args[4] == "1"
        print(json.dumps(measure(mode, prompt, size, whole)), flush=True)
        return
    size = int(args[args.index("--size") + 1]) if "--size" in args else 4096
    whole = "--whole" in args
    for mode, prompt in MODES:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.screenshot_memory", "--one", mode, prompt or "", str(size), str(int(whole))],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
