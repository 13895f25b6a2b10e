"""Fixtures for the interop tests against PlayCanvas splat-transform (see tests/splat_transform_peer.py)."""

from __future__ import annotations

import pytest
from splat_transform_peer import SplatTransform, install, node_tools_present


@pytest.fixture(scope="session")
def splat_transform() -> SplatTransform:
    if not node_tools_present():
        pytest.skip("node/npm absent: the splat-transform interop tests need them")
    return install()
