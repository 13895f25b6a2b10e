"""Readers and writers: splat files (PLY flavours, .spz, .splat, training checkpoints; see
``scene_file.SCENE_FORMATS``) and camera sets."""

from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.scene_file import load_scene, save_scene

__all__ = ["atomic_write_bytes", "load_scene", "save_scene"]
