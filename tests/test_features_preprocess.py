"""Preprocessing: equal to the reference PIL -> tensor paths, deterministic, picklable."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transforms = pytest.importorskip("torchvision.transforms")
Image = pytest.importorskip("PIL.Image")

from rarity_score.features import preprocess as recipes  # noqa: E402
from rarity_score.features.preprocess import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocess,
)


def _image(width: int = 173, height: int = 121, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients plus noise, not square."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def test_vgg_preprocessing_equals_reference_path() -> None:
    image = _image()
    reference = transforms.Compose(
        [
            transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )(image)
    ours = recipes.VGG_PREPROCESS(image)
    assert ours.dtype == torch.float32 and ours.shape == (3, 224, 224)
    assert torch.equal(ours, reference)
    # and the same as plain PIL bicubic + numpy, the paper's recipe
    pixels = np.asarray(image.resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32)
    manual = (pixels / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(ours.numpy(), manual.transpose(2, 0, 1), atol=1e-6)


@pytest.mark.parametrize("size", [(173, 121), (121, 173), (224, 224), (640, 427)])
def test_shorter_side_and_centre_crop_equal_torchvision(size: tuple[int, int]) -> None:
    image = _image(*size)
    recipe = ImagePreprocess(224, IMAGENET_MEAN, IMAGENET_STD, resize_to=256)
    reference = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )(image)
    assert torch.equal(recipe(image), reference)


def test_floor_crop_offsets() -> None:
    image = _image(640, 427)  # 427 -> 256, 640 -> 383: 159 spare columns, offset 79 or 80
    rounded = ImagePreprocess(224, (0.0,) * 3, (1.0,) * 3, resize_to=256).resize(image)
    floored = ImagePreprocess(224, (0.0,) * 3, (1.0,) * 3, resize_to=256, floor_crop=True)
    resized = image.resize((383, 256), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(floored.resize(image)), np.asarray(resized)[16:240, 79:303])
    assert np.array_equal(np.asarray(rounded), np.asarray(resized)[16:240, 80:304])
    assert "floored" in floored.describe()


def test_deterministic_pure_and_picklable() -> None:
    image = _image()
    before = np.asarray(image).copy()
    recipe = recipes.efficientnet_preprocess(128)
    first, second = recipe(image), recipe(image)
    assert torch.equal(first, second)
    assert np.array_equal(np.asarray(image), before)  # the input is not modified
    clone = pickle.loads(pickle.dumps(recipe))
    assert clone == recipe and torch.equal(clone(image), first)
    assert len(pickle.dumps(recipe)) < 1000


def test_non_rgb_input_is_converted() -> None:
    gray = _image().convert("L")
    out = recipes.VGG_PREPROCESS(gray)
    assert out.shape == (3, 224, 224)
    assert torch.equal(out, recipes.VGG_PREPROCESS(gray.convert("RGB")))


def test_efficientnet_normalisation_maps_to_minus_one_one() -> None:
    black = Image.new("RGB", (50, 40), (0, 0, 0))
    white = Image.new("RGB", (50, 40), (255, 255, 255))
    recipe = recipes.efficientnet_preprocess(112)
    assert recipe(black).shape == (3, 112, 112)
    np.testing.assert_allclose(recipe(black).numpy(), -127 / 128, rtol=1e-6)
    np.testing.assert_allclose(recipe(white).numpy(), 128 / 128, rtol=1e-6)
    assert "112x112" in recipe.describe()


def test_bad_sizes() -> None:
    with pytest.raises(ValueError):
        ImagePreprocess(0, IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(ValueError):
        ImagePreprocess(224, IMAGENET_MEAN, IMAGENET_STD, resize_to=200)


@pytest.mark.parametrize("size", [1, 7, 32])
def test_pixels_preprocessing_is_the_resized_image_in_0_1(size: int) -> None:
    """pixels: bicubic resize, ToTensor, nothing else (mean 0 and std 1 change no bit)."""
    image = _image()
    reference = transforms.Compose(
        [
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
        ]
    )(image)
    ours = recipes.pixels_preprocess(size)(image)
    assert ours.dtype == torch.float32 and ours.shape == (3, size, size)
    assert torch.equal(ours, reference)
    assert f"{size}x{size}" in recipes.pixels_preprocess(size).describe()
    assert (
        recipes.pixels_preprocess(size).describe() != recipes.pixels_preprocess(size + 1).describe()
    )
