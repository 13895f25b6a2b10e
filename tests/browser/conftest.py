"""Fixtures for browser tests of the viser viewer (headless Debian Chromium via playwright)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from harness import chromium_available, chromium_context, skip_reason


@pytest.fixture(scope="session")
def demo():
    """(scene, fields, text encoder) of the built-in demo; read once, every test serves its own viewer."""
    from demo_viewer import demo_inputs

    return demo_inputs()


@pytest.fixture
def chromium():
    """A fresh headless Chromium (persistent context, own temp profile); skips without Chromium."""
    if not chromium_available():
        pytest.skip(skip_reason())
    with chromium_context() as ctx:
        yield ctx


@pytest.fixture
def browser_page(chromium):
    """The first page of `chromium`; open more with `chromium.new_page()` (one viser client each)."""
    return chromium.pages[0]


@pytest.fixture
def artifact_dir(request, tmp_path) -> Path:
    """Where a test saves screenshots: $OVSEG_TEST_ARTIFACTS/<test name> when set, else tmp_path."""
    root = os.environ.get("OVSEG_TEST_ARTIFACTS")
    if not root:
        return tmp_path
    path = Path(root) / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    path.mkdir(parents=True, exist_ok=True)
    return path
