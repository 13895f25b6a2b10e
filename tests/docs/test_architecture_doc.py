"""docs/architecture.md must name every package of the tree, so the map stays true as packages come
and go: add a package without a line in the map and this fails."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGE_ROOTS = {"app/ovseg_app": "app", "ovseg_core": ".", "benchmarks": "."}
"""Folder searched for packages -> the folder its dotted names are relative to."""


def packages(root: Path) -> dict[str, str]:
    """Every folder holding an ``__init__.py`` under the package roots: dotted name -> repo-relative path."""
    found = {}
    for folder, import_root in PACKAGE_ROOTS.items():
        for init in sorted((root / folder).rglob("__init__.py")):
            package = init.parent
            dotted = ".".join(package.relative_to(root / import_root).parts)
            found[dotted] = package.relative_to(root).as_posix()
    return found


def mentioned(name: str, text: str) -> bool:
    """``name`` (a dotted name or a path) appears as a whole name: ``ovseg_core.io`` is not found in
    ``ovseg_core.iox``, but is in ``ovseg_core.io.ply`` and ``ovseg_core/io/``."""
    return re.search(rf"(?<![\w./]){re.escape(name)}(?![\w])", text) is not None


def undocumented(root: Path, text: str) -> list[str]:
    """Packages under ``root`` that ``text`` names neither by dotted name nor by path."""
    missing = []
    for dotted, path in packages(root).items():
        forms = {dotted, path, path.removeprefix("app/")}
        if not any(mentioned(form, text) for form in forms):
            missing.append(dotted)
    return missing


def test_the_tree_has_the_packages_the_map_is_about():
    found = packages(ROOT)
    for expected in ("ovseg_app", "ovseg_app.viewer", "ovseg_core", "ovseg_core.render", "benchmarks"):
        assert expected in found, sorted(found)
    assert len(found) >= 10, sorted(found)


def test_every_package_is_in_the_architecture_map():
    missing = undocumented(ROOT, ARCHITECTURE.read_text(encoding="utf-8"))
    assert not missing, f"docs/architecture.md does not mention these packages: {missing}"


def test_an_undocumented_package_is_reported(tmp_path):
    for folder in ("app/ovseg_app/viewer", "ovseg_core/render/cpu", "ovseg_core/iox", "benchmarks"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "ovseg_core" / "__init__.py").write_text("")
    (tmp_path / "app" / "ovseg_app" / "__init__.py").write_text("")
    (tmp_path / "ovseg_core" / "render" / "__init__.py").write_text("")
    text = "`ovseg_app/` the app, `ovseg_app.viewer`, `ovseg_core/`, ovseg_core.render, ovseg_core.io.ply, benchmarks/"
    assert undocumented(tmp_path, text) == ["ovseg_core.iox", "ovseg_core.render.cpu"]
    assert undocumented(tmp_path, text + " ovseg_core/render/cpu/ and `ovseg_core.iox`.") == []
