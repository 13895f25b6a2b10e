"""GPU tests. The fVDB ones are de-collected without CUDA and fvdb-reality-capture (as gsplat
does); the others skip themselves without CUDA."""

from ovseg_core.render import fvdb_available

collect_ignore_glob = [] if fvdb_available() else ["test_fvdb_*.py"]
