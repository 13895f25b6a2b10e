"""Class-agnostic 3D instances from 2D masks (OpenMask3D-style): lift each view mask to the
Gaussians it shows, merge the sets across views, give each instance a CLIP feature.

From a capture on disk (preprocessing included): ``ovseg_core.pipeline.build_instances_from_dataset``."""

from ovseg_core.instances.build import LiftedMasks, build_instances, lift_views
from ovseg_core.instances.config import InstanceConfig
from ovseg_core.instances.export import export_instances, instance_file_names, safe_name
from ovseg_core.instances.instance_set import InstanceSet, load_instances
from ovseg_core.instances.lifting_masks import lift_view_masks
from ovseg_core.instances.merge import MergeResult, merge_view_masks

__all__ = [
    "InstanceConfig",
    "InstanceSet",
    "LiftedMasks",
    "MergeResult",
    "build_instances",
    "export_instances",
    "instance_file_names",
    "lift_view_masks",
    "lift_views",
    "load_instances",
    "merge_view_masks",
    "safe_name",
]
