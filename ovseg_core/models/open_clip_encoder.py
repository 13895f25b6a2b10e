"""OpenCLIP as the image and text encoder (LangSplatV2 uses ViT-B-16 / laion2b_s34b_b88k, 512-d).

open_clip is imported inside functions: it pulls in timm and takes seconds to import.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ovseg_core.errors import ModelLoadError, UsageError
from ovseg_core.models._device import resolve_device, seeded
from ovseg_core.models.config import OpenClipConfig

if TYPE_CHECKING:
    from ovseg_core.models.registry import EncoderRecord

TINY_CLIP_MODEL = "ovseg-tiny-clip"
"""open_clip config name of the tiny test model shipped in ``configs/`` (32-d, 64 px, ~3.4 M params)."""
_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_SCHEMAS = ("hf-hub:", "local-dir:")
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
# Fallback when a model carries no preprocess config (every open_clip CLIP of 3.x does)
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class OpenClipEncoder:
    """An open_clip model as both ``ImageEncoder`` and ``TextEncoder``.

    Build one from a config with ``from_config`` (downloads or reads weights), or wrap an already-built
    open_clip model with the constructor (tests pass tiny random ones).
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, name: str, batch_size: int = 32) -> None:
        """``model``: an open_clip CLIP (its device is used as is; it is put in eval mode).
        ``tokenizer``: ``open_clip.get_tokenizer(...)`` result. ``name``: identifies model and weights."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        import open_clip

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = int(batch_size)
        self.device = next(model.parameters()).device

        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", getattr(model.visual, "image_size", None))
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        if height != width:
            raise ValueError(f"{name}: encoders here take square images, the model expects {height}x{width}")
        self.input_size = int(height)
        # CLIP normalisation lives here so callers hand over plain [0, 1] pixels
        self._mean = torch.tensor(cfg.get("mean", _OPENAI_MEAN), dtype=torch.float32, device=self.device)
        self._std = torch.tensor(cfg.get("std", _OPENAI_STD), dtype=torch.float32, device=self.device)
        self.embed_dim = int(self.encode_texts([""]).shape[1])

    @classmethod
    def from_config(cls, config: OpenClipConfig | None = None) -> OpenClipEncoder:
        """Load the model and weights named by ``config``; raises ``ModelLoadError`` if the weights cannot be had."""
        config = config or OpenClipConfig()
        import open_clip

        device = resolve_device(config.device)
        model_name, pretrained, name = _resolve_weights(config)
        try:
            model = open_clip.create_model(model_name, pretrained=pretrained, device=device)
            tokenizer = open_clip.get_tokenizer(model_name)
        except (RuntimeError, OSError, ValueError) as exc:  # open_clip wraps download and load failures
            raise ModelLoadError(_load_advice(config, exc)) from exc
        except pickle.UnpicklingError:  # torch.load(weights_only=True) refused objects in the file
            raise ModelLoadError(
                f"refusing to load {config.pretrained!r}: it is not a plain weights file (it holds pickled "
                "objects that could run code); use the model's safetensors or a weights-only checkpoint"
            ) from None
        return cls(model, tokenizer, name=name, batch_size=config.batch_size)

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` [B, 3, S, S] float in [0, 1], S = ``input_size`` -> [B, D] L2-normalised, CPU float32."""
        s = self.input_size
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (3, s, s):
            shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"{self.name}: images must be a [B, 3, {s}, {s}] tensor, got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"{self.name}: images must be float in [0, 1], got {images.dtype}")
        if images.shape[0] == 0:
            return torch.zeros((0, self.embed_dim))
        out = []
        for chunk in images.split(self.batch_size):
            x = chunk.to(self.device, torch.float32)
            x = (x - self._mean[:, None, None]) / self._std[:, None, None]
            out.append(F.normalize(self.model.encode_image(x).float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """``texts`` -> [B, D] L2-normalised, CPU float32."""
        if isinstance(texts, str):
            raise ValueError(f"{self.name}: encode_texts takes a list of strings, got the single string {texts!r}")
        texts = list(texts)
        if not texts:
            return torch.zeros((0, self.embed_dim))
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[start : start + self.batch_size]).to(self.device)
            out.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out)

    def __repr__(self) -> str:
        return f"OpenClipEncoder(name={self.name!r}, embed_dim={self.embed_dim}, input_size={self.input_size})"


def _resolve_weights(config: OpenClipConfig) -> tuple[str, str | None, str]:
    """-> (open_clip model_name, pretrained argument, encoder name); fails early on paths that are not there."""
    import open_clip

    register_tiny_clip_config()  # the packaged test config is always a known name
    pretrained = config.pretrained
    if pretrained.startswith(_SCHEMAS):
        if pretrained.startswith("local-dir:"):
            folder = Path(pretrained.removeprefix("local-dir:")).expanduser()
            if not folder.is_dir():
                raise ModelLoadError(_load_advice(config, f"folder {str(folder)!r} does not exist"))
            size = sum(p.stat().st_size for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
            return pretrained, None, f"open_clip:local-dir:{folder.name}:{size}B"
        return pretrained, None, f"open_clip:{pretrained}"

    if config.model not in open_clip.list_models():
        raise UsageError(f"unknown open_clip model {config.model!r}; see open_clip.list_models()")
    if open_clip.get_pretrained_cfg(config.model, pretrained):
        return config.model, pretrained, f"open_clip:{config.model}:{pretrained}"
    path = Path(pretrained).expanduser()
    if path.is_file():
        return config.model, str(path), f"open_clip:{config.model}:{path.name}:{path.stat().st_size}B"
    if path.suffix in _WEIGHT_SUFFIXES or "/" in pretrained or "\\" in pretrained:
        reason = f"checkpoint file {str(path)!r} does not exist"
    else:
        tags = open_clip.list_pretrained_tags_by_model(config.model)
        reason = f"{pretrained!r} is neither a file nor a known tag for {config.model} (tags: {tags})"
    raise ModelLoadError(_load_advice(config, reason))


def _load_advice(config: OpenClipConfig, cause: object) -> str:
    return (
        f"cannot load OpenCLIP {config.model!r} weights {config.pretrained!r}: {cause}. "
        "Tags download from the Hugging Face hub on first use (needs network; cached afterwards). "
        "Offline, pass a local checkpoint: OpenClipConfig(pretrained='/path/to/open_clip_model.safetensors') "
        "with the matching model, or pretrained='local-dir:/path/to/folder' (open_clip_config.json + weights)."
    )


def register_tiny_clip_config() -> str:
    """Register the tiny test config with open_clip (idempotent); returns its model name."""
    import open_clip

    if TINY_CLIP_MODEL not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR / f"{TINY_CLIP_MODEL}.json")
    return TINY_CLIP_MODEL


def tiny_open_clip(seed: int = 0, batch_size: int = 32) -> OpenClipEncoder:
    """A real, randomly initialised ~3.4 M-parameter open_clip (32-d, 64 px) on CPU, for tests."""
    import open_clip

    name = register_tiny_clip_config()
    with seeded(seed):
        model = open_clip.create_model(name, pretrained=None, device="cpu")
    return OpenClipEncoder(
        model, open_clip.get_tokenizer(name), name=f"open_clip:{name}:random-seed{seed}", batch_size=batch_size
    )


def recorded_text_encoder(record: EncoderRecord, clip: OpenClipConfig | None = None) -> OpenClipEncoder:
    """The OpenCLIP named by ``record.encoder_name`` (``open_clip:<model>:<weights tag>``), or ``clip``
    when given (a local checkpoint, other weights), else the default ViT-B-16. Registered for the
    ``open_clip:`` scheme."""
    parts = record.encoder_name.split(":")
    if clip is None and len(parts) == 3:
        clip = OpenClipConfig(model=parts[1], pretrained=parts[2])  # the same hub weights
    return OpenClipEncoder.from_config(clip or OpenClipConfig())


def recorded_tiny_text_encoder(record: EncoderRecord, clip: OpenClipConfig | None = None) -> OpenClipEncoder:
    """The tiny test CLIP with the seed in ``record.encoder_name`` (``...:random-seed<N>``); ``clip``
    overrides it. Registered for the ``open_clip:ovseg-tiny-clip:`` scheme."""
    if clip is not None:
        return OpenClipEncoder.from_config(clip)
    seed = record.encoder_name.rsplit(":random-seed", 1)[-1]
    if not seed.isdigit():
        raise ModelLoadError(f"{record.encoder_name!r}: the tiny test CLIP's name must end in ':random-seed<N>'")
    return tiny_open_clip(seed=int(seed))
