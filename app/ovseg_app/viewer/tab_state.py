"""The viewer's state, split by who owns it: ``SharedState`` (one per viewer: the scene, fields,
text encoder, 3D instances, neighbourhood graph and caches) and ``TabState`` (one per browser tab:
prompt, selection, hidden Gaussians, consistency knobs).

A ``TabState`` is immutable: GUI callbacks replace it whole, the render loop reads whichever one is
current, so a frame (and the numbers shown beside it) always come from one consistent state.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import torch

from ovseg_app.viewer.locked_renderer import LockedRenderer
from ovseg_core.errors import UsageError
from ovseg_core.fields import DEFAULT_NEGATIVES, FieldQuery, LanguageFields
from ovseg_core.models import TextEncoder
from ovseg_core.scene import GaussianScene
from ovseg_core.selection import SelectionConfig, graph_for
from ovseg_core.selection.config import DEFAULT_THRESHOLD

HIDDEN_LOGIT_OPACITY = -30.0
"""Hidden Gaussians get this opacity logit (sigmoid ~1e-13): below every backend's alpha cut, so
they neither show nor can be picked, while ids stay those of the loaded scene."""


@dataclasses.dataclass(frozen=True)
class PromptState:
    """What the prompt panel says."""

    positives: tuple[str, ...] = ()
    negatives: tuple[str, ...] = DEFAULT_NEGATIVES
    threshold: float = DEFAULT_THRESHOLD
    level: int | None = None
    """Feature level, None = auto (per prompt, the level with the highest relevancy)."""
    colormap: str = "turbo"
    """Heat-map colours: turbo, hot or gray."""


@dataclasses.dataclass(frozen=True, eq=False)
class TabState:
    """One tab's display state; replaced whole on every change (its arrays are read-only)."""

    prompt: PromptState
    selection: np.ndarray
    """``[N]`` bool; never intersects ``hidden``."""
    hidden: np.ndarray
    """``[N]`` bool: Gaussians this tab does not show (nothing is deleted)."""
    scene: GaussianScene
    """The loaded scene with the hidden Gaussians made transparent."""
    selection_config: SelectionConfig

    @staticmethod
    def empty(scene: GaussianScene, config: SelectionConfig, prompt: PromptState = PromptState()) -> TabState:
        nothing = frozen(np.zeros(scene.num_gaussians, bool))
        return TabState(prompt, nothing, nothing, scene, config)


def frozen(mask: np.ndarray) -> np.ndarray:
    """A read-only bool copy of ``mask`` (a state's arrays are shared, never edited in place)."""
    out = np.array(mask, bool, copy=True)
    out.flags.writeable = False
    return out


def scene_without(base: GaussianScene, hidden: np.ndarray) -> GaussianScene:
    """``base`` with the ``hidden`` ``[N]`` Gaussians made transparent."""
    if not hidden.any():
        return base
    logits = base.logit_opacities.clone()
    logits[torch.from_numpy(np.array(hidden, bool)).to(logits.device)] = HIDDEN_LOGIT_OPACITY
    return dataclasses.replace(base, logit_opacities=logits)


class SharedState:
    """What every tab of one viewer sees: fields set in one tab are in use in all of them."""

    def __init__(
        self, scene: GaussianScene, renderer: LockedRenderer, output_dir: Path | None, selection: SelectionConfig
    ) -> None:
        self.scene = scene
        self.renderer = renderer
        self.output_dir = output_dir
        self.selection_config = selection
        """The default consistency knobs (a tab changes its own); the graph's come from here."""
        self.lock = threading.RLock()
        self.fields: LanguageFields | None = None
        self.text_encoder: TextEncoder | None = None
        self.query: FieldQuery | None = None
        self.instances = None
        self.instance_encoder: TextEncoder | None = None
        self.points = scene.means.detach().cpu().numpy()
        self._graph = None
        self.cache: dict[tuple, object] = {}
        """Relevancy, answers and PCA colours, keyed by what they depend on (``id(query)`` first)."""

    def set_fields(self, fields: LanguageFields | None, text_encoder: TextEncoder | None) -> None:
        if fields is not None:
            fields.check_scene(self.scene)
            if text_encoder is None:
                raise UsageError("fields need a text encoder to be queried")
        with self.lock:
            self.fields = fields
            self.text_encoder = text_encoder
            self.query = FieldQuery(fields, text_encoder) if fields is not None else None
            self.cache.clear()

    def set_instances(self, instances, text_encoder: TextEncoder | None = None) -> None:  # noqa: ANN001
        if instances is not None:
            instances.check_scene(self.scene)
        with self.lock:
            self.instances = instances
            self.instance_encoder = text_encoder

    def graph(self):  # noqa: ANN201
        """The scene's neighbourhood graph (built once, on first use, for every tab)."""
        if self._graph is None:
            graph = graph_for(self.scene, self.selection_config)
            with self.lock:
                if self._graph is None:
                    self._graph = graph
        return self._graph

    def cached(self, key: tuple, make):  # noqa: ANN001, ANN201
        """``cache[key]``, computed by ``make()`` on a miss (the cache is bounded)."""
        value = self.cache.get(key)
        if value is None:
            value = make()
            with self.lock:
                if len(self.cache) > 32:
                    self.cache.clear()
                self.cache[key] = value
        return value
