"""VGG16's layers (vgg16-fc2, the paper's; vgg16-fc1; vgg16-pool5), checked against torchvision's
VGG16 (random weights)."""

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


def test_fc1_and_pool5(model: torch.nn.Module, images: list[Image.Image]) -> None:
    """fc1 after its ReLU and the flattened pool5, each equal to the activation inside
    torchvision's own forward pass (one forward, hooks on the ReLU after fc1 and on the last
    max pool)."""
    fc1 = vgg.from_model(model, weights_id="random", layer="fc1")
    pool5 = vgg.from_model(model, weights_id="random", layer="pool5")
    assert (fc1.info.name, fc1.info.dim) == ("vgg16-fc1", 4096)
    assert (pool5.info.name, pool5.info.dim) == ("vgg16-pool5", 25088)
    batch = torch.stack([fc1.preprocess(im) for im in images])
    assert torch.equal(batch, torch.stack([pool5.preprocess(im) for im in images]))

    assert isinstance(model.classifier[1], torch.nn.ReLU)
    assert isinstance(model.features[-1], torch.nn.MaxPool2d)
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.classifier[1].register_forward_hook(lambda m, i, o: seen.update(fc1=o.clone())),
        model.features[-1].register_forward_hook(lambda m, i, o: seen.update(pool5=o.clone())),
    ]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    assert seen["pool5"].shape == (2, 512, 7, 7)  # at 224x224 the adaptive pool keeps 7x7
    torch.testing.assert_close(pool5(batch), torch.flatten(seen["pool5"], 1), rtol=0, atol=0)
    features = fc1(batch)
    torch.testing.assert_close(features, seen["fc1"], rtol=0, atol=0)
    assert features.shape == (2, 4096) and features.min() >= 0
    with torch.no_grad():  # and as the brief writes it: classifier[:2] on the flattened pool
        expected = model.classifier[:2](torch.flatten(model.avgpool(model.features(batch)), 1))
    torch.testing.assert_close(features, expected, rtol=0, atol=0)


def test_unknown_layer(model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="unknown VGG16 layer 'fc3'; known: fc2, fc1, pool5"):
        vgg.from_model(model, weights_id="random", layer="fc3")
    with pytest.raises(ValueError, match="unknown VGG16 layer"):
        vgg.build(layer="conv5")  # before any weights are looked for


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

    # The registry hands each name's layer to the family: the same file, another layer.
    pool5 = get_extractor("vgg16-pool5", weights=path)
    assert (pool5.info.name, pool5.weights_id) == ("vgg16-pool5", extractor.weights_id)
    assert pool5.network.layer == "pool5" and len(pool5.network.head) == 0
    fc1 = get_extractor("vgg16-fc1", weights=path)
    assert fc1.network.layer == "fc1" and len(fc1.network.head) == 2
    assert loaded == [path] * 3


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
    with pytest.raises(WeightsUnavailable, match=r"^vgg16-pool5: "):  # names the layer asked for
        get_extractor("vgg16-pool5")
