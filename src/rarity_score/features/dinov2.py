"""DINOv2 ViT-L/14's layers, loaded with Hugging Face transformers (extra ``dinov2``):
``dinov2-vitl14``, the class token, and ``dinov2-vitl14-meanpatch``, the mean patch token.

``dinov2-vitl14`` is ``Dinov2Model(...).pooler_output``: the class token of the last layer after
the final layer norm (what DINOv2's own code calls ``x_norm_clstoken``), 1024-d.
``dinov2-vitl14-meanpatch`` is the mean over the patch tokens of the same normalised last layer,
``last_hidden_state[:, 1:].mean(1)`` (``x_norm_patchtokens`` averaged; ``Dinov2Model`` has no
register tokens, so everything after the class token is a patch), 1024-d.

Input, for both: the recipe of the model's image processor (``BitImageProcessor``: PIL bicubic
resize of the shorter side to 256, centre crop 224x224 with floored offsets, ImageNet mean/std),
as a pure function; it agrees with transformers' own processor to within one grey level on under
1 % of pixels (their resize rounds slightly differently). The model interpolates its position
embeddings to the 16x16 patch grid.

Weights: ``weights=PATH`` (a folder written by ``save_pretrained`` or a hub snapshot, with
``config.json`` and ``model.safetensors``; or a single ``model.safetensors`` / state-dict file of
``facebook/dinov2-large``), else transformers' usual source, the Hugging Face hub repository
``facebook/dinov2-large``, cached under ``$HF_HUB_CACHE`` (``~/.cache/huggingface/hub``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rarity_score._errors import WeightsUnavailable, require
from rarity_score.features.base import TorchExtractor
from rarity_score.features.info import DINOV2_VITL14, DINOV2_VITL14_LAYERS
from rarity_score.features.preprocess import DINOV2_PREPROCESS
from rarity_score.features.weights import (
    cached_hub_files,
    hub_unreachable,
    load_state_dict,
    quiet_hub,
    weights_id_of_file,
)

__all__ = [
    "HF_REPO",
    "Dinov2Layer",
    "build",
    "from_model",
    "large_config",
    "resolve_weights",
    "weights_path",
]

NAME = DINOV2_VITL14.name
HF_REPO = "facebook/dinov2-large"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: The files of the hub repository that are fetched (and looked for in the cache).
_HUB_FILES = ("config.json", "model.safetensors")


def _check_layer(layer: str) -> None:
    if layer not in DINOV2_VITL14_LAYERS:
        raise ValueError(
            f"unknown DINOv2 layer {layer!r}; known: {', '.join(DINOV2_VITL14_LAYERS)}"
        )


class Dinov2Layer(nn.Module):
    """A transformers ``Dinov2Model`` returning its normalised class token (``"cls"``) or the
    mean of its normalised patch tokens (``"meanpatch"``)."""

    def __init__(self, model: nn.Module, layer: str = "cls") -> None:
        super().__init__()
        _check_layer(layer)
        self.model = model
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) -> (B, hidden_size)."""
        out = self.model(pixel_values=x)
        if self.layer == "cls":
            cls: torch.Tensor = out.pooler_output
            return cls
        # last_hidden_state has been through the final layer norm (as pooler_output has).
        patches: torch.Tensor = out.last_hidden_state[:, 1:]
        return patches.mean(dim=1)


def large_config() -> Any:
    """transformers' ``Dinov2Config`` of ``facebook/dinov2-large`` (ViT-L/14), for loading a
    bare weights file without its config.json."""
    transformers = require("transformers", what=NAME, extra="dinov2")
    return transformers.Dinov2Config(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        layerscale_value=1.0,
        layer_norm_eps=1e-6,
    )


def from_model(
    model: nn.Module, *, weights_id: str, device: str = "cpu", layer: str = "cls"
) -> TorchExtractor:
    """Wrap a transformers ``Dinov2Model`` (any size or weights) as the extractor of ``layer``
    ("cls": ``dinov2-vitl14``, "meanpatch": ``dinov2-vitl14-meanpatch``)."""
    network = Dinov2Layer(model, layer)
    info = DINOV2_VITL14_LAYERS[layer]
    dim = int(getattr(getattr(model, "config", None), "hidden_size", info.dim))
    return TorchExtractor(
        dataclasses.replace(info, dim=dim),
        network,
        DINOV2_PREPROCESS,
        weights_id=weights_id,
        device=device,
    )


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _weights_in(folder: Path) -> Path | None:
    return next((folder / n for n in _WEIGHT_FILES if (folder / n).is_file()), None)


def _unavailable(reason: str, what: str = NAME) -> str:
    return (
        f"{what}: cannot get the DINOv2 weights from the Hugging Face hub repository {HF_REPO} "
        f"({reason}). Without internet, download config.json and model.safetensors from "
        f"https://huggingface.co/{HF_REPO} on another machine into one folder and pass "
        f"--weights FOLDER (Python: weights=FOLDER), or copy that machine's Hugging Face cache "
        f"into {_hub_cache()}/ (set HF_HOME or HF_HUB_CACHE to move it)."
    )


def resolve_weights(weights: str | os.PathLike[str] | None, what: str = NAME) -> Path:
    """A folder with ``config.json`` and weights, or a single weights file (``what`` names the
    extractor in messages).

    Raises:
        WeightsUnavailable: ``weights`` is neither, or nothing is cached and the hub cannot be
            reached (found out with one request: no retries, no log lines), or the download
            fails.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        if path.is_dir() and _weights_in(path) and (path / "config.json").is_file():
            return path
        raise WeightsUnavailable(
            f"{what}: --weights {path} is neither a weights file nor a folder with config.json "
            f"and {' or '.join(_WEIGHT_FILES)} (as written by save_pretrained)"
        )
    require("huggingface_hub", what=what, package="huggingface-hub", extra="dinov2")
    import huggingface_hub

    # A cached snapshot is used without asking the hub; with nothing cached, one request tells
    # whether the hub can be reached before the download retries for a minute.
    config, model_file = cached_hub_files(HF_REPO, _HUB_FILES)
    if config is not None and model_file is not None and config.parent == model_file.parent:
        return config.parent
    unreachable = hub_unreachable(HF_REPO, "config.json")
    if unreachable is not None:
        raise WeightsUnavailable(
            _unavailable(f"not cached, and the hub cannot be reached: {unreachable}", what)
        )
    try:
        with quiet_hub():
            folder = huggingface_hub.snapshot_download(HF_REPO, allow_patterns=list(_HUB_FILES))
    except Exception as error:  # connection, hub and file errors alike: no weights
        raise WeightsUnavailable(_unavailable(f"{type(error).__name__}: {error}", what)) from error
    path = Path(folder)
    if _weights_in(path) is None:
        raise WeightsUnavailable(f"{what}: the hub snapshot {path} holds no model.safetensors")
    return path


def weights_path(weights: str | os.PathLike[str] | None = None, *, layer: str = "cls") -> Path:
    """The weights (a folder or a file) :func:`build` loads for ``layer``
    (:func:`resolve_weights`); the network is not built.

    Raises:
        ValueError: an unknown layer.
        WeightsUnavailable: as :func:`resolve_weights`.
    """
    _check_layer(layer)
    return resolve_weights(weights, DINOV2_VITL14_LAYERS[layer].name)


def _load_file(path: Path, what: str) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as error:
            raise WeightsUnavailable(
                f"{what}: cannot load the weights file {path}: {type(error).__name__}: {error}"
            ) from error
    return load_state_dict(path, what=what)


def _load_strict(model: nn.Module, state: dict[str, Any], path: Path, what: str) -> None:
    """Load every tensor (``assign=True``: the model was built on the meta device), except that
    a missing ``embeddings.mask_token`` (used only for masked training inputs, never at
    inference) is allowed and left at zero."""
    if "embeddings.mask_token" not in state:
        config: Any = getattr(model, "config", None)
        hidden = int(config.hidden_size)
        state = {**state, "embeddings.mask_token": torch.zeros(1, hidden)}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines()[1:3]]
        raise WeightsUnavailable(
            f"{what}: the weights file {path} does not hold DINOv2 ViT-L/14 weights "
            f"({'; '.join(lines)})"
        ) from error
    model.float()


def build(
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    input_size: int | None = None,
    layer: str = "cls",
) -> TorchExtractor:
    """The DINOv2 ViT-L/14 extractor of ``layer`` ("cls": ``dinov2-vitl14``, "meanpatch")
    with ``facebook/dinov2-large`` (or the weights at ``weights``).

    Raises:
        ValueError: an unknown layer.
        WeightsUnavailable: offline without a cached copy, or weights that do not fit.
    """
    del input_size  # fixed at 224; the registry has checked it
    _check_layer(layer)
    what = DINOV2_VITL14_LAYERS[layer].name
    transformers = require("transformers", what=what, extra="dinov2")
    path = resolve_weights(weights, what)
    if path.is_dir():
        weights_file = _weights_in(path)
        assert weights_file is not None  # resolve_weights checked it
        try:
            model = transformers.Dinov2Model.from_pretrained(str(path), local_files_only=True)
        except Exception as error:
            raise WeightsUnavailable(
                f"{what}: cannot load DINOv2 weights from {path}: {type(error).__name__}: {error}"
            ) from error
    else:
        weights_file = path
        state = _load_file(path, what)
        # Hub files of Dinov2Model have bare keys; a checkpoint of a model with a head has them
        # under "dinov2.".
        if any(key.startswith("dinov2.") for key in state):
            state = {k[len("dinov2.") :]: v for k, v in state.items() if k.startswith("dinov2.")}
        # Built on the meta device (no time spent initialising 300M parameters); Dinov2Model
        # has no buffers, so every tensor comes from the file.
        with torch.device("meta"):
            model = transformers.Dinov2Model(large_config())
        _load_strict(model, state, path, what)
    return from_model(
        model, weights_id=weights_id_of_file(weights_file), device=device, layer=layer
    )
