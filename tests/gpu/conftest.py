"""GPU tests are de-collected without CUDA and fvdb-reality-capture (as gsplat does)."""

from ovseg_core.render import fvdb_available

collect_ignore_glob = [] if fvdb_available() else ["test_*.py"]
