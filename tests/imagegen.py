"""Small image files made by the tests: solid and patterned images, bad files, archives."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image


def colour(seed: int) -> tuple[int, int, int]:
    """A distinct, JPEG-friendly RGB colour for image number ``seed``."""
    rng = np.random.default_rng(seed)
    return tuple(int(v) for v in rng.integers(20, 236, size=3))  # type: ignore[return-value]


def solid(seed: int, size: tuple[int, int] = (12, 8)) -> Image.Image:
    """An RGB image of one colour (``size`` is width, height)."""
    return Image.new("RGB", size, colour(seed))


def noise(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """An RGB image of random pixels, which compresses badly (so truncation hits image data)."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3))
    return Image.fromarray(pixels.astype(np.uint8))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """The bytes of ``image`` saved in format ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def write(path: Path, data: bytes | Image.Image, fmt: str | None = None) -> Path:
    """Write bytes or an image (format from ``fmt`` or the extension), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, Image.Image):
        data = encode(data, fmt or Image.registered_extensions()[path.suffix.lower()])
    path.write_bytes(data)
    return path


def png_claiming_size(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (for the decompression guard)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    # IHDR data sits at bytes 16..29 (width, height, depth, ...), its CRC right after.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def bad_files() -> dict[str, bytes]:
    """File name -> content of files that must come out as UnreadableImage, by kind of damage."""
    png, jpeg = encode(noise(1), "PNG"), encode(noise(2), "JPEG", quality=95)
    return {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "corrupt.jpg": bytes(np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8)),
        "text.png": b"this is not an image\n",
        # A PNG whose compressed data is garbage: the header reads, decoding fails.
        "garbage-data.png": png[:60] + bytes(range(200)) + png[260:],
        # EPS would be handed to Ghostscript if every Pillow format were tried.
        "eps.png": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "bomb.png": png_claiming_size(15000, 15000),  # over Pillow's error limit
    }


def make_zip(path: Path, members: Mapping[str, bytes]) -> Path:
    """A zip archive with the members in the given order (names ending in / are folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def make_tar(
    path: Path,
    members: Mapping[str, bytes],
    mode: str = "w",
    links: Mapping[str, tuple[str, str]] | None = None,
) -> Path:
    """A tar archive (``mode`` "w", "w:gz", ...) with members in the given order, then links.

    ``links`` maps a member name to ("hard" or "sym", link target as stored in the archive).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as archive:
        for number, (name, data) in enumerate(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000 + number
            archive.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.LNKTYPE if kind == "hard" else tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return path


def png_rgb16(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG of the (H, W, 3) uint16 ``values`` (Pillow cannot write one)."""
    height, width, _ = values.shape
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + data))
        return struct.pack(">I", len(data)) + tag + data + crc

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # depth 16, colour type RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
