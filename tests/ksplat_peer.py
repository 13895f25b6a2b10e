"""mkkellogg GaussianSplats3D (npm ``@mkkellogg/gaussian-splats-3d``), the peer that writes the ``.ksplat`` files
ovseg's reader is checked on: installed once per machine into a cache folder, pinned, and run through node.

The package does not ship the repository's ``util/create-ksplat.js``, so ``ksplat_peer.mjs`` (beside this file)
drives the same library calls that script makes: ``PlyParser.parseToUncompressedSplatArray`` then
``SplatBufferGenerator.getStandardGenerator(...).generateFromUncompressedSplatArray``. Tests use the
``ksplat_writer`` fixture (tests/interop/conftest.py), which skips without node/npm.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

VERSION = "0.4.7"
THREE_VERSION = "0.170.0"
"""three.js is the library's peer dependency (>= 0.160); pinned so the half-float conversion it uses is fixed."""
PACKAGES = (f"@mkkellogg/gaussian-splats-3d@{VERSION}", f"three@{THREE_VERSION}")
DRIVER = Path(__file__).with_name("ksplat_peer.mjs")


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ovseg-tests" / f"gaussian-splats-3d-{VERSION}-three-{THREE_VERSION}"


class KsplatWriter:
    """``write(ply, ksplat, level)`` converts an INRIA PLY to ``.ksplat`` as the library's converter does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.library = root / "node_modules" / "@mkkellogg" / "gaussian-splats-3d" / "build"

    def write(
        self,
        ply: Path,
        target: Path,
        level: int,
        *,
        sh_degree: int = 2,
        section_size: int = 0,
        block_size: float = 5.0,
        bucket_size: int = 256,
    ) -> Path:
        """Write ``target`` at compression ``level`` (0, 1, 2), keeping SH up to ``sh_degree`` (the library
        stores at most 2); ``section_size`` > 0 splits the splats into sections of that many."""
        args = [self.root, ply, target, level, sh_degree, section_size, block_size, bucket_size]
        cmd = ["node", str(DRIVER), *(str(a) for a in args)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
        return target


def install(root: Path | None = None) -> KsplatWriter:
    """Install the pinned packages into ``root`` (default: the per-user cache) unless they are already there."""
    root = root or cache_dir()
    writer = KsplatWriter(root)
    if writer.library.is_dir() and (root / "node_modules" / "three").is_dir():
        return writer
    root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 or not writer.library.is_dir():
        raise RuntimeError(f"npm install {' '.join(PACKAGES)} failed ({done.returncode}):\n{done.stderr}")
    return writer
