"""clip-vit-b32: wiring and dimension with a random-initialised open_clip ViT-B-32, open_clip's own
preprocessing, and the offline message."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
Image = pytest.importorskip("PIL.Image")

from rarity_score.features import WeightsUnavailable, clip, get_extractor  # noqa: E402
from rarity_score.features.preprocess import CLIP_MEAN, CLIP_PREPROCESS, CLIP_STD  # noqa: E402


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return open_clip.create_model(clip.MODEL, pretrained=None, force_quick_gelu=True).eval()


def _image(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(width * height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_embedding_equals_encode_image(model: torch.nn.Module) -> None:
    extractor = clip.from_model(model, weights_id="random")
    assert extractor.info.dim == 512 and extractor.info.extra == "clip"
    batch = torch.stack(
        [extractor.preprocess(_image(300, 200)), extractor.preprocess(_image(90, 120))]
    )
    assert batch.shape == (2, 3, 224, 224)
    features = extractor(batch)
    assert features.shape == (2, 512) and features.dtype == torch.float32
    with torch.no_grad():
        expected = model.encode_image(batch, normalize=False)
    torch.testing.assert_close(features, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", [(300, 200), (90, 120), (224, 224)])
def test_preprocessing_equals_open_clip(size: tuple[int, int]) -> None:
    theirs = open_clip.image_transform(
        224,
        is_train=False,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        resize_mode="shortest",
        interpolation="bicubic",
    )
    # the pretrained tag's own settings are the ones we rebuilt
    cfg = open_clip.get_pretrained_cfg(clip.MODEL, clip.TAG)
    assert (cfg["mean"], cfg["std"]) == (CLIP_MEAN, CLIP_STD)
    assert (cfg["interpolation"], cfg["resize_mode"], cfg["quick_gelu"]) == (
        "bicubic",
        "shortest",
        True,
    )
    image = _image(*size)
    extractor_preprocess = CLIP_PREPROCESS
    assert torch.equal(extractor_preprocess(image), theirs(image))


def test_offline_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> str:
        raise FileNotFoundError("Failed to download file (open_clip_pytorch_model.bin)")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", offline)
    # The hub answers the reachability check, then the download itself fails.
    monkeypatch.setattr(clip, "hub_unreachable", lambda *args: None)
    with pytest.raises(WeightsUnavailable) as caught:
        get_extractor("clip-vit-b32")
    message = str(caught.value)
    assert clip.HF_REPO in message and clip.HF_FILE in message
    assert "--weights PATH" in message and "HF_HUB_CACHE" in message
    from huggingface_hub import constants

    assert str(constants.HF_HUB_CACHE) in message


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="not found"):
        get_extractor("clip-vit-b32", weights=tmp_path / "nope.safetensors")


def test_build_wiring(
    model: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weights=PATH goes to open_clip as the checkpoint, with QuickGELU; the id is its sha256."""
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(b"stand-in for a 600 MB checkpoint")
    calls: list[tuple[str, dict]] = []

    def create_model(name: str, **kwargs: object) -> torch.nn.Module:
        calls.append((name, kwargs))
        return model

    monkeypatch.setattr(open_clip, "create_model", create_model)
    extractor = get_extractor("clip-vit-b32", weights=path)
    assert calls == [(clip.MODEL, {"pretrained": str(path), "force_quick_gelu": True})]
    assert extractor.weights_id == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert extractor.network.visual is model.visual

    def broken(name: str, **kwargs: object) -> torch.nn.Module:
        raise RuntimeError("Error(s) in loading state_dict for CLIP")

    monkeypatch.setattr(open_clip, "create_model", broken)
    with pytest.raises(WeightsUnavailable, match="cannot load") as caught:
        get_extractor("clip-vit-b32", weights=path)
    assert str(path) in str(caught.value)
