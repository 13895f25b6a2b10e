"""Video and checkpoint writes that fail (a full disk, a truncated file) raise and leave an earlier
file untouched, with no temporary file or empty folder behind."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ovseg_core.io.video import FfmpegMp4Writer, VideoWriteError, atomic_video, count_frames, open_video_writer


def _noise(i: int, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """Incompressible frames: a few of them overflow a 16 KB file system."""
    return np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)


def _write(path: Path, frames: int, size: tuple[int, int] = (96, 128), **kwargs) -> None:
    with atomic_video(path, fps=10, **kwargs) as append:
        for i in range(frames):
            append(_noise(i, size))


@pytest.fixture
def full_disk(tmp_path):
    """A real 16 KB tmpfs (needs root and mount; skipped where it cannot be made)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_raises_enospc_and_keeps_the_old_video(full_disk):
    target = full_disk / "o.mp4"
    _write(target, 2, size=(16, 16))  # small enough to fit
    old = target.read_bytes()
    with pytest.raises(OSError) as caught:
        _write(target, 30)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert [p.name for p in full_disk.iterdir()] == ["o.mp4"]  # no temporary file
    assert target.read_bytes() == old


def test_render_cli_on_a_full_disk_exits_non_zero_with_one_line(full_disk, capsys):
    from ovseg_app.render_cli import main

    target = full_disk / "o.mp4"
    assert main(["--orbit-frames", "2", "--width", "16", "--height", "16", "--output", str(target)]) == 0
    old = target.read_bytes()
    assert main(["--orbit-frames", "30", "--overwrite", "--output", str(target)]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in err and str(target) in err and "Traceback" not in err
    assert [p.name for p in full_disk.iterdir()] == ["o.mp4"]
    assert target.read_bytes() == old


class FailingFile:
    """A writer whose file runs out of space after ``ok`` frames, as a full disk would."""

    def __init__(self, tmp: Path, fps: float, target: Path, ok: int = 2) -> None:
        self.tmp, self.target, self.ok = tmp, target, ok
        self.aborted = False

    def append(self, frame: np.ndarray) -> None:
        if self.ok == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.target))
        self.ok -= 1
        with open(self.tmp, "ab") as f:
            f.write(frame.tobytes())

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_an_injected_enospc_keeps_the_old_file_byte_identical(tmp_path, suffix):
    target = tmp_path / f"v{suffix}"
    _write(target, 3)
    old = target.read_bytes()
    writers: list[FailingFile] = []

    def opener(tmp: Path, fps: float, path: Path) -> FailingFile:
        writers.append(FailingFile(tmp, fps, path))
        return writers[-1]

    with pytest.raises(OSError, match="No space left"):
        _write(target, 5, open_writer=opener)
    assert writers[0].aborted
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_bytes() == old


def test_a_truncated_video_is_refused_before_the_rename(tmp_path):
    """ffmpeg reported success but the file lost its end: the frame count check catches it."""
    target = tmp_path / "v.mp4"
    _write(target, 3)
    old = target.read_bytes()

    class Truncating(FfmpegMp4Writer):
        def close(self) -> None:
            super().close()
            size = self.tmp.stat().st_size
            with open(self.tmp, "r+b") as f:
                f.truncate(size // 2)

    with pytest.raises(VideoWriteError, match="could not write video"):
        _write(target, 10, open_writer=Truncating)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    assert target.read_bytes() == old


def test_a_complete_video_holds_every_frame(tmp_path):
    target = tmp_path / "v.mp4"
    _write(target, 7, open_writer=open_video_writer)
    assert count_frames(target) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_a_failed_checkpoint_leaves_no_empty_step_folder(tmp_path):
    from ovseg_core.fields.run_directory import RunDirectory

    class FullDiskFields:
        """Creates the folder as ``LanguageFields.save`` does, then finds the disk full."""

        def save(self, path: Path) -> Path:
            path.parent.mkdir(parents=True, exist_ok=True)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    run = RunDirectory(tmp_path, "run")
    with pytest.raises(OSError, match="No space left"):
        run.save_checkpoint(20, FullDiskFields())
    assert not (run.path / "checkpoints" / "20").exists()
    assert run.last_checkpoint is None
