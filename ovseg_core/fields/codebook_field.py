"""LangSplatV2's language field: per-Gaussian sparse codes over shared CLIP-aligned codebooks.

Each Gaussian holds ``logits`` [N, L*S] (L residual layers of S codebook entries). A layer's code is
softmax over its S logits, cut to the top-k entries and renormalised to sum 1; the Gaussian's
feature is sum over layers of code_l @ codebooks[l] ([S, D] each). While layer l trains, the
layers before it contribute detached (residual quantisation), later layers not at all.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ovseg_core.fields.config import FieldConfig


class CodebookField(nn.Module):
    """Trainable ``logits`` [N, L*S] and ``codebooks`` [L, S, D] for one feature level."""

    def __init__(self, num_gaussians: int, config: FieldConfig = FieldConfig(), seed: int = 42) -> None:
        super().__init__()
        self.config = config
        L, S, D = config.num_layers, config.codebook_size, config.embed_dim
        logits = torch.zeros(num_gaussians, L * S)
        if config.logit_init_std > 0:
            gen = torch.Generator().manual_seed(seed)
            logits.normal_(0.0, config.logit_init_std, generator=gen)
        self.logits = nn.Parameter(logits)
        self.codebooks = nn.Parameter(torch.zeros(L, S, D))

    @property
    def num_gaussians(self) -> int:
        return int(self.logits.shape[0])

    def sparse_codes(self, ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k codes of Gaussians ``ids`` (all if None): entry index ``[n, L, k]`` int64 and
        weight ``[n, L, k]`` (each layer sums to 1); differentiable in the weights."""
        # index_select: its backward is index_add_, far cheaper than advanced indexing's index_put_.
        logits = self.logits if ids is None else torch.index_select(self.logits, 0, ids)
        L, S, k = self.config.num_layers, self.config.codebook_size, self.config.top_k
        probs = torch.softmax(logits.view(-1, L, S), dim=-1)
        vals, idx = torch.topk(probs, k, dim=-1)
        return idx, vals / vals.sum(dim=-1, keepdim=True)

    def flat_sparse_codes(
        self, ids: torch.Tensor | None = None, active_layer: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes as ``[n, J]`` entry indices into the stacked ``[L*S]`` codebook and their weights.
        With ``active_layer`` l only layers <= l appear (J = (l+1)*k) and layers < l are detached."""
        idx, vals = self.sparse_codes(ids)
        S = self.config.codebook_size
        idx = idx + (torch.arange(idx.shape[1], device=idx.device) * S)[None, :, None]
        if active_layer is not None:
            idx, vals = idx[:, : active_layer + 1], vals[:, : active_layer + 1]
            if active_layer > 0:
                vals = torch.cat([vals[:, :active_layer].detach(), vals[:, active_layer:]], dim=1)
        return idx.reshape(idx.shape[0], -1), vals.reshape(vals.shape[0], -1)

    def dense_codes(self, ids: torch.Tensor | None = None, active_layer: int | None = None) -> torch.Tensor:
        """Codes scattered to ``[n, L*S]``; with ``active_layer`` l, layers < l are detached and
        layers > l are zero (the training schedule)."""
        idx, vals = self.sparse_codes(ids)
        L, S = self.config.num_layers, self.config.codebook_size
        dense = torch.zeros(idx.shape[0], L, S, dtype=vals.dtype, device=vals.device).scatter(2, idx, vals)
        if active_layer is not None:
            keep = torch.arange(L, device=dense.device) <= active_layer
            frozen = torch.arange(L, device=dense.device) < active_layer
            dense = torch.where(frozen[None, :, None], dense.detach(), dense) * keep[None, :, None]
        return dense.reshape(-1, L * S)

    def stacked_codebooks(self, active_layer: int | None = None) -> torch.Tensor:
        """Codebooks as ``[L*S, D]``, earlier layers detached when ``active_layer`` is given."""
        C = self.codebooks
        if active_layer is not None:
            L = self.config.num_layers
            frozen = torch.arange(L, device=C.device) < active_layer
            C = torch.where(frozen[:, None, None], C.detach(), C)
        return C.reshape(-1, C.shape[-1])

    @torch.no_grad()
    def init_codebooks(self, features: np.ndarray | torch.Tensor, seed: int = 42) -> None:
        """K-means initialisation as the reference does it: MiniBatchKMeans(S) per layer, each
        layer on the residuals the previous layers leave, over ``features`` [M, D]."""
        from sklearn.cluster import MiniBatchKMeans

        residual = np.asarray(features.cpu() if isinstance(features, torch.Tensor) else features, np.float32)
        if residual.ndim != 2 or residual.shape[1] != self.config.embed_dim:
            raise ValueError(f"codebook init needs features [M, {self.config.embed_dim}], got {list(residual.shape)}")
        S = self.config.codebook_size
        if residual.shape[0] < S:
            # K-means needs at least S samples; repeat the few we have (duplicate centres are harmless).
            residual = np.resize(residual, (S, residual.shape[1]))
        for layer in range(self.config.num_layers):
            km = MiniBatchKMeans(n_clusters=S, random_state=seed)
            labels = km.fit_predict(residual)
            centres = km.cluster_centers_.astype(np.float32)
            self.codebooks[layer] = torch.from_numpy(centres)
            residual = residual - centres[labels]
