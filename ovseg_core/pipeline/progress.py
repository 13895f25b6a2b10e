"""Progress reports of a pipeline run (torch-free)."""

from __future__ import annotations

import dataclasses
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


Reporter = Callable[[PipelineProgress], None]


def reporter(progress: Reporter | None) -> Reporter:
    """``progress`` or a no-op."""
    return progress if progress is not None else (lambda p: None)


def after_preprocess(fraction: float) -> float:
    """Overall fraction of a run at ``fraction`` of its post-preprocessing phase."""
    return PREPROCESS_SHARE + (1 - PREPROCESS_SHARE) * fraction
