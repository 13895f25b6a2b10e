"""Spatially consistent selections of Gaussians: a colour-weighted neighbourhood graph over
Gaussian centres, labels weighed by each Gaussian's evidence against its neighbourhood's over it,
and connected components that drop isolated strays.

Names load on first use: ``ovseg_core.selection.config`` (the settings) imports without torch."""

from __future__ import annotations

from ovseg_core._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_THRESHOLD": "ovseg_core.selection.config",
    "GaussianGraph": "ovseg_core.selection.graph",
    "PhraseMatch": "ovseg_core.selection.prompt",
    "PromptSelection": "ovseg_core.selection.prompt",
    "SelectionConfig": "ovseg_core.selection.config",
    "build_graph": "ovseg_core.selection.graph",
    "connected_within": "ovseg_core.selection.graph",
    "consistent_selection": "ovseg_core.selection.consistency",
    "graph_for": "ovseg_core.selection.graph",
    "phrase_relevancy": "ovseg_core.selection.prompt",
    "grow_from_seed": "ovseg_core.selection.consistency",
    "propagate_labels": "ovseg_core.selection.consistency",
    "regularised_labels": "ovseg_core.selection.consistency",
    "select_prompt": "ovseg_core.selection.prompt",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
