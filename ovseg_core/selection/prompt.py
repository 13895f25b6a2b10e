"""A text prompt's answer: the one rule ``ovseg query``, the viewer and ``ovseg_core.segment`` share.

For each positive phrase: per-Gaussian relevancy at the level it scores highest on (or the level
given), the Gaussians above the threshold made spatially consistent with that level's evidence
(``consistent_selection``); the answer is the union over the phrases. Each phrase is made
consistent on its own, so a small object asked for beside a large one is not dropped as a stray
piece of the larger one's selection."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ovseg_core.errors import UsageError
from ovseg_core.fields.config import DEFAULT_NEGATIVES
from ovseg_core.fields.relevancy import FieldQuery, QuerySettings
from ovseg_core.selection.config import DEFAULT_THRESHOLD, SelectionConfig
from ovseg_core.selection.consistency import consistent_selection
from ovseg_core.selection.graph import GaussianGraph


@dataclasses.dataclass(frozen=True)
class PhraseMatch:
    """What one positive phrase found."""

    phrase: str
    level: int
    """The feature level its relevancy came from."""
    relevancy: np.ndarray
    """``[N]`` float32 in [0, 1]."""
    gaussians: np.ndarray
    """``[N]`` bool: above the threshold, made spatially consistent."""


@dataclasses.dataclass(frozen=True)
class PromptSelection:
    """A prompt's answer: the union of its phrases' matches."""

    matches: tuple[PhraseMatch, ...]
    gaussians: np.ndarray
    """``[N]`` bool: the Gaussians any phrase selected."""

    @property
    def relevancy(self) -> np.ndarray:
        """``[N]`` max over the phrases of their relevancy."""
        return np.max([m.relevancy for m in self.matches], axis=0)


def phrases_of(prompt: str | Sequence[str]) -> tuple[str, ...]:
    """The non-empty phrases of ``prompt`` (one string or several); refuses an empty prompt."""
    phrases = (prompt,) if isinstance(prompt, str) else tuple(prompt)
    phrases = tuple(p.strip() for p in phrases if p.strip())
    if not phrases:
        raise UsageError("the prompt is empty; type what to look for")
    return phrases


def phrase_relevancy(
    query: FieldQuery, phrase: str, negatives: Sequence[str] = DEFAULT_NEGATIVES, level: int | None = None
) -> tuple[np.ndarray, int]:
    """``([N] relevancy, level used)`` of one phrase against ``negatives`` (``level`` None: the best)."""
    return query.gaussian_relevancy(phrase, QuerySettings(negatives=tuple(negatives), level=level))


def select_prompt(
    query: FieldQuery,
    graph: GaussianGraph | None,
    prompt: str | Sequence[str],
    *,
    negatives: Sequence[str] = DEFAULT_NEGATIVES,
    threshold: float = DEFAULT_THRESHOLD,
    level: int | None = None,
    selection: SelectionConfig = SelectionConfig(),
    relevancy: Sequence[tuple[np.ndarray, int]] | None = None,
) -> PromptSelection:
    """The answer to ``prompt`` (a phrase or several) in ``query``'s fields. ``graph`` is the scene's
    neighbourhood graph (``graph_for(scene, selection)``; None only with ``selection.enabled`` off).
    ``relevancy``: the phrases' ``phrase_relevancy`` results when the caller already has them."""
    phrases = phrases_of(prompt)
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"the threshold must lie in [0, 1], got {threshold}")
    if selection.enabled and graph is None:
        raise ValueError("a spatially consistent selection needs the scene's graph (graph_for(scene, selection))")
    if relevancy is None:
        relevancy = [phrase_relevancy(query, p, negatives, level) for p in phrases]
    if len(relevancy) != len(phrases):
        raise ValueError(f"{len(relevancy)} relevancy results for {len(phrases)} phrases")
    matches = []
    for phrase, (rel, lvl) in zip(phrases, relevancy):
        if selection.enabled:
            assert graph is not None
            hits = consistent_selection(graph, rel, threshold, query.evidence(lvl), selection)
        else:
            hits = rel > threshold
        matches.append(PhraseMatch(phrase, lvl, rel, hits))
    return PromptSelection(tuple(matches), np.logical_or.reduce([m.gaussians for m in matches]))
