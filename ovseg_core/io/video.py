"""Atomic video files: frames go to a hidden temporary file beside the target, which is renamed into
place only when every frame was written, the encoder exited cleanly and the file holds every frame.

Frames are streamed to the encoder one at a time (nothing holds the whole video). A failed write (a
full disk, a quota, a killed encoder) raises and leaves an earlier file at the target untouched:
``OSError`` with the target path when ffmpeg names an OS error, else ``VideoWriteError``.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from ovseg_core.errors import OvsegError
from ovseg_core.io.atomic import remove_stale_temps, temp_prefix, umask_mode

MP4_CRF = 25
"""H.264 quality (imageio's default quality 5 maps to this)."""

_OS_ERRORS = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Permission denied": errno.EACCES,
    "Read-only file system": errno.EROFS,
    "File too large": errno.EFBIG,
}
"""ffmpeg's messages for OS errors (it prints strerror), mapped back to their errno."""


class VideoWriteError(OvsegError, RuntimeError):
    """The encoder failed or wrote an incomplete video; the message names the file and the cause."""


class VideoWriter(Protocol):
    """Where frames go: ``append`` each ``[H, W, 3]`` uint8 frame, then ``close`` (raises when the
    file is incomplete), or ``abort`` (stop at once; the file is discarded)."""

    def append(self, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def _os_error_in(text: str, path: Path) -> OSError | None:
    for message, code in _OS_ERRORS.items():
        if message in text:
            return OSError(code, os.strerror(code), str(path))
    return None


class FfmpegMp4Writer:
    """H.264 MP4 through an ffmpeg process fed raw RGB frames on its stdin; ``close`` checks its exit
    status, and its errors are reported against ``target`` (the user's path, not the temporary one)."""

    def __init__(self, tmp: Path, fps: float, target: Path) -> None:
        self.tmp, self.fps, self.target = tmp, fps, target
        self.size: tuple[int, int] | None = None
        self._proc: subprocess.Popen | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._reader: threading.Thread | None = None

    def _start(self, width: int, height: int) -> None:
        from fractions import Fraction

        import imageio_ffmpeg

        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-r", str(Fraction(self.fps).limit_denominator()), "-i", "-", "-an",
            "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(MP4_CRF), "-f", "mp4", str(self.tmp),
        ]  # fmt: skip
        # its own session: a terminal's Ctrl-C reaches us (who stop between frames), not ffmpeg mid-write
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True, name="ffmpeg-stderr")
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in iter(self._proc.stderr.readline, b""):
            text = line.decode(errors="replace").strip()
            if text:
                self._stderr.append(text)

    def _failure(self, what: str) -> Exception:
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        text = "\n".join(self._stderr)
        last = self._stderr[-1] if self._stderr else "no message"
        return _os_error_in(text, self.target) or VideoWriteError(
            f"could not write video {self.target}: {what} ({last})"
        )

    def append(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"video frames are [H, W, 3] uint8, got shape {frame.shape}")
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
            self._start(width, height)
        elif self.size != (width, height):
            raise ValueError(f"video frames must all be {self.size[0]}x{self.size[1]}, got {width}x{height}")
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(frame.data)
        except (BrokenPipeError, OSError):  # ffmpeg died (a full disk ends it mid-stream)
            self._proc.wait()
            raise self._failure(f"ffmpeg stopped with status {self._proc.returncode}") from None

    def close(self) -> None:
        if self._proc is None:
            raise VideoWriteError(f"could not write video {self.target}: no frames")
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()
        status = self._proc.wait()
        if status != 0:
            raise self._failure(f"ffmpeg exited with status {status}")
        if self._stderr and (error := _os_error_in("\n".join(self._stderr), self.target)) is not None:
            raise error  # ffmpeg <= 4 exits 0 after "Error closing file"

    def abort(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()


class GifWriter:
    """Animated GIF through imageio (Pillow writes the whole file on ``close``)."""

    def __init__(self, tmp: Path, fps: float, target: Path) -> None:
        import imageio.v2 as imageio

        self.tmp, self.target = tmp, target
        self._writer = imageio.get_writer(tmp, duration=1 / fps)

    def append(self, frame: np.ndarray) -> None:
        self._writer.append_data(frame)

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError as e:  # name the user's file, not the temporary one
            raise OSError(e.errno, e.strerror or str(e), str(self.target)) from None

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


def open_video_writer(tmp: Path, fps: float, target: Path) -> VideoWriter:
    """The writer for ``target``'s suffix: ``.mp4`` (H.264 through ffmpeg) or ``.gif``."""
    if target.suffix.lower() == ".mp4":
        return FfmpegMp4Writer(tmp, fps, target)
    return GifWriter(tmp, fps, target)


def count_frames(path: Path) -> int:
    """Frames a written video holds (demuxed, not decoded: fast even for long videos)."""
    if path.suffix.lower() == ".gif":
        from PIL import Image

        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    import imageio_ffmpeg

    return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])


def _check_complete(tmp: Path, target: Path, frames: int) -> None:
    try:
        found = count_frames(tmp)
    except Exception as e:  # noqa: BLE001 - any reader failure means the file is broken
        raise VideoWriteError(f"could not write video {target}: the written file does not decode ({e})") from None
    # Pillow merges identical consecutive GIF frames, so a GIF may hold fewer
    if found != frames and not (target.suffix.lower() == ".gif" and 1 <= found < frames):
        raise VideoWriteError(f"could not write video {target}: it holds {found} of {frames} frames")


@contextlib.contextmanager
def atomic_video(
    path: Path, fps: float, *, open_writer: Callable[[Path, float, Path], VideoWriter] = open_video_writer
) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield ``append(frame)`` for ``[H, W, 3]`` uint8 frames; the format follows the suffix
    (``.mp4``: H.264 through ffmpeg; ``.gif``). ``path`` appears (or is replaced) only if the block
    ends normally and the file holds every frame; otherwise the temporary file is removed and an
    earlier ``path`` is left as it was. ``open_writer(tmp, fps, path)``: the writer (a seam for tests).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path, suffix=path.suffix)  # left by a killed earlier run
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    frames = 0

    def append(frame: np.ndarray) -> None:
        nonlocal frames
        writer.append(frame)
        frames += 1

    try:
        writer = open_writer(tmp, fps, path)
        try:
            yield append
        except BaseException:
            writer.abort()  # the encoder has exited before the file is removed (it would re-create it)
            raise
        writer.close()
        _check_complete(tmp, path, frames)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # delayed-allocation file systems report a full disk only here
        finally:
            os.close(fd)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
