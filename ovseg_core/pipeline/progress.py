"""Progress reports of a pipeline run (torch-free)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

PREPROCESS_SHARE = 0.3
"""Share of a run's progress bar that preprocessing spans (training, lifting or instances the rest)."""


@dataclasses.dataclass
class PipelineProgress:
    """Progress of a whole run: phase ``load``, ``preprocess``, ``train``, ``lift`` or ``instances``."""

    phase: str
    fraction: float
    """Overall fraction done (preprocessing counts as the first 30%)."""
    message: str
    train: Any = None
    """The trainer's ``TrainProgress`` during ``train``."""
    checked: str | None = None
    """Set once, at the end of preprocessing: the mask census of every view (which chosen levels
    have masks in how many views)."""


Reporter = Callable[[PipelineProgress], None]


def reporter(progress: Reporter | None) -> Reporter:
    """``progress`` or a no-op."""
    return progress if progress is not None else (lambda p: None)


def after_preprocess(fraction: float) -> float:
    """Overall fraction of a run at ``fraction`` of its post-preprocessing phase."""
    return PREPROCESS_SHARE + (1 - PREPROCESS_SHARE) * fraction


class EtaModel:
    """Turns a run's progress reports into a message with the time left (what a GUI shows).

    The trainer's own ETA counts the contributions phase (every view rendered once before a level's
    first step) as step time; this model times that phase and the steps apart: the ETA during the
    phase comes from its own per-view rate, and after it from the step rate alone plus the later
    levels' contributions. Preprocessing, lifting and instances get the ETA of their phase from its
    own rate."""

    def __init__(self, levels: int = 1, views: int = 0) -> None:
        self.levels, self.views = levels, views
        """Levels the run trains and views of the capture (to estimate later levels' contributions)."""
        self.eta_s: float | None = None
        self._phase, self._phase_started, self._phase_fraction = "", time.perf_counter(), 0.0
        self._contrib_started, self._contrib_view_s = time.perf_counter(), None
        self._last_step: tuple[float, int] | None = None
        self._step_s, self._steps_timed = 0.0, 0

    def update(self, p: PipelineProgress, now: float | None = None) -> str:
        """Record ``p`` (at time ``now``, default the clock); returns the message to show and sets ``eta_s``."""
        now = time.perf_counter() if now is None else now
        if p.phase != self._phase:
            self._phase, self._phase_started, self._phase_fraction = p.phase, now, p.fraction
        t = p.train
        if t is not None and t.phase == "contributions":
            return self._contributions(t, now)
        if t is not None and t.phase == "register":
            self.eta_s, self._last_step = None, None
            when = "all steps done" if t.step >= t.total_steps else f"for the checkpoint at step {t.step}"
            return f"level {t.level}: registering the trained codes onto the Gaussians ({when})"
        if t is not None:
            return self._step(t, now)
        self.eta_s = None
        if p.phase == "load":
            return p.message
        end = PREPROCESS_SHARE if p.phase == "preprocess" else 1.0
        done, elapsed = p.fraction - self._phase_fraction, now - self._phase_started
        if done > 0 and elapsed > 1.0:
            self.eta_s = elapsed * (end - self._phase_fraction - done) / done
            what = "in preprocessing; training not timed yet" if p.phase == "preprocess" else f"in {p.phase}"
            return f"{p.message} (~{self.eta_s:.0f} s left {what})"
        return p.message

    def _contributions(self, t: Any, now: float) -> str:
        self._last_step = None  # steps after this phase are timed afresh
        if t.views_done == 0:
            self._contrib_started = now
        if t.views_done:
            self._contrib_view_s = (now - self._contrib_started) / t.views_done
        left = t.views_total - t.views_done
        self.eta_s = self._contrib_view_s * left if t.views_done and self._contrib_view_s is not None else None
        eta = f" (~{self.eta_s:.0f} s left" if self.eta_s is not None else " (timing the first view"
        return f"level {t.level}: precomputing view contributions {t.views_done}/{t.views_total}{eta}; training steps follow)"

    def _step(self, t: Any, now: float) -> str:
        if self._last_step is not None and t.step > self._last_step[1]:
            self._step_s += now - self._last_step[0]
            self._steps_timed += t.step - self._last_step[1]
        self._last_step = (now, t.step)
        self.eta_s = None
        if self._steps_timed >= 5:
            per_level = t.total_steps // max(self.levels, 1)
            later_levels = max(0, self.levels - 1 - (t.step - 1) // max(per_level, 1))
            contrib = (self._contrib_view_s or 0.0) * self.views * later_levels
            self.eta_s = self._step_s / self._steps_timed * (t.total_steps - t.step) + contrib
        eta = f", ~{self.eta_s:.0f} s left" if self.eta_s is not None else ""
        return f"level {t.level} step {t.step}/{t.total_steps}, loss {t.cosine_loss_valid:.4f}{eta}"
