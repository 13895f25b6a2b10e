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
