"""Image -> network input: resize with PIL, scale to [0, 1], normalise per channel.

Pure and deterministic: the same image gives the same tensor bit for bit, in any process. The
object holds a few numbers only, so DataLoader workers receive it cheaply. torch, PIL and numpy
are imported inside ``__call__`` so that describing an extractor needs none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "CLIP_MEAN",
    "CLIP_PREPROCESS",
    "CLIP_STD",
    "DINOV2_PREPROCESS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INCEPTION_PREPROCESS",
    "VGG_PREPROCESS",
    "ImagePreprocess",
    "efficientnet_preprocess",
    "pixels_preprocess",
]

#: torchvision's ImageNet statistics (what its classification weights were trained with).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: OpenAI CLIP's statistics (open_clip's OPENAI_DATASET_MEAN / STD).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImagePreprocess:
    """RGB PIL image -> float32 tensor (3, size, size).

    Two geometries:

    - ``resize_to=None`` ("squash"): resize straight to ``size x size`` with PIL bicubic; the
      aspect ratio is not kept and nothing is cropped (the paper's VGG16 preprocessing).
    - ``resize_to=R``: resize the shorter side to ``R`` with PIL bicubic (the longer side to
      ``int(R * long / short)``, as torchvision's ``Resize(R)``), then crop the central
      ``size x size``, its offsets rounded as torchvision's ``CenterCrop`` does
      (``floor_crop=False``, open_clip's way) or floored (``floor_crop=True``, the way of
      transformers' image processors). This is what the CLIP and DINOv2 ecosystems do at
      evaluation time.

    Then values are scaled to [0, 1] (``uint8 / 255`` in float32) and normalised as
    ``(x - mean) / std`` per channel, with the same float32 operations in the same order as
    ``torchvision.transforms.ToTensor`` followed by ``Normalize``, so the result equals that
    reference path bit for bit.

    Attributes:
        size: side of the output, in pixels.
        mean, std: per-channel normalisation, in [0, 1] units.
        resize_to: shorter-side target before a centre crop, or None to squash.
        floor_crop: floor the centre crop's offsets instead of rounding them.
        normalisation: words for ``mean``/``std`` in :meth:`describe` (e.g. "ImageNet mean/std").
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_to: int | None = None
    normalisation: str = ""
    floor_crop: bool = False

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        if self.resize_to is not None and self.resize_to < self.size:
            raise ValueError(f"resize_to ({self.resize_to}) must be at least size ({self.size})")

    def describe(self) -> str:
        """The preprocessing in words; names every setting, since it is part of the cache key."""
        if self.resize_to is None:
            geometry = f"PIL bicubic resize to {self.size}x{self.size} (no crop)"
        else:
            geometry = (
                f"PIL bicubic resize of the shorter side to {self.resize_to}, "
                f"centre crop {self.size}x{self.size}"
            )
            if self.floor_crop:
                geometry += " (offsets floored)"
        stats = (
            f"mean ({', '.join(f'{m:.8g}' for m in self.mean)}), "
            f"std ({', '.join(f'{s:.8g}' for s in self.std)})"
        )
        label = f"{self.normalisation}: " if self.normalisation else ""
        return f"{geometry}, [0, 1], {label}{stats}"

    def resize(self, image: Image.Image) -> Image.Image:
        """The geometric step alone: the RGB PIL image the network sees, before normalisation."""
        from PIL import Image

        if image.mode != "RGB":
            # The image loader already gives RGB; this keeps the function total for API users.
            image = image.convert("RGB")
        bicubic = Image.Resampling.BICUBIC
        if self.resize_to is None:
            return image.resize((self.size, self.size), bicubic)
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        scaled_long = int(self.resize_to * long / short)
        new = (self.resize_to, scaled_long) if width <= height else (scaled_long, self.resize_to)
        if new != image.size:
            image = image.resize(new, bicubic)
        if self.floor_crop:
            left, top = (new[0] - self.size) // 2, (new[1] - self.size) // 2
        else:
            left, top = round((new[0] - self.size) / 2.0), round((new[1] - self.size) / 2.0)
        return image.crop((left, top, left + self.size, top + self.size))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image -> normalised float32 tensor (3, size, size)."""
        import numpy as np
        import torch

        pixels = np.array(self.resize(image), dtype=np.uint8, copy=True)  # (H, W, 3)
        x = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return x.sub_(mean).div_(std)


# ------------------------------------------------- the built-in extractors' recipes

#: The paper's preprocessing: PIL bicubic straight to 224x224, ImageNet statistics.
VGG_PREPROCESS = ImagePreprocess(224, IMAGENET_MEAN, IMAGENET_STD, normalisation="ImageNet")
#: Same recipe at Inception-V3's 299x299.
INCEPTION_PREPROCESS = ImagePreprocess(299, IMAGENET_MEAN, IMAGENET_STD, normalisation="ImageNet")
#: open_clip's evaluation transform for the OpenAI weights (shorter side 224, centre crop).
CLIP_PREPROCESS = ImagePreprocess(
    224, CLIP_MEAN, CLIP_STD, resize_to=224, normalisation="OpenAI CLIP"
)
#: The DINOv2 image processor's recipe (shorter side 256, centre crop 224 with floored offsets,
#: ImageNet statistics).
DINOV2_PREPROCESS = ImagePreprocess(
    224, IMAGENET_MEAN, IMAGENET_STD, resize_to=256, normalisation="ImageNet", floor_crop=True
)


def efficientnet_preprocess(size: int = 224) -> ImagePreprocess:
    """EfficientNet-Lite's input: ``(v - 127) / 128`` on 0-255 values, i.e. mean 127/255 and
    std 128/255 in [0, 1] units (TF's ``MEAN_RGB`` / ``STDDEV_RGB`` for the Lite models)."""
    return ImagePreprocess(
        size, (127 / 255,) * 3, (128 / 255,) * 3, normalisation="EfficientNet-Lite (v - 127) / 128"
    )


def pixels_preprocess(size: int = 32) -> ImagePreprocess:
    """The ``pixels`` space's input: PIL bicubic to ``size x size``, ``uint8 / 255``, nothing
    else (mean 0, std 1: the subtraction and division are exact, so the values are the
    resized pixels in [0, 1])."""
    return ImagePreprocess(size, (0.0,) * 3, (1.0,) * 3, normalisation="not normalised")
