"""The one definition of a prompt's answer: the Gaussians whose relevancy passes the threshold,
made spatially consistent, among those the tab shows. The count the panel shows, the Gaussians the
frame highlights, *Select prompt result* and the prompt export are all this set."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ovseg_app.viewer.tab_state import TabState, frozen
from ovseg_core.selection import consistent_selection

if TYPE_CHECKING:
    from ovseg_app.viewer.session import ViewerSession


@dataclasses.dataclass(frozen=True, eq=False)
class PromptAnswer:
    """The one definition of what a prompt found: the count shown, the Gaussians highlighted,
    *Select prompt result* and the prompt export are all ``gaussians``."""

    relevancy: np.ndarray
    """``[N]`` max over the positives of per-Gaussian relevancy."""
    gaussians: np.ndarray
    """``[N]`` bool: above the threshold, made spatially consistent, and shown (not hidden)."""
    max_relevancy: float
    """Highest relevancy over the shown Gaussians."""

    @property
    def count(self) -> int:
        return int(self.gaussians.sum())

    @property
    def no_match(self) -> bool:
        return self.count == 0


def find(session: ViewerSession, st: TabState) -> PromptAnswer | None:
    """What ``st``'s prompt found (cached per prompt, threshold, consistency and hidden mask);
    None without prompt or fields."""
    rel = session.gaussian_relevancy(st.prompt)
    if rel is None:
        return None
    query = session.query
    p, cfg = st.prompt, st.selection_config
    key = ("answer", id(query), p.positives, p.negatives, p.level, p.threshold, cfg, id(st.hidden))

    def make() -> tuple[np.ndarray, PromptAnswer]:
        if cfg.enabled:
            hits = consistent_selection(session.graph(), rel, p.threshold, evidence(session, p.level), cfg)
        else:
            hits = rel > p.threshold
        shown = rel[~st.hidden]
        top = float(shown.max()) if shown.size else 0.0
        return st.hidden, PromptAnswer(rel, frozen(hits & ~st.hidden), top)

    hidden, found = session.shared.cached(key, make)
    return found if hidden is st.hidden else make()[1]  # the id was reused by a newer hidden mask


def evidence(session: ViewerSession, level: int | None) -> np.ndarray:
    """``[N]`` how much the views said about each Gaussian's feature at ``level`` (None: the most
    at any level); 0 for Gaussians no view showed."""
    query = session.query
    if query is None:
        return np.ones(session.base_scene.num_gaussians, np.float32)
    levels = [level] if level is not None else list(query.levels_3d)
    return np.maximum.reduce([query.evidence(lvl) for lvl in levels])
