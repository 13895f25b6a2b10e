"""The viser front end: one ``Tab`` per browser tab (its own panels, state and render thread), and
what all tabs share: the scene, the fields (with a history to revert to), 3D instances and one
training job, whose progress and results are announced to every tab.

Callbacks never render; they change state and wake the render threads. Each client's loop
renders the newest camera it has (older ones are dropped, so there is no backlog): at reduced
resolution while the camera moves, at the browser's size (up to a maximum) once it is still.
Every callback and render runs inside ``guarded``: an exception is logged and shown to the
client that caused it, and the server keeps serving.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ovseg_app.command_runner import USER_ERRORS
from ovseg_app.viewer.saved_state import SavedState
from ovseg_app.viewer.scene_orientation import SceneOrientation
from ovseg_app.viewer.session import ViewerSession
from ovseg_app.viewer.tab import Tab
from ovseg_app.viewer.training_job import TrainingJob, TrainingRequest
from ovseg_core.fields.discovery import text_encoder_for

log = logging.getLogger("ovseg.viewer")

MAX_ERRORS_KEPT = 200


@dataclasses.dataclass
class FieldsEntry:
    """One set of fields the viewer has used (start-up, a training run, a loaded file); entries
    restored from an earlier session are loaded from ``path`` when first used."""

    label: str
    fields: Any
    encoder: Any
    path: Path | None = None


class Viewer:
    """Builds the server and serves ``session`` (the template every tab's session is forked from)."""

    def __init__(
        self,
        session: ViewerSession,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        dataset: Path | None = None,
        display_mode: str = "server",
        still_height: int = 384,
        moving_height: int | None = None,
        restore: bool = True,
    ) -> None:
        """``restore``: bring back the fields and instances the last session on this scene used
        (from ``<output_dir>/viewer_state``); saved fields and selections are listed either way."""
        import viser

        self.session = session
        self.dataset = dataset
        self.display_mode = display_mode
        self.still_height = still_height
        self.version = 0
        """Bumped when shared state (fields, instances) changes: every tab re-renders."""
        self.tabs: dict[int, Tab] = {}
        self.errors: list[str] = []
        self.runs_dir = session.output_dir / "runs" if session.output_dir is not None else None
        start = "fields at start-up" if session.fields is not None else "no fields"
        self.fields_history: list[FieldsEntry] = [FieldsEntry(start, session.fields, session.text_encoder)]
        self.fields_index = 0
        self.saved = SavedState(session.output_dir, session.base_scene)
        self.restored: list[str] = []
        """What was brought back from the last session (shown in the Fields panel)."""
        self._restore(restore)
        self._browser_geometry: dict | None = None
        self.orientation = SceneOrientation(session.base_scene, session.output_dir, dataset)
        self.job = TrainingJob(
            session.scene, session.renderer, on_finished=self._fields_trained, on_instances=self._instances_built
        )
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.host, self.port = host, self.server.get_port()
        self.server.on_client_connect(self.guarded(self._on_connect))
        self.server.on_client_disconnect(self._on_disconnect)
        self._stop = threading.Event()
        threading.Thread(target=self._poll_job, daemon=True, name="ovseg-job-poll").start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- robustness ------------------------------------------------------------------------------
    def guarded(self, fn: Callable[..., Any], client: Any = None) -> Callable[..., Any]:
        """Wrap a callback: log and show any exception (to ``client``, or the event's) instead of
        letting it escape."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # the server must keep serving whatever a callback does
                name = getattr(fn, "__name__", fn)
                if isinstance(e, USER_ERRORS):  # bad input: one line, no traceback
                    log.error("error in %s: %s", name, e)
                else:
                    log.error("error in %s:\n%s", name, traceback.format_exc())
                self.errors.append(f"{type(e).__name__}: {e}")
                del self.errors[:-MAX_ERRORS_KEPT]
                target = client or next((getattr(a, "client", None) for a in args if getattr(a, "client", None)), None)
                self.notify(target, "Error", f"{e}", color="red")
                return None

        return wrapper

    def notify(self, client: Any, title: str, body: str, color: str | None = None) -> None:
        targets = [client] if client is not None else [t.client for t in list(self.tabs.values())]
        for c in targets:
            try:
                c.add_notification(title, body[:500], auto_close_seconds=6.0, color=color)
            except Exception:  # a client that went away cannot be told
                log.debug("could not notify client", exc_info=True)

    # -- tabs -------------------------------------------------------------------------------------
    def _on_connect(self, client: Any) -> None:
        tab = Tab(self, client)
        self.tabs[client.client_id] = tab
        tab.panels.display.reset_camera()

    def _on_disconnect(self, client: Any) -> None:
        tab = self.tabs.pop(client.client_id, None)
        if tab is not None:
            tab.close()

    def _each_tab(self, action: Callable[[Tab], Any]) -> None:
        for tab in list(self.tabs.values()):
            self.guarded(action, tab.client)(tab)

    def shared_changed(self) -> None:
        """Fields or instances changed: every tab is told and re-renders."""
        self.version += 1

        def refresh(tab: Tab) -> None:
            tab.panels.fields_changed()
            tab.panels.instances.refresh()
            tab.changed()

        self._each_tab(refresh)

    def browser_geometry(self) -> dict:
        """Centres, covariances and opacities for browser-side splats (computed once)."""
        if self._browser_geometry is None:
            from ovseg_core.render.projection import covariances

            scene = self.session.base_scene
            self._browser_geometry = dict(
                centers=scene.means.detach().cpu().numpy(),
                covariances=covariances(scene.quats, scene.log_scales).detach().cpu().numpy(),
                opacities=scene.opacities.detach().cpu().numpy()[:, None],
            )
        return self._browser_geometry

    # -- fields and instances (shared) --------------------------------------------------------------
    def fields_options(self) -> tuple[str, ...]:
        return tuple(f"{i}: {e.label}" for i, e in enumerate(self.fields_history))

    def use_fields(self, index: int) -> None:
        """Bring back fields from the history (all tabs switch); remembered for the next start."""
        if not 0 <= index < len(self.fields_history):
            raise ValueError(f"no fields entry {index}")
        entry = self.fields_history[index]
        if entry.fields is None and entry.path is not None:  # saved by an earlier session
            from ovseg_core.fields import load_fields

            fields = load_fields(entry.path, self.session.base_scene)
            entry.fields, entry.encoder = fields, text_encoder_for(fields)
        self.session.set_fields(entry.fields, entry.encoder)
        self.fields_index = index
        self.saved.use_fields(entry.path if index else None)
        self.shared_changed()

    def _add_fields(self, label: str, fields: Any, path: Path | None) -> None:
        self.fields_history.append(FieldsEntry(label, fields, text_encoder_for(fields), path))
        if path is not None:
            self.saved.add_fields(label, path)
        self.use_fields(len(self.fields_history) - 1)

    def _restore(self, restore: bool) -> None:
        """List the fields earlier sessions made; with ``restore``, use the ones in use when the
        last session ended, and its instances. A file that went missing or no longer loads is
        skipped with a warning: the viewer always starts."""
        for label, path in self.saved.saved_fields():
            self.fields_history.append(FieldsEntry(label, None, None, path))
        if not restore:
            return
        in_use = self.saved.fields_in_use
        index = next((i for i, e in enumerate(self.fields_history) if i and e.path == in_use), None)
        if in_use is not None and index is not None:
            try:
                self.use_fields(index)
                self.restored.append(f"fields *{self.fields_history[index].label}*")
            except Exception as e:  # noqa: BLE001 - a stale entry must not stop the viewer
                log.warning("could not restore the fields in %s: %s", in_use, e)
        inst = self.saved.instances
        if inst is not None and self.session.instances is None:
            try:
                from ovseg_core.instances import load_instances, text_encoder_for_instances

                instances = load_instances(inst, self.session.base_scene)
                self.session.set_instances(instances, text_encoder_for_instances(instances))
                self.restored.append(f"instances `{inst.name}` ({len(instances.sizes)})")
            except Exception as e:  # noqa: BLE001
                log.warning("could not restore the instances in %s: %s", inst, e)

    def load_fields(self, path: Path) -> None:
        from ovseg_core.fields import load_fields

        fields = load_fields(path, self.session.base_scene)
        self._add_fields(f"loaded {path.name}", fields, path)

    def _fields_trained(self, fields: Any) -> None:
        result = self.job.result
        run_dir = result.run_dir if result is not None else None
        label = f"trained {run_dir.name}" if run_dir is not None else f"trained at {time.strftime('%H:%M:%S')}"
        self._add_fields(label, fields, run_dir)

    def _instances_built(self, payload: Any) -> None:
        instances, encoder = payload
        self.session.set_instances(instances, encoder)
        if self.job.instances_path is not None:
            self.saved.use_instances(self.job.instances_path)
        self.shared_changed()
        self.instance_files_changed()

    def instance_files_changed(self) -> None:
        self._each_tab(lambda tab: tab.panels.instances.refresh_files())

    def instance_files(self) -> list[Path]:
        """Instance sets saved under the output folder (built in the panel or saved), newest first."""
        out = self.session.output_dir
        if out is None or not out.is_dir():
            return []
        found = [*out.glob("*.instances*.pt"), *out.glob("runs/*/*.instances*.pt")]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:50]

    def load_instances(self, path: Path) -> None:
        """Use the instance set in ``path`` (all tabs switch); remembered for the next start."""
        from ovseg_core.instances import load_instances, text_encoder_for_instances

        instances = load_instances(path, self.session.base_scene)
        self.session.set_instances(instances, text_encoder_for_instances(instances))
        self.saved.use_instances(path)
        self.shared_changed()

    def save_instances(self, client: Any) -> None:
        inst = self.session.instances
        if inst is None:
            raise ValueError("no 3D instances to save (build them in the Training panel: Method = instances)")
        path = inst.save(self.session.output_path("scene.instances.pt"))
        self.saved.use_instances(path)
        self.notify(client, "Saved", f"{path} (open with ovseg-view --instances {path.name})")

    # -- saved selections (shared storage, per-tab selections) ---------------------------------------
    def save_selection(self, client: Any, name: str, mask: Any) -> str:
        """Save a tab's selection under ``name``; every tab's list of saved selections updates."""
        stem = self.saved.save_selection(name, mask)
        self._each_tab(lambda tab: tab.panels.selection.refresh_saved())
        self.notify(
            client, "Saved", f"selection '{stem}' ({int(mask.sum()):,} Gaussians); it is listed after a restart"
        )
        return stem

    # -- training (shared) ----------------------------------------------------------------------------
    def start_job(self, request: TrainingRequest) -> None:
        self.job.start(request)
        self._each_tab(lambda tab: tab.panels.training.show_job("running", 0.0, "**running**", [], True))

    def _poll_job(self) -> None:
        last = None
        told = "idle"
        while not self._stop.is_set():
            time.sleep(0.2)
            job = self.job
            snapshot = (job.state, round(job.fraction, 3), job.message, len(job.losses), len(self.tabs))
            if snapshot == last:
                continue
            last = snapshot
            text = f"**{job.state}** ({100 * job.fraction:.0f}%): {job.message}"
            if job.preflight and job.state == "running":
                text += f"  \nPreflight: {job.preflight}"
            show = functools.partial(_show_job, args=(job.state, job.fraction, text, list(job.losses), job.running))
            self._each_tab(show)
            if job.state == "failed" and told != "failed" and job.error:
                self.notify(None, "Training failed", job.error, color="red")
            told = job.state

    def stop(self) -> None:
        self._stop.set()
        self.job.cancel()
        for tab in list(self.tabs.values()):
            tab.close()
        self.server.stop()


def _show_job(tab: Tab, args: tuple) -> None:
    tab.panels.training.show_job(*args)
