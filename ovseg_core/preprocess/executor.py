"""Run the preprocessing of a capture on this process (``local``) or on a Ray cluster (``ray``).

Both executors write the same cache (``feature_cache_for`` derives the folder, ``ensure_view_cached``
computes and atomically stores one image's entry) and skip images whose entry is already there, so
an interrupted run of either kind resumes where it stopped. With Ray, a Ray Data dataset of view
indices goes through ``map_batches`` with a stateful callable class: each actor loads SAM 2 and CLIP
once, then handles one image per call and writes its entry into the cache folder, which must be
on a filesystem every node sees (the capture's images too).

Ray is optional (``pip install 'ovseg[ray]'``); it is imported only when the ``ray`` executor runs.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ovseg_core.data.view_dataset import ViewDataset
from ovseg_core.errors import MissingDependencyError, UsageError
from ovseg_core.fields.config import RayConfig
from ovseg_core.models.protocols import ImageEncoder, MaskGenerator
from ovseg_core.preprocess.cache import CachedViewFeatures
from ovseg_core.preprocess.pipeline import (
    CACHE_SUBDIR,
    DEFAULT_BATCH_SIZE,
    CancelEvent,
    ensure_view_cached,
    feature_cache_for,
    preprocess_views,
)

ModelFactory = Callable[[], tuple[MaskGenerator, ImageEncoder]]
"""Builds (mask generator, image encoder); called once per worker, so it must pickle for Ray
(e.g. ``functools.partial(build_models, preprocess_config)``)."""

RAY_INSTALL_HINT = "pip install 'ovseg[ray]'  (or: pip install 'ray[data]>=2.60')"


class RayUnavailableError(MissingDependencyError):
    """``--executor ray`` was asked for but Ray Data cannot be imported; the message says how to install it."""


@dataclasses.dataclass(frozen=True)
class PreprocessRun:
    """What a preprocessing run did."""

    features: CachedViewFeatures
    """The cache entries, in the order of the requested view indices."""
    computed_indices: tuple[int, ...]
    """Views computed by this run (the others were already cached)."""
    seconds: float
    """Wall time of the whole run, start-up included."""
    startup_seconds: float
    """Before the first image could start: model loading, plus Ray start-up or connection and
    actor creation for ``ray`` (the slowest actor's model loading)."""
    workers: int
    """Processes that held the models (1 for ``local``)."""

    @property
    def cached_indices(self) -> tuple[int, ...]:
        done = set(self.computed_indices)
        return tuple(i for i in self.features.view_indices if i not in done)


def import_ray() -> Any:
    """The ``ray`` module with Ray Data loaded, or ``RayUnavailableError`` naming the install command."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data ships in the ``data`` extra of ray)
    except ImportError as e:
        raise RayUnavailableError(
            f"the ray executor needs Ray Data, which is not installed ({e}); {RAY_INSTALL_HINT}"
        ) from e
    return ray


def run_preprocessing(
    dataset: ViewDataset,
    model_factory: ModelFactory,
    *,
    executor: Literal["local", "ray"] = "local",
    cache_dir: str | os.PathLike[str] | None = None,
    indices: Sequence[int] | None = None,
    ray_config: RayConfig = RayConfig(),
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelEvent | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fuse_global: bool = False,
    fusion_temperature: float = 1.0,
) -> PreprocessRun:
    """Fill the preprocessing cache for ``dataset`` (views ``indices``, default all).

    Args:
        dataset: The capture; with Ray its image paths and ``cache_dir`` must be readable (and the
            cache writable) at the same paths on every node.
        model_factory: Builds the models; ``local`` calls it once, ``ray`` once per actor.
        executor: ``local`` (this process) or ``ray``.
        cache_dir: Cache root (default ``<dataset root>/.ovseg_cache/preprocess``).
        ray_config: Cluster address and actor resources for ``ray``.
        progress: ``progress(done, total)``, at the start and after each image.
        cancel: ``local`` only: checked between images (raises ``Cancelled``).
        batch_size, fuse_global, fusion_temperature: As for ``preprocess_views``.
    """
    if executor not in ("local", "ray"):
        raise UsageError(f"unknown executor {executor!r}; choose local or ray")
    indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    for i in indices:
        if not 0 <= i < len(dataset):
            raise IndexError(f"view index {i} is out of range for a dataset of {len(dataset)} views")
    if executor == "ray":
        return _run_ray(
            dataset,
            model_factory,
            cache_dir,
            indices,
            ray_config,
            progress,
            batch_size=batch_size,
            fuse_global=fuse_global,
            fusion_temperature=fusion_temperature,
        )
    start = time.perf_counter()
    mask_generator, image_encoder = model_factory()
    startup = time.perf_counter() - start
    computed: list[int] = []
    features = preprocess_views(
        dataset,
        mask_generator,
        image_encoder,
        cache_dir,
        indices=indices,
        progress=progress,
        cancel=cancel,
        batch_size=batch_size,
        fuse_global=fuse_global,
        fusion_temperature=fusion_temperature,
        on_view=lambda i, done_now: computed.append(i) if done_now else None,
    )
    return PreprocessRun(features, tuple(computed), time.perf_counter() - start, startup, workers=1)


class CacheWriterActor:
    """Ray Data callable class: loads the models once, then caches one batch of views per call.

    Input batches hold ``index`` (view indices); output rows hold ``index``, ``path`` (the cache
    entry), ``computed`` (False: it was already cached), ``seconds`` (this view's time),
    ``setup_seconds`` (the actor's model loading) and ``worker`` (host:pid).
    """

    def __init__(
        self,
        dataset: ViewDataset,
        model_factory: ModelFactory,
        cache_dir: str | None,
        batch_size: int,
        fuse_global: bool,
        fusion_temperature: float,
    ) -> None:
        start = time.perf_counter()
        self.dataset = dataset
        self.mask_generator, self.image_encoder = model_factory()
        self.cache = feature_cache_for(
            dataset,
            self.mask_generator,
            self.image_encoder,
            cache_dir,
            fuse_global=fuse_global,
            fusion_temperature=fusion_temperature,
        )
        self.options = {"batch_size": batch_size, "fuse_global": fuse_global, "fusion_temperature": fusion_temperature}
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.setup_seconds = time.perf_counter() - start

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indices = [int(i) for i in batch["index"]]
        paths, computed, seconds = [], [], []
        for i in indices:
            start = time.perf_counter()
            path, done_now = ensure_view_cached(
                self.cache, self.dataset, i, self.mask_generator, self.image_encoder, **self.options
            )
            paths.append(str(path))
            computed.append(done_now)
            seconds.append(time.perf_counter() - start)
        n = len(indices)
        return {
            "index": np.array(indices, dtype=np.int64),
            "path": np.array(paths, dtype=object),
            "computed": np.array(computed, dtype=bool),
            "seconds": np.array(seconds, dtype=np.float64),
            "setup_seconds": np.full(n, self.setup_seconds),
            "worker": np.array([self.worker] * n, dtype=object),
        }


def _run_ray(
    dataset: ViewDataset,
    model_factory: ModelFactory,
    cache_dir: str | os.PathLike[str] | None,
    indices: list[int],
    config: RayConfig,
    progress: Callable[[int, int], None] | None,
    **options: Any,
) -> PreprocessRun:
    ray = import_ray()
    relative = [str(v.image_path) for v in dataset if not Path(v.image_path).is_absolute()]
    if relative:  # actors run in their own working directories, maybe on other nodes
        raise UsageError(
            f"the ray executor needs absolute image paths; load the dataset from an absolute path (got {relative[0]})"
        )
    # the driver's working directory means nothing to the actors: pass the cache root absolute
    cache_root = (Path(cache_dir) if cache_dir is not None else dataset.root / CACHE_SUBDIR).absolute()
    start = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=config.address, include_dashboard=False, log_to_driver=True)
    connect_seconds = time.perf_counter() - start
    try:
        num_gpus = config.num_gpus_per_actor
        if num_gpus is None:
            num_gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        concurrency = config.concurrency or _default_concurrency(ray.cluster_resources(), num_gpus, config)
        concurrency = max(1, min(concurrency, len(indices)))
        total = len(indices)
        if progress is not None:
            progress(0, total)
        rows = []
        if indices:
            ds = ray.data.from_items([{"index": i} for i in indices], override_num_blocks=len(indices))
            ds = ds.map_batches(
                CacheWriterActor,
                fn_constructor_kwargs={
                    "dataset": dataset,
                    "model_factory": model_factory,
                    "cache_dir": str(cache_root),
                    **options,
                },
                batch_size=1,  # images take seconds each: hand them out one at a time
                compute=ray.data.ActorPoolStrategy(size=concurrency),
                num_cpus=config.num_cpus_per_actor,
                num_gpus=num_gpus,
            )
            for row in ds.iter_rows():
                rows.append(row)
                if progress is not None:
                    progress(len(rows), total)
    finally:
        if started_here:
            ray.shutdown()
    seconds = time.perf_counter() - start
    by_index = {int(r["index"]): r for r in rows}
    missing = [i for i in indices if i not in by_index]
    if missing:
        raise RuntimeError(f"the ray executor returned no result for views {missing}")
    paths = [Path(by_index[i]["path"]) for i in indices]
    computed = tuple(i for i in indices if bool(by_index[i]["computed"]))
    setup = {r["worker"]: float(r["setup_seconds"]) for r in rows}
    return PreprocessRun(
        CachedViewFeatures(paths, indices, paths[0].parent if paths else cache_root),
        computed,
        seconds,
        connect_seconds + max(setup.values(), default=0.0),
        workers=len(setup),
    )


def _default_concurrency(resources: dict[str, float], num_gpus: float, config: RayConfig) -> int:
    if num_gpus > 0:
        return max(1, int(resources.get("GPU", 0) // num_gpus))
    return max(1, int(resources.get("CPU", 1) // config.num_cpus_per_actor))
