"""What a benchmark ran on, recorded beside its figures."""

from __future__ import annotations

import os
import platform


def machine_info() -> dict:
    """CPU count, platform, Python, torch (and its thread count) and the CUDA device, if any."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
