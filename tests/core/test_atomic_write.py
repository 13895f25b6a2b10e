"""Atomic writes: temporary files of killed writers are removed on the next write, young ones kept."""

from __future__ import annotations

import os
import time

import pytest

from ovseg_core.io.atomic import STALE_TEMP_AGE_S, atomic_write_bytes


def test_stale_temporary_files_are_removed_young_ones_kept(tmp_path):
    target = tmp_path / "scene.ply"
    stale = tmp_path / ".scene.ply.k1ll3d.tmp"  # what a SIGKILLed export leaves
    young = tmp_path / ".scene.ply.wr1t1ng.tmp"  # maybe another writer, still running
    other = tmp_path / ".other.ply.old.tmp"
    for p in (stale, young, other):
        p.write_bytes(b"partial")
    old = time.time() - STALE_TEMP_AGE_S - 10
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write_bytes(target, b"data")
    assert target.read_bytes() == b"data"
    assert not stale.exists() and young.exists() and other.exists()


def test_directory_target_is_a_clear_error(tmp_path):
    (tmp_path / "out.ply").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        atomic_write_bytes(tmp_path / "out.ply", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["out.ply"]


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_atomic_video_leaves_nothing_when_the_frames_stop_early(tmp_path, suffix):
    import gc

    import imageio.v2 as imageio
    import numpy as np

    from ovseg_core.io.video import atomic_video

    frame = np.full((48, 64, 3), 200, np.uint8)
    with pytest.raises(RuntimeError, match="stopped"), atomic_video(tmp_path / f"v{suffix}", fps=10) as append:
        for _ in range(3):
            append(frame)
        raise RuntimeError("stopped")
    gc.collect()  # a writer left to the collector would let ffmpeg write its file only now
    assert list(tmp_path.iterdir()) == []

    with atomic_video(tmp_path / f"v{suffix}", fps=10) as append:
        for i in range(3):
            append(frame // (i + 1))  # distinct frames: GIF merges repeated ones
    assert [p.name for p in tmp_path.iterdir()] == [f"v{suffix}"]
    assert len(imageio.mimread(tmp_path / f"v{suffix}")) == 3
