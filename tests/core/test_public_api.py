"""The public surface of ovseg_core is pinned (httpx-style): adding or removing a name is a decision
made here, and every pinned name resolves to the object of that name."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ovseg_core

EXPORTS = [
    "BackendUnavailableError",
    "Camera",
    "GaussianScene",
    "ModelLoadError",
    "OvsegError",
    "RenderOutput",
    "RenderSettings",
    "SceneFormatError",
    "load_scene",
    "make_renderer",
    "make_scene",
    "open_fields",
    "orbit_cameras",
    "save_scene",
    "segment",
]


def test_exported_members():
    assert sorted(ovseg_core.__all__) == EXPORTS
    for name in EXPORTS:
        obj = getattr(ovseg_core, name)
        assert obj.__name__ == name, name  # the name is the object's own, not an alias of something else
        assert name in dir(ovseg_core)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ovseg_core.nope  # noqa: B018


@pytest.mark.parametrize(
    "package",
    ["ovseg_core.fields", "ovseg_core.models", "ovseg_core.pipeline", "ovseg_core.render", "ovseg_core.selection"],
)
def test_subpackage_exports_resolve(package):
    module = __import__(package, fromlist=["__all__"])
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_domain_errors_share_one_base_and_keep_their_builtins():
    from ovseg_core.errors import (
        BackendUnavailableError,
        Cancelled,
        FieldMismatchError,
        ModelLoadError,
        OvsegError,
        SceneFormatError,
    )
    from ovseg_core.preprocess.cache import CacheFileError

    for error in (
        BackendUnavailableError,
        Cancelled,
        FieldMismatchError,
        ModelLoadError,
        SceneFormatError,
        CacheFileError,
    ):
        assert issubclass(error, OvsegError), error
    assert issubclass(SceneFormatError, ValueError) and issubclass(ModelLoadError, RuntimeError)


def test_importing_the_packages_loads_no_heavy_dependency():
    """The CLIs parse (and print --help) before torch, numba, open_clip or viser load: importing the
    packages and the settings they parse must not pull them in."""
    code = (
        "import sys, ovseg_core, ovseg_core.fields, ovseg_core.models, ovseg_core.render, ovseg_core.errors, "
        "ovseg_core.fields.config, ovseg_core.models.config, ovseg_core.models.registry, ovseg_core.pipeline, "
        "ovseg_core.pipeline.progress\n"
        "print(sorted(m for m in ('torch', 'numba', 'open_clip', 'sam2', 'viser') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
