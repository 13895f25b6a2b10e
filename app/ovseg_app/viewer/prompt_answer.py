"""The one definition of a prompt's answer: ``ovseg_core.selection.select_prompt`` (the rule
``ovseg query`` and ``ovseg_core.segment`` use) among the Gaussians the tab shows. The count the
panel shows, the Gaussians the frame highlights, *Select prompt result* and the prompt export are
all this set."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ovseg_app.viewer.tab_state import TabState, frozen
from ovseg_core.selection import select_prompt

if TYPE_CHECKING:
    from ovseg_app.viewer.session import ViewerSession


@dataclasses.dataclass(frozen=True, eq=False)
class PromptAnswer:
    """The one definition of what a prompt found: the count shown, the Gaussians highlighted,
    *Select prompt result* and the prompt export are all ``gaussians``."""

    relevancy: np.ndarray
    """``[N]`` max over the positives of per-Gaussian relevancy."""
    gaussians: np.ndarray
    """``[N]`` bool: the prompt's selection (``select_prompt``) among the shown (not hidden) Gaussians."""
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
    per_phrase = session.phrase_relevancy(st.prompt)
    if per_phrase is None:
        return None
    query = session.query
    p, cfg = st.prompt, st.selection_config
    key = ("answer", id(query), p.positives, p.negatives, p.level, p.threshold, cfg, id(st.hidden))

    def make() -> tuple[np.ndarray, PromptAnswer]:
        graph = session.graph() if cfg.enabled else None
        answer = select_prompt(
            query,
            graph,
            p.positives,
            negatives=p.negatives,
            threshold=p.threshold,
            level=p.level,
            selection=cfg,
            relevancy=per_phrase,
        )
        rel = session.gaussian_relevancy(st.prompt)
        shown = rel[~st.hidden]
        top = float(shown.max()) if shown.size else 0.0
        return st.hidden, PromptAnswer(rel, frozen(answer.gaussians & ~st.hidden), top)

    hidden, found = session.shared.cached(key, make)
    return found if hidden is st.hidden else make()[1]  # the id was reused by a newer hidden mask
