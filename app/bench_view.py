"""``ovseg-bench view``: viewer latencies on the demo scene, measured on the session (what a GUI
callback and the render loop do), without the network: prompt typed -> updated frame, click ->
highlighted selection, and frames/s while orbiting."""

from __future__ import annotations

import dataclasses
import json
import threading
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
    output: Path = Path("bench_results/view.json")

    def execute(self) -> dict:
        from ovseg_app.demo import load_demo_scene
        from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
        from ovseg_app.viewer.session import ViewerSession

        scene, fields, encoder, note = load_session_inputs(ViewCommand())
        if fields is None:
            raise RuntimeError(f"the demo fields are missing ({note or 'assets/demo_scene.fields.pt'})")
        session = ViewerSession(
            load_demo_scene(), make_renderer("cpu"), fields=fields, text_encoder=encoder, device_lock=threading.RLock()
        )
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
        orbit = {}
        for mode in ("rgb", "relevancy"):
            t = time.perf_counter()
            for c in cams:
                session.render(c, mode)
            orbit[mode] = len(cams) / (time.perf_counter() - t)
        result = {
            "resolution": f"{self.width}x{self.height}",
            "gaussians": scene.num_gaussians,
            "encoder": session.encoder_name,
            "prompt_to_frame_ms_median": float(np.median(prompt_ms)),
            "click_to_highlight_ms_median": float(np.median(click_ms)),
            "orbit_fps_rgb": orbit["rgb"],
            "orbit_fps_relevancy": orbit["relevancy"],
            "clicked_instance_gaussians": int(session.selection.sum()),
        }
        print(
            f"prompt -> frame {result['prompt_to_frame_ms_median']:.0f} ms, click -> highlight "
            f"{result['click_to_highlight_ms_median']:.0f} ms, orbit {orbit['rgb']:.1f} fps (rgb), "
            f"{orbit['relevancy']:.1f} fps (relevancy) at {self.width}x{self.height}"
        )
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(result, indent=2))
        return result


def _one_hot(scene):  # noqa: ANN001, ANN202
    import torch
    import torch.nn.functional as F

    return F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), 5).float()
