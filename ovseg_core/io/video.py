"""Atomic video files: frames go to a hidden temporary file beside the target, which is renamed into
place only when every frame was written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ovseg_core.io.atomic import remove_stale_temps, temp_prefix, umask_mode


@contextlib.contextmanager
def atomic_video(path: Path, fps: float) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield ``append(frame)`` for ``[H, W, 3]`` uint8 frames; the format follows the suffix
    (``.mp4``: H.264 through ffmpeg; ``.gif``). ``path`` appears only if the block ends normally.

    imageio closes its writer only when its ``with`` block ends without an error, and ffmpeg opens
    its output lazily: a writer left for the garbage collector would make ffmpeg re-create the
    temporary file after we removed it. So the writer is closed (ffmpeg has exited) before removal.
    """
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path, suffix=path.suffix)  # left by a killed earlier run
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    is_mp4 = path.suffix.lower() == ".mp4"
    kwargs = {"fps": fps, "macro_block_size": 1} if is_mp4 else {"duration": 1 / fps}
    try:
        writer = imageio.get_writer(tmp, **kwargs)
        try:
            yield writer.append_data
        finally:
            writer.close()
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
