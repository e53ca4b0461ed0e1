"""Finding, fetching, fingerprinting and loading checkpoint files.

For torchvision's published weights the order is:

1. ``weights=PATH`` given: that state-dict file, and nothing else;
2. otherwise torch hub's checkpoint folder, ``torch.hub.get_dir()/checkpoints/<file>``
   (``$TORCH_HOME/hub/checkpoints`` when ``$TORCH_HOME`` is set, else
   ``~/.cache/torch/hub/checkpoints``), where torchvision itself keeps what it downloads;
3. otherwise a download into that folder with ``torch.hub.download_url_to_file``, checked
   against the sha256 prefix in the published file name. Without network this raises
   :class:`WeightsUnavailable`, naming the file, its URL, the folder, and ``--weights PATH``.

The weights fingerprint (``weights_id``, part of the feature-cache key) is the first 16 hex
digits of the file's sha256: content, not name, so a renamed or re-downloaded copy of the same
weights reuses the cache and a fine-tuned file with the published name does not. Hashing a
500 MB file takes about a second; it is done once per file and process (remembered by path,
size and modification time).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rarity_score._errors import WeightsUnavailable

if TYPE_CHECKING:
    import torch

__all__ = [
    "Checkpoint",
    "cached_hub_files",
    "checkpoint_dir",
    "file_sha256",
    "given_file",
    "hub_unreachable",
    "load_checkpoint",
    "load_into",
    "load_state_dict",
    "quiet_hub",
    "resolve_checkpoint",
    "weights_id_of_file",
]

_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()
_CHUNK = 8 * 2**20

#: The network type a family's builder makes (what :func:`load_checkpoint` hands back).
_Network = TypeVar("_Network", bound="torch.nn.Module")


@dataclass(frozen=True)
class Checkpoint:
    """A published weights file.

    Attributes:
        file_name: the published file name, e.g. ``"vgg16-397923af.pth"``.
        url: where it is published.
        label: the publisher's name for it, e.g. ``"torchvision VGG16_Weights.IMAGENET1K_V1"``.
    """

    file_name: str
    url: str
    label: str

    @property
    def hash_prefix(self) -> str | None:
        """The sha256 prefix torchvision puts in its file names (``vgg16-<prefix>.pth``)."""
        match = re.search(r"-([0-9a-f]{6,})\.", self.file_name)
        return match.group(1) if match else None


def checkpoint_dir() -> Path:
    """torch hub's checkpoint folder, read now (so a changed ``$TORCH_HOME`` counts)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, computed once per (path, size, mtime) in this process."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _HASH_LOCK:
        known = _HASH_CACHE.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(resolved, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _HASH_LOCK:
        _HASH_CACHE[key] = value
    return value


def weights_id_of_file(path: str | os.PathLike[str]) -> str:
    """The weights fingerprint of a checkpoint file: the first 16 hex digits of its sha256."""
    return file_sha256(path)[:16]


def _offline_message(what: str, checkpoint: Checkpoint, folder: Path, error: BaseException) -> str:
    return (
        f"{what}: cannot download the weights {checkpoint.file_name} ({checkpoint.label}) "
        f"from {checkpoint.url}: {error}. Without internet, copy that file into {folder}/ "
        f"(torch hub's checkpoint folder; set TORCH_HOME to move it), or pass "
        f"--weights PATH (Python: weights=PATH) with a copy of it."
    )


def _missing_file_message(what: str, path: Path) -> str:
    return f"{what}: weights file {path} not found (--weights PATH must name a state-dict file)"


def given_file(weights: str | os.PathLike[str], *, what: str) -> Path:
    """The state-dict file ``weights`` (``--weights PATH``), ``~`` expanded.

    Raises:
        WeightsUnavailable: it is not a file.
    """
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(_missing_file_message(what, path))
    return path


def resolve_checkpoint(
    checkpoint: Checkpoint,
    weights: str | os.PathLike[str] | None,
    *,
    what: str,
    progress: bool = True,
) -> Path:
    """The local file to load for ``checkpoint``: ``weights`` when given, else torch hub's copy,
    else a fresh download into torch hub's folder.

    Raises:
        WeightsUnavailable: ``weights`` is not a file, or the download fails (no network, a
            refused connection, a hash mismatch); the message says what to put where.
    """
    if weights is not None:
        return given_file(weights, what=what)
    folder = checkpoint_dir()
    path = folder / checkpoint.file_name
    if path.is_file():
        return path
    import torch.hub

    try:
        folder.mkdir(parents=True, exist_ok=True)
        # download_url_to_file writes to a temporary file and renames it when complete, so an
        # interrupted download never leaves a truncated checkpoint under the final name.
        torch.hub.download_url_to_file(
            checkpoint.url, str(path), hash_prefix=checkpoint.hash_prefix, progress=progress
        )
    except (urllib.error.URLError, OSError, RuntimeError, ValueError) as error:
        # URLError / socket errors (offline), OSError (read-only folder), RuntimeError (hash
        # mismatch from torch.hub): all mean "no usable weights"; say what to do about it.
        raise WeightsUnavailable(_offline_message(what, checkpoint, folder, error)) from error
    return path


def cached_hub_files(repo: str, filenames: Sequence[str]) -> list[Path | None]:
    """Where each of ``filenames`` of the Hugging Face hub repository ``repo`` lies in the local
    hub cache (``$HF_HUB_CACHE``), or None where it is not cached; looks at no network."""
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(repo, name) for name in filenames]
    # A str is a cached file; None or a "known not to exist" marker is not.
    return [Path(hit) if isinstance(hit, str) and Path(hit).is_file() else None for hit in found]


def hub_unreachable(repo: str, filename: str) -> str | None:
    """Why the Hugging Face hub cannot be reached now, or None when it answers.

    One request, no retries: offline, the hub's own download would retry for about a minute
    (and log every attempt) before failing; this tells in one try, so that a machine without
    internet gets its one-line error at once. ``HF_HUB_OFFLINE=1`` answers without any request.
    """
    import huggingface_hub
    from huggingface_hub import constants

    offline = getattr(huggingface_hub, "is_offline_mode", None)
    if offline() if offline is not None else constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub.utils import get_session

    url = huggingface_hub.hf_hub_url(repo, filename)
    try:
        # Any HTTP answer, even an error status, means the hub is reachable; the download then
        # reports what it finds.
        get_session().head(url, timeout=float(constants.HF_HUB_ETAG_TIMEOUT))
    except Exception as error:  # DNS, connection, TLS and timeout errors of any HTTP library
        return f"{type(error).__name__}: {error}"
    return None


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """Hold back the Hugging Face libraries' own warnings (retries, fallbacks) while weights are
    fetched: a failure is reported once, by the caller, as one line."""
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def load_state_dict(path: Path, *, what: str) -> dict[str, Any]:
    """``torch.load`` a state-dict file on the CPU, with tensors only (``weights_only=True``).

    Raises:
        WeightsUnavailable: missing, unreadable, or not a state dict; the message names the file.
    """
    import torch

    if not path.is_file():
        raise WeightsUnavailable(_missing_file_message(what, path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and format errors all mean "not loadable"
        raise WeightsUnavailable(
            f"{what}: cannot load the weights file {path}: {type(error).__name__}: {error}"
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # training checkpoints often wrap the weights
    if not isinstance(state, dict):
        raise WeightsUnavailable(
            f"{what}: the weights file {path} holds a {type(state).__name__}, not a state dict"
        )
    return state


def load_into(
    model: torch.nn.Module, state: dict[str, Any], path: Path, *, what: str
) -> torch.nn.Module:
    """Load ``state`` into ``model`` strictly, replacing its tensors (``assign=True``, so a
    model built on the meta device costs no initialisation), then make every floating-point
    tensor float32 (a half-precision file still gives float32 features).

    Raises:
        WeightsUnavailable: the keys or shapes do not match; the message names the file.
    """
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        detail = str(error).strip().splitlines()
        summary = "; ".join(line.strip() for line in detail[1:4]) or str(error)
        raise WeightsUnavailable(
            f"{what}: the weights file {path} does not hold weights for this model ({summary})"
        ) from error
    return model.float()


def load_checkpoint(
    path: Path, build: Callable[[], _Network], *, what: str
) -> tuple[_Network, str]:
    """The network ``build()`` makes, filled strictly from the state-dict file at ``path``
    (:func:`load_state_dict`, then :func:`load_into`), and the file's weights fingerprint.

    The network is built on the meta device: no time is spent initialising parameters (138M
    for VGG16) that the checkpoint replaces at once.

    Raises:
        WeightsUnavailable: the file is missing, unreadable, or not weights for this network.
    """
    import torch

    state = load_state_dict(path, what=what)
    with torch.device("meta"):
        model = build()
    load_into(model, state, path, what=what)
    return model, weights_id_of_file(path)
