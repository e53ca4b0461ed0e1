"""``clip-vit-b32``: the image embedding of OpenAI's CLIP ViT-B/32, loaded with open_clip
(extra ``clip``).

The feature is ``encode_image`` without normalisation: the class token after ``ln_post``,
projected to 512-d. It is not L2-normalised (normalise it yourself for cosine geometry; the
k-NN spheres then live on the unit sphere). Input: open_clip's evaluation transform for these
weights, rebuilt here as a pure function (PIL bicubic resize of the shorter side to 224, centre
crop 224x224, OpenAI CLIP mean/std); a test checks it against open_clip's own transform.

Weights: ``weights=PATH`` (an open_clip checkpoint file such as ``open_clip_model.safetensors``)
or open_clip's usual source, the Hugging Face hub repository
``timm/vit_base_patch32_clip_224.openai``, cached under the Hugging Face hub cache
(``$HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``). These weights use QuickGELU, so the
model is built as ``ViT-B-32`` with ``force_quick_gelu=True`` (open_clip's ``ViT-B-32-quickgelu``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import cast

import torch
from torch import nn

from rarity_score._errors import WeightsUnavailable, require
from rarity_score.features.base import TorchExtractor
from rarity_score.features.info import CLIP_VIT_B32
from rarity_score.features.preprocess import CLIP_PREPROCESS
from rarity_score.features.weights import (
    cached_hub_files,
    hub_unreachable,
    quiet_hub,
    weights_id_of_file,
)

__all__ = [
    "HF_REPO",
    "MODEL",
    "TAG",
    "build",
    "checkpoint_path",
    "from_model",
    "weights_path",
]

NAME = CLIP_VIT_B32.name
MODEL = "ViT-B-32"
TAG = "openai"
HF_REPO = "timm/vit_base_patch32_clip_224.openai"
HF_FILE = "open_clip_model.safetensors"
#: What open_clip's download looks for in the hub repository, in its order.
_HUB_FILES = (HF_FILE, "open_clip_pytorch_model.bin")


class ImageEncoder(nn.Module):
    """open_clip's visual tower alone (the text tower is not needed and is dropped)."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) -> (B, 512), as ``CLIP.encode_image(x, normalize=False)``."""
        out: torch.Tensor = self.visual(x)
        return out


def from_model(model: nn.Module, *, weights_id: str, device: str = "cpu") -> TorchExtractor:
    """Wrap an open_clip CLIP model (any weights) as ``clip-vit-b32``; keeps ``model.visual``."""
    info = CLIP_VIT_B32
    visual = cast(nn.Module, model.visual)
    dim = int(getattr(visual, "output_dim", info.dim))
    return TorchExtractor(
        dataclasses.replace(info, dim=dim),
        ImageEncoder(visual),
        CLIP_PREPROCESS,
        weights_id=weights_id,
        device=device,
    )


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - open_clip depends on huggingface_hub
        return "~/.cache/huggingface/hub"


def _unavailable(reason: str) -> str:
    return (
        f"{NAME}: cannot get the CLIP weights ({MODEL}, pretrained={TAG!r}) from the Hugging "
        f"Face hub repository {HF_REPO} ({reason}). Without internet, download {HF_FILE} from "
        f"https://huggingface.co/{HF_REPO} on another machine and pass --weights PATH (Python: "
        f"weights=PATH), or copy that machine's Hugging Face cache into {_hub_cache()}/ (set "
        f"HF_HOME or HF_HUB_CACHE to move it)."
    )


def checkpoint_path(weights: str | os.PathLike[str] | None) -> Path:
    """The checkpoint file: ``weights`` when given, else the hub cache's copy, else open_clip's
    download (attempted only when the hub answers).

    Raises:
        WeightsUnavailable: ``weights`` is not a file, or nothing is cached and the hub cannot be
            reached (found out with one request: no retries, no log lines), or the download
            fails.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(
                f"{NAME}: weights file {path} not found (--weights PATH must name an open_clip "
                f"checkpoint file such as {HF_FILE})"
            )
        return path
    open_clip = require("open_clip", what=NAME, package="open-clip-torch", extra="clip")
    # A cached copy is used without asking the hub; with nothing cached, one request tells
    # whether the hub can be reached before open_clip's download retries for a minute.
    cached = next((p for p in cached_hub_files(HF_REPO, _HUB_FILES) if p is not None), None)
    if cached is not None:
        return cached
    unreachable = hub_unreachable(HF_REPO, HF_FILE)
    if unreachable is not None:
        raise WeightsUnavailable(
            _unavailable(f"not cached, and the hub cannot be reached: {unreachable}")
        )
    cfg = open_clip.get_pretrained_cfg(MODEL, TAG)
    try:
        with quiet_hub():
            found = open_clip.pretrained.download_pretrained(cfg)
    except Exception as error:  # network, hub and file errors alike: no weights
        raise WeightsUnavailable(_unavailable(f"{type(error).__name__}: {error}")) from error
    if not found:
        raise WeightsUnavailable(f"{NAME}: open_clip knows no download for {MODEL} {TAG!r}")
    return Path(found)


def weights_path(weights: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint :func:`build` loads (:func:`checkpoint_path`); the network is not built."""
    return checkpoint_path(weights)


def build(
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
) -> TorchExtractor:
    """``clip-vit-b32`` with the OpenAI weights (or the open_clip checkpoint at ``weights``).

    Raises:
        WeightsUnavailable: offline without a cached copy, or a file open_clip cannot load.
    """
    del input_size  # fixed at 224; the registry has checked it
    open_clip = require("open_clip", what=NAME, package="open-clip-torch", extra="clip")
    path = checkpoint_path(weights)
    try:
        model = open_clip.create_model(MODEL, pretrained=str(path), force_quick_gelu=True)
    except Exception as error:  # strict loading, format and pickle errors
        raise WeightsUnavailable(
            f"{NAME}: cannot load {path} as {MODEL} CLIP weights: {type(error).__name__}: {error}"
        ) from error
    return from_model(model, weights_id=weights_id_of_file(path), device=device)
