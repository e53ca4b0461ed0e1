"""Inception-V3's layers: the 2048-d pool3 features and the 1000 logits, checked against
torchvision's forward pass (random weights)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")

from rarity_score.features import inception  # noqa: E402


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """Random weights, built as torchvision builds the pretrained model (transform_input)."""
    torch.manual_seed(0)
    # init_weights=False: PyTorch's default initialisation, quicker than torchvision's
    # truncated normal and just as random.
    return torchvision.models.inception_v3(
        weights=None, aux_logits=True, transform_input=True, init_weights=False
    ).eval()


def test_pool3_equals_torchvision_forward(model: torch.nn.Module) -> None:
    # The network is fully convolutional up to the adaptive pool: a 107x107 input (the
    # architecture's minimum is 75) checks the same layers at a sixth of the cost of 299x299.
    torch.manual_seed(2)
    batch = torch.randn(2, 3, 107, 107)
    extractor = inception.from_model(model, weights_id="random")
    with torch.inference_mode():
        features = extractor.network(batch)
    assert features.shape == (2, 2048)

    pooled: list[torch.Tensor] = []
    hook = model.avgpool.register_forward_hook(lambda m, i, o: pooled.append(o.clone()))
    try:
        with torch.no_grad():
            logits = model(batch)  # torchvision's own forward, transform_input included
    finally:
        hook.remove()
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(features, torch.flatten(pooled[0], 1), rtol=0, atol=0)
    # and the fc layer applied to our features gives torchvision's logits
    torch.testing.assert_close(model.fc(features), logits, rtol=1e-5, atol=1e-5)


def test_logits_equal_torchvision_forward(model: torch.nn.Module) -> None:
    """inception-v3-logits is torchvision's own eval-mode output: fc on pool3, no softmax."""
    torch.manual_seed(3)
    batch = torch.randn(2, 3, 107, 107)  # fully convolutional up to the pool: as above
    extractor = inception.from_model(model, weights_id="random", layer="logits")
    assert (extractor.info.name, extractor.info.dim) == ("inception-v3-logits", 1000)
    # At the extractor's 299x299 input, through its checked call, which puts the model in
    # eval mode (train mode would add the auxiliary output and switch dropout on).
    model.train()
    full = torch.randn(1, 3, 299, 299)
    features = extractor(full)
    assert not model.training
    with torch.no_grad():
        logits = model(full)
    assert isinstance(logits, torch.Tensor)  # eval mode: the logits alone, no aux logits
    torch.testing.assert_close(features, logits, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(extractor.network(batch), model(batch), rtol=0, atol=0)
    # pre-softmax: a row does not sum to one, and negative values occur
    assert features.min() < 0 and not torch.allclose(features.sum(1), torch.ones(1))


def test_unknown_layer(model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="unknown Inception-V3 layer 'mixed7c'; known: pool3"):
        inception.from_model(model, weights_id="random", layer="mixed7c")
    with pytest.raises(ValueError, match="unknown Inception-V3 layer"):
        inception.build(layer="fc")


def test_extractor_at_299(model: torch.nn.Module) -> None:
    rng = np.random.default_rng(2)
    image = Image.fromarray(rng.integers(0, 256, (150, 180, 3), dtype=np.uint8))
    extractor = inception.from_model(model, weights_id="random")
    batch = extractor.preprocess(image).unsqueeze(0)
    assert batch.shape == (1, 3, 299, 299)
    features = extractor(batch)
    assert features.shape == (1, 2048) and features.dtype == torch.float32
    with torch.inference_mode():
        torch.testing.assert_close(features, extractor.network(batch), rtol=0, atol=0)
    assert extractor.info.dim == 2048 and extractor.info.input_size == 299


def test_transform_input_is_applied(model: torch.nn.Module) -> None:
    """ImageNet-normalised input is re-mapped to (x - 0.5) / 0.5 before the first conv."""
    x = torch.rand(1, 3, 299, 299)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(model._transform_input((x - mean) / std), (x - 0.5) / 0.5)
