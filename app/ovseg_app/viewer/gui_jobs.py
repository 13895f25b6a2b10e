"""Long GUI work (camera-path videos, large screenshots) as cancellable jobs.

A GUI callback only validates its input and starts a job; the job runs in its own thread, reports
progress, and stops at its next ``check()`` once cancelled (by its panel's Cancel button, its tab
going away, or the viewer stopping). Jobs write through atomic writers, so a cancelled one leaves
no temporary file. At most ``limit`` jobs of a kind run at once across all tabs, which bounds the
memory they take (each streams its frames and holds at most one at a time).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any, Literal

from ovseg_app.command_runner import is_user_error
from ovseg_core.errors import Cancelled, UsageError

log = logging.getLogger(__name__)

GuiJobState = Literal["running", "done", "failed", "cancelled"]
STOP_WAIT_S = 5.0
"""How long ``Viewer.stop`` waits for its jobs to notice the cancel and clean up."""


class GuiJob:
    """One job; everything a panel shows (state, fraction, message, error) is an attribute."""

    def __init__(
        self,
        kind: str,
        work: Callable[[GuiJob], Any],
        *,
        on_change: Callable[[GuiJob], None] | None = None,
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        """``work(job)`` does the job, calling ``job.progress`` / ``job.check`` between steps;
        ``on_change(job)`` is called (in the job's thread) after each change; ``wanted()`` false
        cancels the job (its tab went away)."""
        self.kind = kind
        self.work = work
        self.on_change = on_change
        self.wanted = wanted
        self.state: GuiJobState = "running"
        self.fraction = 0.0
        self.message = "starting"
        self.error: str | None = None
        self.result: Any = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"ovseg-gui-{kind}")

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() or not self.wanted()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        """Raise ``Cancelled`` once the job is no longer wanted (call it between steps)."""
        if self.cancelled:
            raise Cancelled(f"{self.kind} cancelled")

    def progress(self, fraction: float, message: str) -> None:
        """Record progress, tell ``on_change``, then ``check()``."""
        self.fraction, self.message = fraction, message
        self._changed()
        self.check()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the job ended within ``timeout`` seconds."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self)
        except Exception:  # noqa: BLE001 - a GUI that went away must not end the job
            log.debug("gui job on_change failed", exc_info=True)

    def _run(self) -> None:
        try:
            self.check()
            self.result = self.work(self)
            self.state, self.fraction, self.message = "done", 1.0, "done"
        except Cancelled:
            self.state, self.message = "cancelled", "cancelled"
        except Exception as e:  # a failed job is reported in its panel, never crashes the viewer
            if is_user_error(e):
                log.error("%s failed: %s", self.kind, e)
            else:
                log.error("%s failed:\n%s", self.kind, traceback.format_exc())
            self.error = f"{type(e).__name__}: {e}" if not is_user_error(e) else str(e)
            self.state, self.message = "failed", f"failed: {self.error}"
        self._changed()


class GuiJobs:
    """The viewer's GUI jobs: starts them within each kind's limit, and cancels them all on ``stop``."""

    def __init__(self, limits: dict[str, int] | None = None) -> None:
        self.limits = {"video": 1, "screenshot": 1, **(limits or {})}
        self._jobs: list[GuiJob] = []
        self._lock = threading.Lock()
        self._stopped = False

    def running(self, kind: str | None = None) -> list[GuiJob]:
        with self._lock:
            return [j for j in self._jobs if j.running and (kind is None or j.kind == kind)]

    def start(self, job: GuiJob) -> GuiJob:
        with self._lock:
            if self._stopped:
                raise UsageError("the viewer is stopping")
            self._jobs = [j for j in self._jobs if j.running]
            if sum(j.kind == job.kind for j in self._jobs) >= self.limits.get(job.kind, 1):
                raise UsageError(f"a {job.kind} is already being made (here or in another tab); wait or cancel it")
            self._jobs.append(job)
            job._thread.start()
        return job

    def stop(self, timeout: float = STOP_WAIT_S) -> list[GuiJob]:
        """Cancel every job and wait up to ``timeout`` s in all; returns those still running."""
        import time

        with self._lock:
            self._stopped = True
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + timeout
        for job in jobs:
            job.wait(max(0.0, deadline - time.monotonic()))
        left = [j for j in jobs if not j.wait(0)]
        for job in left:
            log.warning("%s did not stop within %.0f s", job.kind, timeout)
        return left
