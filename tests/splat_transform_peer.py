"""PlayCanvas ``splat-transform`` (npm ``@playcanvas/splat-transform``), the peer that ovseg's splat formats are
checked against: installed once per machine into a cache folder, pinned, and run through node.

Tests use the ``splat_transform`` fixture (tests/conftest.py): it skips when ``node``/``npm`` are absent
and fails when npm is present but the pinned install fails (npm is reachable from CI, so that is a real problem).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

VERSION = "3.7.0"
"""The splat-transform release the interop tests pin (its decoders are the reference for .spz/.sog/compressed PLY)."""

PACKAGE = f"@playcanvas/splat-transform@{VERSION}"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ovseg-tests" / f"splat-transform-{VERSION}"


def node_tools_present() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


class SplatTransform:
    """The installed CLI: ``run(input, output, *actions)`` converts a file as splat-transform does."""

    def __init__(self, root: Path) -> None:
        self.executable = root / "node_modules" / ".bin" / "splat-transform"

    def run(self, *args: str | Path, timeout: float = 300) -> str:
        """``splat-transform -q ARGS...``; raises with its output when it exits non-zero."""
        cmd = [str(self.executable), "-q", *(str(a) for a in args)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"splat-transform {' '.join(cmd[2:])} failed ({done.returncode}):\n{done.stderr}{done.stdout}"
            )
        return done.stdout

    def convert(self, source: Path, target: Path, *actions: str) -> Path:
        """Convert ``source`` to ``target`` (format from the target's name), overwriting it."""
        self.run("-w", source, target, *actions)
        return target


def install(root: Path | None = None) -> SplatTransform:
    """Install the pinned package into ``root`` (default: the per-user cache) unless it is already there."""
    root = root or cache_dir()
    tool = SplatTransform(root)
    if tool.executable.exists():
        return tool
    root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error", PACKAGE],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 or not tool.executable.exists():
        raise RuntimeError(f"npm install {PACKAGE} failed ({done.returncode}):\n{done.stderr}")
    return tool
