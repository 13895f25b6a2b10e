"""Fixtures for the interop tests: ``splat_transform`` lives in tests/conftest.py (browser tests use it too);
``ksplat_writer`` is mkkellogg's GaussianSplats3D (see tests/ksplat_peer.py)."""

from __future__ import annotations

import pytest
from ksplat_peer import KsplatWriter, install
from splat_transform_peer import node_tools_present


@pytest.fixture(scope="session")
def ksplat_writer() -> KsplatWriter:
    if not node_tools_present():
        pytest.skip("node/npm absent: the .ksplat interop tests need them")
    return install()
