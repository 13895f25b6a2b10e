"""The viser front end: GUI panels that edit the session, and one render loop per client.

Callbacks never render; they change session state and bump ``version``. Each client's loop
renders the newest camera it has (older ones are dropped, so there is no backlog): at reduced
resolution while the camera moves, at full resolution once it has been still for a moment.
Every callback and render runs inside ``guarded``: an exception is logged and shown to the
client as a notification, and the server keeps serving.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ovseg_app.viewer.session import EXPORT_KINDS, VIEW_MODES, ViewerSession
from ovseg_app.viewer.training_job import MODEL_SIZES, TrainingJob, TrainingRequest
from ovseg_core.camera import Camera
from ovseg_core.colormaps import COLORMAPS
from ovseg_core.fields.discovery import text_encoder_for

log = logging.getLogger("ovseg.viewer")

LEVEL_CHOICES = ("1", "2", "3", "0", "1,2,3")
MOVING_SECONDS = 0.25
"""A camera that changed more recently than this counts as moving (low-resolution frames)."""


class ClientView:
    """One browser tab: its camera, the frames it was sent, and its render thread."""

    def __init__(self, viewer: Viewer, client: Any) -> None:
        self.viewer = viewer
        self.client = client
        self.last_camera_change = time.monotonic()
        self.rendered_key: tuple | None = None
        self.frames = 0
        self.last_frame: np.ndarray | None = None
        self.last_camera: Camera | None = None
        self.wake = threading.Event()
        self.alive = True
        client.camera.on_update(self._on_camera)
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"ovseg-client-{client.client_id}")
        self.thread.start()

    def _on_camera(self, _camera: Any) -> None:
        self.last_camera_change = time.monotonic()
        self.wake.set()

    def camera(self, height: int) -> Camera:
        cam = self.client.camera
        return Camera.from_viser(cam.wxyz, cam.position, cam.fov, cam.aspect, height)

    def _loop(self) -> None:
        while self.alive:
            self.wake.wait(timeout=0.1)
            self.wake.clear()
            if not self.alive:
                return
            self.viewer.guarded(self._maybe_render, self.client)()

    def _maybe_render(self) -> None:
        v = self.viewer
        if v.display_mode == "browser":
            return
        moving = time.monotonic() - self.last_camera_change < MOVING_SECONDS
        height = v.moving_height if moving else v.still_height
        cam = self.client.camera
        key = (
            tuple(np.round(cam.wxyz, 6)),
            tuple(np.round(cam.position, 6)),
            round(cam.fov, 6),
            round(cam.aspect, 4),
            height,
            v.version,
        )
        if key == self.rendered_key:
            if moving:  # re-check once the camera has settled, for the full-resolution frame
                self.wake.set()
                time.sleep(0.02)
            return
        camera = self.camera(height)
        frame = v.session.render(camera, v.view_mode)
        if not self.alive:  # the tab closed while we rendered
            return
        self.client.scene.set_background_image(frame, format="jpeg", jpeg_quality=90)
        self.rendered_key, self.last_frame, self.last_camera = key, frame, camera
        self.frames += 1
        if moving:
            self.wake.set()


class Viewer:
    """Builds the GUI on a ``viser.ViserServer`` and serves ``session``."""

    def __init__(
        self,
        session: ViewerSession,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        dataset: Path | None = None,
        display_mode: str = "server",
        still_height: int = 384,
        moving_height: int = 192,
    ) -> None:
        import viser

        self.session = session
        self.display_mode = display_mode
        self.view_mode = "relevancy"
        self.granularity = "medium"
        self.still_height = still_height
        self.moving_height = moving_height
        self.version = 0
        self.clients: dict[int, ClientView] = {}
        self.errors: list[str] = []
        self.job = TrainingJob(
            session.scene,
            session.renderer,
            session.device_lock,
            on_finished=self._fields_trained,
            on_instances=self._instances_built,
        )
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.host, self.port = host, self.server.get_port()
        self._build_gui(dataset)
        self._splats = None
        self.server.on_client_connect(self.guarded(self._on_connect))
        self.server.on_client_disconnect(self._on_disconnect)
        self.server.scene.on_click()(self.guarded(self._on_click))
        if display_mode == "browser":
            self._update_browser_splats()
        self._stop = threading.Event()
        threading.Thread(target=self._poll_job, daemon=True, name="ovseg-job-poll").start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- robustness ------------------------------------------------------------------------------
    def guarded(self, fn: Callable[..., Any], client: Any = None) -> Callable[..., Any]:
        """Wrap a callback: log and show any exception instead of letting it escape."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # the server must keep serving whatever a callback does
                log.error("error in %s:\n%s", getattr(fn, "__name__", fn), traceback.format_exc())
                self.errors.append(f"{type(e).__name__}: {e}")
                target = client or next((getattr(a, "client", None) for a in args if getattr(a, "client", None)), None)
                self.notify(target, "Error", f"{e}", color="red")
                return None

        return wrapper

    def notify(self, client: Any, title: str, body: str, color: str | None = None) -> None:
        targets = [client] if client is not None else list(self.server.get_clients().values())
        for c in targets:
            try:
                c.add_notification(title, body, auto_close_seconds=6.0, color=color)
            except Exception:  # a client that went away cannot be told
                log.debug("could not notify client", exc_info=True)

    def changed(self) -> None:
        """State changed: every client re-renders (and browser-side colours refresh)."""
        self.version += 1
        if self.display_mode == "browser":
            self._update_browser_splats()
        for view in list(self.clients.values()):
            view.wake.set()

    # -- GUI --------------------------------------------------------------------------------------
    def _build_gui(self, dataset: Path | None) -> None:
        from viser import uplot

        gui = self.server.gui
        s = self.session
        self.encoder_md = gui.add_markdown(self._encoder_text())
        with gui.add_folder("Prompt"):
            self.prompt_in = gui.add_text("Prompt", initial_value="")
            self.neg_in = gui.add_text("Negatives", initial_value=", ".join(s.prompt.negatives))
            self.threshold_in = gui.add_slider(
                "Threshold", min=0.0, max=1.0, step=0.01, initial_value=s.prompt.threshold
            )
            self.level_in = gui.add_dropdown("Level", options=self._level_options(), initial_value="auto")
            self.view_in = gui.add_dropdown("View", options=VIEW_MODES, initial_value=self.view_mode)
            self.cmap_in = gui.add_dropdown("Colormap", options=tuple(COLORMAPS), initial_value=s.prompt.colormap)
            self.display_in = gui.add_dropdown(
                "Display", options=("server", "browser"), initial_value=self.display_mode
            )
        with gui.add_folder("Selection"):
            self.gran_in = gui.add_dropdown("Granularity", options=("small", "medium", "large"), initial_value="medium")
            self.select_prompt_btn = gui.add_button("Select prompt result")
            self.clear_btn = gui.add_button("Clear selection")
            self.selection_md = gui.add_markdown("Click an object to select it (shift adds, ctrl/alt removes).")
        with gui.add_folder("Instances"):
            self.instances_md = gui.add_markdown(self._instances_text())
            self.instance_in = gui.add_dropdown(
                "Instance", options=self._instance_options(), initial_value=self._instance_options()[0]
            )
            self.select_instance_btn = gui.add_button("Select instance")
            self.instance_ply_btn = gui.add_button("Download instance PLY")
        with gui.add_folder("Export"):
            self.export_kind_in = gui.add_dropdown("Export what", options=EXPORT_KINDS, initial_value="selection")
            self.export_name_in = gui.add_text("File name", initial_value="selection.ply")
            self.download_btn = gui.add_button("Download PLY")
            self.save_btn = gui.add_button("Save PLY to output dir", disabled=s.output_dir is None)
            self.png_btn = gui.add_button("Download relevancy PNG")
        with gui.add_folder("Training"):
            self.dataset_in = gui.add_text("Dataset", initial_value=str(dataset or ""))
            self.levels_in = gui.add_dropdown("Levels", options=LEVEL_CHOICES, initial_value="1")
            self.steps_in = gui.add_number("Steps", initial_value=10_000, min=1, max=1_000_000, step=1)
            self.models_in = gui.add_dropdown("Models", options=MODEL_SIZES, initial_value="large")
            self.method_in = gui.add_dropdown(
                "Method", options=("langsplatv2", "lift", "instances"), initial_value="langsplatv2"
            )
            self.train_btn = gui.add_button("Start training")
            self.cancel_btn = gui.add_button("Cancel training", disabled=True)
            self.progress = gui.add_progress_bar(0.0, animated=False)
            self.train_md = gui.add_markdown("Idle.")
            self.loss_plot = gui.add_uplot(
                data=(np.zeros(1), np.zeros(1)),
                series=(uplot.Series(label="step"), uplot.Series(label="loss", stroke="red")),
                title="training loss",
                aspect=2.0,
            )
        g = self.guarded
        self.prompt_in.on_update(g(self._on_prompt))
        self.neg_in.on_update(g(self._on_negatives))
        self.threshold_in.on_update(
            g(lambda e: (s.set_prompt(threshold=float(self.threshold_in.value)), self.changed()))
        )
        self.level_in.on_update(g(self._on_level))
        self.view_in.on_update(g(self._on_view))
        self.cmap_in.on_update(g(lambda e: (s.set_prompt(colormap=self.cmap_in.value), self.changed())))
        self.display_in.on_update(g(self._on_display))
        self.gran_in.on_update(g(lambda e: setattr(self, "granularity", self.gran_in.value)))
        self.select_prompt_btn.on_click(g(self._on_select_prompt))
        self.clear_btn.on_click(g(lambda e: (s.clear_selection(), self._selection_text(None), self.changed())))
        self.select_instance_btn.on_click(g(self._on_select_instance))
        self.instance_ply_btn.on_click(g(self._on_instance_ply))
        self.download_btn.on_click(g(self._on_download))
        self.save_btn.on_click(g(self._on_save))
        self.png_btn.on_click(g(self._on_png))
        self.train_btn.on_click(g(self._on_train))
        self.cancel_btn.on_click(g(lambda e: self.job.cancel()))

    def _encoder_text(self) -> str:
        s = self.session
        levels = ", ".join(str(lvl) for lvl in s.levels) or "none"
        unseen = (
            f"  \n**Unseen Gaussians:** {s.unseen_count} (no view showed them; relevancy 0)" if s.unseen_count else ""
        )
        return f"**Text encoder:** `{s.encoder_name}`  \n**Field levels:** {levels}{unseen}"

    def _level_options(self) -> tuple[str, ...]:
        return ("auto", *(str(lvl) for lvl in self.session.levels))

    def _on_prompt(self, event: Any) -> None:
        positives = [p for p in self.prompt_in.value.split(",") if p.strip()]
        self.session.set_prompt(positives=positives)
        if self.session.instances is not None:
            self.instances_md.content = self._instances_text()
        self.changed()

    # -- instances ---------------------------------------------------------------------------------
    def _instances_text(self) -> str:
        rows = self.session.instance_rows()
        if not rows:
            return "No 3D instances loaded (build them in the Training panel: Method = instances)."
        lines = ["| # | name | Gaussians | best prompt |", "|---:|---|---:|---|"]
        lines += [f"| {k} | {name} | {size:,} | {best} |" for k, name, size, best in rows[:30]]
        return "\n".join(lines)

    def _instance_options(self) -> tuple[str, ...]:
        rows = self.session.instance_rows()
        return tuple(f"{k}: {name}" for k, name, _, _ in rows) or ("none",)

    def _instance_index(self) -> int:
        value = self.instance_in.value
        if value == "none":
            raise ValueError("no 3D instances loaded")
        return int(value.split(":")[0])

    def _on_select_instance(self, event: Any) -> None:
        n = self.session.select_instance(self._instance_index())
        self.selection_md.content = f"Selection: {n} Gaussians (instance {self.instance_in.value})."
        self.changed()

    def _on_instance_ply(self, event: Any) -> None:
        k = self._instance_index()
        from ovseg_core.instances import safe_name

        name = safe_name(self.instance_in.value.split(":", 1)[1].strip()) or "instance"
        event.client.send_file_download(f"{k}_{name}.ply", self.session.export_instance_ply(k))

    def _instances_built(self, payload: Any) -> None:
        instances, encoder = payload
        self.session.set_instances(instances, encoder)
        self.refresh_instances()

    def refresh_instances(self) -> None:
        self.instances_md.content = self._instances_text()
        options = self._instance_options()
        self.instance_in.options = options
        self.instance_in.value = options[0]

    def _on_negatives(self, event: Any) -> None:
        self.session.set_prompt(negatives=[n for n in self.neg_in.value.split(",")])
        self.changed()

    def _on_level(self, event: Any) -> None:
        value = self.level_in.value
        self.session.set_prompt(level=None if value == "auto" else int(value))
        self.changed()

    def _on_view(self, event: Any) -> None:
        self.view_mode = self.view_in.value
        self.changed()

    def _on_display(self, event: Any) -> None:
        self.display_mode = self.display_in.value
        if self.display_mode == "server":
            if self._splats is not None:
                self._splats.remove()
                self._splats = None
        else:
            self.server.scene.set_background_image(None)
            for view in self.clients.values():
                view.client.scene.set_background_image(None)
        self.changed()

    def _update_browser_splats(self) -> None:
        scene = self.session.scene
        if self._splats is None:
            from ovseg_core.render.projection import covariances

            self._browser_static = dict(
                centers=scene.means.detach().cpu().numpy(),
                covariances=covariances(scene.quats, scene.log_scales).detach().cpu().numpy(),
                opacities=scene.opacities.detach().cpu().numpy()[:, None],
            )
        colors = self.session.gaussian_colors(self.view_mode)
        self._splats = self.server.scene.add_gaussian_splats("/splats", rgbs=colors, **self._browser_static)

    def _on_connect(self, client: Any) -> None:
        if self.session.scene.num_gaussians:
            lo, hi = self.session.scene.bounds()
            center = (np.asarray(lo) + np.asarray(hi)) / 2
            radius = float(np.linalg.norm(np.asarray(hi) - np.asarray(lo)))
            client.camera.position = tuple(center + np.array([0.0, -0.9, 0.6]) * radius)
            client.camera.look_at = tuple(center)
            client.camera.up_direction = (0.0, 0.0, 1.0)
        self.clients[client.client_id] = ClientView(self, client)

    def _on_disconnect(self, client: Any) -> None:
        view = self.clients.pop(client.client_id, None)
        if view is not None:
            view.alive = False
            view.wake.set()

    def _on_click(self, event: Any) -> None:
        view = self.clients.get(event.client_id)
        if view is None:
            return
        camera = view.camera(self.still_height)
        x, y = event.screen_pos
        pixel = (min(max(x, 0.0), 0.9999) * camera.width, min(max(y, 0.0), 0.9999) * camera.height)
        op = "add" if event.modifier == "shift" else "remove" if event.modifier in ("cmd/ctrl", "alt") else "replace"
        result = self.session.click(camera, pixel, self.granularity, op)
        self._selection_text(result)
        self.changed()

    def _selection_text(self, result: Any) -> None:
        n = int(self.session.selection.sum())
        if result is None or n == 0:
            self.selection_md.content = f"Selection: {n} Gaussians."
            return
        label = f", looks like **{result.label}**" if result.label else ""
        self.selection_md.content = f"Selection: {n} Gaussians (clicked instance: {len(result.ids)}{label})."

    def _on_select_prompt(self, event: Any) -> None:
        n = self.session.select_from_prompt("replace")
        self._selection_text(None)
        self.selection_md.content = f"Selection: {n} Gaussians from the prompt."
        self.changed()

    def _export(self) -> tuple[str, bytes]:
        kind = self.export_kind_in.value
        name = self.export_name_in.value.strip() or f"{kind}.ply"
        if not name.lower().endswith(".ply"):
            name += ".ply"
        return name, self.session.export_ply(kind)

    def _with_progress(self, client: Any, work: Callable[[], Any]) -> Any:
        """Run an export, showing a spinner notification while a large one is written."""
        n = int(self.session.export_mask(self.export_kind_in.value).sum())
        note = (
            client.add_notification("Exporting", f"{n:,} Gaussians ...", loading=True, with_close_button=False)
            if n > 50_000
            else None
        )
        try:
            return work()
        finally:
            if note is not None:
                note.remove()

    def _on_download(self, event: Any) -> None:
        def work() -> None:
            name, data = self._export()
            event.client.send_file_download(Path(name).name, data)

        self._with_progress(event.client, work)

    def _on_save(self, event: Any) -> None:
        def work() -> Path:
            name, data = self._export()
            return self.session.save_output(name, data)

        path = self._with_progress(event.client, work)
        self.notify(event.client, "Saved", f"{path}")

    def _on_png(self, event: Any) -> None:
        view = self.clients.get(event.client.client_id)
        camera = view.camera(self.still_height) if view else None
        if camera is None:
            raise ValueError("no camera for this client yet")
        event.client.send_file_download("relevancy.png", self.session.relevancy_png(camera))

    # -- training ---------------------------------------------------------------------------------
    def _on_train(self, event: Any) -> None:
        dataset = self.dataset_in.value.strip()
        if not dataset:
            raise ValueError("enter the dataset path (a COLMAP scene or transforms.json) first")
        levels = tuple(int(v) for v in self.levels_in.value.split(","))
        request = TrainingRequest(
            Path(dataset).expanduser(),
            levels=levels,
            steps=int(self.steps_in.value),
            model_size=self.models_in.value,
            method=self.method_in.value,
        )
        self.job.start(request)
        self.train_btn.disabled, self.cancel_btn.disabled = True, False

    def _fields_trained(self, fields: Any) -> None:
        self.session.set_fields(fields, text_encoder_for(fields))
        self.level_in.options = self._level_options()
        self.encoder_md.content = self._encoder_text()
        self.changed()

    def _poll_job(self) -> None:
        last = None
        while not self._stop.is_set():
            time.sleep(0.2)
            job = self.job
            snapshot = (job.state, round(job.fraction, 3), job.message, len(job.losses))
            if snapshot == last:
                continue
            last = snapshot
            try:
                self.progress.value = 100.0 * job.fraction
                self.train_md.content = f"**{job.state}** ({100 * job.fraction:.0f}%): {job.message}"
                if job.losses:
                    steps, losses = zip(*job.losses[-500:])
                    self.loss_plot.data = (np.asarray(steps, float), np.asarray(losses, float))
                if not job.running:
                    self.train_btn.disabled, self.cancel_btn.disabled = False, True
                    if job.state == "failed" and job.error:
                        self.notify(None, "Training failed", job.error, color="red")
            except Exception:  # GUI updates must never kill the poller
                log.error("job poll failed:\n%s", traceback.format_exc())

    def stop(self) -> None:
        self._stop.set()
        self.job.cancel()
        for view in self.clients.values():
            view.alive = False
            view.wake.set()
        self.server.stop()
