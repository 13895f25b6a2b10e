"""Device choice shared by the model adapters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ovseg_core.errors import UsageError

DEVICES = ("auto", "cuda", "cpu")


def resolve_device(device: str) -> torch.device:
    """Device "auto" -> cuda when available, else cpu; "cuda" without a GPU is an error, not a silent cpu run."""
    if device not in DEVICES:
        raise UsageError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device='cuda' was asked for but torch sees no CUDA device; use 'cpu' or 'auto'")
    return torch.device(device)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block only, so random inits are reproducible without
    changing the caller's random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
