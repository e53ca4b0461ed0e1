"""The one extractor class behind every registry entry and ``from_module``: a torch network, its
preprocessing, and its weights fingerprint."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rarity_score import _torch
from rarity_score.features.info import ExtractorInfo

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["TorchExtractor", "parse_device", "true_float32"]


def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, checked to exist here.

    Raises:
        ValueError: not a device name, or a CUDA device on a machine without (that many) GPUs.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"not a torch device: {device!r} (try 'cpu', 'cuda', 'cuda:1')") from error
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(parsed)!r} asked for, but CUDA is not available here")
        index = parsed.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(parsed)!r} asked for, but there are only "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    return parsed


def true_float32() -> contextlib.AbstractContextManager[None]:
    """Run convolutions and matrix products in true float32 (no TF32 on CUDA, no bf16 on CPUs
    that have it), restoring the caller's settings afterwards.

    TF32 keeps a 10-bit mantissa: features would then depend on the GPU generation at the 1e-3
    level, and the k-NN radii built on them with it.
    """
    return _torch.true_float32(torch, convolutions=True)


class TorchExtractor:
    """A :class:`~rarity_score.features.FeatureExtractor` around a torch network.

    The network is put in eval mode (dropout is identity, batch norm uses its running
    statistics) with gradients off, and runs under ``torch.no_grad``. Features come back
    as float32 ``(B, info.dim)`` on the extractor's device.

    Determinism: preprocessing is exact and repeatable; the network's arithmetic is float32, and
    convolution or GEMM kernels may pick different algorithms (and summation orders) for
    different batch sizes or devices, so features can differ in their last bits across batch
    sizes on some backends (the pipeline's tests bound this at 1e-5). On CUDA, TF32 is switched
    off during the forward pass (see :func:`true_float32`).

    Attributes:
        info: the description (name, dim, layer, preprocessing, weights source).
        weights_id: fingerprint of the weights (sha256 prefix); part of the cache key.
        preprocess: the picklable, network-free image -> tensor function.
        network: the torch module that maps a preprocessed batch to features.
        device: where ``network`` lives and where features are returned.
        flatten: reshape the network's output to (B, -1) before checking it against
            ``info.dim`` (for user modules that end in a pool, giving (B, C, 1, 1)).
    """

    def __init__(
        self,
        info: ExtractorInfo,
        network: nn.Module | Callable[[torch.Tensor], Any],
        preprocess: Callable[[Image.Image], torch.Tensor],
        *,
        weights_id: str,
        device: str | torch.device = "cpu",
        flatten: bool = False,
    ) -> None:
        self.info = info
        self.weights_id = weights_id
        self.preprocess = preprocess
        self.network = network
        self.flatten = flatten
        self.device = parse_device(device)
        if isinstance(network, nn.Module):
            network.eval()
            network.requires_grad_(False)
            network.to(self.device)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.info.name!r}, dim={self.info.dim}, "
            f"device={str(self.device)!r}, weights_id={self.weights_id!r})"
        )

    def to(self, device: str | torch.device) -> TorchExtractor:
        """Move the network to ``device``; batches are moved there on each call."""
        self.device = parse_device(device)
        if isinstance(self.network, nn.Module):
            self.network.to(self.device)
        return self

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, dim) float32 features on the device.

        Raises:
            ValueError: the batch is not (B, 3, S, S) with S = ``info.input_size``.
            RuntimeError: the network returned something of another shape than (B, dim).
        """
        size = self.info.input_size
        if not isinstance(batch, torch.Tensor) or batch.ndim != 4 or batch.shape[1] != 3:
            shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise ValueError(
                f"{self.info.name}: expected a (B, 3, {size}, {size}) batch, got {shape}"
            )
        if not batch.is_floating_point():
            raise ValueError(
                f"{self.info.name}: expected a float batch from extractor.preprocess, got "
                f"{batch.dtype} (raw pixels?)"
            )
        if batch.shape[2] != size or batch.shape[3] != size:
            raise ValueError(
                f"{self.info.name}: expected {size}x{size} inputs (use extractor.preprocess), "
                f"got {batch.shape[2]}x{batch.shape[3]}"
            )
        n = batch.shape[0]
        if n == 0:
            return torch.empty((0, self.info.dim), dtype=torch.float32, device=self.device)
        if isinstance(self.network, nn.Module):
            # Cheap, and needed: a wrapper's own flag does not see .train() called on the model
            # it wraps, and train-mode dropout or batch norm would change the features.
            self.network.eval()
        # no_grad rather than inference_mode: callers may write into the returned tensor, which
        # inference tensors forbid outside inference mode; the speed difference is nil here.
        with torch.no_grad(), true_float32():
            out = self.network(batch.to(self.device, torch.float32))
            if not isinstance(out, torch.Tensor):
                raise RuntimeError(
                    f"{self.info.name}: the network returned a {type(out).__name__}, not a tensor"
                )
            if self.flatten:
                out = out.reshape(n, -1)
            if out.shape != (n, self.info.dim):
                raise RuntimeError(
                    f"{self.info.name}: the network returned shape {tuple(out.shape)}, "
                    f"expected ({n}, {self.info.dim})"
                )
            return out.to(device=self.device, dtype=torch.float32)
