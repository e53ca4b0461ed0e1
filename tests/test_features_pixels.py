"""pixels: the image itself, resized and flattened; values checked against PIL + numpy."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from rarity_score.features import FeatureExtractor, get_extractor, pixels, registry  # noqa: E402
from rarity_score.features.pipeline import ExtractionOptions, extract_features  # noqa: E402
from rarity_score.io.cache import cache_key  # noqa: E402


def _reference(image: Image.Image, size: int) -> np.ndarray:
    """The brief's recipe, independently: PIL bicubic to size x size, RGB / 255 in float32,
    channel by channel (all red values row by row, then green, then blue)."""
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    values = np.asarray(resized, dtype=np.float32) / np.float32(255)  # (S, S, 3)
    return np.concatenate([values[:, :, c].ravel() for c in range(3)])


def _photo(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_exact_values_of_a_known_image() -> None:
    """A 2x2 image at size 2 is not resampled: its features are its bytes / 255, in a known
    order."""
    pixels_2x2 = np.array(
        [[[255, 0, 10], [0, 51, 20]], [[102, 0, 30], [0, 0, 255]]], dtype=np.uint8
    )  # rows, columns, RGB
    extractor = get_extractor("pixels", input_size=2)
    batch = extractor.preprocess(Image.fromarray(pixels_2x2)).unsqueeze(0)
    features = extractor(batch)
    assert features.dtype == torch.float32 and features.shape == (1, 12)
    red, green, blue = [255, 0, 102, 0], [0, 51, 0, 0], [10, 20, 30, 255]
    expected = np.array(red + green + blue, dtype=np.float32) / np.float32(255)
    assert np.array_equal(features.numpy()[0], expected)
    assert features.min() >= 0 and features.max() == 1


@pytest.mark.parametrize(("size", "shape"), [(32, (45, 30)), (5, (7, 11)), (1, (3, 4))])
def test_resize_and_flatten_equal_pil_and_numpy(size: int, shape: tuple[int, int]) -> None:
    extractor = get_extractor("pixels", input_size=size)
    images = [_photo(*shape, seed=i) for i in range(3)] + [_photo(*shape, seed=9).convert("L")]
    batch = torch.stack([extractor.preprocess(im) for im in images])
    assert batch.shape == (4, 3, size, size)
    features = extractor(batch).numpy()
    assert features.shape == (4, 3 * size * size)
    for row, image in zip(features, images, strict=True):
        assert np.array_equal(row, _reference(image, size))


def test_dimension_and_cache_key_follow_the_input_size() -> None:
    default = get_extractor("pixels")
    assert isinstance(default, FeatureExtractor)
    assert default.info == registry.info("pixels")
    assert (default.info.dim, default.info.input_size, default.weights_id) == (3072, 32, "none")
    keys = set()
    for size in (8, 16, 32, 64):
        extractor = get_extractor("pixels", input_size=size)
        info = extractor.info
        assert (info.name, info.dim, info.input_size) == ("pixels", 3 * size * size, size)
        assert info == registry.info("pixels", input_size=size)
        assert f"{size}x{size}" in info.preprocessing and f"{size}x{size}" in info.layer
        keys.add(cache_key(info.name, info.preprocessing, extractor.weights_id, "sha256:00"))
    assert len(keys) == 4  # one cache entry per size
    assert (
        "bicubic" in default.info.preprocessing and "not normalised" in default.info.preprocessing
    )
    assert default.info.family == "pixels" and default.info.extra == "images"


def test_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="pixels has no network and no weights") as caught:
        get_extractor("pixels", weights="model.pth")
    assert "--weights model.pth" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="at least 1"):
        get_extractor("pixels", input_size=0)


def test_batch_checks_and_device() -> None:
    extractor = pixels.from_size(4)
    with pytest.raises(ValueError, match="4x4"):
        extractor(torch.zeros(1, 3, 5, 5))
    assert extractor(torch.zeros(0, 3, 4, 4)).shape == (0, 48)
    assert extractor.to("cpu") is extractor
    assert len(pickle.dumps(extractor.preprocess)) < 1000  # DataLoader workers get it cheaply


def test_through_the_pipeline(tmp_path: Path) -> None:
    """extract_features with --input-size: the same values, in the folder's order, cached under
    their own key."""
    folder = tmp_path / "images"
    folder.mkdir()
    images = {f"{i:02d}.png": _photo(9 + i, 6, seed=i) for i in range(5)}
    for name, image in images.items():
        image.save(folder / name)
    options = ExtractionOptions(
        extractor="pixels", input_size=6, cache_dir=tmp_path / "cache", progress=False
    )
    first = extract_features(folder, options)
    assert first.names == sorted(images)
    assert (first.extractor, first.dim, first.weights_id) == ("pixels", 108, "none")
    assert first.preprocessing == registry.info("pixels", input_size=6).preprocessing
    for row, name in zip(first.features, first.names, strict=True):
        assert np.array_equal(row, _reference(images[name], 6))
    again = extract_features(folder, options)  # from the cache
    assert np.array_equal(again.features, first.features)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    other = extract_features(folder, ExtractionOptions(**{**vars(options), "input_size": 3}))
    assert other.dim == 27
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # its own cache entry
