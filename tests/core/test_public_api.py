"""The public surface of ovseg_core is pinned (httpx-style)."""

import ovseg_core


def test_exported_members():
    public = sorted(n for n in dir(ovseg_core) if not n.startswith("_") and n[0].isupper() or n in ovseg_core.__all__)
    assert sorted(ovseg_core.__all__) == sorted(set(public) & set(ovseg_core.__all__))
    for name in ovseg_core.__all__:
        assert getattr(ovseg_core, name) is not None
