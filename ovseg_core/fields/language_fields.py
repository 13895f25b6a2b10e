"""Inference-ready language fields of a scene and their checkpoint file.

Whatever produced them (LangSplatV2 training, training-free lifting), a field level is stored
in one factored form: Gaussian i's feature is sum_j val[i, j] * basis[idx[i, j]]. Queries work in
that form and never materialise [N, D] features unless asked.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import torch

from ovseg_core.errors import FieldMismatchError, MissingFileError
from ovseg_core.fields.checkpoint_checks import check_levels, check_stored_sizes
from ovseg_core.fields.codebook_field import CodebookField, FieldConfig
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.tensor_file import load_tagged_payload
from ovseg_core.scene import GaussianScene

CHECKPOINT_FORMAT = "ovseg-language-fields"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "langsplatv2_ckpt.pt"
LEVEL_NAMES = {0: "default", 1: "small", 2: "medium", 3: "large"}


@dataclasses.dataclass
class LevelCodes:
    """One feature level in factored form."""

    idx: torch.Tensor
    """``[N, J]`` int64 rows of ``basis`` each Gaussian mixes."""
    val: torch.Tensor
    """``[N, J]`` float32 mixing weights."""
    basis: torch.Tensor
    """``[E, D]`` float32 (the stacked codebooks for LangSplatV2)."""
    evidence: torch.Tensor | None = None
    """``[N]`` float32 how much the training pixels its code was back-projected from said about each
    Gaussian (sum of its squared blending weights, ``backprojection``; 0: no view showed it), or None
    where unknown (trained codes). Spatially consistent selections weigh a Gaussian's own score by it."""

    @property
    def num_gaussians(self) -> int:
        return int(self.idx.shape[0])

    def dense_codes(self) -> torch.Tensor:
        """``[N, E]`` mixing weights scattered densely (what a renderer blends per pixel)."""
        out = torch.zeros(self.idx.shape[0], self.basis.shape[0], dtype=torch.float32)
        return out.scatter_add_(1, self.idx, self.val)

    def features(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded features ``[n, D]`` (not normalised)."""
        idx, val = (self.idx, self.val) if ids is None else (self.idx[ids], self.val[ids])
        return (val.unsqueeze(-1) * self.basis[idx]).sum(dim=1)

    @classmethod
    def from_codebook_field(cls, field: CodebookField) -> LevelCodes:
        with torch.no_grad():
            idx, val = field.flat_sparse_codes()
            return cls(idx=idx.cpu(), val=val.float().cpu(), basis=field.stacked_codebooks().float().cpu().clone())


@dataclasses.dataclass
class LanguageFields:
    """Every trained level of a scene plus where it came from."""

    levels: dict[int, LevelCodes]
    """Feature level (0 default, 1 small, 2 medium, 3 large) -> its codes."""
    method: str
    """``langsplatv2`` (trained) or another producer's name."""
    encoder_name: str
    """The image encoder the targets came from; text queries must use its text tower."""
    embed_dim: int
    scene_fingerprint: str
    num_gaussians: int
    step: int = 0
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    state: dict[int, dict[str, torch.Tensor]] = dataclasses.field(default_factory=dict)
    """Raw per-level tensors as trained (``logits``, ``codebooks``), kept for checkpoints."""
    source: str = ""
    """The file these were loaded from, if any."""
    gaussian_levels: dict[int, LevelCodes] = dataclasses.field(default_factory=dict)
    """Level -> per-Gaussian codes for 3D queries (over the same basis), when they differ from
    ``levels``: trained fields registered onto their Gaussians (``fields.registration``)."""

    def codes_3d(self, level: int) -> LevelCodes:
        """The codes per-Gaussian (3D) queries read at ``level``."""
        return self.gaussian_levels.get(level, self.levels[level])

    def check_scene(self, scene: GaussianScene) -> None:
        """Raise ``FieldMismatchError`` unless these fields were trained on ``scene``."""
        where = f" in {self.source}" if self.source else ""
        scene.check_same(
            self.scene_fingerprint,
            self.num_gaussians,
            f"language fields{where} were trained",
            "Train fields for this splat or load the splat they belong to.",
        )

    @classmethod
    def from_codebook_fields(
        cls,
        fields: dict[int, CodebookField],
        scene: GaussianScene,
        *,
        encoder_name: str,
        step: int,
        config: dict[str, Any],
    ) -> LanguageFields:
        first = next(iter(fields.values()))
        return cls(
            levels={lvl: LevelCodes.from_codebook_field(f) for lvl, f in fields.items()},
            method="langsplatv2",
            encoder_name=encoder_name,
            embed_dim=first.config.embed_dim,
            scene_fingerprint=scene.fingerprint(),
            num_gaussians=scene.num_gaussians,
            step=step,
            config={**config, "field": dataclasses.asdict(first.config)},
            state={
                lvl: {"logits": f.logits.detach().cpu().clone(), "codebooks": f.codebooks.detach().cpu().clone()}
                for lvl, f in fields.items()
            },
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically (loadable with ``torch.load(weights_only=True)``)."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "method": self.method,
            "encoder": {"name": self.encoder_name, "embed_dim": int(self.embed_dim)},
            "scene": {"fingerprint": self.scene_fingerprint, "num_gaussians": int(self.num_gaussians)},
            "step": int(self.step),
            "config": _plain(self.config),
            "levels": {int(k): dict(v) for k, v in self.state.items()}
            if self.state
            else {int(k): _stored(v, basis=True) for k, v in self.levels.items()},
        }
        if self.gaussian_levels:
            payload["gaussian_levels"] = {int(k): _stored(v, basis=False) for k, v in self.gaussian_levels.items()}
        buf = io.BytesIO()
        torch.save(payload, buf)
        path = Path(path)
        atomic_write_bytes(path, buf.getvalue())
        return path


def load_fields(path: str | os.PathLike[str], scene: GaussianScene | None = None) -> LanguageFields:
    """Load a fields checkpoint (a file, or a run/checkpoint directory: the latest step inside).
    With ``scene``, refuse fields trained on another splat."""
    path = resolve_checkpoint(path)
    payload = load_tagged_payload(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "language-field checkpoint")
    try:
        method = payload["method"]
        levels_raw: dict[int, dict[str, torch.Tensor]] = payload["levels"]
        levels: dict[int, LevelCodes] = {}
        state: dict[int, dict[str, torch.Tensor]] = {}
        config = payload.get("config", {})
        check_stored_sizes(levels_raw, config.get("field", {}), str(path))
        check_stored_sizes(payload.get("gaussian_levels", {}), {}, f"{path} (registered)")
        for lvl, t in levels_raw.items():
            if "logits" in t:
                fcfg = FieldConfig(**config.get("field", {}))
                field = CodebookField(t["logits"].shape[0], fcfg)
                field.load_state_dict({"logits": t["logits"], "codebooks": t["codebooks"]})
                levels[int(lvl)] = LevelCodes.from_codebook_field(field)
                state[int(lvl)] = t
            else:
                levels[int(lvl)] = LevelCodes(
                    idx=t["idx"].long(), val=t["val"].float(), basis=t["basis"].float(), evidence=_evidence_of(t)
                )
        fields = LanguageFields(
            levels=levels,
            method=method,
            encoder_name=payload["encoder"]["name"],
            embed_dim=int(payload["encoder"]["embed_dim"]),
            scene_fingerprint=payload["scene"]["fingerprint"],
            num_gaussians=int(payload["scene"]["num_gaussians"]),
            step=int(payload.get("step", 0)),
            config=config,
            state=state,
            source=str(path),
            gaussian_levels={
                int(lvl): LevelCodes(
                    idx=t["idx"].long(),
                    val=t["val"].float(),
                    basis=levels[int(lvl)].basis,
                    evidence=_evidence_of(t),
                )
                for lvl, t in payload.get("gaussian_levels", {}).items()
            },
        )
        check_levels(fields.levels, fields.num_gaussians, fields.embed_dim, str(path), raw=levels_raw)
        if fields.gaussian_levels:
            check_levels(
                fields.gaussian_levels,
                fields.num_gaussians,
                fields.embed_dim,
                f"{path} (registered)",
                raw=payload["gaussian_levels"],
            )
    except FieldMismatchError:
        raise
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as e:
        raise FieldMismatchError(f"{path}: malformed language-field checkpoint ({e})") from e
    if scene is not None:
        fields.check_scene(scene)
    return fields


def _stored(codes: LevelCodes, *, basis: bool) -> dict[str, torch.Tensor]:
    """What a checkpoint holds of ``codes`` (the registered levels share their level's basis);
    indices in the smallest integer type that holds the basis (loading widens them again)."""
    rows, idx = codes.basis.shape[0], codes.idx
    integer = not idx.dtype.is_floating_point and idx.dtype != torch.bool
    if idx.numel() and integer and 0 <= int(idx.min()) and int(idx.max()) < rows:
        # only indices that are valid shrink: a bad one is kept as it is, for loading to name it
        idx = idx.to(torch.uint8 if rows <= 256 else torch.int16 if rows <= 32768 else torch.int32)
    out = {"idx": idx, "val": codes.val}
    if basis:
        out["basis"] = codes.basis
    if codes.evidence is not None:
        out["evidence"] = codes.evidence
    return out


def _evidence_of(stored: dict[str, torch.Tensor]) -> torch.Tensor | None:
    evidence = stored.get("evidence")
    return evidence.float() if isinstance(evidence, torch.Tensor) else evidence


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file from a file path, a ``checkpoints/<step>`` dir, a run dir or a log dir
    (the newest run, highest step)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise MissingFileError(f"{path}: no such language-field checkpoint or directory")
    candidates = list(path.rglob(CHECKPOINT_NAME)) or list(path.rglob("*.pt"))
    if not candidates:
        raise MissingFileError(f"{path}: no {CHECKPOINT_NAME} (or other .pt checkpoint) found inside")
    candidates.sort(key=lambda p: (p.stat().st_mtime, _step_of(p)))
    return candidates[-1]


def _step_of(p: Path) -> int:
    try:
        return int(p.parent.name)
    except ValueError:
        return -1


def _plain(value: Any) -> Any:
    """Config values reduced to what ``weights_only`` loading accepts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
