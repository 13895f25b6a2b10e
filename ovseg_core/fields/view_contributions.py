"""Per-view blending weights of a frozen splat, computed once and reused by every training step.

The geometry never changes while a language field trains, so which Gaussians cover which pixel,
and with what blending weight, is fixed per view. Training then only needs a sparse
[pixels x Gaussians] matrix per view instead of re-rasterising the scene each step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.fields import _blend_kernels as kernels
from ovseg_core.render.base import Renderer
from ovseg_core.scene import GaussianScene


@dataclasses.dataclass
class ViewContributions:
    """Sparse blending weights of one view restricted to chosen pixels (CPU numpy)."""

    height: int
    width: int
    pixels: np.ndarray
    """``[P]`` int64 flat pixel indices (row * width + col) the rows refer to."""
    gaussian_ids: np.ndarray
    """``[U]`` int64 scene ids of the Gaussians that touch those pixels (the columns)."""
    row_ptr: np.ndarray
    """``[P + 1]`` int64 CSR row pointers."""
    cols: np.ndarray
    """``[E]`` int32 column (index into ``gaussian_ids``) of each entry."""
    weights: np.ndarray
    """``[E]`` float32 blending weights alpha * T."""
    col_ptr: np.ndarray
    """``[U + 1]`` int64 pointers of the transposed (per-Gaussian) layout."""
    rows_t: np.ndarray
    """``[E]`` int32 pixel row of each transposed entry."""
    weights_t: np.ndarray
    """``[E]`` float32 weights in transposed order."""

    @property
    def num_entries(self) -> int:
        return int(self.cols.shape[0])

    def nbytes(self) -> int:
        return sum(
            a.nbytes
            for a in (
                self.pixels,
                self.gaussian_ids,
                self.row_ptr,
                self.cols,
                self.weights,
                self.col_ptr,
                self.rows_t,
                self.weights_t,
            )
        )


def compute_contributions(
    renderer: Renderer,
    scene: GaussianScene,
    camera: Camera,
    pixel_mask: np.ndarray | None = None,
    top_k: int = 32,
    min_weight: float = 1e-4,
    max_entries: int = 8_000_000,
) -> ViewContributions:
    """Render ``camera`` with top-``k`` contributions and keep the pixels in ``pixel_mask``
    ([H, W] bool; all if None). Entries below ``min_weight`` are dropped (they cannot move a
    cosine loss measurably). Views whose H * W * k exceeds ``max_entries`` render in horizontal
    bands (sub-cameras), so the dense [h, W, k] buffers stay bounded."""
    from ovseg_core.fields.backprojection import band_camera

    H, W = camera.height, camera.width
    if pixel_mask is None:
        pixels = np.arange(H * W, dtype=np.int64)
    else:
        if pixel_mask.shape != (H, W):
            raise ValueError(f"pixel mask is {list(pixel_mask.shape)}, the view is {H}x{W}")
        pixels = np.flatnonzero(pixel_mask.reshape(-1)).astype(np.int64)
    rows = max(1, min(H, max_entries // max(W * top_k, 1)))
    counts_parts, id_parts, w_parts = [], [], []
    for row0 in range(0, H, rows):
        h = min(rows, H - row0)
        lo, hi = np.searchsorted(pixels, [row0 * W, (row0 + h) * W])
        if lo == hi:
            continue
        cam = camera if h == H else band_camera(camera, row0, h)
        out = renderer.render(scene, cam, top_k=top_k)
        assert out.contrib_ids is not None and out.contrib_weights is not None
        ids = out.contrib_ids[0].cpu().numpy().reshape(-1, top_k)[pixels[lo:hi] - row0 * W]
        ws = out.contrib_weights[0].cpu().numpy().astype(np.float32).reshape(-1, top_k)[pixels[lo:hi] - row0 * W]
        keep = (ids >= 0) & (ws > min_weight)
        counts_parts.append(keep.sum(axis=1))
        id_parts.append(ids[keep])
        w_parts.append(ws[keep])
    counts = np.concatenate(counts_parts) if counts_parts else np.zeros(0, np.int64)
    row_ptr = np.zeros(len(pixels) + 1, np.int64)
    np.cumsum(counts, out=row_ptr[1:])
    flat_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
    weights = np.concatenate(w_parts) if w_parts else np.zeros(0, np.float32)
    # Compact the touched Gaussians without sorting: a presence mask and its running count.
    present = np.zeros(scene.num_gaussians, bool)
    present[flat_ids] = True
    gaussian_ids = np.flatnonzero(present)
    cols = (np.cumsum(present, dtype=np.int64) - 1)[flat_ids].astype(np.int32)
    col_ptr, rows_t, weights_t = kernels.transpose_csr(cols, weights, len(gaussian_ids), row_ptr)
    return ViewContributions(
        height=H,
        width=W,
        pixels=pixels,
        gaussian_ids=gaussian_ids.astype(np.int64),
        row_ptr=row_ptr,
        cols=cols,
        weights=weights,
        col_ptr=col_ptr,
        rows_t=rows_t,
        weights_t=weights_t,
    )


class _BlendCodes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, val: torch.Tensor, idx: torch.Tensor, contrib: ViewContributions, width: int) -> torch.Tensor:
        idx_np = idx.numpy().astype(np.int32, copy=False)
        out = kernels.blend_codes(
            contrib.row_ptr,
            contrib.cols,
            contrib.weights,
            idx_np,
            val.detach().numpy().astype(np.float32, copy=False),
            width,
        )
        ctx.contrib, ctx.idx_np = contrib, idx_np
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        c = ctx.contrib
        g = kernels.blend_codes_backward(
            c.col_ptr, c.rows_t, c.weights_t, ctx.idx_np, np.ascontiguousarray(grad_out.numpy(), dtype=np.float32)
        )
        return torch.from_numpy(g), None, None, None


def blend_sparse_codes(contrib: ViewContributions, idx: torch.Tensor, val: torch.Tensor, width: int) -> torch.Tensor:
    """Pixel codes ``[P, width]`` from the sparse codes of the view's Gaussians (``idx`` [U, J]
    int entry indices in [0, width), ``val`` [U, J] weights, in ``contrib.gaussian_ids`` order);
    differentiable in ``val``. CPU float32."""
    if idx.shape != val.shape or idx.shape[0] != len(contrib.gaussian_ids):
        raise ValueError(
            f"codes must be [U={len(contrib.gaussian_ids)}, J], got idx {list(idx.shape)}, val {list(val.shape)}"
        )
    return _BlendCodes.apply(val.float().cpu().contiguous(), idx.cpu().contiguous(), contrib, width)
