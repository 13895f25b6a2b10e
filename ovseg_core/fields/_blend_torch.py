"""Plain-torch twin of ``_blend_kernels``: the same sparse blend and its backward, on whatever
device the tensors live on (CUDA when the scene is there).

Entries are processed in fixed-size chunks, so the ``[e, J]`` index and value temporaries stay
bounded whatever the view's size. Each chunk scatters with ``index_add_`` on flattened
``row * width + entry`` (forward) or Gaussian (backward) indices: atomic on CUDA, so no
transposed layout is needed to avoid races.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK_ENTRIES = 1 << 20
"""Contributions per chunk: ~100 MB of temporaries at J = 4 (int64 indices + float32 values)."""


def _chunks(row_ptr: torch.Tensor, chunk: int):  # noqa: ANN202
    """Yield ``(e0, e1, rows [e] int64)``: each chunk's entry range and the pixel row of each entry."""
    num_entries = int(row_ptr[-1])
    for e0 in range(0, num_entries, chunk):
        e1 = min(e0 + chunk, num_entries)
        entries = torch.arange(e0, e1, device=row_ptr.device, dtype=torch.int64)
        yield e0, e1, torch.searchsorted(row_ptr, entries, right=True) - 1


def blend_codes_torch(
    row_ptr: torch.Tensor,
    cols: torch.Tensor,
    weights: torch.Tensor,
    idx: torch.Tensor,
    val: torch.Tensor,
    width: int,
    chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
) -> torch.Tensor:
    """Pixel codes ``[P, width]`` float32 = W @ dense(idx, val).

    ``row_ptr`` [P + 1] int64, ``cols`` [E] int, ``weights`` [E] (any float dtype), ``idx`` [U, J]
    int, ``val`` [U, J] float32, all on one device. Not differentiable (see ``_BlendCodesTorch``)."""
    P = row_ptr.shape[0] - 1
    out = torch.zeros(P * width, dtype=torch.float32, device=val.device)
    idx = idx.long()
    for e0, e1, rows in _chunks(row_ptr, chunk_entries):
        u = cols[e0:e1].long()
        flat = rows[:, None] * width + idx[u]  # [e, J]
        contrib = weights[e0:e1].float()[:, None] * val[u]  # [e, J]
        out.index_add_(0, flat.reshape(-1), contrib.reshape(-1))
    return out.view(P, width)


def blend_codes_backward_torch(
    row_ptr: torch.Tensor,
    cols: torch.Tensor,
    weights: torch.Tensor,
    idx: torch.Tensor,
    grad_out: torch.Tensor,
    num_cols: int,
    chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
) -> torch.Tensor:
    """Gradient of the code weights ``[U, J]`` float32 given the pixel-code gradient ``[P, width]``."""
    width = grad_out.shape[1]
    grad_flat = grad_out.reshape(-1).float()
    idx = idx.long()
    grad_val = torch.zeros(num_cols, idx.shape[1], dtype=torch.float32, device=grad_out.device)
    for e0, e1, rows in _chunks(row_ptr, chunk_entries):
        u = cols[e0:e1].long()
        flat = rows[:, None] * width + idx[u]  # [e, J]
        grad_val.index_add_(0, u, weights[e0:e1].float()[:, None] * grad_flat[flat])
    return grad_val
