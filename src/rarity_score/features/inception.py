"""Inception-V3's layers: ``inception-v3-pool3``, the 2048-d pool features of torchvision's
Inception-V3 (the space FID is computed in), and ``inception-v3-logits``, its 1000 ImageNet
logits.

``pool3`` is the output of the final adaptive average pool (``avgpool``), flattened, before
dropout and the fc layer; ``logits`` is the fc layer applied to it (before softmax; the dropout
between them is the identity in eval mode, and the auxiliary classifier only runs in training
mode). Input, for both: PIL bicubic resize to 299x299 (no crop), ImageNet mean/std; the
model is built with ``transform_input=True``, as torchvision builds it for these weights, so its
first step re-maps ImageNet-normalised input to ``(x - 0.5) / 0.5``, the normalisation Google's
weights were trained with.

Note: these are torchvision's ImageNet weights. FID implementations (pytorch-fid,
torch-fidelity, clean-fid) use the 2015 TensorFlow "pt_inception" weights and their own
resizing, so their features and scores differ from these; the geometry (2048-d pool3) is the same.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rarity_score.features.base import TorchExtractor
from rarity_score.features.info import INCEPTION_V3_LAYERS, INCEPTION_V3_POOL3
from rarity_score.features.preprocess import INCEPTION_PREPROCESS
from rarity_score.features.weights import Checkpoint, load_checkpoint, resolve_checkpoint

__all__ = ["CHECKPOINT", "InceptionLayer", "build", "from_model", "weights_path"]

NAME = INCEPTION_V3_POOL3.name

#: torchvision's ``Inception_V3_Weights.IMAGENET1K_V1`` (checked against torchvision in a test).
CHECKPOINT = Checkpoint(
    file_name="inception_v3_google-0cc3c7bd.pth",
    url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
    label="torchvision Inception_V3_Weights.IMAGENET1K_V1",
)

#: torchvision's Inception3 layers in the order its forward pass runs them, up to the pool. The
#: auxiliary classifier only runs in training mode and is left out; a test checks the result
#: against torchvision's own forward pass.
_LAYERS = (
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "maxpool1",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "maxpool2",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
    "avgpool",
)


def _check_layer(layer: str) -> None:
    if layer not in INCEPTION_V3_LAYERS:
        raise ValueError(
            f"unknown Inception-V3 layer {layer!r}; known: {', '.join(INCEPTION_V3_LAYERS)}"
        )


class InceptionLayer(nn.Module):
    """A torchvision Inception3 cut at its average pool (``"pool3"``) or its fc layer
    (``"logits"``). Shares the model's layers (no copy)."""

    def __init__(self, inception: nn.Module, layer: str = "pool3") -> None:
        super().__init__()
        _check_layer(layer)
        self.inception = inception
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 299, 299) ImageNet-normalised -> (B, 2048) (pool3) or (B, 1000) (logits)."""
        model: Any = self.inception
        x = model._transform_input(x)  # identity unless the model has transform_input=True
        for name in _LAYERS:
            x = getattr(model, name)(x)
        x = torch.flatten(x, 1)
        if self.layer == "logits":
            x = model.fc(model.dropout(x))  # dropout: identity in eval mode, as in its forward
        return x


def from_model(
    inception: nn.Module, *, weights_id: str, device: str = "cpu", layer: str = "pool3"
) -> TorchExtractor:
    """Wrap a torchvision Inception3 (any weights) as the extractor of ``layer`` ("pool3":
    ``inception-v3-pool3``, "logits"). Build it with ``transform_input=True`` to match the
    pretrained model's input convention."""
    network = InceptionLayer(inception, layer)
    return TorchExtractor(
        INCEPTION_V3_LAYERS[layer],
        network,
        INCEPTION_PREPROCESS,
        weights_id=weights_id,
        device=device,
    )


def weights_path(weights: str | os.PathLike[str] | None = None, *, layer: str = "pool3") -> Path:
    """The weights file :func:`build` loads for ``layer``: ``weights``, else torch hub's copy,
    else a fresh download; the network is not built.

    Raises:
        ValueError: an unknown layer.
        WeightsUnavailable: offline without a local copy, or ``weights`` is not a file.
    """
    _check_layer(layer)
    return resolve_checkpoint(CHECKPOINT, weights, what=INCEPTION_V3_LAYERS[layer].name)


def build(
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
    layer: str = "pool3",
) -> TorchExtractor:
    """The Inception-V3 extractor of ``layer`` with torchvision's ImageNet weights (or the state
    dict at ``weights``).

    Raises:
        ValueError: an unknown layer.
        WeightsUnavailable: offline without a local copy, or a file that is not Inception-V3
            weights.
    """
    del input_size  # fixed at 299; the registry has checked it
    import torchvision

    path = weights_path(weights, layer=layer)  # the layer checked before any file is read
    what = INCEPTION_V3_LAYERS[layer].name
    model, weights_id = load_checkpoint(
        path,
        # As torchvision's builder does for these weights: aux_logits (their keys are in the
        # file), transform_input (the weights expect (x - 0.5) / 0.5 inputs).
        lambda: torchvision.models.inception_v3(
            weights=None, aux_logits=True, transform_input=True, init_weights=False
        ),
        what=what,
    )
    return from_model(model, weights_id=weights_id, device=device, layer=layer)
