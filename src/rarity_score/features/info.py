"""What an extractor is (:class:`ExtractorInfo`) and what it does (:class:`FeatureExtractor`).

Both are importable with numpy alone, so that ``rarity extractors`` can list the registry on a
machine without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["ExtractorInfo", "FeatureExtractor"]


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
