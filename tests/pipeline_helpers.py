"""Stand-ins shared by the pipeline, cache and CLI tests: small image folders and a tiny extractor.

The tiny extractor is a fixed random convolution (seeded), so tests of the pipeline and the cache
need no weights and run in milliseconds; it counts its calls, so tests can tell whether the cache
was used.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rarity_score.features.info import ExtractorInfo


def write_images(
    folder: Path, n: int, *, size: int = 20, seed: int = 0, prefix: str = "img"
) -> list[str]:
    """Write ``n`` random RGB PNGs ``{prefix}_000.png``...; return their names in sorted order."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        name = f"{prefix}_{i:03d}.png"
        Image.fromarray(pixels).save(folder / name)
        names.append(name)
    return sorted(names)


def write_bad_images(folder: Path) -> dict[str, str]:
    """Zero-byte, corrupt and truncated image files; returns name -> kind."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.jpg").write_bytes(np.random.default_rng(1).bytes(300))
    Image.fromarray(np.full((32, 32, 3), 7, dtype=np.uint8)).save(folder / "whole.png")
    data = (folder / "whole.png").read_bytes()
    (folder / "whole.png").unlink()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return {"empty.png": "zero bytes", "garbage.jpg": "corrupt", "truncated.png": "truncated"}


class TinyExtractor:
    """A FeatureExtractor: bilinear resize to ``size``, a seeded random 3x3 conv, ReLU, mean pool.

    ``calls`` / ``images`` count forward passes and images seen; ``delay`` seconds of sleep per
    batch make runs slow enough to kill half-way.
    """

    def __init__(
        self,
        *,
        dim: int = 8,
        size: int = 16,
        name: str = "tiny",
        preprocessing: str = "bilinear 16x16, /255",
        seed: int = 0,
        delay: float = 0.0,
    ) -> None:
        import torch

        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(dim, 3, 3, 3, generator=generator)
        self.size = size
        self.delay = delay
        self.device = "cpu"
        self.info = ExtractorInfo(
            name=name,
            dim=dim,
            layer="random 3x3 conv, ReLU, mean pool",
            preprocessing=preprocessing,
            input_size=size,
            weights=f"random (seed {seed})",
            extra="images",
        )
        self.weights_id = f"seed-{seed}"
        self.calls = 0
        self.images = 0

    def preprocess(self, image):
        import torch
        from PIL import Image

        image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def __call__(self, batch):
        import torch

        self.calls += 1
        self.images += int(batch.shape[0])
        if self.delay:
            time.sleep(self.delay)
        out = torch.nn.functional.conv2d(batch, self.weight.to(batch.device))
        return torch.relu(out).mean(dim=(2, 3))

    def to(self, device):
        self.device = device
        return self


def assert_same_features(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32 rounding of the network's kernels, which depends on the batch size
    (oneDNN picks kernels by shape): rtol 1e-5 with an absolute floor of 1e-5 of the scale."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    scale = float(np.abs(expected).max()) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)
