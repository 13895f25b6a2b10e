"""Per-view blending weights of a frozen splat, computed once and reused by every training step.

The geometry never changes while a language field trains, so which Gaussians cover which pixel,
and with what blending weight, is fixed per view. Training then only needs a sparse
[pixels x Gaussians] matrix per view instead of re-rasterising the scene each step.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch

from ovseg_core.camera import Camera
from ovseg_core.fields import _blend_kernels as kernels
from ovseg_core.fields import _blend_torch as blend_torch
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene


@dataclasses.dataclass
class ViewContributions:
    """Sparse blending weights of one view restricted to chosen pixels (CPU numpy), in one compact
    layout: CSR with 32-bit ids and float16 weights (~6 bytes a contribution). The backward pass
    needs no transposed copy (``_blend_kernels`` / ``_blend_torch``)."""

    height: int
    width: int
    pixels: np.ndarray
    """``[P]`` int32 flat pixel indices (row * width + col) the rows refer to."""
    gaussian_ids: np.ndarray
    """``[U]`` int32 scene ids of the Gaussians that touch those pixels (the columns), ascending."""
    row_ptr: np.ndarray
    """``[P + 1]`` CSR row pointers: int32, int64 when a view holds 2^31 entries or more."""
    cols: np.ndarray
    """``[E]`` int32 column (index into ``gaussian_ids``) of each entry."""
    weights: np.ndarray
    """``[E]`` float16 blending weights alpha * T (relative rounding <= 2^-11, below what moves a
    cosine loss; absolute error below 3e-8 for the tiniest weights)."""

    ARRAYS = ("pixels", "gaussian_ids", "row_ptr", "cols", "weights")

    @property
    def num_entries(self) -> int:
        return int(self.cols.shape[0])

    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.ARRAYS)

    def save(self, path: str) -> None:
        """Write to ``path`` (an uncompressed ``.npz``; ``load`` reads it back into memory)."""
        with open(path, "wb") as f:
            np.savez(f, shape=np.array([self.height, self.width]), **{n: getattr(self, n) for n in self.ARRAYS})

    @classmethod
    def load(cls, path: str) -> ViewContributions:
        with np.load(path) as z:
            H, W = (int(x) for x in z["shape"])
            return cls(H, W, **{n: z[n] for n in cls.ARRAYS})


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
    cosine loss measurably), and with a floor only as many slots as hold every entry above it are
    rendered (``FloorCompleteRenderer``). Views whose H * W * k exceeds ``max_entries`` render in
    horizontal bands (sub-cameras), so the dense [h, W, k] buffers stay bounded."""
    from ovseg_core.fields.backprojection import FloorCompleteRenderer, band_camera

    H, W = camera.height, camera.width
    if pixel_mask is None:
        pixels = np.arange(H * W, dtype=np.int64)
    else:
        if pixel_mask.shape != (H, W):
            raise ValueError(f"pixel mask is {list(pixel_mask.shape)}, the view is {H}x{W}")
        pixels = np.flatnonzero(pixel_mask.reshape(-1)).astype(np.int64)
    rows = max(1, min(H, max_entries // max(W * top_k, 1)))
    floor_renderer = FloorCompleteRenderer(renderer, top_k, min_weight)
    counts_parts, id_parts, w_parts = [], [], []
    for row0 in range(0, H, rows):
        h = min(rows, H - row0)
        lo, hi = np.searchsorted(pixels, [row0 * W, (row0 + h) * W])
        if lo == hi:
            continue
        cam = camera if h == H else band_camera(camera, row0, h)
        out = floor_renderer.render(scene, cam)
        k = out.contrib_ids.shape[-1]
        ids = out.contrib_ids[0].cpu().numpy().reshape(-1, k)[pixels[lo:hi] - row0 * W]
        ws = out.contrib_weights[0].cpu().numpy().astype(np.float32).reshape(-1, k)[pixels[lo:hi] - row0 * W]
        keep = (ids >= 0) & (ws > min_weight)
        counts_parts.append(keep.sum(axis=1))
        id_parts.append(ids[keep].astype(np.int32))
        w_parts.append(ws[keep].astype(np.float16))
    counts = np.concatenate(counts_parts) if counts_parts else np.zeros(0, np.int64)
    num_entries = int(counts.sum())
    row_ptr = np.zeros(len(pixels) + 1, np.int32 if num_entries < 2**31 else np.int64)
    np.cumsum(counts, out=row_ptr[1:])
    flat_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int32)
    weights = np.concatenate(w_parts) if w_parts else np.zeros(0, np.float16)
    # Compact the touched Gaussians without sorting: a presence mask and its running count.
    present = np.zeros(scene.num_gaussians, bool)
    present[flat_ids] = True
    gaussian_ids = np.flatnonzero(present)
    cols = (np.cumsum(present, dtype=np.int32) - 1)[flat_ids]
    return ViewContributions(
        height=H,
        width=W,
        pixels=pixels.astype(np.int32),
        gaussian_ids=gaussian_ids.astype(np.int32),
        row_ptr=row_ptr,
        cols=cols,
        weights=weights,
    )


class _BlendCodes(torch.autograd.Function):
    """The numba CPU path."""

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
            c.row_ptr,
            c.cols,
            c.weights,
            ctx.idx_np,
            np.ascontiguousarray(grad_out.numpy(), dtype=np.float32),
            len(c.gaussian_ids),
        )
        return torch.from_numpy(g), None, None, None


class _BlendCodesTorch(torch.autograd.Function):
    """The plain-torch path, on ``val``'s device; chunked in both directions so neither keeps
    per-entry temporaries for the backward."""

    @staticmethod
    def forward(ctx, val: torch.Tensor, idx: torch.Tensor, contrib: ViewContributions, width: int) -> torch.Tensor:
        dev = val.device
        # One host->device copy of the view (~6 bytes an entry) per step; the cache stays on the host.
        row_ptr = torch.from_numpy(contrib.row_ptr).to(dev, torch.int64)
        cols = torch.from_numpy(contrib.cols).to(dev)
        weights = torch.from_numpy(contrib.weights).to(dev)
        out = blend_torch.blend_codes_torch(row_ptr, cols, weights, idx, val.detach().float(), width)
        ctx.tensors = (row_ptr, cols, weights, idx)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        row_ptr, cols, weights, idx = ctx.tensors
        g = blend_torch.blend_codes_backward_torch(row_ptr, cols, weights, idx, grad_out, idx.shape[0])
        return g, None, None, None


BlendBackend = Literal["auto", "numba", "torch"]


def resolve_blend_backend(backend: BlendBackend, device: torch.device | str) -> Literal["numba", "torch"]:
    """``auto``: torch when ``device`` is not the CPU (CUDA), numba on the CPU where it is faster."""
    if backend == "auto":
        return "numba" if torch.device(device).type == "cpu" else "torch"
    if backend == "numba" and torch.device(device).type != "cpu":
        raise ValueError(f"the numba blend runs on the CPU only; the codes are on {device}")
    return backend


def blend_sparse_codes(
    contrib: ViewContributions, idx: torch.Tensor, val: torch.Tensor, width: int, backend: BlendBackend = "auto"
) -> torch.Tensor:
    """Pixel codes ``[P, width]`` float32 from the sparse codes of the view's Gaussians (``idx``
    [U, J] int entry indices in [0, width), ``val`` [U, J] weights, in ``contrib.gaussian_ids``
    order); differentiable in ``val``. Runs on ``val``'s device (``resolve_blend_backend``)."""
    if idx.shape != val.shape or idx.shape[0] != len(contrib.gaussian_ids):
        raise ValueError(
            f"codes must be [U={len(contrib.gaussian_ids)}, J], got idx {list(idx.shape)}, val {list(val.shape)}"
        )
    if resolve_blend_backend(backend, val.device) == "torch":
        return _BlendCodesTorch.apply(val.float().contiguous(), idx.to(val.device).contiguous(), contrib, width)
    return _BlendCodes.apply(val.float().cpu().contiguous(), idx.cpu().contiguous(), contrib, width)
