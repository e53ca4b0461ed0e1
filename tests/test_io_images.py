"""Images in (rarity_score.io.images): every input kind, order, colour modes, bad files, pickling,
arrays and fingerprints. Every file is made by the tests (plus scikit-learn's sample photos)."""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from imagegen import (
    bad_files,
    colour,
    encode,
    make_tar,
    make_zip,
    png_claiming_size,
    png_rgb16,
    solid,
    write,
)
from PIL import Image

from rarity_score.io.images import (
    IMAGE_EXTENSIONS,
    ImageCollection,
    ImageInputError,
    ImageItem,
    UnreadableImage,
    is_feature_file,
    open_images,
)


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def assert_solid(image: Image.Image, rgb: tuple[int, int, int], tolerance: int = 0) -> None:
    values = pixels(image)
    assert np.abs(values - np.array(rgb)).max() <= tolerance, (values[0, 0], rgb)


# ----------------------------------------------------------------------------------------------
# Names and small helpers


def test_image_extensions_and_feature_files() -> None:
    assert set(IMAGE_EXTENSIONS) == {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
    for name in ("f.npy", "f.NPZ", "f.npz:real", "dir/f.pt", "f.pth", Path("f.npy")):
        assert is_feature_file(name), name
    for name in ("images/", "a.png", "f.npz.txt", "f.zip", 42, None):
        assert not is_feature_file(name), name


def test_unreadable_image_carries_name_and_reason_and_pickles() -> None:
    error = UnreadableImage("a/b.png", "truncated file")
    assert (error.name, error.reason, str(error)) == ("a/b.png", "truncated file", error.__str__())
    assert str(error) == "a/b.png: truncated file"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.name, copy.reason) == ("a/b.png", "truncated file")
    assert issubclass(ImageInputError, ValueError)


def test_module_imports_without_torch_or_pillow() -> None:
    code = (
        "import sys, rarity_score.io.images as m; "
        "print('torch' in sys.modules, 'PIL' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_missing_pillow_is_a_clear_import_error(tmp_path: Path, monkeypatch) -> None:
    images = open_images(write(tmp_path / "a.png", solid(0)))
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import Image` fail
    from rarity_score.features.errors import MissingDependency

    with pytest.raises(
        MissingDependency, match=r"needs pillow: pip install 'rarity-score\[images\]'"
    ):
        images.load(0)


# ----------------------------------------------------------------------------------------------
# Folders

FOLDER_IMAGES = {  # relative path -> format
    "b.png": "PNG",
    "a/b.png": "PNG",
    "a-c.PNG": "PNG",
    "A.jpg": "JPEG",
    "sub/deep/x.TIFF": "TIFF",
    "z.webp": "WEBP",
    "y.bmp": "BMP",
    "q.JpEg": "JPEG",
    "t.tif": "TIFF",
}
# Sorted by the whole relative path ("a-c" < "a/b" since "-" < "/"), not folder by folder.
FOLDER_ORDER = [
    "A.jpg",
    "a-c.PNG",
    "a/b.png",
    "b.png",
    "q.JpEg",
    "sub/deep/x.TIFF",
    "t.tif",
    "y.bmp",
    "z.webp",
]


def make_folder(root: Path, order: list[str] | None = None) -> Path:
    for name in order or list(FOLDER_IMAGES):
        options = {"lossless": True} if FOLDER_IMAGES[name] == "WEBP" else {}
        image = solid(FOLDER_ORDER.index(name))
        write(root / name, encode(image, FOLDER_IMAGES[name], **options))
    write(root / ".hidden.png", solid(99))
    write(root / ".git" / "x.png", solid(98))
    write(root / "notes.txt", b"not an image")
    write(root / "a" / "data.csv", b"1,2\n")
    return root


def test_folder_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path, caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="rarity_score.io.images"):
        images = open_images(make_folder(tmp_path / "imgs"))
    assert isinstance(images, ImageCollection)
    assert (images.kind, images.source, len(images)) == ("folder", str(tmp_path / "imgs"), 9)
    assert images.names == FOLDER_ORDER
    assert [item.name for item in images] == FOLDER_ORDER
    assert "notes.txt" in caplog.text and "a/data.csv" in caplog.text
    for i, name in enumerate(FOLDER_ORDER):
        tolerance = 3 if FOLDER_IMAGES[name] == "JPEG" else 0
        assert_solid(images.load(i), colour(i), tolerance)
        assert images.load(i).size == (12, 8)
    assert_solid(images.load(-1), colour(len(FOLDER_ORDER) - 1))  # negative index: the last


def test_folder_order_and_fingerprint_do_not_depend_on_creation_order(tmp_path: Path) -> None:
    first = open_images(make_folder(tmp_path / "one"))
    second = open_images(make_folder(tmp_path / "two", order=FOLDER_ORDER[::-1]))
    assert first.names == second.names == FOLDER_ORDER
    assert open_images(tmp_path / "one").fingerprint() == first.fingerprint()  # stable


def test_collection_is_a_sequence_of_items(tmp_path: Path) -> None:
    images = open_images(make_folder(tmp_path / "imgs"))
    item = images[1]
    assert isinstance(item, ImageItem) and item.name == "a-c.PNG"
    stat = (tmp_path / "imgs" / "a-c.PNG").stat()
    assert item.fingerprint == f"{stat.st_size}:{stat.st_mtime_ns}"
    assert [i.name for i in images[1:3]] == FOLDER_ORDER[1:3]
    with pytest.raises(AttributeError):
        item.name = "other"  # type: ignore[misc]
    with pytest.raises(IndexError):
        images.load(len(images))
    assert "folder" in repr(images)
    assert open_images(images) is images


def test_folder_follows_symlinked_folders_but_not_loops(tmp_path: Path) -> None:
    write(tmp_path / "other" / "o.png", solid(1))
    write(tmp_path / "imgs" / "a.png", solid(0))
    (tmp_path / "imgs" / "linked").symlink_to(tmp_path / "other")
    (tmp_path / "imgs" / "loop").symlink_to(tmp_path / "imgs")
    (tmp_path / "imgs" / "folder.png").mkdir()  # a folder with an image-like name
    write(tmp_path / "imgs" / "folder.png" / "inner.png", solid(2))
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "imgs" / "pipe.png")  # reading it would block: not an image
    images = open_images(tmp_path / "imgs")
    assert images.names == ["a.png", "folder.png/inner.png", "linked/o.png"]


def test_empty_folder_and_folder_without_images_say_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageInputError, match=r"no images in folder .*empty: found 0 other files"):
        open_images(tmp_path / "empty")
    write(tmp_path / "docs" / "a.txt", b"x")
    write(tmp_path / "docs" / "b" / "c.csv", b"x")
    write(tmp_path / "docs" / ".d.png", solid(0))
    with pytest.raises(ImageInputError) as info:
        open_images(tmp_path / "docs")
    message = str(info.value)
    assert "found 2 other files (extensions: .csv, .txt)" in message
    assert "1 hidden entry" in message and ".png, .jpg, .jpeg, .webp" in message


def test_missing_path_and_unsupported_inputs(tmp_path: Path) -> None:
    with pytest.raises(
        ImageInputError, match=r"not found: .*nowhere \(expected a folder of images"
    ):
        open_images(tmp_path / "nowhere")
    write(tmp_path / "table.csv", b"1,2\n")
    with pytest.raises(ImageInputError, match=r"unsupported file type '\.csv'"):
        open_images(tmp_path / "table.csv")
    np.save(tmp_path / "feats.npy", np.zeros((2, 3)))
    with pytest.raises(ImageInputError, match="is a feature file"):
        open_images(tmp_path / "feats.npy")
    for bad in (42, {"a.png": 1}, b"imgs/"):
        with pytest.raises(ImageInputError):
            open_images(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Colour modes


def _palette_image(mode: str) -> Image.Image:
    image = Image.new(mode, (3, 1))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    if mode == "P":
        image.putdata([0, 1, 2])
    else:  # PA: palette index, alpha
        image.putdata([(0, 255), (1, 0), (2, 128)])
    return image


def _mode_cases() -> list:
    white = (255, 255, 255)
    half = round(200 * 128 / 255 + 255 * (1 - 128 / 255))  # 200 at alpha 128 over white
    p_transparent = _palette_image("P")
    p_transparent.info["transparency"] = 1
    rgb_key = Image.new("RGB", (2, 1))
    rgb_key.putdata([(1, 2, 3), (9, 8, 7)])
    rgb_key.info["transparency"] = (1, 2, 3)
    i16 = Image.fromarray(np.array([[0, 255, 256, 0x1234, 0xFF00, 65535]], dtype=np.uint16))
    i32 = Image.fromarray(np.array([[0, 256, 0x1234, 65535, 70000, -5]], dtype=np.int32))
    g16 = [0, 0, 1, 0x12, 0xFF, 0xFF]
    g32 = [0, 1, 0x12, 0xFF, 0xFF, 0]
    f_unit = Image.fromarray(np.array([[0.0, 0.5, 0.2, 1.0]], dtype=np.float32))
    f_wide = Image.fromarray(np.array([[0.0, 100.4, 300.0, -2.0]], dtype=np.float32))
    la = Image.new("LA", (3, 1))
    la.putdata([(100, 255), (100, 0), (0, 128)])
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(200, 100, 0, 255), (200, 100, 0, 0), (200, 200, 200, 128)])
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putdata([(0, 255, 255, 0), (0, 0, 0, 128)])
    bilevel = Image.new("1", (2, 1))
    bilevel.putdata([0, 1])
    gray = Image.fromarray(np.array([[0, 77, 255]], dtype=np.uint8))
    return [  # (id, image, format, expected pixels of row 0)
        ("L", gray, "PNG", [(0, 0, 0), (77, 77, 77), white]),
        ("1", bilevel, "PNG", [(0, 0, 0), white]),
        ("1-bmp", bilevel, "BMP", [(0, 0, 0), white]),
        ("LA", la, "PNG", [(100, 100, 100), white, (127, 127, 127)]),
        ("P", _palette_image("P"), "PNG", [(255, 0, 0), (0, 255, 0), (0, 0, 255)]),
        ("P-transparency", p_transparent, "PNG", [(255, 0, 0), white, (0, 0, 255)]),
        ("PA", _palette_image("PA"), "TIFF", [(255, 0, 0), white, (127, 127, 255)]),
        ("RGB-colour-key", rgb_key, "PNG", [white, (9, 8, 7)]),
        ("RGBA", rgba, "PNG", [(200, 100, 0), white, (half, half, half)]),
        ("RGBA-webp", rgba, "WEBP", [(200, 100, 0), white, (half, half, half)]),
        ("CMYK", cmyk, "TIFF", [(255, 0, 0), (127, 127, 127)]),
        ("I;16-png", i16, "PNG", [(v, v, v) for v in g16]),
        ("I;16-tiff", i16, "TIFF", [(v, v, v) for v in g16]),
        ("I-tiff", i32, "TIFF", [(v, v, v) for v in g32]),
        ("F-unit", f_unit, "TIFF", [(0, 0, 0), (128, 128, 128), (51, 51, 51), white]),
        ("F-0-255", f_wide, "TIFF", [(0, 0, 0), (100, 100, 100), white, (0, 0, 0)]),
    ]


MODE_CASES = _mode_cases()


@pytest.mark.parametrize(
    ("image", "fmt", "expected"), [c[1:] for c in MODE_CASES], ids=[c[0] for c in MODE_CASES]
)
def test_colour_modes_are_converted_to_rgb_correctly(tmp_path, image, fmt, expected) -> None:
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(image, fmt, **options)
    images = open_images(write(tmp_path / f"x.{fmt.lower()}", data))
    loaded = images.load(0)
    assert loaded.size == image.size
    row = pixels(loaded)[0]
    assert np.abs(row - np.array(expected)).max() <= 1, (row.tolist(), expected)


def test_sixteen_bit_rgb_keeps_the_top_byte(tmp_path: Path) -> None:
    values = np.array([[(0x1234, 0xFF00, 0x00FF), (65535, 256, 0)]], dtype=np.uint16)
    images = open_images(write(tmp_path / "rgb16.png", png_rgb16(values)))
    np.testing.assert_array_equal(pixels(images.load(0)), values >> 8)


def test_sixteen_bit_images_open_in_a_sixteen_bit_mode(tmp_path: Path) -> None:
    # Guards the test above: it must exercise the 16-bit path, not an 8-bit mode.
    i16 = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))
    for fmt in ("PNG", "TIFF"):
        path = write(tmp_path / f"x.{fmt.lower()}", encode(i16, fmt))
        with Image.open(path) as reopened:
            assert reopened.mode.startswith("I;16")


# ----------------------------------------------------------------------------------------------
# Bad files


def test_each_bad_file_is_unreadable_while_the_others_load(tmp_path: Path) -> None:
    write(tmp_path / "good.png", solid(0))
    write(tmp_path / "zz-good.jpg", solid(1))
    for name, data in bad_files().items():
        write(tmp_path / name, data)
    images = open_images(tmp_path)
    assert len(images) == 2 + len(bad_files())
    reasons = {}
    for i, item in enumerate(images):
        if item.name.endswith("good.png") or item.name.endswith("good.jpg"):
            assert images.load(i).mode == "RGB"
            continue
        with pytest.raises(UnreadableImage) as info:
            images.load(i)
        assert info.value.name == item.name
        reasons[item.name] = info.value.reason
    assert reasons["empty.png"] == "empty file (0 bytes)"
    assert reasons["truncated.png"] == "truncated file"
    assert reasons["truncated.jpg"] == "truncated file"
    assert reasons["text.png"].startswith("not an image")
    assert reasons["eps.png"].startswith("not an image")
    assert reasons["corrupt.jpg"].startswith("not an image")
    assert reasons["garbage-data.png"].startswith("corrupt or unsupported image data")
    assert reasons["bomb.png"].startswith("too large to decode safely (225,000,000 pixels")
    assert all(len(reason) < 160 for reason in reasons.values())


def test_decompression_bomb_warning_limit_and_own_limit(tmp_path: Path, monkeypatch) -> None:
    # Over Pillow's warning limit (89.5 Mpx) but under its error limit: still refused.
    images = open_images(write(tmp_path / "big.png", png_claiming_size(10000, 10000)))
    with pytest.raises(UnreadableImage, match="too large to decode safely"):
        images.load(0)
    # With Pillow's guard switched off, the 16384 x 16384 limit still holds.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    images = open_images(write(tmp_path / "huge.png", png_claiming_size(17000, 17000)))
    with pytest.raises(UnreadableImage, match=r"17000 x 17000 pixels; the limit is 16384 x 16384"):
        images.load(0)


def test_truncated_stays_unreadable_when_pillow_is_told_to_load_truncated(tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    images = open_images(write(tmp_path / "t.png", bad_files()["truncated.png"]))
    with pytest.raises(UnreadableImage, match="truncated"):
        images.load(0)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the user's setting is restored


def test_files_removed_after_listing_and_dangling_links_are_unreadable(tmp_path: Path) -> None:
    write(tmp_path / "a.png", solid(0))
    write(tmp_path / "b.png", solid(1))
    (tmp_path / "c.png").symlink_to(tmp_path / "nowhere.png")
    images = open_images(tmp_path)
    assert images.names == ["a.png", "b.png", "c.png"]
    assert images[2].fingerprint == "missing"
    (tmp_path / "a.png").unlink()
    for i in (0, 2):
        with pytest.raises(UnreadableImage, match="file not found"):
            images.load(i)
    assert_solid(images.load(1), colour(1))


# ----------------------------------------------------------------------------------------------
# List files and lists of paths


def test_list_file_paths_are_relative_to_its_folder(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path / "data" / "imgs" / "a.png", solid(0))
    write(tmp_path / "data" / "imgs" / "b.png", solid(1))
    write(tmp_path / "outside" / "c.png", solid(2))
    absolute = write(tmp_path / "abs" / "d.png", solid(3))
    listing = tmp_path / "data" / "list.txt"
    listing.write_text(
        f"# chosen images\n\nimgs/b.png\n  imgs/a.png  \n../outside/c.png\n{absolute}\n"
        "   # indented comment\n"
    )
    monkeypatch.chdir(tmp_path / "outside")  # relative to the list file, not the working dir
    images = open_images(str(listing))
    assert images.kind == "list"
    assert images.names == ["imgs/b.png", "imgs/a.png", "../outside/c.png", str(absolute)]
    for i, seed in enumerate([1, 0, 2, 3]):
        assert_solid(images.load(i), colour(seed))


def test_list_file_with_missing_entry_names_it_and_its_line(tmp_path: Path) -> None:
    write(tmp_path / "a.png", solid(0))
    listing = tmp_path / "list.txt"
    listing.write_text("a.png\n# comment\nmissing.png\nalso-missing.png\n")
    with pytest.raises(
        ImageInputError, match=r"line 3: missing\.png not found.*\(and 1 more line: 4\)"
    ):
        open_images(listing)
    listing.write_text("# only comments\n\n")
    with pytest.raises(ImageInputError, match="lists no image paths"):
        open_images(listing)


def test_python_list_of_paths_keeps_order_and_names(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a.png", solid(0)), write(tmp_path / "b.bmp", solid(1))
    images = open_images([str(b), a])
    assert (images.kind, images.names) == ("paths", [str(b), str(a)])
    assert_solid(images.load(0), colour(1))
    with pytest.raises(ImageInputError, match=r"nope\.png not found \(item 1\)"):
        open_images([a, tmp_path / "nope.png"])
    with pytest.raises(ImageInputError, match=r"item 1 .* is a int"):
        open_images([a, 3])  # type: ignore[list-item]
    with pytest.raises(ImageInputError, match="empty"):
        open_images([])
    with pytest.raises(ImageInputError, match=r"is a folder, not an image \(item 0\)"):
        open_images([tmp_path])
    single = open_images(a)  # one image file
    assert (single.kind, single.names, len(single)) == ("paths", [str(a)], 1)


# ----------------------------------------------------------------------------------------------
# Archives

ARCHIVE_IMAGES = {  # member -> seed; stored in reverse sorted order to test sorting and seeking
    "set/nested/deep/c.png": 2,
    "set/b.png": 1,
    "a.png": 0,
}


def archive_members() -> dict[str, bytes]:
    members = {name: encode(solid(seed), "PNG") for name, seed in ARCHIVE_IMAGES.items()}
    members.update(
        {
            "readme.txt": b"hello",
            "__MACOSX/set/._b.png": b"resource fork",
            "set/.hidden.png": encode(solid(9), "PNG"),
        }
    )
    return members


def test_zip_archive_with_nested_folders(tmp_path: Path, caplog) -> None:
    members = {"set/": b"", **archive_members(), "set/bad.png": b"garbage"}
    path = make_zip(tmp_path / "imgs.zip", members)
    with caplog.at_level(logging.DEBUG, logger="rarity_score.io.images"):
        images = open_images(path)
    assert "readme.txt" in caplog.text
    assert (images.kind, images.source) == ("archive", str(path))
    assert images.names == ["a.png", "set/b.png", "set/bad.png", "set/nested/deep/c.png"]
    for i, name in enumerate(images.names):
        if name == "set/bad.png":
            with pytest.raises(UnreadableImage, match="not an image"):
                images.load(i)
        else:
            assert_solid(images.load(i), colour(ARCHIVE_IMAGES[name]))
    import zipfile

    info = zipfile.ZipFile(path).getinfo("set/b.png")
    assert images[1].fingerprint == f"{info.file_size}:{info.CRC:08x}"


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.xz"])
def test_tar_archives_with_nested_folders_and_links(tmp_path: Path, suffix: str) -> None:
    mode = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.xz": "w:xz"}[suffix]
    members = {f"./{name}": data for name, data in archive_members().items()}
    links = {
        "./links/hard.png": ("hard", "./set/b.png"),
        "./links/sym.png": ("sym", "../a.png"),
        "./links/broken.png": ("sym", "missing.png"),
    }
    path = make_tar(tmp_path / f"imgs{suffix}", members, mode, links)
    images = open_images(path)
    expected = {*ARCHIVE_IMAGES, "links/broken.png", "links/hard.png", "links/sym.png"}
    assert images.names == sorted(expected)
    seeds = {**ARCHIVE_IMAGES, "links/hard.png": 1, "links/sym.png": 0}
    # Forwards and backwards: a compressed stream must cope with seeks in both directions.
    for i in [*range(len(images)), *reversed(range(len(images)))]:
        name = images[i].name
        if name == "links/broken.png":
            with pytest.raises(UnreadableImage, match="not a file in the archive"):
                images.load(i)
        else:
            assert_solid(images.load(i), colour(seeds[name]))
    assert (
        images[images.names.index("a.png")].fingerprint == f"{len(members['./a.png'])}:1600000002"
    )
    images.close()


def test_archives_without_images_or_damaged_are_input_errors(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "docs.zip", {"readme.txt": b"x", "a/": b""})
    with pytest.raises(ImageInputError, match=r"no images in archive .*found 1 other file "):
        open_images(path)
    with pytest.raises(ImageInputError, match="not a readable zip archive"):
        open_images(write(tmp_path / "fake.zip", b"not a zip"))
    whole = make_tar(tmp_path / "whole.tar.gz", archive_members(), "w:gz").read_bytes()
    damaged = write(tmp_path / "damaged.tar.gz", whole[: len(whole) // 2])
    with pytest.raises(ImageInputError, match="damaged"):
        open_images(damaged)


# ----------------------------------------------------------------------------------------------
# Pickling and worker processes


def _load_all(images: ImageCollection) -> list[np.ndarray]:
    return [np.asarray(images.load(i)) for i in range(len(images))]


def _inputs(tmp_path: Path) -> list[ImageCollection]:
    members = {name: encode(solid(seed), "PNG") for name, seed in ARCHIVE_IMAGES.items()}
    return [
        open_images(make_folder(tmp_path / "imgs")),
        open_images(make_zip(tmp_path / "imgs.zip", members)),
        open_images(make_tar(tmp_path / "imgs.tar", members)),
        open_images(make_tar(tmp_path / "imgs.tar.gz", members, "w:gz")),
    ]


def test_collections_pickle_and_reopen_archives_in_the_copy(tmp_path: Path) -> None:
    for images in _inputs(tmp_path):
        expected = _load_all(images)  # opens (and for .tar.gz spools) the archive here
        copy = pickle.loads(pickle.dumps(images))
        assert copy.names == images.names and copy.fingerprint() == images.fingerprint()
        for got, want in zip(_load_all(copy), expected, strict=True):
            np.testing.assert_array_equal(got, want)
        images.close()
        copy.close()


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_forked_workers_reopen_archives_instead_of_sharing_the_handle(tmp_path: Path) -> None:
    for images in _inputs(tmp_path)[1:]:
        expected = _load_all(images)  # the parent holds an open handle when the workers fork
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map(_load_one, [(images, i) for i in range(len(images))] * 2)
        for result, want in zip(got, expected * 2, strict=True):
            np.testing.assert_array_equal(result, want)
        np.testing.assert_array_equal(_load_all(images)[0], expected[0])  # parent unaffected


def _load_one(args: tuple[ImageCollection, int]) -> np.ndarray:
    images, i = args
    return np.asarray(images.load(i))


# ----------------------------------------------------------------------------------------------
# Arrays


def test_array_nhwc_nchw_and_grayscale(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8)
    images = open_images(nhwc)
    assert (images.kind, images.names) == ("array", ["#0", "#1"])
    assert "(2, 5, 6, 3)" in images.source
    for i in range(2):
        assert images.load(i).size == (6, 5)
        np.testing.assert_array_equal(np.asarray(images.load(i)), nhwc[i])
    nchw = open_images(np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))
    assert [i.fingerprint for i in nchw] == [i.fingerprint for i in images]
    np.testing.assert_array_equal(np.asarray(nchw.load(1)), nhwc[1])
    gray = rng.integers(0, 256, size=(3, 5, 6), dtype=np.uint8)
    for batch in (gray, gray[:, None], gray[..., None]):  # (N,H,W), (N,1,H,W), (N,H,W,1)
        loaded = np.asarray(open_images(batch).load(2))
        np.testing.assert_array_equal(loaded, np.repeat(gray[2][..., None], 3, axis=2))


def test_array_float_rgba_and_copy() -> None:
    values = np.array([0.0, 0.5, 0.2, 1.0, 1 / 255, 0.999])
    batch = np.broadcast_to(values[None, None, :, None], (1, 2, 6, 3))
    for dtype in (np.float64, np.float32, np.float16):
        loaded = np.asarray(open_images(batch.astype(dtype)).load(0))[0, :, 0]
        np.testing.assert_array_equal(loaded, [0, 128, 51, 255, 1, 255])
    rgba = np.zeros((1, 2, 5, 4), dtype=np.uint8)
    rgba[0, :, :] = (10, 20, 30, 255)
    rgba[0, 1, 2] = (10, 20, 30, 0)  # transparent: white
    loaded = np.asarray(open_images(rgba).load(0))
    np.testing.assert_array_equal(loaded[1, 1:3], [(10, 20, 30), (255, 255, 255)])
    source = np.zeros((1, 5, 6, 3), dtype=np.uint8)
    images = open_images(source)
    before = images.fingerprint()
    source[...] = 255  # the collection holds its own copy
    assert images.fingerprint() == before and np.asarray(images.load(0)).max() == 0


def test_array_fingerprints_follow_content() -> None:
    batch = np.zeros((3, 5, 6, 3), dtype=np.uint8)
    first = open_images(batch)
    assert len({item.fingerprint for item in first}) == 1  # equal images, equal fingerprints
    batch[1, 0, 0, 0] = 1
    second = open_images(batch)
    changed = [a.fingerprint != b.fingerprint for a, b in zip(first, second, strict=True)]
    assert changed == [False, True, False] and first.fingerprint() != second.fingerprint()
    assert open_images(batch / 255.0).fingerprint() == second.fingerprint()


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((2, 3, 5, 3), np.uint8, "ambiguous"),
        ((2, 4, 5, 1), np.uint8, "ambiguous"),
        ((2, 5, 6, 7), np.uint8, "no channel axis"),
        ((5, 6, 3), np.uint8, r"ambiguous.*array\[None\]"),
        ((1, 2, 5, 6, 3), np.uint8, "5 axes"),
        ((6,), np.uint8, "1 axes"),
        ((0, 5, 6, 3), np.uint8, "empty"),
        ((2, 5, 6, 3), np.int64, "uint8"),
        ((2, 5, 6, 3), np.bool_, "uint8"),
    ],
)
def test_array_shape_and_dtype_errors(shape, dtype, message) -> None:
    with pytest.raises(ImageInputError, match=message) as info:
        open_images(np.zeros(shape, dtype=dtype))
    if "ambiguous" in message:
        assert "(N, H, W, C) or (N, C, H, W)" in str(info.value)


def test_array_float_values_outside_unit_range_are_refused() -> None:
    with pytest.raises(ImageInputError, match=r"\[0, 1\]; this one spans \[0, 255\]"):
        open_images(np.linspace(0, 255, 90).reshape(1, 5, 6, 3))
    with pytest.raises(ImageInputError, match="NaN"):
        open_images(np.full((1, 5, 6, 3), np.nan))


def test_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    nchw = rng.random((2, 3, 5, 6)).astype(np.float32)
    tensor = torch.from_numpy(nchw).requires_grad_(True)
    images = open_images(tensor)
    assert images.kind == "array" and images.source.startswith("Tensor of shape (2, 3, 5, 6)")
    np.testing.assert_array_equal(
        np.asarray(images.load(1)), np.rint(nchw[1].transpose(1, 2, 0) * 255).astype(np.uint8)
    )
    assert open_images(tensor.to(torch.bfloat16)).names == ["#0", "#1"]
    uint8 = torch.zeros((1, 5, 6, 3), dtype=torch.uint8)
    assert np.asarray(open_images(uint8).load(0)).shape == (5, 6, 3)


# ----------------------------------------------------------------------------------------------
# Fingerprints of files


def test_folder_fingerprint_changes_when_files_change(tmp_path: Path) -> None:
    a = write(tmp_path / "imgs" / "a.png", solid(0))
    write(tmp_path / "imgs" / "b.png", solid(1))
    base = open_images(tmp_path / "imgs").fingerprint()
    assert open_images(tmp_path / "imgs").fingerprint() == base  # nothing changed
    stat = a.stat()
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched
    touched = open_images(tmp_path / "imgs").fingerprint()
    assert touched != base
    a.write_bytes(encode(solid(5), "PNG"))  # rewritten, same size, new time
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000))
    assert a.stat().st_size == stat.st_size
    assert open_images(tmp_path / "imgs").fingerprint() not in (base, touched)
    write(tmp_path / "imgs" / "c.png", solid(2))
    added = open_images(tmp_path / "imgs").fingerprint()
    (tmp_path / "imgs" / "c.png").unlink()
    assert len({base, touched, added, open_images(tmp_path / "imgs").fingerprint()}) == 4
    # The same files as a list of paths: another kind and other names, another fingerprint.
    listed = open_images(sorted((tmp_path / "imgs").iterdir()))
    assert listed.fingerprint() != open_images(tmp_path / "imgs").fingerprint()


def test_archive_fingerprint_changes_with_member_content(tmp_path: Path) -> None:
    one = open_images(make_zip(tmp_path / "one.zip", {"a.png": encode(solid(0), "PNG")}))
    same = open_images(make_zip(tmp_path / "same.zip", {"a.png": encode(solid(0), "PNG")}))
    other = open_images(make_zip(tmp_path / "other.zip", {"a.png": encode(solid(1), "PNG")}))
    assert one.fingerprint() == same.fingerprint() != other.fingerprint()


# ----------------------------------------------------------------------------------------------
# Real photographs: scikit-learn's sample images


def _sample_photos() -> list[Path]:
    spec = importlib.util.find_spec("sklearn")  # finds the files without importing sklearn
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-learn not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "images"
    photos = sorted(folder.glob("*.jpg"))
    if not photos:
        pytest.skip("scikit-learn's sample images not found")
    return photos


def test_sample_photographs_in_a_folder_a_zip_and_an_array(tmp_path: Path) -> None:
    photos = _sample_photos()
    for photo in photos:
        shutil.copy(photo, tmp_path / photo.name)
    expected = [np.asarray(Image.open(photo).convert("RGB")) for photo in photos]
    folder = open_images(tmp_path)
    archive = open_images(
        make_zip(tmp_path / "x" / "p.zip", {p.name: p.read_bytes() for p in photos})
    )
    batch = open_images(np.stack(expected))
    for images in (folder, archive, batch):
        assert len(images) == len(photos)
        for got, want in zip(_load_all(images), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_an_archive_seen_from_another_host_is_not_a_changed_file(tmp_path, monkeypatch):
    # A Dask worker on another host sees the archive on shared storage with its own device
    # number; inode, size and modification time are the same for every host.
    import types

    from imagegen import encode, make_zip, noise

    from rarity_score.io import images

    path = make_zip(tmp_path / "a.zip", {"a.png": encode(noise(0, (8, 8)), "PNG")})
    collection = images.open_images(path)
    collection.content_fingerprint()
    real_stat = os.stat

    def other_host(target, *args, **kwargs):
        found = real_stat(target, *args, **kwargs)
        fields = {name: getattr(found, name) for name in dir(found) if name.startswith("st_")}
        return types.SimpleNamespace(**{**fields, "st_dev": found.st_dev + 1})

    monkeypatch.setattr(images.os, "stat", other_host)
    assert collection.load(0).size == (8, 8)
