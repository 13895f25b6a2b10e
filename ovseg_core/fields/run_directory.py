"""A training run's outputs on disk, laid out as the LangSplatV2 reference does:

log_path/run_<timestamp>/ (or log_path/<run_name>/)
    checkpoints/<step>/langsplatv2_ckpt.pt
    metrics_log.csv          step, train/loss, train/cosine_loss_valid, ..., val/...
    tensorboard/             when enabled
    images/                  PCA-coloured feature renders at save points
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ovseg_core.errors import MissingDependencyError, UsageError
from ovseg_core.fields.language_fields import CHECKPOINT_NAME, LanguageFields
from ovseg_core.io.atomic import atomic_write_bytes

METRIC_COLUMNS = ("train/loss", "train/cosine_loss_valid", "train/level", "val/loss", "val/cosine_loss_valid")


class RunDirectory:
    """Implements the trainer's observer protocol by writing files (each write atomic)."""

    def __init__(
        self,
        log_path: str | os.PathLike[str],
        run_name: str | None = None,
        *,
        use_tensorboard: bool = False,
        save_images: bool = True,
        save_checkpoints: bool = True,
    ) -> None:
        name = run_name or time.strftime("run_%Y-%m-%d-%H-%M-%S")
        if run_name is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", run_name):
            raise UsageError(f"run name {run_name!r} may only use letters, digits, '.', '_' and '-'")
        self.path = Path(log_path) / name
        self.path.mkdir(parents=True, exist_ok=True)
        self.save_images_enabled = save_images
        self.save_checkpoints_enabled = save_checkpoints
        self.rows: list[dict[str, float]] = []
        self.last_checkpoint: Path | None = None
        self._tb = None
        if use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # the tensorboard package is optional
                raise MissingDependencyError(
                    "--io.use-tensorboard needs the tensorboard package: pip install 'ovseg[tensorboard]'"
                ) from e
            self._tb = SummaryWriter(log_dir=str(self.path / "tensorboard"))

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append({"step": step, **metrics})
        columns = ["step", *METRIC_COLUMNS, *sorted({k for r in self.rows for k in r} - {"step", *METRIC_COLUMNS})]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})
        atomic_write_bytes(self.path / "metrics_log.csv", buf.getvalue().encode())
        if self._tb is not None:
            for key, value in metrics.items():
                if not math.isnan(value):
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()

    def save_checkpoint(self, step: int, fields: LanguageFields) -> None:
        if not self.save_checkpoints_enabled:
            return
        folder = self.path / "checkpoints" / str(step)
        existed = folder.exists()
        try:
            self.last_checkpoint = fields.save(folder / CHECKPOINT_NAME)
        except BaseException:
            # a failed write (a full disk) must not leave an empty step folder that looks like a checkpoint
            if not existed:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
            raise

    def save_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        if not self.save_images_enabled:
            return
        for name, image in images.items():
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
            atomic_write_bytes(
                self.path / "images" / f"{step:06d}_{safe}.png", iio.imwrite("<bytes>", image, extension=".png")
            )
            if self._tb is not None:
                self._tb.add_image(f"features/{safe}", image, step, dataformats="HWC")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _fmt(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "" if isinstance(value, float) and math.isnan(value) else f"{value:.6g}"
