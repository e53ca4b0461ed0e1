"""``pixels``: the image itself as the feature vector, the baseline every learnt feature space
is judged against.

Each image is resized to ``S x S`` with PIL bicubic (no crop; default S = 32), its RGB values
scaled to [0, 1] (``uint8 / 255`` in float32, no normalisation), and flattened channel by
channel: the S*S red values row by row, then the green, then the blue (``x.reshape(B, -1)`` of
the ``(B, 3, S, S)`` batch), ``3 * S * S`` dimensions (3072 at 32). ``--input-size`` changes S,
and with it the dimension and the cache key. No network and no weights: it needs torch and
Pillow only, and its weights fingerprint is the fixed string ``"none"``.

Raw pixels are high-dimensional and dominated by low frequencies; ``pixels+pca64`` (see
:mod:`rarity_score.features.projection`) is the usual reduced form.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from rarity_score.features.base import TorchExtractor
from rarity_score.features.info import PIXELS, PIXELS_WEIGHTS_ID, pixels_info
from rarity_score.features.preprocess import pixels_preprocess

__all__ = ["Flatten", "build", "from_size", "weights_path"]

NAME = PIXELS.name


class Flatten(nn.Module):
    """(B, 3, S, S) -> (B, 3 * S * S), channel-major (the tensor's own memory order)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


def from_size(input_size: int = PIXELS.input_size, *, device: str = "cpu") -> TorchExtractor:
    """The ``pixels`` extractor at ``input_size`` (the side S of the resized image).

    Raises:
        ValueError: ``input_size`` under 1.
    """
    info = pixels_info(input_size)
    return TorchExtractor(
        info,
        Flatten(),
        pixels_preprocess(info.input_size),
        weights_id=PIXELS_WEIGHTS_ID,
        device=device,
    )


def weights_path(weights: str | os.PathLike[str] | None = None) -> None:
    """``pixels`` has no weights: None, or ValueError when ``weights`` is given (as
    :func:`build`)."""
    if weights is not None:
        raise ValueError(
            f"{NAME} has no network and no weights; drop --weights {os.fspath(weights)} "
            "(Python: weights=None)"
        )


def build(
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
) -> TorchExtractor:
    """The ``pixels`` extractor (the registry's builder).

    Raises:
        ValueError: ``weights`` given (pixels has none), or ``input_size`` under 1.
    """
    weights_path(weights)
    return from_size(PIXELS.input_size if input_size is None else int(input_size), device=device)
