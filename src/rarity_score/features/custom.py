"""A user's own network as a feature extractor (:func:`from_module`).

Importable without torch: torch is imported when ``from_module`` is called.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rarity_score._errors import require
from rarity_score.features.info import ExtractorInfo, FeatureExtractor

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["from_module", "state_dict_id"]


def state_dict_id(module: torch.nn.Module) -> str:
    """Fingerprint of a module's weights: sha256 (first 16 hex digits) over its class name and
    every state-dict entry's name, dtype, shape and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    digest.update(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for key, value in sorted(module.state_dict().items()):
        digest.update(b"\0" + key.encode())
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu").contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:  # extra state a module chose to store: its repr is all we can see
            digest.update(repr(value).encode())
    return digest.hexdigest()[:16]


def from_module(
    module: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    *,
    name: str,
    dim: int | None = None,
    input_size: int = 224,
    preprocessing: str | None = None,
    preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
    layer: str | None = None,
    device: str = "cpu",
) -> FeatureExtractor:
    """Use your own network as a feature extractor.

    Args:
        module: a ``torch.nn.Module`` or any callable mapping a float32 batch (B, 3, S, S) to
            features (B, D). Outputs with more dimensions, like (B, C, 1, 1) after a pool, are
            flattened per sample. A module is put in eval mode, with gradients off, and moved to
            ``device`` (it is used, not copied).
        name: the extractor's name in outputs and in the cache key; registry names are taken.
        dim: the feature dimension; None: found by one forward pass on a batch of zeros.
        input_size: side S of the square network input.
        preprocessing: words describing ``preprocess``; required with it, since it is part of
            the cache key. Without ``preprocess`` the default is used and described for you:
            PIL bicubic resize to S x S (no crop), ImageNet mean/std.
        preprocess: your own pure, deterministic RGB PIL image -> (3, S, S) float32 function
            (picklable if DataLoader workers are used).
        layer: words for the layer, shown by listings; default: the module's class name.
        device: where the network runs.

    The weights fingerprint (``weights_id``, part of the cache key) is a hash of the module's
    state dict, so changed weights mean fresh features. A plain callable has no state dict: its
    fingerprint is a hash of ``name`` and the callable's qualified name only, so the cache cannot
    see changes inside it. Use a new ``name`` (or ``cache_dir=False``) after changing it.

    Raises:
        ValueError: a registry name, a bad size, ``preprocessing`` without ``preprocess`` or the
            reverse, or a network whose output is not (B, ...) or does not match ``dim``.
    """
    require("torch", what="from_module")
    require("PIL", what="from_module", package="pillow")
    from torch import nn

    from rarity_score.features.base import TorchExtractor, parse_device
    from rarity_score.features.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess
    from rarity_score.features.registry import names

    if not isinstance(name, str) or not name.strip():
        raise ValueError("from_module needs a non-empty name")
    if name.strip().lower() in names():
        raise ValueError(f"{name!r} is the name of a registered extractor; choose another name")
    if not callable(module):
        raise TypeError(f"from_module needs a torch.nn.Module or a callable, got {type(module)!r}")
    size = int(input_size)
    if size < 1:
        raise ValueError(f"input_size must be positive, got {input_size}")
    if preprocess is None:
        if preprocessing is not None:
            raise ValueError(
                "preprocessing describes your own preprocess function: pass preprocess= as well "
                "(or neither, for the default)"
            )
        preprocess = ImagePreprocess(size, IMAGENET_MEAN, IMAGENET_STD, normalisation="ImageNet")
        text = preprocess.describe()
    else:
        if not preprocessing:
            raise ValueError(
                "a custom preprocess needs preprocessing= words describing it "
                "(they are part of the feature-cache key)"
            )
        text = preprocessing

    qualname = getattr(module, "__qualname__", None) or type(module).__qualname__
    if isinstance(module, nn.Module):
        weights_id = state_dict_id(module)
        kind = f"module {type(module).__qualname__}"
    else:
        seed = f"callable:{name}:{getattr(module, '__module__', '')}.{qualname}"
        weights_id = hashlib.sha256(seed.encode()).hexdigest()[:16]
        kind = f"callable {qualname}"

    parse_device(device)  # a clear error before the dry run touches the device
    if dim is None:
        dim = _infer_dim(module, size, device)
    if int(dim) < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    info = ExtractorInfo(
        name=name.strip(),
        dim=int(dim),
        layer=layer or f"output of the user's {kind}",
        preprocessing=text,
        input_size=size,
        weights=f"user-supplied {kind}",
        extra="images",
    )
    return TorchExtractor(
        info, module, preprocess, weights_id=weights_id, device=device, flatten=True
    )


def _infer_dim(module: Any, size: int, device: str) -> int:
    """Feature dimension from one forward pass on a (1, 3, size, size) batch of zeros."""
    import torch
    from torch import nn

    if isinstance(module, nn.Module):
        module.eval()
        module.to(device)
    with torch.inference_mode():
        out = module(torch.zeros((1, 3, size, size), dtype=torch.float32, device=device))
    if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the network must return a (B, D) tensor; on a (1, 3, {size}, {size}) batch it "
            f"returned {shape}"
        )
    return int(out[0].numel())
