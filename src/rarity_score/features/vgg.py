"""VGG16's layers: ``vgg16-fc2`` (the paper's feature space), ``vgg16-fc1``, ``vgg16-pool5``.

torchvision's VGG16 with its ImageNet weights. Every layer is read from
``flatten(avgpool(features(x)))``, the flattened 7x7x512 convolutional features:

- ``pool5``: those features themselves, 25088-d (the adaptive average pool to 7x7 is the
  identity at 224x224: it only matters for other input sizes, which this extractor does not
  take);
- ``fc1``: ``classifier[:2]`` (fc1, ReLU), 4096-d;
- ``fc2``: ``classifier[:5]`` (fc1, ReLU, dropout, fc2, ReLU), 4096-d. In eval mode the dropout
  is the identity, so this is exactly what the official Rarity Score code computes.

Input: PIL bicubic resize to 224x224 (no crop), ImageNet mean/std, for every layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import torch
from torch import nn

from rarity_score.features.base import TorchExtractor
from rarity_score.features.info import VGG16_FC2, VGG16_LAYERS
from rarity_score.features.preprocess import VGG_PREPROCESS
from rarity_score.features.weights import Checkpoint, load_checkpoint, resolve_checkpoint

__all__ = ["CHECKPOINT", "LAYERS", "VggLayer", "build", "from_model", "weights_path"]

NAME = VGG16_FC2.name

#: The layers, by name: how many of the classifier's modules run after the flattened pool.
LAYERS: dict[str, int] = {"pool5": 0, "fc1": 2, "fc2": 5}

#: torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (written out so that listing and the offline
#: message need no torchvision import; a test checks it against torchvision's own entry).
CHECKPOINT = Checkpoint(
    file_name="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    label="torchvision VGG16_Weights.IMAGENET1K_V1",
)


def _layer(layer: str) -> int:
    if layer not in LAYERS:
        raise ValueError(f"unknown VGG16 layer {layer!r}; known: {', '.join(VGG16_LAYERS)}")
    return LAYERS[layer]


class VggLayer(nn.Module):
    """A torchvision VGG cut at one layer (see :data:`LAYERS`). Shares the model's layers (no
    copy)."""

    def __init__(self, vgg: nn.Module, layer: str = "fc2") -> None:
        super().__init__()
        self.layer = layer
        self.features = cast(nn.Module, vgg.features)
        self.avgpool = cast(nn.Module, vgg.avgpool)
        # An empty Sequential (pool5) is the identity.
        self.head = cast(nn.Sequential, vgg.classifier)[: _layer(layer)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) -> (B, 4096) (fc1, fc2) or (B, 25088) (pool5)."""
        return self.head(torch.flatten(self.avgpool(self.features(x)), 1))


def from_model(
    vgg: nn.Module, *, weights_id: str, device: str = "cpu", layer: str = "fc2"
) -> TorchExtractor:
    """Wrap a torchvision VGG16 (any weights, e.g. random ones in tests) as the extractor of
    ``layer`` ("fc2": ``vgg16-fc2``, "fc1", "pool5")."""
    network = VggLayer(vgg, layer)
    return TorchExtractor(
        VGG16_LAYERS[layer], network, VGG_PREPROCESS, weights_id=weights_id, device=device
    )


def weights_path(weights: str | os.PathLike[str] | None = None, *, layer: str = "fc2") -> Path:
    """The weights file :func:`build` loads for ``layer``: ``weights``, else torch hub's copy,
    else a fresh download (:func:`~rarity_score.features.weights.resolve_checkpoint`); the
    network is not built.

    Raises:
        ValueError: an unknown layer.
        WeightsUnavailable: offline without a local copy, or ``weights`` is not a file.
    """
    _layer(layer)
    return resolve_checkpoint(CHECKPOINT, weights, what=VGG16_LAYERS[layer].name)


def build(
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
    layer: str = "fc2",
) -> TorchExtractor:
    """The VGG16 extractor of ``layer`` with torchvision's ImageNet weights (or the state dict
    at ``weights``).

    Raises:
        ValueError: an unknown layer.
        WeightsUnavailable: offline without a local copy, or a file that is not VGG16 weights.
    """
    del input_size  # fixed at 224; the registry has checked it
    import torchvision

    path = weights_path(weights, layer=layer)  # the layer checked before any file is read
    what = VGG16_LAYERS[layer].name  # the layer checked before the 528 MB file is read
    model, weights_id = load_checkpoint(
        path, lambda: torchvision.models.vgg16(weights=None, init_weights=False), what=what
    )
    return from_model(model, weights_id=weights_id, device=device, layer=layer)
