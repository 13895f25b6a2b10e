"""``ovseg view`` (alias ``ovseg-view``): open a scene (default: the built-in demo) in the browser."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tyro

from ovseg_app.command_runner import describe, run_cli
from ovseg_core.errors import FieldMismatchError, ModelLoadError, UsageError
from ovseg_core.render import BackendName
from ovseg_core.selection.config import SelectionConfig

if TYPE_CHECKING:
    from ovseg_core.fields import LanguageFields

EXAMPLES = """
ovseg view                                  # the built-in demo scene and its fields (offline)
ovseg view scene.ply --fields langsplatv2_logs --dataset capture/
ovseg view scene.ply --host 0.0.0.0 --port 8080 --display browser
"""

log = logging.getLogger("ovseg.viewer")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_output_dir() -> Path:
    """Per-user data folder (``$XDG_DATA_HOME/ovseg``, else ``~/.local/share/ovseg``): running the
    viewer from a checkout or any other folder leaves nothing behind there."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ovseg"


@dataclasses.dataclass
class ViewCommand:
    """Open a Gaussian-splat scene with its language fields in a browser viewer."""

    # One line per field docstring: tyro (1.0) breaks help at every continuation line of an
    # indented attribute docstring, so wrapped ones show with ragged breaks in --help.

    scene: tyro.conf.Positional[Path | None] = None
    """Scene file (PLY, compressed PLY, .spz, .splat, .ksplat, SOG, gsplat/fVDB checkpoint); default: the built-in demo scene (prompts work offline)."""
    fields: tuple[Path, ...] = ()
    """Fields checkpoints or run/log directories (several: their levels are combined); default: found beside the scene."""
    instances: Path | None = None
    """3D instances file (``ovseg-query``/viewer built); default: ``scene.instances.pt`` beside the scene."""
    dataset: Path | None = None
    """Capture (COLMAP scene or transforms.json) for the training panel; its cameras also set the up axis."""
    backend: BackendName = "auto"
    """Renderer of the streamed frames."""
    host: str = "127.0.0.1"
    """Interface to bind; anything but localhost lets others on the network use the viewer."""
    port: int = 8080
    """Port to serve on, exactly (the viewer stops with an error when it is taken); 0: any free port."""
    output_dir: Path = dataclasses.field(default_factory=default_output_dir)
    """Where exports, trained fields and the viewer's remembered state go (the GUI writes nowhere else)."""
    display: Literal["server", "browser"] = "server"
    """server: frames rendered here and streamed; browser: viser draws the splats client-side."""
    restore: bool = True
    """Bring back the fields and 3D instances the last viewer on this scene used (saved ones are listed anyway)."""
    selection: SelectionConfig = SelectionConfig()
    """Spatial consistency of prompt and click selections (each tab's Prompt panel can change it)."""
    height: int = 720
    """Largest still frame height (frames follow the canvas up to it, smaller while moving; per tab: Display)."""

    def check(self) -> None:
        """Refuse unusable values before anything is loaded (ValueError naming the problem)."""
        from ovseg_app.viewer.tab import MAX_HEIGHT, MIN_HEIGHT

        if not MIN_HEIGHT <= self.height <= MAX_HEIGHT:
            raise UsageError(f"--height must be between {MIN_HEIGHT} and {MAX_HEIGHT} pixels, got {self.height}")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port must be 0-65535, got {self.port}")
        out = self.output_dir
        if out.exists() and not out.is_dir():
            raise UsageError(f"--output-dir {out} is a file, not a folder")
        parent = next((p for p in out.absolute().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise UsageError(f"--output-dir {out}: {parent} is a file, not a folder")

    def execute(self) -> None:
        serve(self)


def check_port_free(host: str, port: int) -> None:
    """ValueError naming the port when something already listens on it (viser would quietly
    take the next one, and the printed URL would point at whatever holds this one)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            raise UsageError(f"port {port} on {host} is in use ({e.strerror}); choose another with --port") from None


def merge_fields(parts: list[LanguageFields]) -> LanguageFields:
    """Combine single-level runs (e.g. levels 1, 2, 3 trained separately) into one set."""
    first = parts[0]
    for p in parts[1:]:
        if p.scene_fingerprint != first.scene_fingerprint or p.encoder_name != first.encoder_name:
            raise FieldMismatchError(f"{p.source} and {first.source} come from different splats or encoders")
    merged = dataclasses.replace(first, levels={}, state={})
    for p in parts:
        merged.levels.update(p.levels)
        merged.state.update(p.state)
    return merged


def load_session_inputs(cmd: ViewCommand):  # noqa: ANN201
    from ovseg_app.demo import DEMO_PATH, load_demo_scene
    from ovseg_core.fields import load_fields
    from ovseg_core.fields.discovery import discover_fields
    from ovseg_core.io import load_scene
    from ovseg_core.models.registry import text_encoder_for

    scene_path = cmd.scene if cmd.scene is not None else DEMO_PATH
    scene = load_scene(scene_path) if cmd.scene is not None else load_demo_scene()
    fields = (
        merge_fields([load_fields(f, scene) for f in cmd.fields]) if cmd.fields else discover_fields(scene_path, scene)
    )
    encoder, note = None, ""
    if fields is not None:
        try:
            encoder = text_encoder_for(fields)
        except ModelLoadError as e:
            note = f"Language fields found but their text encoder cannot be loaded: {e}"
            fields = None
    return scene, fields, encoder, note


def serve(cmd: ViewCommand) -> None:
    """Serve ``cmd``'s scene until interrupted (Ctrl-C stops the server cleanly)."""
    from ovseg_core.render import make_renderer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cmd.check()
    check_port_free(cmd.host, cmd.port)
    scene, fields, encoder, note = load_session_inputs(cmd)
    from ovseg_app.viewer.server import Viewer
    from ovseg_app.viewer.session import ViewerSession

    if cmd.host not in LOCAL_HOSTS:
        log.warning(
            "binding %s: anyone who can reach this machine on port %d can use the viewer and its exports",
            cmd.host,
            cmd.port,
        )
    session = ViewerSession(
        scene,
        make_renderer(cmd.backend),
        fields=fields,
        text_encoder=encoder,
        output_dir=cmd.output_dir,
        selection=cmd.selection,
    )
    instances_path = cmd.instances or (cmd.scene.with_suffix(".instances.pt") if cmd.scene is not None else None)
    if instances_path is not None and (cmd.instances is not None or instances_path.is_file()):
        from ovseg_core.instances import load_instances
        from ovseg_core.models.registry import text_encoder_for

        instances = load_instances(instances_path, scene)
        session.set_instances(instances, text_encoder_for(instances))
    with contextlib.redirect_stdout(io.StringIO()):  # viser's own banner: the URL is printed once, below
        viewer = Viewer(
            session,
            host=cmd.host,
            port=cmd.port,
            dataset=cmd.dataset,
            display_mode=cmd.display,
            still_height=cmd.height,
            restore=cmd.restore,
        )
    if cmd.port and viewer.port != cmd.port:  # taken between the check and the start
        viewer.stop()
        raise UsageError(f"port {cmd.port} on {cmd.host} is in use; choose another with --port")
    if note:
        log.warning(note)
    url = viewer.url if cmd.host not in ("0.0.0.0", "::") else f"http://localhost:{viewer.port} (all interfaces)"
    print(
        f"ovseg-view: serving {scene.num_gaussians:,} Gaussians at {url} (renderer: {session.renderer.name}, "
        f"text encoder: {session.encoder_name})\n"
        f"ovseg-view: exports and saved state go to {session.output_dir}; Ctrl-C stops the viewer",
        flush=True,
    )
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        viewer.stop()


COMMAND = ViewCommand
DESCRIPTION = describe(ViewCommand, EXAMPLES)


def main(argv: list[str] | None = None, prog: str = "ovseg-view") -> int:
    return run_cli(prog, ViewCommand, argv, description=DESCRIPTION)


if __name__ == "__main__":
    sys.exit(main())
