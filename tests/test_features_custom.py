"""from_module: a user's own torch module or callable as a feature extractor."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from rarity_score.features import FeatureExtractor, from_module  # noqa: E402
from rarity_score.features.custom import state_dict_id  # noqa: E402


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),  # (B, 8, 1, 1): flattened per sample
    )


def _image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))


def test_module() -> None:
    net = _net()
    extractor = from_module(net, name="my-net", input_size=32)
    assert isinstance(extractor, FeatureExtractor)
    info = extractor.info
    assert (info.name, info.dim, info.input_size) == ("my-net", 8, 32)
    assert "32x32" in info.preprocessing and "Sequential" in info.layer
    x = extractor.preprocess(_image()).unsqueeze(0)
    assert x.shape == (1, 3, 32, 32)
    with torch.no_grad():
        expected = net(x).flatten(1)
    torch.testing.assert_close(extractor(x), expected, rtol=0, atol=0)
    assert extractor.weights_id == state_dict_id(net)


def test_weights_id_follows_the_weights() -> None:
    a, b = _net(), _net()
    assert state_dict_id(a) == state_dict_id(b)
    with torch.no_grad():
        b[0].bias[0] += 1e-3
    assert state_dict_id(a) != state_dict_id(b)


def test_callable_and_explicit_dim() -> None:
    def mean_colour(batch: torch.Tensor) -> torch.Tensor:
        return batch.mean(dim=(2, 3))

    extractor = from_module(mean_colour, name="mean-colour", dim=3, input_size=16)
    x = extractor.preprocess(_image()).unsqueeze(0)
    torch.testing.assert_close(extractor(x), x.mean(dim=(2, 3)))
    other = from_module(mean_colour, name="mean-colour-2", input_size=16)
    assert other.info.dim == 3  # inferred
    assert other.weights_id != extractor.weights_id  # the name is all the cache can see


def test_wrong_dim_is_caught() -> None:
    extractor = from_module(_net(), name="liar", dim=5, input_size=32)
    with pytest.raises(RuntimeError, match="expected \\(1, 5\\)"):
        extractor(torch.zeros(1, 3, 32, 32))


def test_custom_preprocess_needs_words() -> None:
    def pre(image: Image.Image) -> torch.Tensor:
        return torch.zeros(3, 32, 32)

    with pytest.raises(ValueError, match="preprocessing= words"):
        from_module(_net(), name="n", input_size=32, preprocess=pre)
    with pytest.raises(ValueError, match="pass preprocess="):
        from_module(_net(), name="n", input_size=32, preprocessing="zeros")
    extractor = from_module(_net(), name="n", input_size=32, preprocess=pre, preprocessing="zeros")
    assert extractor.info.preprocessing == "zeros"
    assert torch.equal(extractor.preprocess(_image()), torch.zeros(3, 32, 32))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="registered extractor"):
        from_module(_net(), name="VGG16-fc2")
    with pytest.raises(ValueError, match="non-empty name"):
        from_module(_net(), name=" ")
    with pytest.raises(TypeError):
        from_module(42, name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must return a \\(B, D\\) tensor"):
        from_module(lambda batch: (batch, batch), name="pair", input_size=8)
