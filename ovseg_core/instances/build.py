"""Dataset views + preprocessed masks/features -> ``InstanceSet`` (OpenMask3D-style lifting)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ovseg_core.data import ViewDataset
from ovseg_core.errors import UsageError
from ovseg_core.fields.view_contributions import compute_contributions
from ovseg_core.instances.config import InstanceConfig
from ovseg_core.instances.instance_set import InstanceSet
from ovseg_core.instances.lifting_masks import lift_all_views
from ovseg_core.instances.merge import MergeResult, merge_view_masks
from ovseg_core.instances.refine import spread_labels, with_labels
from ovseg_core.models.protocols import SCALES, ImageEncoder
from ovseg_core.preprocess import ViewFeatures
from ovseg_core.render import Renderer, make_renderer
from ovseg_core.scene import GaussianScene


@dataclasses.dataclass
class LiftedMasks:
    """Every view mask of one scale as a Gaussian set."""

    members: sp.csr_matrix
    """``[M, N]`` binary: Gaussians of each mask (all views stacked)."""
    view_of: np.ndarray
    """``[M]`` int64 position (in the processed views) of each mask's view."""
    features: np.ndarray
    """``[M, D]`` float32 the masks' CLIP features."""
    visible: sp.csr_matrix
    """``[V, N]`` binary: Gaussians visible in each view."""


def lift_views(
    scene: GaussianScene,
    dataset: ViewDataset,
    features_seq: Sequence[ViewFeatures],
    renderer: Renderer,
    config: InstanceConfig,
    view_indices: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> LiftedMasks:
    """Render each view's contributions once and lift its masks (``lifting_masks`` rules)."""
    level = SCALES.index(config.scale)
    N = scene.num_gaussians
    feats: list[np.ndarray] = []

    def contribs():  # noqa: ANN202 - one view's contributions and masks at a time
        for pos, i in enumerate(view_indices):
            vf = _with_masks(features_seq, pos)
            cam = dataset[i].camera
            if (vf.height, vf.width) != (cam.height, cam.width):
                raise UsageError(
                    f"view {dataset[i].name}: features are {vf.height}x{vf.width} but the camera is "
                    f"{cam.height}x{cam.width}; preprocess with the same image_downsample_factor"
                )
            feats.append(vf.level_features(level))
            yield _contributions(renderer, scene, cam, config), vf.masks[config.scale].segmentations
            if progress is not None:
                progress(pos + 1, len(view_indices))

    members, visible_rows, _ = lift_all_views(contribs(), N, config, scene.device)
    dim = feats[0].shape[1] if feats else 0
    return _stack(members, visible_rows, feats, dim, N)


def _contributions(renderer: Renderer, scene: GaussianScene, camera, config: InstanceConfig):  # noqa: ANN001, ANN202
    return compute_contributions(renderer, scene, camera, None, top_k=config.top_k, min_weight=config.min_contribution)


def _stack(members, visible_rows, feats, dim: int, N: int) -> LiftedMasks:  # noqa: ANN001
    view_of = [np.full(m.shape[0], pos, np.int64) for pos, m in enumerate(members)]
    vis_ptr = np.concatenate([[0], np.cumsum([len(v) for v in visible_rows])]).astype(np.int64)
    vis_ids = np.concatenate(visible_rows) if visible_rows else np.zeros(0, np.int64)
    return LiftedMasks(
        members=sp.vstack(members, format="csr") if members else sp.csr_matrix((0, N), dtype=np.float32),
        view_of=np.concatenate(view_of) if view_of else np.zeros(0, np.int64),
        features=np.concatenate(feats).astype(np.float32) if feats else np.zeros((0, dim), np.float32),
        visible=sp.csr_matrix((np.ones(len(vis_ids), np.float32), vis_ids, vis_ptr), shape=(len(visible_rows), N)),
    )


def merge_and_fill(scene: GaussianScene, lifted: LiftedMasks, config: InstanceConfig) -> MergeResult:
    """Merge the lifted masks, then refine the labels over the scene's neighbourhood graph
    (``refine``; off when ``neighbour_weight`` is 0); with ``fill_hidden``, Gaussians no view shows
    join their neighbours' instance, else they stay without one."""
    merged = merge_view_masks(lifted.members, lifted.view_of, lifted.visible, config)
    if not len(merged.sizes) or (not config.fill_hidden and config.neighbour_weight == 0):
        return merged
    from ovseg_core.selection import build_graph, propagate_labels

    graph = build_graph(scene)
    seen = np.asarray(lifted.visible.sum(axis=0)).reshape(-1)
    hidden = seen == 0
    labels = merged.labels
    if config.neighbour_weight > 0:
        K = len(merged.groups)
        rows = np.concatenate(merged.groups)
        of = np.repeat(np.arange(K), [len(g) for g in merged.groups])
        assign = sp.csr_matrix((np.ones(len(rows), np.float32), (of, rows)), shape=(K, lifted.members.shape[0]))
        votes = (assign @ lifted.members).T.tocsr()  # [N, K] masks of each instance holding each Gaussian
        labels = spread_labels(graph, votes, seen, config.neighbour_weight)
        if not config.fill_hidden:
            labels = np.where(hidden, -1, labels)
    if config.fill_hidden and hidden.any():
        labels = propagate_labels(graph, labels, hidden & (labels < 0))
    return with_labels(merged, labels, config.min_gaussians)


def build_instances(
    scene: GaussianScene,
    dataset: ViewDataset,
    features_seq: Sequence[ViewFeatures],
    renderer: Renderer | None = None,
    config: InstanceConfig = InstanceConfig(),
    *,
    view_indices: Sequence[int] | None = None,
    image_encoder: ImageEncoder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> InstanceSet:
    """Lift every view's masks to Gaussian sets, merge them into instances, average their features.

    Args:
        scene: The splat; ``dataset``'s cameras must be aligned with it.
        features_seq: Preprocessed views (e.g. ``preprocess_views``' result); position ``p`` is
            dataset view ``view_indices[p]``. Masks are read with ``load(p, with_masks=True)``
            when available, else from ``.masks``.
        renderer: Renders the contributions (default: CPU).
        view_indices: Default: ``features_seq.view_indices`` if present, else ``0..len-1``.
        image_encoder: Only recorded (its name, and the vocabulary of ``vocabulary:`` encoders)
            so text prompts can later use the matching text tower.
        progress: ``progress(done, total)`` per lifted view.
    """
    if view_indices is None:
        view_indices = getattr(features_seq, "view_indices", None) or range(len(features_seq))
    view_indices = [int(i) for i in view_indices]
    if len(view_indices) != len(features_seq):
        raise ValueError(f"{len(view_indices)} view indices for {len(features_seq)} preprocessed views")
    renderer = renderer or make_renderer("cpu")
    lifted = lift_views(scene, dataset, features_seq, renderer, config, view_indices, progress)
    merged = merge_and_fill(scene, lifted, config)
    dim = lifted.features.shape[1] if lifted.features.ndim == 2 else 0
    feats = np.zeros((len(merged.groups), dim), np.float32)
    for k, rows in enumerate(merged.groups):
        mean = lifted.features[rows].mean(axis=0)
        feats[k] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    record: dict[str, Any] = {
        "instances": dataclasses.asdict(config),
        "num_views": len(view_indices),
        "num_masks": int(lifted.members.shape[0]),
    }
    vocabulary = getattr(image_encoder, "vocabulary", None)
    if vocabulary is not None and hasattr(vocabulary, "to_dict"):
        record["vocabulary"] = vocabulary.to_dict()
    return InstanceSet(
        labels=merged.labels,
        features=feats,
        sizes=merged.sizes,
        support=merged.support,
        scene_fingerprint=scene.fingerprint(),
        encoder_name=getattr(image_encoder, "name", ""),
        config=record,
    )


def _with_masks(features_seq: Sequence[ViewFeatures], pos: int) -> ViewFeatures:
    load = getattr(features_seq, "load", None)
    vf = load(pos, with_masks=True) if callable(load) else features_seq[pos]
    if vf.masks is None:
        raise ValueError(f"preprocessed view {pos} carries no masks; pass features loaded with their masks")
    return vf


def instances_from_views(
    scene: GaussianScene,
    views: Sequence[Any],
    renderer: Renderer | None = None,
    config: InstanceConfig = InstanceConfig(),
    *,
    level: int = 0,
) -> tuple[LiftedMasks, Any]:
    """Instances from ``TrainingView``-like views (``camera``, ``features`` [M, D], ``seg_maps``
    [4, H, W]): each distinct id of ``seg_maps[level]`` is one mask. For planted or already
    segmented captures (benchmarks, tests). -> (the lifted masks, ``MergeResult``)."""
    renderer = renderer or make_renderer("cpu")
    N = scene.num_gaussians
    masks, feats = [], []
    for v in views:
        seg = np.asarray(v.seg_maps[level])
        ids = np.unique(seg[seg >= 0])
        masks.append(seg[None] == ids[:, None, None])
        feats.append(np.asarray(v.features, np.float32)[ids])
    pairs = ((_contributions(renderer, scene, v.camera, config), m) for v, m in zip(views, masks))
    members, visible_rows, _ = lift_all_views(pairs, N, config, scene.device)
    lifted = _stack(members, visible_rows, feats, feats[0].shape[1] if feats else 0, N)
    return lifted, merge_and_fill(scene, lifted, config)
