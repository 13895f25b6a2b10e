"""Benchmarks: the LERF-OVS open-vocabulary segmentation / localisation protocol."""

from ovseg_core.eval.evaluator import (
    EvalConfig,
    EvalResult,
    LerfScene,
    PromptResult,
    SceneResult,
    evaluate_lerf,
    evaluate_scene,
    evaluate_scenes,
)
from ovseg_core.eval.lerf_ovs import (
    FrameTruth,
    LabelTruth,
    frame_index,
    load_frame_truth,
    load_ground_truth,
    relevancy_to_mask,
    smooth_mask,
)
from ovseg_core.eval.providers import FieldRelevancyProvider, FieldRelevancySettings, RelevancyProvider

__all__ = [
    "EvalConfig",
    "EvalResult",
    "FieldRelevancyProvider",
    "FieldRelevancySettings",
    "FrameTruth",
    "LabelTruth",
    "LerfScene",
    "PromptResult",
    "RelevancyProvider",
    "SceneResult",
    "evaluate_lerf",
    "evaluate_scene",
    "evaluate_scenes",
    "frame_index",
    "load_frame_truth",
    "load_ground_truth",
    "relevancy_to_mask",
    "smooth_mask",
]
