"""``vgg16-fc2``: the paper's feature space.

torchvision's VGG16 with its ImageNet weights; the feature is the 4096-d output of the second
fully connected layer after its ReLU, i.e. ``classifier[:5]`` (fc1, ReLU, dropout, fc2, ReLU)
applied to ``flatten(avgpool(features(x)))``, the flattened 7x7x512 convolutional features. In
eval mode the dropout is the identity, so this is exactly what the official Rarity Score code
computes. Input: PIL bicubic resize to 224x224 (no crop), ImageNet mean/std.
"""

from __future__ import annotations

import os
from typing import cast

import torch
from torch import nn

from rarity_score.features.base import TorchExtractor
from rarity_score.features.info import VGG16_FC2
from rarity_score.features.preprocess import VGG_PREPROCESS
from rarity_score.features.weights import Checkpoint, load_checkpoint, resolve_checkpoint

__all__ = ["CHECKPOINT", "Fc2", "build", "from_model"]

NAME = VGG16_FC2.name

#: torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (written out so that listing and the offline
#: message need no torchvision import; a test checks it against torchvision's own entry).
CHECKPOINT = Checkpoint(
    file_name="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    label="torchvision VGG16_Weights.IMAGENET1K_V1",
)


class Fc2(nn.Module):
    """The head of a torchvision VGG cut after fc2's ReLU. Shares the model's layers (no copy)."""

    def __init__(self, vgg: nn.Module) -> None:
        super().__init__()
        self.features = cast(nn.Module, vgg.features)
        self.avgpool = cast(nn.Module, vgg.avgpool)
        self.head = cast(nn.Sequential, vgg.classifier)[:5]  # fc1, ReLU, Dropout, fc2, ReLU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) -> (B, 4096)."""
        return self.head(torch.flatten(self.avgpool(self.features(x)), 1))


def from_model(vgg: nn.Module, *, weights_id: str, device: str = "cpu") -> TorchExtractor:
    """Wrap a torchvision VGG16 (any weights, e.g. random ones in tests) as ``vgg16-fc2``."""
    return TorchExtractor(
        VGG16_FC2,
        Fc2(vgg),
        VGG_PREPROCESS,
        weights_id=weights_id,
        device=device,
    )


def build(
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
) -> TorchExtractor:
    """``vgg16-fc2`` with torchvision's ImageNet weights (or the state dict at ``weights``).

    Raises:
        WeightsUnavailable: offline without a local copy, or a file that is not VGG16 weights.
    """
    del input_size  # fixed at 224; the registry has checked it
    import torchvision

    path = resolve_checkpoint(CHECKPOINT, weights, what=NAME)
    model, weights_id = load_checkpoint(
        path, lambda: torchvision.models.vgg16(weights=None, init_weights=False), what=NAME
    )
    return from_model(model, weights_id=weights_id, device=device)
