"""Generated scenes and captures, for tests, benchmarks and the demo.

- ``scenes``: random scenes (tests), realistic ones (render benchmarks), the demo and floating-objects
  scenes (named objects); re-exported here;
- ``capture``: ``write_capture`` renders a scene into a capture on disk (PNGs + ``transforms.json``);
  re-exported here;
- ``faint_capture``: a scene with a real splat's statistics and planted per-region masks and features
  (``ovseg-bench quality``); ``scale_capture``: a LERF-sized one (``ovseg-bench scale``). Both import
  the training code, so they are imported from their modules.
"""

from ovseg_core.synthetic.capture import write_capture
from ovseg_core.synthetic.scenes import (
    DEMO_OBJECTS,
    FLOATING_OBJECTS,
    DemoObject,
    demo_scene,
    floating_objects_scene,
    random_scene,
    realistic_scene,
    scene_from_points,
)

__all__ = [
    "DEMO_OBJECTS",
    "FLOATING_OBJECTS",
    "DemoObject",
    "demo_scene",
    "floating_objects_scene",
    "random_scene",
    "realistic_scene",
    "scene_from_points",
    "write_capture",
]
