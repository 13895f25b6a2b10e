"""``ovseg-bench view``: viewer latencies on the demo scene, measured on the session (what a GUI
callback and the render loop do), without the network: prompt typed -> updated frame, click ->
highlighted selection, and frames/s while orbiting; the server's RSS over many prompt changes
(with the render loop's heap trimming); and, when Chromium is installed, the time from typing a
prompt in a real browser to the changed frame arriving there. Then, over the network, the frames
a moving camera gets on a ~150k-Gaussian real capture in a 1400x850 window: a raw viser client
streaming camera updates at 60 Hz and Chromium dragging the camera (see ``view_stream``)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ovseg_core.camera import orbit_cameras
from ovseg_core.render import make_renderer


@dataclasses.dataclass
class ViewBench:
    """Latency of the viewer's interactive paths at one resolution."""

    width: int = 512
    height: int = 384
    repeats: int = 7
    orbit_frames: int = 24
    memory_prompts: int = 1000
    """Prompt changes (each rendered) for the RSS curve; 0 skips it."""
    browser_repeats: int = 5
    """Prompts typed in headless Chromium (/usr/bin/chromium + playwright); 0 skips it."""
    large_gaussians: int = 300_000
    """Gaussians of a second orbit on ``realistic_scene`` (a capture's statistics, the render
    bench's 300k case), where the demo's 12.7k would hide how frames scale; 0 skips it."""
    stream_seconds: float = 8.0
    """Seconds each moving-camera stream is counted over the network (a raw viser client sending
    camera updates at 60 Hz, then Chromium dragging the camera); 0 skips both."""
    stream_window: tuple[int, int] = (1400, 850)
    """Browser window (canvas) of the streams, width and height."""
    stream_garden: bool = True
    """Stream the real garden points (138,766 Gaussians, turned y-down like an INRIA capture) when
    ../shared/data has them; otherwise ``realistic_scene(stream_gaussians)``."""
    stream_gaussians: int = 150_000
    stream_chromium: bool = True
    """Also count the frames headless Chromium gets while its mouse drags the camera."""
    output: Path = Path("bench_results/view.json")

    def _memory_curve(self, session, cam, prompts: list[str]) -> list[float]:  # noqa: ANN001
        return _memory_curve_impl(session, cam, prompts, self.memory_prompts)

    def _browser_prompt_ms(self, session) -> float | None:  # noqa: ANN001
        return _browser_prompt_ms_impl(session, self.browser_repeats)

    def execute(self) -> dict:
        from ovseg_app.demo import load_demo_scene
        from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
        from ovseg_app.viewer.session import ViewerSession

        scene, fields, encoder, note = load_session_inputs(ViewCommand())
        if fields is None:
            raise RuntimeError(f"the demo fields are missing ({note or 'assets/demo_scene.fields.pt'})")
        session = ViewerSession(load_demo_scene(), make_renderer("cpu"), fields=fields, text_encoder=encoder)
        cams = orbit_cameras(
            (0, 0, 0.8), 1.6, self.orbit_frames, elevation_deg=30, width=self.width, height=self.height
        )
        cam = cams[0]
        session.render(cam, "relevancy")  # JIT warm-up
        prompts = ["red mug", "yellow ball", "blue box", "green plant", "table", "mug", "ball", "box"]
        prompt_ms = []
        for i in range(self.repeats):
            t = time.perf_counter()
            session.set_prompt(positives=[prompts[i % len(prompts)]])
            session.render(cam, "relevancy")
            prompt_ms.append(1000 * (time.perf_counter() - t))
        # click on the middle of the rendered mug
        onehot_w = make_renderer("cpu").render(scene, cam, features=_one_hot(scene)).features[0].numpy()
        ys, xs = np.nonzero(onehot_w[..., 1] > 0.5)
        pixel = (float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5)
        click_ms = []
        for _ in range(self.repeats):
            t = time.perf_counter()
            session.click(cam, pixel, "medium", "replace")
            session.render(cam, "selection")
            click_ms.append(1000 * (time.perf_counter() - t))
        orbit = _orbit_fps(session, cams, ("rgb", "relevancy"))
        large = self._large_orbit() if self.large_gaussians else None
        memory = self._memory_curve(session, cam, prompts) if self.memory_prompts else None
        browser_ms = self._browser_prompt_ms(session) if self.browser_repeats else None
        stream = self._stream() if self.stream_seconds > 0 else None
        result = {
            "resolution": f"{self.width}x{self.height}",
            "gaussians": scene.num_gaussians,
            "encoder": session.encoder_name,
            "prompt_to_frame_ms_median": float(np.median(prompt_ms)),
            "click_to_highlight_ms_median": float(np.median(click_ms)),
            "orbit_fps_rgb": orbit["rgb"],
            "orbit_fps_relevancy": orbit["relevancy"],
            "clicked_instance_gaussians": int(session.selection.sum()),
            "large_orbit": large,
            "rss_mb_every_100_prompts": memory,
            "browser_prompt_to_frame_ms_median": browser_ms,
            "moving_camera_stream": stream,
        }
        print(
            f"prompt -> frame {result['prompt_to_frame_ms_median']:.0f} ms, click -> highlight "
            f"{result['click_to_highlight_ms_median']:.0f} ms, orbit {orbit['rgb']:.1f} fps (rgb), "
            f"{orbit['relevancy']:.1f} fps (relevancy) at {self.width}x{self.height}"
        )
        if large:
            print(
                f"orbit on {large['gaussians']:,} Gaussians: {large['orbit_fps_rgb']:.1f} fps (rgb), "
                f"{large['orbit_fps_selection']:.1f} fps (selection: one blended channel, as relevancy)"
            )
        if memory:
            print(f"RSS over {self.memory_prompts} prompt changes (MB, every 100): {memory}")
        if browser_ms is not None:
            print(f"browser: prompt typed -> changed frame shown {browser_ms:.0f} ms (median)")
        if stream:
            chromium = (stream["chromium_drag"] or {}).get("frames_per_s")
            print(
                f"moving camera on {stream['gaussians']:,} Gaussians in a {stream['window']} window: raw viser client "
                f"{stream['frames_per_s']:.1f} frames/s (moving frame: {stream['moving_frame_ms']}), Chromium drag "
                + (f"{chromium:.1f} frames/s ({stream['chromium_drag']})" if chromium is not None else "skipped")
                + f"; load average {stream['load_avg_1min']} on {stream['cpu_count']} cores"
            )
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(result, indent=2))
        return result

    def _stream(self) -> dict:
        from benchmarks.view_stream import garden_capture, stream_report
        from ovseg_core.synthetic import realistic_scene

        scene = garden_capture() if self.stream_garden else None
        scene = scene if scene is not None else realistic_scene(self.stream_gaussians)
        return stream_report(
            scene, window=self.stream_window, seconds=self.stream_seconds, chromium=self.stream_chromium,
            warmup_s=min(2.0, self.stream_seconds),
        )  # fmt: skip

    def _large_orbit(self) -> dict:
        """Frames/s of a session orbiting ``realistic_scene(large_gaussians)``: around the room
        from where the render bench stands, looking at its middle."""
        from ovseg_app.viewer.session import ViewerSession
        from ovseg_core.synthetic import realistic_scene

        scene = realistic_scene(self.large_gaussians)
        session = ViewerSession(scene, make_renderer("cpu"))
        cams = orbit_cameras(
            (0, 1.5, 0.8), 9.1, self.orbit_frames, elevation_deg=9, width=self.width, height=self.height,
            fov_y_deg=60,
        )  # fmt: skip
        session.render(cams[0], "rgb")  # JIT warm-up
        session.render(cams[0], "selection")
        fps = _orbit_fps(session, cams, ("rgb", "selection"))
        return {"gaussians": scene.num_gaussians, "orbit_fps_rgb": fps["rgb"], "orbit_fps_selection": fps["selection"]}


def _orbit_fps(session, cams, modes) -> dict[str, float]:  # noqa: ANN001
    """Frames/s of ``session`` rendering every camera of ``cams``, per view mode."""
    fps = {}
    for mode in modes:
        t = time.perf_counter()
        for c in cams:
            session.render(c, mode)
        fps[mode] = len(cams) / (time.perf_counter() - t)
    return fps


def _one_hot(scene):  # noqa: ANN001, ANN202
    import torch
    import torch.nn.functional as F

    return F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), 5).float()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _memory_curve_impl(session, cam, prompts: list[str], n: int) -> list[float]:  # noqa: ANN001
    from ovseg_app.viewer.heap import trim_heap_now_and_then

    curve = []
    for i in range(n):
        session.set_prompt(positives=[prompts[i % len(prompts)], f"thing {i}"])  # new text each time
        session.render(cam, "relevancy")
        trim_heap_now_and_then()  # what each tab's render loop does after a frame
        if (i + 1) % 100 == 0:
            curve.append(round(_rss_mb(), 1))
    return curve


def _browser_prompt_ms_impl(session, repeats: int) -> float | None:  # noqa: ANN001
    """Median ms from filling the Prompt box in headless Chromium to the tab's new frame being sent
    and drawn (one animation frame after the server sent it); None without Chromium."""
    import socket

    from benchmarks.view_stream import first_tab, headless_chromium
    from ovseg_app.viewer.server import Viewer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    viewer = Viewer(session.fork(), port=port, still_height=384)
    times = []
    try:
        with headless_chromium(1000, 600) as page:
            if page is None:
                return None
            page.goto(viewer.url)
            page.get_by_text("Clear selection", exact=True).first.wait_for(state="visible", timeout=30_000)
            tab = first_tab(viewer, page)
            box = page.locator("xpath=//label[normalize-space()='Prompt']/following::input[1]")
            for i, prompt in enumerate(["red mug", "yellow ball", "blue box", "green plant", "table"] * repeats):
                if i >= repeats:
                    break
                page.wait_for_timeout(600)  # the camera is still: the next frame is full size
                frames, started = tab.frames, time.perf_counter()
                box.fill(prompt)
                while tab.frames == frames or tab.rendered_key[-2] != tab.version:
                    page.wait_for_timeout(5)
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
                times.append(1000 * (time.perf_counter() - started))
    finally:
        viewer.stop()
    return float(np.median(times)) if times else None
