"""Hostile or careless image inputs: cache keys that must stand for the content, results
directories inside image folders, decompression bombs in archives, non-UTF-8 file names."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("torch")

from imagegen import encode, make_tar, solid
from pipeline_helpers import TinyExtractor, assert_same_features

from rarity_score.features.pipeline import extract_features
from rarity_score.io import images as images_module
from rarity_score.io.images import ImageInputError, UnreadableImage, open_images
from rarity_score.options import ExtractionOptions

QUIET = {"progress": False}


def _options(extractor: object, **fields: object) -> ExtractionOptions:
    return ExtractionOptions(extractor=extractor, **{**QUIET, **fields})  # type: ignore[arg-type]


MTIME_NS = 1_600_000_000 * 10**9  # what `tar --mtime` or `touch -d` gives every file


def _bmp(seed: int) -> bytes:
    """An uncompressed image: the same size whatever its colour."""
    return encode(solid(seed, (16, 16)), "BMP")


def _fresh(source: object) -> np.ndarray:
    return extract_features(source, _options(TinyExtractor(), cache_dir=False)).features


def _cached(source: object, cache: Path, extractor: TinyExtractor | None = None) -> np.ndarray:
    return extract_features(
        source, _options(extractor or TinyExtractor(), cache_dir=cache)
    ).features


def _folder(path: Path, seeds: list[int]) -> Path:
    path.mkdir(parents=True)
    for i, seed in enumerate(seeds):
        file = path / f"img_{i}.bmp"
        file.write_bytes(_bmp(seed))
        os.utime(file, ns=(MTIME_NS, MTIME_NS))
    return path


# ---------------------------------------------------------------------- the cache key


def test_folders_with_equal_names_sizes_and_times_do_not_share_features(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = _folder(tmp_path / "one", [1, 2, 3])
    other = _folder(tmp_path / "other", [4, 5, 6])
    assert open_images(one).fingerprint() == open_images(other).fingerprint()  # the trap
    _cached(one, cache)
    assert_same_features(_cached(other, cache), _fresh(other))
    assert not np.allclose(_fresh(one), _fresh(other))


def test_tar_archives_with_equal_member_metadata_do_not_share_features(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = make_tar(tmp_path / "one.tar", {"a.bmp": _bmp(1), "b.bmp": _bmp(2)})
    other = make_tar(tmp_path / "other.tar", {"a.bmp": _bmp(3), "b.bmp": _bmp(4)})
    _cached(one, cache)
    assert_same_features(_cached(other, cache), _fresh(other))


def _forge_crc(data: bytes, target: int, at: int) -> bytes:
    """``data`` with the 4 bytes at ``at`` changed so that its CRC-32 is ``target``.

    CRC-32 is affine over GF(2): flipping bits changes the CRC by the XOR of each flip's effect,
    so 32 independent flips solve for any target."""
    base = zlib.crc32(data)
    effects = []
    for bit in range(32):
        flipped = bytearray(data)
        flipped[at + bit // 8] ^= 1 << (bit % 8)
        effects.append(zlib.crc32(bytes(flipped)) ^ base)
    # Gaussian elimination: rows (effect, flip mask).
    rows = [(effect, 1 << bit) for bit, effect in enumerate(effects)]
    solved: list[tuple[int, int]] = []
    for pivot in range(32):
        index = next(i for i, (e, _) in enumerate(rows) if e >> pivot & 1)
        chosen = rows.pop(index)
        rows = [(e ^ chosen[0], m ^ chosen[1]) if e >> pivot & 1 else (e, m) for e, m in rows]
        solved = [(e ^ chosen[0], m ^ chosen[1]) if e >> pivot & 1 else (e, m) for e, m in solved]
        solved.append(chosen)
    want, mask = base ^ target, 0
    for effect, flips in solved:
        pivot = (effect & -effect).bit_length() - 1
        if want >> pivot & 1:
            want ^= effect
            mask ^= flips
    assert want == 0
    out = bytearray(data)
    for bit in range(32):
        if mask >> bit & 1:
            out[at + bit // 8] ^= 1 << (bit % 8)
    assert zlib.crc32(bytes(out)) == target
    return bytes(out)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


def test_zip_archives_with_equal_sizes_and_crcs_do_not_share_features(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = _bmp(1), _bmp(2)
    # Pixels (BMP keeps them raw from byte 54) changed so that the checksum equals the first's.
    forged = _forge_crc(second, zlib.crc32(first), at=60)
    one = _zip(tmp_path / "one.zip", {"a.bmp": first})
    other = _zip(tmp_path / "other.zip", {"a.bmp": forged})
    assert open_images(one).fingerprint() == open_images(other).fingerprint()  # the trap
    _cached(one, cache)
    assert_same_features(_cached(other, cache), _fresh(other))


def test_the_same_bytes_elsewhere_or_touched_still_hit_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = _folder(tmp_path / "one", [1, 2, 3])
    extractor = TinyExtractor()
    expected = _cached(one, cache, extractor)
    copy = tmp_path / "copy"
    shutil.copytree(one, copy, copy_function=shutil.copyfile)  # new dates
    os.utime(copy / "img_1.bmp", ns=(1, 1))
    seen = extractor.images
    np.testing.assert_array_equal(_cached(copy, cache, extractor), expected)
    assert extractor.images == seen  # a hit: same names, same bytes
    (copy / "img_1.bmp").write_bytes(_bmp(9))
    assert_same_features(_cached(copy, cache, extractor), _fresh(copy))
    assert extractor.images == seen + 3


def test_a_file_changed_after_hashing_is_not_read_as_the_hashed_one(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "one", [1, 2])
    images = open_images(folder)
    before = images.content_fingerprint()
    (folder / "img_1.bmp").write_bytes(_bmp(7))  # same size
    assert images.load(0).size == (16, 16)
    with pytest.raises(UnreadableImage, match="changed"):
        images.load(1)
    assert open_images(folder).content_fingerprint() != before


# ---------------------------------------------------------------------- results directories


def _results_dir(path: Path) -> Path:
    (path / "report" / "thumbs").mkdir(parents=True)
    (path / "run.json").write_text('{"format": "rarity-score/results", "format_version": 1}')
    for i in range(3):
        (path / "report" / "thumbs" / f"{i}.png").write_bytes(encode(solid(i), "PNG"))
    (path / "report" / "histogram.png").write_bytes(encode(solid(9), "PNG"))
    return path


def test_a_results_directory_inside_an_image_folder_is_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _folder(tmp_path / "images", [1, 2])
    _results_dir(folder / "out")
    _results_dir(folder / "nested" / "run-2")
    (folder / "nested" / "c.png").write_bytes(encode(solid(3), "PNG"))
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        names = open_images(folder).names
    assert names == ["img_0.bmp", "img_1.bmp", "nested/c.png"]
    (line,) = [r.getMessage() for r in caplog.records if "results" in r.getMessage()]
    assert "nested/run-2" in line and "out" in line
    # A marker of another format says nothing: such a folder is read.
    (folder / "other").mkdir()
    (folder / "other" / "run.json").write_text('{"format": "something-else"}')
    (folder / "other" / "d.png").write_bytes(encode(solid(4), "PNG"))
    assert "other/d.png" in open_images(folder).names


def test_a_results_directory_with_a_large_record_is_not_read(tmp_path: Path) -> None:
    """Thousands of skipped images make run.json larger than a marker is ever parsed."""
    folder = _folder(tmp_path / "images", [1, 2])
    out = _results_dir(folder / "out")
    record = {"format": "rarity-score/results", "skipped": [{"name": "x" * 200}] * 8000}
    (out / "run.json").write_text(json.dumps(record, indent=2))
    assert (out / "run.json").stat().st_size > 2**20
    assert open_images(folder).names == ["img_0.bmp", "img_1.bmp"]


def test_a_results_directory_given_as_the_image_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="results directory"):
        open_images(_results_dir(tmp_path / "out"))


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_results_directory_inside_an_archive_is_not_read(tmp_path: Path, kind: str) -> None:
    marker = b'{"format": "rarity-score/results"}'
    members = {
        "a.png": encode(solid(1), "PNG"),
        "out/run.json": marker,
        "out/report/histogram.png": encode(solid(2), "PNG"),
        "out/report/thumbs/0.png": encode(solid(3), "PNG"),
    }
    if kind == "zip":
        path = _zip(tmp_path / "images.zip", members)
        root = _zip(tmp_path / "results.zip", {"run.json": marker, "x.png": members["a.png"]})
    else:
        path = make_tar(tmp_path / "images.tar.gz", members, "w:gz")
        root = make_tar(tmp_path / "results.tar", {"run.json": marker, "x.png": members["a.png"]})
    assert open_images(path).names == ["a.png"]
    with pytest.raises(ImageInputError, match="results directory"):
        open_images(root)


# ---------------------------------------------------------------------- decompression bombs

BOMB = 64 * 2**20  # what the member inflates to; reading it whole would show in the peak
PEAK = 8 * 2**20  # a few times the header read


def _zeros(n: int) -> io.BufferedReader:
    class Zeros(io.RawIOBase):
        left = n

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            count = min(len(buffer), self.left)
            buffer[:count] = bytes(count)
            self.left -= count
            return count

    return io.BufferedReader(Zeros())


def _zip_bomb(path: Path, prefix: bytes = b"") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("real.png", encode(solid(1), "PNG"))
        with archive.open("bomb.png", "w", force_zip64=True) as member:
            member.write(prefix)
            shutil.copyfileobj(_zeros(BOMB), member, 2**20)
    return path


def _peak_of_load(images: object, index: int) -> tuple[int, str]:
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableImage) as error:
            images.load(index)  # type: ignore[attr-defined]
        return tracemalloc.get_traced_memory()[1], error.value.reason
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "prefix", [b"", encode(solid(2), "PNG"), b"II*\x00"], ids=["zeros", "png", "tiff"]
)
def test_a_zip_member_that_inflates_hugely_is_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: bytes
) -> None:
    # zeros; a real PNG with zeros after it; a TIFF whose header is not in the first bytes
    monkeypatch.setattr(images_module, "_UNCHECKED_BYTES", 16 * 2**20, raising=False)
    images = open_images(_zip_bomb(tmp_path / "bomb.zip", prefix))
    assert images.names == ["bomb.png", "real.png"]
    peak, reason = _peak_of_load(images, 0)
    assert peak < PEAK, f"{peak / 2**20:.0f} MiB held to refuse it ({reason})"
    assert images.load(1).size == (12, 8)


def test_a_huge_tar_member_and_a_huge_file_are_skipped_unread(tmp_path: Path) -> None:
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("bomb.png")
        info.size = BOMB
        archive.addfile(info, _zeros(BOMB))
        data = encode(solid(1), "PNG")
        info = tarfile.TarInfo("real.png")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    images = open_images(path)
    peak, _ = _peak_of_load(images, 0)
    assert peak < PEAK
    assert images.load(1).size == (12, 8)

    folder = tmp_path / "folder"
    folder.mkdir()
    with open(folder / "bomb.png", "wb") as file:
        file.write(encode(solid(3), "PNG"))
        file.truncate(BOMB)  # sparse: costs no disk
    peak, reason = _peak_of_load(open_images(folder), 0)
    assert peak < PEAK and "12 x 8" in reason


# ---------------------------------------------------------------------- non-UTF-8 names


def test_non_utf8_file_names_are_listed_loaded_and_cached(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/\xff.png"
    try:
        with open(raw, "wb") as file:
            file.write(encode(solid(1), "PNG"))
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    (folder / "b.png").write_bytes(encode(solid(2), "PNG"))
    images = open_images(folder)
    assert images.names == ["b.png", "\udcff.png"]
    assert all(isinstance(name, str) for name in images.names)
    assert images.load(1).size == (12, 8)
    cache = tmp_path / "cache"
    extractor = TinyExtractor()
    first = extract_features(folder, _options(extractor, cache_dir=cache))
    again = extract_features(folder, _options(extractor, cache_dir=cache))
    assert extractor.images == 2 and again.names == first.names == images.names

    tar = tmp_path / "names.tar"
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT, encoding="utf-8") as archive:
        data = encode(solid(3), "PNG")
        info = tarfile.TarInfo("\udcfe.png")  # written as the raw byte 0xfe
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    members = open_images(tar)
    assert members.names == ["\udcfe.png"] and members.load(0).size == (12, 8)

    # A zip name without the UTF-8 flag is cp437: byte 0x81 reads as "ü".
    path = _zip(tmp_path / "names.zip", {"X.png": encode(solid(4), "PNG")})
    path.write_bytes(path.read_bytes().replace(b"X.png", b"\x81.png"))
    members = open_images(path)
    assert members.names == ["\u00fc.png"] and members.load(0).size == (12, 8)


def test_a_huge_tar_extended_header_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "pax.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("././@PaxHeader")
        info.type = tarfile.XHDTYPE  # an extended header tarfile reads whole
        info.size = BOMB
        archive.addfile(info, _zeros(BOMB))
    tracemalloc.start()
    try:
        with pytest.raises(ImageInputError, match="extended header"):
            open_images(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK


# ---------------------------------------------------------------------- dimensions before work


def test_a_dimension_mismatch_is_refused_before_any_image_is_extracted(tmp_path, capsys):
    from cli_helpers import assert_one_line_error, run_cli

    from rarity_score.compare import compare

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        (folder / f"img_{i}.png").write_bytes(encode(solid(i, (16, 16)), "PNG"))
    fake = tmp_path / "fake.npy"
    np.save(fake, np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    extractor = TinyExtractor(dim=8)
    with pytest.raises(ValueError, match=r"dimensions differ.*3-dimensional.*8-dimensional"):
        options = ExtractionOptions(extractor=extractor, cache_dir=False)
        compare(folder, {"g": fake}, tmp_path / "out", extraction=options)
    assert extractor.images == 0  # refused before the first image
    # The command line, with a registry extractor whose weights are not even needed to know.
    result = run_cli(capsys, "score", "--real", folder, "--fake", fake, "--no-cache")
    assert_one_line_error(*result, "dimensions differ", "vgg16-fc2", "4096")


def test_a_compressed_tar_spools_only_its_images(tmp_path: Path, monkeypatch) -> None:
    """Members out of sorted order make the reader spool the stream for random access: only the
    image members are copied, never the non-images that a small archive can inflate to."""
    big = 64 * 2**20  # zeros: a few hundred KB compressed
    path = tmp_path / "mixed.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (("z.png", encode(solid(1), "PNG")), ("a.png", encode(solid(2), "PNG"))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
            if name == "z.png":
                info = tarfile.TarInfo("data.bin")
                info.size = big
                archive.addfile(info, io.BytesIO(bytes(big)))
    spools: list[object] = []
    temporary = images_module.tempfile.TemporaryFile

    def watched(*args, **kwargs):
        spools.append(temporary(*args, **kwargs))
        return spools[-1]

    monkeypatch.setattr(images_module.tempfile, "TemporaryFile", watched)
    collection = open_images(path)
    assert collection.names == ["a.png", "z.png"]
    loaded = [collection.load(i).getpixel((0, 0)) for i in range(len(collection))]
    assert loaded == [solid(2).getpixel((0, 0)), solid(1).getpixel((0, 0))]
    assert len(spools) == 1
    spools[0].seek(0, os.SEEK_END)  # type: ignore[attr-defined]
    assert spools[0].tell() < 2**20  # type: ignore[attr-defined]
    collection.close()
