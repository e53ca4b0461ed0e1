"""Weights: weights=PATH, torch hub's checkpoint folder ($TORCH_HOME), offline failure, bad
files, and the sha256 fingerprint. Uses a random Inception-V3 state dict that the test writes."""

from __future__ import annotations

import hashlib
import os
import urllib.error
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from rarity_score.features import WeightsUnavailable, get_extractor, inception  # noqa: E402
from rarity_score.features import weights as weights_module  # noqa: E402

NAME = "inception-v3-pool3"
FILE = "inception_v3_google-0cc3c7bd.pth"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A random-initialised Inception-V3 and its state dict saved with torch.save (~100 MB)."""
    torch.manual_seed(3)
    model = torchvision.models.inception_v3(
        weights=None, aux_logits=True, transform_input=True, init_weights=False
    ).eval()
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Makes torch hub's downloader fail as it does offline; records the URLs asked for."""
    asked: list[str] = []

    def offline(url: str, *args: object, **kwargs: object) -> None:
        asked.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return asked


def _same_weights(extractor: object, model: torch.nn.Module) -> None:
    """The extractor's network holds exactly the model's tensors (cheaper than forward passes)."""
    ours = extractor.network.inception.state_dict()  # type: ignore[attr-defined]
    theirs = model.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key


def test_weights_path(saved: tuple[torch.nn.Module, Path], no_download: list[str]) -> None:
    model, path = saved
    extractor = get_extractor(NAME, weights=path)
    assert extractor.weights_id == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    _same_weights(extractor, model)
    assert no_download == []
    # str paths and ~ work too
    assert get_extractor(NAME, weights=str(path)).weights_id == extractor.weights_id


def test_torch_home_checkpoint_folder(
    saved: tuple[torch.nn.Module, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_download: list[str],
) -> None:
    model, path = saved
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    assert weights_module.checkpoint_dir() == folder
    folder.mkdir(parents=True)
    os.link(path, folder / FILE)  # a second name for the same bytes: no 100 MB copy
    extractor = get_extractor(NAME)
    assert no_download == []
    assert extractor.weights_id == weights_module.weights_id_of_file(path)
    _same_weights(extractor, model)


def test_offline_without_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download: list[str]
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as caught:
        get_extractor(NAME)
    message = str(caught.value)
    assert no_download == [inception.CHECKPOINT.url]
    assert FILE in message
    assert inception.CHECKPOINT.url in message
    assert f"{tmp_path / 'hub' / 'checkpoints'}/" in message
    assert "TORCH_HOME" in message and "--weights PATH" in message
    assert "Temporary failure in name resolution" in message
    assert "\n" not in message


def test_download_goes_to_the_checkpoint_folder(
    saved: tuple[torch.nn.Module, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online: torch hub's downloader writes the published file name into the folder."""
    _, path = saved
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls: list[tuple[str, str, str | None]] = []

    def download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True):
        calls.append((url, dst, hash_prefix))
        os.link(path, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    target = tmp_path / "hub" / "checkpoints" / FILE
    assert weights_module.resolve_checkpoint(inception.CHECKPOINT, None, what=NAME) == target
    assert calls == [(inception.CHECKPOINT.url, str(target), "0cc3c7bd")]


def test_missing_file(tmp_path: Path, no_download: list[str]) -> None:
    missing = tmp_path / "nowhere" / "w.pth"
    with pytest.raises(WeightsUnavailable, match="not found") as caught:
        get_extractor(NAME, weights=missing)
    assert str(missing) in str(caught.value)


def test_unloadable_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="cannot load the weights file") as caught:
        get_extractor(NAME, weights=junk)
    assert str(junk) in str(caught.value)


def test_weights_of_another_model(tmp_path: Path) -> None:
    other = tmp_path / "tiny.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(WeightsUnavailable, match="does not hold weights for this model") as caught:
        get_extractor(NAME, weights=other)
    assert str(other) in str(caught.value)
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(WeightsUnavailable, match="not a state dict"):
        get_extractor(NAME, weights=not_a_dict)


def test_sha256_is_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    first = weights_module.file_sha256(path)
    assert first == hashlib.sha256(b"abc").hexdigest()
    assert weights_module.weights_id_of_file(path) == first[:16]
    path.write_bytes(b"abcd")  # new size: hashed again
    assert weights_module.file_sha256(path) == hashlib.sha256(b"abcd").hexdigest()


def test_half_precision_file_gives_float32(
    saved: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    model, _ = saved
    half = tmp_path / "half.pth"
    state = model.state_dict()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, half)
    extractor = get_extractor(NAME, weights=half)
    assert all(p.dtype == torch.float32 for p in extractor.network.parameters())
    with torch.inference_mode():
        assert extractor.network(torch.zeros(1, 3, 75, 75)).dtype == torch.float32
