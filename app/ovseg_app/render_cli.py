"""``ovseg render`` (alias ``ovseg-render``): render a scene to PNG (one camera) or MP4 (an orbit, a
dataset's cameras, or a nerfstudio ``camera_path.json``), in colour, depth, opacity or a prompt's
relevancy (the viewer's view modes, through its session without a GUI)."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tyro

from ovseg_app.cli_checks import (
    check_cameras,
    check_input_paths,
    check_prompts,
    check_render_args,
    prepare_render,
    signals_held_until_checked,
)
from ovseg_app.command_runner import describe, run_cli
from ovseg_core.errors import MissingFileError, UsageError
from ovseg_core.render import BackendName

if TYPE_CHECKING:
    import numpy as np

    from ovseg_core.camera import Camera
    from ovseg_core.scene import GaussianScene

EXAMPLES = """
ovseg render                                        # the built-in demo scene to render.png
ovseg render scene.ply --output orbit.mp4 --orbit-frames 120
ovseg render scene.ply --dataset capture/ --view 3 --output view3.png --mode depth
ovseg render scene.ply --camera-path camera_path.json --output path.mp4
ovseg render scene.ply --camera-path camera_path.json --prompt mug --mode relevancy --output mug.mp4
ovseg render scene.ply --dataset capture/ --output mug.mp4 --mode relevancy --prompt mug
"""
PROMPT_MODES = ("relevancy", "heatmap", "mask")


@dataclasses.dataclass
class RenderCommand:
    """Render a Gaussian-splat scene to an image or a video."""

    scene: tyro.conf.Positional[Path | None] = None
    """Scene file in any format ovseg reads (PLY INRIA/fVDB/SuperSplat-compressed, .spz, .splat, .ksplat, .sog or a SOG meta.json, gsplat/fVDB checkpoints). Default: the built-in demo scene."""
    output: Path = Path("render.png")
    """Output path: .png for one frame, .mp4 (or .gif) for a camera path."""
    camera: Path | None = None
    """Camera JSON: {"w2c": 4x4 OpenCV world-to-camera, "K": 3x3 pixels, "width", "height"}, or a list (a path)."""
    dataset: Path | None = None
    """Dataset whose cameras to use: a transforms.json (or its folder) or a COLMAP folder."""
    camera_path: Path | None = None
    """A nerfstudio ``camera_path.json`` (written by the ovseg viewer, nerfstudio's viewer or nerfview): its
    frames at its ``render_width`` x ``render_height`` (divided by --downsample) and its ``fps``, to an MP4."""
    camera_path_scale: float = 1.0
    """Multiply the camera path's positions by this (10 for paths saved by nerfview's viewer, which divides by 10)."""
    view: int | None = None
    """Dataset view index (views in image-name order, as train and query number them) for a PNG; default:
    all views for a video, view 0 for a PNG."""
    downsample: float = 1.0
    """Divide dataset camera resolution by this factor."""
    orbit_frames: int = 60
    """Frames of the orbit used when neither --camera nor --dataset is given and the output is a video."""
    width: int = 512
    """Orbit image width."""
    height: int = 384
    """Orbit image height."""
    fov_deg: float = 50.0
    """Orbit vertical field of view in degrees."""
    elevation_deg: float = 25.0
    """Orbit elevation above the horizontal plane, degrees."""
    up: tuple[float, float, float] | None = None
    """World up direction for the orbit; default: detected (see ``ovseg_core.orientation``)."""
    radius_scale: float = 1.2
    """Orbit radius as a multiple of the scene's robust diagonal."""
    backend: BackendName = "auto"
    """Renderer: fvdb (CUDA), cpu (numba), torch (reference), auto = fvdb if available else cpu."""
    mode: Literal["rgb", "depth", "alpha", "relevancy", "heatmap", "mask", "pca"] = "rgb"
    """What to write: colour, expected depth (normalised), accumulated opacity, or (with language fields) the
    viewer's view modes: the --prompt's relevancy over colour, its heat map or its mask, or feature PCA colours."""
    prompt: tuple[str, ...] = ()
    """What to look for (with --mode relevancy, heatmap or mask); several prompts show their union."""
    fields: Path | None = None
    """Language fields (file, run or log directory); default: found beside the scene."""
    threshold: float = 0.5
    """Relevancy above which a Gaussian matches the prompt."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background RGB in [0, 1]."""
    fps: int = 30
    """Video frame rate."""
    overwrite: bool = False
    """Replace --output if it already exists."""

    def __post_init__(self) -> None:
        check_render_args(self)
        check_prompts("--prompt", self.prompt)
        if self.prompt and self.mode not in PROMPT_MODES:
            raise UsageError(f"--prompt is shown by --mode {', '.join(PROMPT_MODES)}; got --mode {self.mode}")
        if not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise UsageError(f"--threshold must lie in [0, 1], got {self.threshold}")
        if not (math.isfinite(self.camera_path_scale) and self.camera_path_scale > 0):
            raise UsageError(f"--camera-path-scale must be a positive number, got {self.camera_path_scale}")

    def execute(self) -> Path:
        from ovseg_app.demo import load_demo_scene
        from ovseg_core.io import atomic_write_bytes, load_scene
        from ovseg_core.render import RenderSettings, make_renderer

        prepare_render(self)
        check_input_paths(camera_path=self.camera_path, fields=self.fields)
        self._fps: float = self.fps
        if not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold must lie in [0, 1], got {self.threshold}")
        scene = load_scene(self.scene) if self.scene is not None else load_demo_scene()
        cameras = self._cameras(scene)
        renderer = make_renderer(self.backend, RenderSettings(background=self.background))
        self._session = self._view_session(scene, renderer) if self.mode not in ("rgb", "depth", "alpha") else None
        suffix = self.output.suffix.lower()
        if suffix == ".png":
            frame = self._frame(renderer, scene, cameras[0])
            import imageio.v3 as iio

            return atomic_write_bytes(self.output, iio.imwrite("<bytes>", frame, extension=".png"))
        if suffix in (".mp4", ".gif"):
            return self._write_video(renderer, scene, cameras)
        raise UsageError(f"--output must end in .png, .mp4 or .gif, got {self.output.name!r}")

    def _cameras(self, scene: GaussianScene) -> list[Camera]:
        from ovseg_core.camera import load_camera_json
        from ovseg_core.data import load_dataset

        if sum(p is not None for p in (self.camera, self.dataset, self.camera_path)) > 1:
            raise UsageError("give one of --camera, --dataset and --camera-path")
        video = self.output.suffix.lower() in (".mp4", ".gif")
        if self.camera_path is not None:
            return self._camera_path_cameras(video)
        if self.camera is not None:
            cams = check_cameras(load_camera_json(self.camera.read_text(), str(self.camera)), str(self.camera))
        elif self.dataset is not None:
            # train and query's loader: views in name order, aligned with the scene's normalisation
            dataset = load_dataset(self.dataset, reconstruction_metadata=scene.metadata, need_images=False)
            cams = check_cameras([c.downsampled(self.downsample) for c in dataset.cameras], str(self.dataset))
        else:
            from ovseg_core.orientation import default_orbit

            n = self.orbit_frames if video else 1
            return default_orbit(
                scene, n, up=self.up, radius_scale=self.radius_scale, elevation_deg=self.elevation_deg,
                width=self.width, height=self.height, fov_y_deg=self.fov_deg,
            )  # fmt: skip
        if self.view is not None:
            if not 0 <= self.view < len(cams):
                raise UsageError(f"--view {self.view} is out of range: there are {len(cams)} cameras")
            return [cams[self.view]]
        return cams

    def _camera_path_cameras(self, video: bool) -> list[Camera]:
        from ovseg_app.cli_checks import MAX_VIDEO_FRAMES
        from ovseg_core.camera_path import read_camera_path
        from ovseg_core.camera_path.nerfstudio import MAX_FRAMES

        if not video or self.view is not None:
            raise UsageError("--camera-path renders a video: give an --output ending in .mp4 or .gif, and no --view")
        assert MAX_FRAMES <= MAX_VIDEO_FRAMES
        path = read_camera_path(
            self.camera_path.read_bytes(), str(self.camera_path), keyframes=False, position_scale=self.camera_path_scale
        )
        self._fps = path.fps  # the file's timing: its frames over its seconds
        return path.cameras(self.downsample)

    def _view_session(self, scene: GaussianScene, renderer):  # noqa: ANN001, ANN202
        """The viewer's session without a GUI, holding the fields and the prompt (the prompt modes)."""
        from ovseg_app.viewer.session import ViewerSession
        from ovseg_core.fields import load_fields
        from ovseg_core.fields.discovery import open_fields
        from ovseg_core.models.registry import text_encoder_for

        if self.mode in PROMPT_MODES and not self.prompt:
            raise UsageError(f"--mode {self.mode} shows a prompt's relevancy: give --prompt")
        from ovseg_app.demo import DEMO_PATH

        scene_path = self.scene if self.scene is not None else DEMO_PATH
        if self.fields is not None:
            fields = load_fields(self.fields, scene)
        else:
            try:
                fields = open_fields(scene_path, scene)
            except MissingFileError as e:
                raise MissingFileError(f"--mode {self.mode} needs language fields: {e}; pass --fields") from None
        session = ViewerSession(scene, renderer, fields=fields, text_encoder=text_encoder_for(fields))
        session.set_prompt(positives=self.prompt, threshold=self.threshold)
        return session

    def _frame(self, renderer, scene: GaussianScene, camera: Camera) -> np.ndarray:  # noqa: ANN001
        import numpy as np

        from ovseg_core.render import frames

        if self._session is not None:
            return self._session.render(camera, self.mode)
        out = renderer.render(scene, camera)
        alpha = out.alpha[0, ..., 0].cpu().numpy()
        if self.mode == "depth":  # grey, near dark (the viewer's depth view uses a colour map)
            return frames.depth_image(out.depth[0, ..., 0].cpu().numpy(), alpha, colormap=None)
        if self.mode == "alpha":
            return frames.to_u8(np.repeat(alpha[..., None], 3, axis=2))
        return frames.to_u8(out.rgb[0].clamp(0, 1).cpu().numpy())

    def _write_video(self, renderer, scene: GaussianScene, cameras: list[Camera]) -> Path:  # noqa: ANN001
        from ovseg_core.io.video import atomic_video

        # The signal stops the loop between frames, so ffmpeg is stopped by us, not mid-write by the terminal.
        # A failed write (a full disk) raises before the rename: an earlier --output stays as it was.
        try:
            with signals_held_until_checked() as stop_if_signalled, atomic_video(self.output, self._fps) as append:
                for i, cam in enumerate(cameras):
                    append(self._frame(renderer, scene, cam))
                    print(f"\rframe {i + 1}/{len(cameras)}", end="", file=sys.stderr, flush=True)
                    stop_if_signalled()
        finally:
            print(file=sys.stderr)  # end the progress line before the result or the error
        return self.output


COMMAND = RenderCommand
DESCRIPTION = describe(RenderCommand, EXAMPLES)


def main(argv: list[str] | None = None, prog: str = "ovseg-render") -> int:
    return run_cli(prog, RenderCommand, argv, description=DESCRIPTION, report=lambda out: f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
