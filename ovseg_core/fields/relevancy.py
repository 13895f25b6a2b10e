"""Text queries against language fields: relevancy per Gaussian (3D) and per pixel (2D).

Relevancy is LERF's: for a positive phrase p and negatives n (default "object", "things",
"stuff", "texture"), min over n of softmax(10 * [cos(f, p), cos(f, n)])[p]. Both paths work in
the field's factored form (features = codes @ basis), so a query costs a [E, Q] table plus
O(N * J) for Gaussians (the negatives, O(N * J * Q), are scored once per set), or a code render
plus O(P * E * (E + Q)) for pixels; no [*, D] feature arrays are formed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.errors import FieldMismatchError, UsageError
from ovseg_core.fields import _relevancy_kernels as kernels
from ovseg_core.fields.config import DEFAULT_NEGATIVES, MAX_BASIS_ROWS
from ovseg_core.fields.language_fields import LanguageFields, LevelCodes
from ovseg_core.models.protocols import TextEncoder
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene


@dataclasses.dataclass(frozen=True)
class QuerySettings:
    """How relevancy is scored."""

    negatives: tuple[str, ...] = DEFAULT_NEGATIVES
    """Canonical phrases a match must beat (editable)."""
    temperature: float = 10.0
    """Softmax temperature between positive and each negative."""
    min_alpha: float = 0.5
    """Pixels whose rendered opacity is below this show mostly background: relevancy 0 there."""
    level: int | None = None
    """Feature level to query; None picks, per prompt, the level with the highest maximum
    relevancy (the LERF-OVS evaluation's rule)."""


@dataclasses.dataclass
class LevelQueryState:
    """Per-level arrays prepared once for fast queries."""

    codes: LevelCodes
    idx: np.ndarray  # [N, J] uint8 / int32 (the smallest that holds E)
    val_unit: np.ndarray  # [N, J] float32, val / |feature| (cosines come out directly)
    gram: torch.Tensor  # [E, E]
    val_sum: float  # what every Gaussian's mixing weights add up to (1 per layer)
    unseen: np.ndarray  # [N] bool: no feature at all (lifting never saw it); relevancy 0
    evidence: np.ndarray  # [N] float32 >= 0: how much the views said about each Gaussian (1 / 0 if unknown)


def _entry_scores(basis: np.ndarray, text: np.ndarray) -> np.ndarray:
    """``[E]`` float32 score of each basis entry ``[E, D]`` for one text embedding ``[D]``. Not BLAS:
    its threads stall behind busy cores for so small a product. Positives and negatives both come
    from here, so a prompt whose embedding equals a negative's scores exactly 0.5 (not selected)."""
    return np.multiply(basis, text).sum(axis=1, dtype=np.float32)


class FieldQuery:
    """Answers text queries for one scene's fields with one text encoder."""

    def __init__(self, fields: LanguageFields, text_encoder: TextEncoder) -> None:
        if text_encoder.embed_dim != fields.embed_dim:
            raise FieldMismatchError(
                f"the text encoder {text_encoder.name!r} embeds into {text_encoder.embed_dim} dims but the fields "
                f"were trained on {fields.embed_dim}-dim features from {fields.encoder_name!r}; use that model"
            )
        self.fields = fields
        self.text_encoder = text_encoder
        self.levels: dict[int, LevelQueryState] = {lvl: self._prepare(c) for lvl, c in fields.levels.items()}
        # 3D queries read registered per-Gaussian codes where the fields carry them
        self.levels_3d: dict[int, LevelQueryState] = {
            lvl: self._prepare(fields.gaussian_levels[lvl]) if lvl in fields.gaussian_levels else st
            for lvl, st in self.levels.items()
        }
        self._text_cache: dict[str, torch.Tensor] = {}
        # level -> (negatives, [N] best negative score per Gaussian): negatives rarely change, so a
        # query then costs one score per Gaussian instead of 1 + len(negatives); the last set only
        self._negative_cache: dict[int, tuple[tuple[str, ...], np.ndarray]] = {}

    @staticmethod
    def _prepare(codes: LevelCodes) -> LevelQueryState:
        idx = codes.idx.numpy().astype(np.int32)
        val = codes.val.numpy().astype(np.float32)
        basis = codes.basis.float()
        if basis.shape[0] > MAX_BASIS_ROWS:  # loading refuses these; fields built in memory meet it here
            raise FieldMismatchError(
                f"the fields' basis has {basis.shape[0]:,} entries; at most {MAX_BASIS_ROWS} are supported"
            )
        gram = basis @ basis.T
        norms = kernels.gaussian_norms(idx, val, gram.numpy().astype(np.float32))
        inv = np.where(norms > 1e-12, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        unseen = norms <= 1e-12
        val_sum = float(val[int(np.argmin(unseen))].sum()) if len(val) else 1.0
        small_idx = idx.astype(np.uint8) if basis.shape[0] <= 256 else idx  # 4x less memory traffic
        if codes.evidence is not None:
            evidence = np.where(unseen, 0.0, codes.evidence.numpy()).astype(np.float32)
        else:  # trained codes: every Gaussian with a feature counts alike
            evidence = (~unseen).astype(np.float32)
        return LevelQueryState(
            codes=codes,
            idx=small_idx,
            val_unit=np.ascontiguousarray(val * inv[:, None]),
            gram=gram,
            val_sum=max(val_sum, 1e-12),
            unseen=unseen,
            evidence=evidence,
        )

    def unseen_count(self, level: int | None = None) -> int:
        """Gaussians without any feature (never seen by lifting) at ``level`` (default: in every level)."""
        if level is not None:
            return int(self.levels_3d[level].unseen.sum())
        masks = [st.unseen for st in self.levels_3d.values()]
        return int(np.logical_and.reduce(masks).sum()) if masks else 0

    def seen_mask(self, level: int) -> np.ndarray:
        """``[N]`` bool: Gaussians that carry a 3D feature at ``level``."""
        return ~self.levels_3d[level].unseen

    def evidence(self, level: int) -> np.ndarray:
        """``[N]`` float32: how much the views said about each Gaussian's 3D feature at ``level``
        (its squared blending weights summed by lifting or registration; 1 per seen Gaussian where
        the fields do not know it), 0 for unseen ones. Spatially consistent selections weigh scores by it."""
        return self.levels_3d[level].evidence

    # -- text ----------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """``[Q, D]`` unit text embeddings, cached per phrase."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            for t, e in zip(missing, self.text_encoder.encode_texts(missing)):
                self._text_cache[t] = e.float()
        return torch.stack([self._text_cache[t] for t in texts]) if texts else torch.zeros(0, self.fields.embed_dim)

    def queries(self, prompt: str, settings: QuerySettings) -> torch.Tensor:
        """``[1 + negatives, D]`` embeddings: the prompt, then the non-empty negatives."""
        if not prompt.strip():
            raise UsageError("the prompt is empty; type what to look for")
        return self.embed([prompt, *[n for n in settings.negatives if n.strip()]])

    # -- 3D ------------------------------------------------------------------------------------
    def gaussian_relevancy(self, prompt: str, settings: QuerySettings = QuerySettings()) -> tuple[np.ndarray, int]:
        """Relevancy ``[N]`` float32 in [0, 1] of every Gaussian for ``prompt`` and the level used.
        (Without negatives the score is the plain cosine similarity.) Gaussians without a feature
        (``unseen_count``) score 0, as empty pixels do."""
        q = self.queries(prompt, settings).numpy()
        negatives = tuple(n for n in settings.negatives if n.strip())
        best: tuple[np.ndarray, int] | None = None
        for lvl in self._levels(settings):
            st = self.levels_3d[lvl]
            basis = st.codes.basis.float().numpy()
            column = _entry_scores(basis, q[0])
            worst = None
            if negatives:
                cached = self._negative_cache.get(lvl)
                if cached is not None and cached[0] == negatives:
                    worst = cached[1]
                else:
                    table = np.stack([_entry_scores(basis, n) for n in q[1:]], axis=1)  # [E, negatives]
                    worst = kernels.max_scores(st.idx, st.val_unit, table)
                    worst[st.unseen] = kernels.UNSEEN_NEGATIVE  # relevancy exactly 0 there
                    self._negative_cache[lvl] = (negatives, worst)
            if worst is None:  # no negatives: the plain cosine (0 for unseen Gaussians: their values are 0)
                rel = kernels.positive_scores(st.idx, st.val_unit, column)
            else:
                rel = kernels.relevancy_against(st.idx, st.val_unit, column, worst, np.float32(settings.temperature))
            if best is None or rel.max() > best[0].max():
                best = (rel, lvl)
        assert best is not None
        return best

    def similarity_to(self, level: int, gaussian: int) -> np.ndarray:
        """Cosine similarity ``[N]`` of every Gaussian's feature to Gaussian ``gaussian``'s at ``level``."""
        st = self.levels_3d[level]
        seed = st.codes.features(torch.tensor([gaussian]))[0]
        table = (st.codes.basis.float() @ (seed / seed.norm().clamp_min(1e-12))[:, None]).numpy().astype(np.float32)
        return kernels.relevancy(st.idx, st.val_unit, table, np.float32(1.0))  # one column: plain cosine

    # -- 2D ------------------------------------------------------------------------------------
    def render_codes(self, renderer: Renderer, scene: GaussianScene, camera: Camera, level: int) -> torch.Tensor:
        """Blended codes ``[H, W, E]`` of one view (the only per-pixel render a query needs)."""
        codes = self.levels[level].codes.dense_codes()
        return renderer.render(scene, camera, features=codes).features[0].float().cpu()

    def pixel_relevancy(
        self,
        renderer: Renderer,
        scene: GaussianScene,
        camera: Camera,
        prompt: str,
        settings: QuerySettings = QuerySettings(),
        code_images: dict[int, torch.Tensor] | None = None,
    ) -> tuple[np.ndarray, int]:
        """Relevancy ``[H, W]`` float32 of ``prompt`` in the view and the level used. Pass
        ``code_images`` (level -> ``render_codes`` output) to reuse renders across prompts."""
        q = self.queries(prompt, settings)
        best: tuple[np.ndarray, int] | None = None
        for lvl in self._levels(settings):
            codes = (
                code_images[lvl]
                if code_images and lvl in code_images
                else self.render_codes(renderer, scene, camera, lvl)
            )
            rel = self.pixel_relevancy_from_codes(codes, lvl, q, settings.temperature, settings.min_alpha)
            if best is None or rel.max() > best[0].max():
                best = (rel, lvl)
        assert best is not None
        return best

    def pixel_relevancy_from_codes(
        self, codes: torch.Tensor, level: int, queries: torch.Tensor, temperature: float, min_alpha: float = 0.0
    ) -> np.ndarray:
        """Relevancy ``[H, W]`` from rendered codes ``[H, W, E]`` and ``queries`` [1 + n_neg, D]."""
        st = self.levels[level]
        H, W, E = codes.shape
        c = codes.reshape(-1, E)
        # Every Gaussian's mixing weights sum to the same constant, so the blended weights
        # carry the pixel's opacity for free.
        alpha = c.sum(dim=1) / st.val_sum
        norms = ((c @ st.gram) * c).sum(dim=1).clamp_min(0).sqrt()
        sims = (c @ (st.codes.basis.float() @ queries.T)) / norms.clamp_min(1e-12)[:, None]  # [P, Q]
        sims = torch.where(norms[:, None] > 1e-12, sims, torch.zeros_like(sims))
        if sims.shape[1] == 1:
            rel = sims[:, 0]
        else:
            rel = torch.sigmoid(temperature * (sims[:, 0] - sims[:, 1:].max(dim=1).values))
            rel = torch.where(norms > 1e-12, rel, torch.zeros_like(rel))
        if min_alpha > 0:
            rel = torch.where(alpha >= min_alpha, rel, torch.zeros_like(rel))
        return rel.reshape(H, W).numpy().astype(np.float32)

    def _levels(self, settings: QuerySettings) -> list[int]:
        if settings.level is None:
            return sorted(self.levels)
        if settings.level not in self.levels:
            raise UsageError(f"level {settings.level} is not in these fields (they have {sorted(self.levels)})")
        return [settings.level]
