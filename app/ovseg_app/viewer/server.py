"""The viser front end: one ``Tab`` per browser tab (its own panels, state and render thread), and
what all tabs share: the scene, the fields (``FieldsLibrary``), 3D instances and one training job.

Shared changes are pushed to every tab as events: a fields or instances change refreshes each
tab's panels and frame at once, and the training job calls back on every change of its state,
progress or message (``JobAnnouncer`` sends the newest status to every tab, at most ten times a
second). Callbacks never render; they change state and wake the render threads. Every callback and
render runs inside ``guarded``: an exception is logged and shown to the client that caused it, and
the server keeps serving. Bad input is one line, a bug a traceback, and an error a client repeats
is logged and shown once (with a count when it stops), so no client can flood the log.
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

from ovseg_app.command_runner import is_user_error
from ovseg_app.viewer import fair_intake
from ovseg_app.viewer.fields_library import FieldsEntry, FieldsLibrary
from ovseg_app.viewer.gui_jobs import GuiJobs
from ovseg_app.viewer.saved_state import SavedState
from ovseg_app.viewer.scene_orientation import SceneOrientation
from ovseg_app.viewer.session import ViewerSession
from ovseg_app.viewer.tab import Tab
from ovseg_app.viewer.training_job import TrainingJob, TrainingRequest
from ovseg_core.errors import UsageError
from ovseg_core.models.registry import text_encoder_for

log = logging.getLogger("ovseg.viewer")

MAX_ERRORS_KEPT = 200
JOB_ANNOUNCE_SECONDS = 0.1
"""Shortest time between two training-status messages to the tabs (the job may report far more often)."""

__all__ = ["Viewer", "FieldsEntry"]


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
        restore: bool = True,
    ) -> None:
        """``restore``: bring back the instances the last session on this scene used, and its
        fields when the scene has none of its own (from ``<output_dir>/viewer_state``); fields
        trained or loaded earlier and saved selections are listed either way."""
        import viser

        self.session = session
        self.dataset = dataset
        self.display_mode = display_mode
        self.still_height = still_height
        self.version = 0
        """Bumped when shared state (fields, instances) changes: every tab re-renders."""
        self.tabs: dict[int, Tab] = {}
        self.errors: list[str] = []
        self._last_error: dict[Any, list] = {}
        """Per (client id, callback): [the last error's text, times it repeated since it was logged]."""
        self._errors_lock = threading.Lock()
        self.runs_dir = session.output_dir / "runs" if session.output_dir is not None else None
        self.saved = SavedState(session.output_dir, session.base_scene)
        self.library = FieldsLibrary(session, self.saved)
        self.library.restore(restore)
        self.restored: list[str] = self.library.notes
        """What was brought back or listed from the last session (shown in the Fields panel)."""
        self._restore_instances(restore)
        self._browser_geometry: dict | None = None
        self._stop = threading.Event()
        self.gui_jobs = GuiJobs()
        """Videos and screenshots being made; ``stop`` cancels them and waits for their cleanup."""
        self._job_changed = threading.Event()
        self._runs = 0
        self.orientation = SceneOrientation(session.base_scene, session.output_dir, dataset)
        self.job = TrainingJob(
            session.scene,
            session.renderer,
            on_finished=self._fields_trained,
            on_instances=self._instances_built,
            on_change=self._job_changed.set,
        )
        fair_intake.install()  # before the server: every connection is read at a bounded rate
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.host, self.port = host, self.server.get_port()
        self.server.on_client_connect(self.guarded(self._on_connect))
        self.server.on_client_disconnect(self._on_disconnect)
        threading.Thread(target=self._announce_job, daemon=True, name="ovseg-job-status").start()

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
                target = client or next((getattr(a, "client", None) for a in args if getattr(a, "client", None)), None)
                self.report_error(getattr(fn, "__name__", str(fn)), e, target)
                return None

        return wrapper

    def report_error(self, where: str, e: BaseException, client: Any = None, *, shown: bool = True) -> None:
        """Log ``e`` (raised in ``where`` for ``client``): bad input as one line, anything else with
        its traceback. The same error again from the same client and place is counted, not logged
        or shown again, until a different one comes there. ``shown``: also tell the client and keep
        it in ``errors`` (a refused camera is only logged: the tab keeps its last good one)."""
        text = f"{type(e).__name__}: {e}"
        key = (getattr(client, "client_id", None), where)
        with self._errors_lock:
            last = self._last_error.get(key)
            if last is not None and last[0] == text:
                last[1] += 1
                return
            self._last_error[key] = [text, 0]
            if shown:
                self.errors.append(text)
                del self.errors[:-MAX_ERRORS_KEPT]
        if last is not None and last[1]:
            log.error("(the previous error in %s from client %s came %d more times)", where, key[0], last[1])
        if is_user_error(e):  # bad input: one line, no traceback
            log.error("error in %s: %s", where, e)
        else:
            log.error("error in %s:\n%s", where, "".join(traceback.format_exception(e)))
        if shown:
            self.notify(client, "Error", f"{e}", color="red")

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
        self.guarded(self._show_job, client)(tab)

    def _on_disconnect(self, client: Any) -> None:
        with self._errors_lock:
            for key in [k for k in self._last_error if k[0] == client.client_id]:
                del self._last_error[key]
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

    # -- fields (shared; the Fields panel reads these) ---------------------------------------------------
    @property
    def fields_history(self) -> list[FieldsEntry]:
        return self.library.entries

    @property
    def fields_index(self) -> int:
        return self.library.index

    def fields_options(self) -> tuple[str, ...]:
        return self.library.options()

    def use_fields(self, index: int) -> None:
        """Bring back fields from the list (all tabs switch); remembered for the next start."""
        self.library.use(index)
        self.shared_changed()

    def load_fields(self, path: Path) -> None:
        self.library.load(path)
        self.shared_changed()

    def _fields_trained(self, fields: Any) -> None:
        result = self.job.result
        run_dir = result.run_dir if result is not None else None
        label = f"trained {run_dir.name}" if run_dir is not None else f"trained at {time.strftime('%H:%M:%S')}"
        self.library.add(label, fields, run_dir)
        self.shared_changed()

    # -- instances (shared) ---------------------------------------------------------------------------
    def _restore_instances(self, restore: bool) -> None:
        inst = self.saved.instances
        if not restore or inst is None or self.session.instances is not None:
            return
        try:
            from ovseg_core.instances import load_instances

            instances = load_instances(inst, self.session.base_scene)
            self.session.set_instances(instances, text_encoder_for(instances))
            self.restored.append(f"instances `{inst.name}` ({len(instances.sizes)})")
        except Exception as e:  # noqa: BLE001 - a stale entry must not stop the viewer
            log.warning("could not restore the instances in %s: %s", inst, e)

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
        from ovseg_core.instances import load_instances

        instances = load_instances(path, self.session.base_scene)
        self.session.set_instances(instances, text_encoder_for(instances))
        self.saved.use_instances(path)
        self.shared_changed()

    def save_instances(self, client: Any) -> None:
        inst = self.session.instances
        if inst is None:
            raise UsageError("no 3D instances to save (build them in the Training panel: Method = instances)")
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
        self.job.start(request)  # its on_change announces "running" to every tab
        self._runs += 1

    def job_status(self) -> tuple[str, float, str, list, bool]:
        """(state, fraction, text, losses, running) as the Training panel shows them."""
        job = self.job
        state, fraction, message = job.state, job.fraction, job.message
        text = f"**{state}** ({100 * fraction:.0f}%): {message}" if state != "idle" else "Idle."
        if job.preflight and state == "running":
            text += f"  \nPreflight: {job.preflight}"
        return state, fraction, text, list(job.losses), state == "running"

    def _show_job(self, tab: Tab, status: tuple | None = None) -> None:
        tab.panels.training.show_job(*(status or self.job_status()))

    def _announce_job(self) -> None:
        """Wait for the job to change, then show its newest status in every tab (and a failure as
        a notification); changes that arrive while one is sent are sent next, never dropped."""
        told = 0  # the run whose failure was notified
        while True:
            self._job_changed.wait()
            if self._stop.is_set():
                return
            self._job_changed.clear()
            status = self.job_status()
            self._each_tab(functools.partial(self._show_job, status=status))
            if status[0] == "failed" and told != self._runs and self.job.error:
                told = self._runs
                self.notify(None, "Training failed", self.job.error, color="red")
            self._stop.wait(JOB_ANNOUNCE_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        self._job_changed.set()
        self.job.cancel()
        self.gui_jobs.stop()  # cancels videos/screenshots; waits (briefly) until their temp files are gone
        for tab in list(self.tabs.values()):
            tab.close()
        self.server.stop()
