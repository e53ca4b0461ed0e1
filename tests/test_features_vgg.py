"""vgg16-fc2: the paper's layer, checked against torchvision's VGG16 (random weights)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")

from rarity_score.features import WeightsUnavailable, get_extractor, vgg  # noqa: E402
from rarity_score.features import weights as weights_module  # noqa: E402
from rarity_score.features.info import FeatureExtractor  # noqa: E402


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """One random-initialised VGG16 per module (138M parameters: build it once)."""
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in ((120, 160), (200, 90))
    ]


def test_layer_is_fc2_after_relu(model: torch.nn.Module, images: list[Image.Image]) -> None:
    extractor = vgg.from_model(model, weights_id="random")
    assert isinstance(extractor, FeatureExtractor)
    batch = torch.stack([extractor.preprocess(im) for im in images])
    features = extractor(batch)
    assert features.shape == (2, 4096) and features.dtype == torch.float32
    assert not features.requires_grad
    with torch.no_grad():
        expected = model.classifier[:5](torch.flatten(model.avgpool(model.features(batch)), 1))
    torch.testing.assert_close(features, expected, rtol=0, atol=0)
    # the same activation as inside torchvision's own forward pass: the ReLU after fc2
    assert isinstance(model.classifier[4], torch.nn.ReLU)
    seen: list[torch.Tensor] = []
    hook = model.classifier[4].register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    try:
        with torch.no_grad():
            model(batch)
    finally:
        hook.remove()
    torch.testing.assert_close(features, seen[0], rtol=0, atol=0)
    assert features.min() >= 0


def test_eval_mode_and_repeatable(model: torch.nn.Module, images: list[Image.Image]) -> None:
    extractor = vgg.from_model(model, weights_id="random")
    batch = extractor.preprocess(images[0]).unsqueeze(0)
    model.train()  # dropout would make two calls differ; the extractor runs in eval mode
    first, second = extractor(batch), extractor(batch)
    assert torch.equal(first, second)
    assert not model.classifier[2].training  # the dropout inside classifier[:5]
    assert extractor.to("cpu") is extractor and first.device.type == "cpu"
    assert extractor.info.name == "vgg16-fc2" and extractor.info.dim == 4096


def test_batch_shape_is_checked(model: torch.nn.Module) -> None:
    extractor = vgg.from_model(model, weights_id="random")
    with pytest.raises(ValueError, match="224x224"):
        extractor(torch.zeros(1, 3, 100, 100))
    with pytest.raises(ValueError, match=r"\(B, 3, 224, 224\)"):
        extractor(torch.zeros(3, 224, 224))
    assert extractor(torch.zeros(0, 3, 224, 224)).shape == (0, 4096)


def test_build_loads_a_weights_file(
    model: torch.nn.Module,
    tmp_path: Path,
    images: list[Image.Image],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """get_extractor's path for vgg16-fc2: resolve weights=PATH, fingerprint it, load strictly.

    Writing the 528 MB state dict would dominate the suite, so the file holds a stand-in and
    the loader hands back the fixture's state dict (the full file round trip is tested with
    Inception-V3 in test_features_weights.py).
    """
    import hashlib

    path = tmp_path / "my-vgg.pth"
    path.write_bytes(b"stand-in")
    loaded: list[Path] = []

    def fake_load(file: Path, *, what: str) -> dict:
        loaded.append(file)
        return model.state_dict()

    monkeypatch.setattr(weights_module, "load_state_dict", fake_load)
    extractor = get_extractor("vgg16-fc2", weights=path)
    assert loaded == [path]
    assert extractor.weights_id == hashlib.sha256(b"stand-in").hexdigest()[:16]
    batch = extractor.preprocess(images[1]).unsqueeze(0)
    with torch.no_grad():
        expected = model.classifier[:5](torch.flatten(model.avgpool(model.features(batch)), 1))
    torch.testing.assert_close(extractor(batch), expected, rtol=0, atol=0)


def test_offline_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as caught:
        get_extractor("vgg16-fc2")
    message = str(caught.value)
    assert "vgg16-397923af.pth" in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "--weights PATH" in message
    assert "\n" not in message
