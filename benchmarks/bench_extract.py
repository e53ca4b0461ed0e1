"""Feature extraction throughput (images/s) of each extractor that runs offline, on this machine.

The whole pipeline is timed (PNG decoding, PIL resize, the network, float32 features out), with the
cache off and no progress bar. Then the cache: what a hit costs (hashing every image's bytes, which
the key stands for, and loading the features) against extracting, measured in the same run.
efficientnet-lite0 uses its shipped ImageNet weights; vgg16-fc2 and inception-v3-pool3 load a
randomly initialised weights file written here (the same network and the same arithmetic as the
real weights, which cannot be downloaded offline).

Usage: ``python benchmarks/bench_extract.py [--images 128] [--device cpu] [--batch-size 32]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from rarity_score.features import get_extractor
from rarity_score.features.pipeline import extract_features
from rarity_score.io.images import open_images
from rarity_score.options import ExtractionOptions


def write_images(folder: Path, count: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")


def random_weights(folder: Path, name: str) -> Path:
    """A torchvision state dict with random values, as the real file would be laid out."""
    builders = {
        "vgg16-fc2": lambda: torchvision.models.vgg16(),
        "inception-v3-pool3": lambda: torchvision.models.inception_v3(
            init_weights=False, aux_logits=True
        ),
    }
    path = folder / f"{name}.pth"
    torch.save(builders[name]().state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=256, help="edge of the test PNGs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    runs = [
        ("efficientnet-lite0", None, "shipped ImageNet weights"),
        ("efficientnet-lite0", 128, "shipped weights, 128 px input"),
        ("vgg16-fc2", None, "random weights file"),
        ("inception-v3-pool3", None, "random weights file"),
    ]
    print(
        f"{args.images} PNG images of {args.image_size}x{args.image_size}, device {args.device}, "
        f"batch {args.batch_size}, workers {args.workers}, torch threads {torch.get_num_threads()}"
    )
    print(f"\n{'extractor':22s}{'input':>7s}{'images/s':>10s}  weights")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        write_images(folder, args.images, args.image_size)
        for name, input_size, weights_note in runs:
            weights = None if name == "efficientnet-lite0" else random_weights(Path(scratch), name)
            extractor = get_extractor(
                name, weights=weights, device=args.device, input_size=input_size
            )
            options = ExtractionOptions(
                extractor=extractor,
                device=args.device,
                batch_size=args.batch_size,
                workers=args.workers,
                cache_dir=False,
                progress=False,
            )
            extract_features(folder, options)  # warm-up: first-call allocations
            started = time.perf_counter()
            result = extract_features(folder, options)
            seconds = time.perf_counter() - started
            size = extractor.info.input_size if input_size is None else input_size
            print(f"{name:22s}{size:>5d}px{len(result) / seconds:10.1f}  {weights_note}")
        cache_costs(folder, Path(scratch) / "cache", args)


def cache_costs(folder: Path, cache: Path, args: argparse.Namespace) -> None:
    """A cache hit against an extraction (efficientnet-lite0): the hit reads and hashes every
    image (the key is a SHA-256 of the bytes), then loads the stored features."""
    extractor = get_extractor("efficientnet-lite0", device=args.device)
    options = ExtractionOptions(
        extractor=extractor,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=False,
    )
    started = time.perf_counter()
    extract_features(folder, replace(options, cache_dir=False))
    extraction = time.perf_counter() - started
    extract_features(folder, replace(options, cache_dir=cache))  # fills the cache
    started = time.perf_counter()
    extract_features(folder, replace(options, cache_dir=cache))
    hit = time.perf_counter() - started
    started = time.perf_counter()
    open_images(folder).content_fingerprint()
    hashing = time.perf_counter() - started
    megabytes = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    print(f"\ncache (efficientnet-lite0, {megabytes:.0f} MB of PNG):")
    print(f"  extraction, no cache   {extraction:8.3f} s  1.000")
    print(f"  cache hit              {hit:8.3f} s  {hit / extraction:.3f}")
    print(f"  of which hashing       {hashing:8.3f} s  {hashing / extraction:.3f}")


if __name__ == "__main__":
    main()
