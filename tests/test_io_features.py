"""Feature files in and out (rarity_score.io) and the atomic writer every output goes through."""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

import rarity_score.io.atomic as atomic_module
from rarity_score.io import (
    FeatureFileError,
    atomic_write_bytes,
    atomic_write_text,
    features_fingerprint,
    load_features,
    save_features,
)

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((7, 3))


def _error(call, *fragments: str) -> str:
    """call() raises FeatureFileError (a ValueError) whose message holds every fragment."""
    with pytest.raises(FeatureFileError) as info:
        call()
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ---------------------------------------------------------------------- .npy / .npz


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int64])
def test_npy_round_trip_keeps_dtype(tmp_path, dtype):
    path = tmp_path / "f.npy"
    np.save(path, X.astype(dtype))
    loaded = load_features(path)
    assert loaded.dtype == dtype
    np.testing.assert_array_equal(loaded, X.astype(dtype))


def test_npy_accepts_str_path(tmp_path):
    np.save(tmp_path / "f.npy", X)
    np.testing.assert_array_equal(load_features(str(tmp_path / "f.npy")), X)


def test_npz_with_one_array_needs_no_key(tmp_path):
    np.savez(tmp_path / "f.npz", anything=X)
    np.testing.assert_array_equal(load_features(tmp_path / "f.npz"), X)


def test_npz_with_several_arrays_needs_a_key(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, real=X, fake=X[:2])
    _error(lambda: load_features(path), str(path), "several arrays", "fake", "real")
    np.testing.assert_array_equal(load_features(path, key="fake"), X[:2])
    np.testing.assert_array_equal(load_features(f"{path}:real"), X)
    np.testing.assert_array_equal(load_features(f"{path}:real", key="real"), X)


def test_npz_unknown_or_conflicting_key(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, real=X, fake=X[:2])
    _error(lambda: load_features(path, key="other"), "'other'", "available arrays: fake, real")
    _error(lambda: load_features(f"{path}:real", key="fake"), "give only one")


def test_key_on_npy_is_refused(tmp_path):
    np.save(tmp_path / "f.npy", X)
    _error(lambda: load_features(tmp_path / "f.npy", key="x"), "holds one array")


# ---------------------------------------------------------------------- .pt / .pth


@needs_torch
@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_torch_tensor_file(tmp_path, suffix):
    import torch

    path = tmp_path / f"f{suffix}"
    torch.save(torch.from_numpy(X.astype(np.float32)), path)
    loaded = load_features(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, X.astype(np.float32))


@needs_torch
def test_torch_dict_file(tmp_path):
    import torch

    one = tmp_path / "one.pt"
    torch.save({"features": torch.from_numpy(X)}, one)
    np.testing.assert_array_equal(load_features(one), X)

    several = tmp_path / "several.pt"
    torch.save({"real": torch.from_numpy(X), "fake": torch.from_numpy(X[:3])}, several)
    _error(lambda: load_features(several), "several arrays", "fake, real")
    np.testing.assert_array_equal(load_features(f"{several}:fake"), X[:3])
    _error(lambda: load_features(several, key="nope"), "available arrays: fake, real")


@needs_torch
def test_torch_bfloat16_becomes_float32(tmp_path):
    import torch

    path = tmp_path / "b.pt"
    tensor = torch.from_numpy(X).to(torch.bfloat16)
    torch.save(tensor, path)
    loaded = load_features(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, tensor.float().numpy())


@needs_torch
def test_torch_file_without_a_tensor(tmp_path):
    import torch

    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    _error(lambda: load_features(path), str(path), "not a tensor")


def test_torch_missing_gives_a_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "f.pt"
    path.write_bytes(b"not really a torch file")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    _error(lambda: load_features(path), str(path), "needs torch", ".npy")


# ---------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    _error(lambda: load_features(tmp_path / "nope.npy"), "not found", "nope.npy")


def test_missing_file_with_key_syntax(tmp_path):
    _error(lambda: load_features(f"{tmp_path / 'nope.npz'}:real"), "not found", "nope.npz")


def test_directory(tmp_path):
    _error(lambda: load_features(tmp_path), "directory")


def test_unknown_extension(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("1,2\n")
    _error(lambda: load_features(path), "f.csv", "'.csv'", ".npy, .npz, .pt, .pth")


def test_corrupt_npy(tmp_path):
    path = tmp_path / "f.npy"
    path.write_bytes(b"garbage, not numpy")
    _error(lambda: load_features(path), str(path))


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros(5), "reshape(1, -1)"),
        (np.zeros((2, 3, 4)), "reshape(len(array), -1)"),
        (np.zeros((0, 3)), "empty"),
        (np.zeros((3, 0)), "empty"),
        (np.array([["a", "b"]]), "numeric"),
        (np.ones((2, 2), dtype=bool), "numeric"),
        (np.ones((2, 2), dtype=complex), "numeric"),
    ],
)
def test_bad_arrays(tmp_path, array, fragment):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    _error(lambda: load_features(path), "bad.npy", fragment)


def test_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([[1.0, None]], dtype=object), allow_pickle=True)
    _error(lambda: load_features(path), "obj.npy")


def test_non_finite_rows_are_named(tmp_path):
    array = np.ones((6, 2))
    array[1, 0] = np.nan
    array[4, 1] = np.inf
    path = tmp_path / "nan.npy"
    np.save(path, array)
    _error(lambda: load_features(path), "nan.npy", "2 row(s)", "rows 1, 4")


# ---------------------------------------------------------------------- saving


def test_save_npy_and_npz_round_trip(tmp_path):
    save_features(tmp_path / "a.npy", X.astype(np.float32))
    assert load_features(tmp_path / "a.npy").dtype == np.float32
    save_features(tmp_path / "b.npz", X, key="real")
    np.testing.assert_array_equal(load_features(tmp_path / "b.npz:real"), X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npz"]


def test_save_refuses_other_formats_and_bad_arrays(tmp_path):
    _error(lambda: save_features(tmp_path / "a.txt", X), "a.txt", ".npy or .npz")
    _error(lambda: save_features(tmp_path / "a.npy", np.zeros(3)), "2-D")
    assert list(tmp_path.iterdir()) == []


def test_fingerprint():
    assert features_fingerprint(X) == features_fingerprint(X.copy())
    assert features_fingerprint(X) != features_fingerprint(X[:-1])
    assert features_fingerprint(X) != features_fingerprint(X.astype(np.float32))
    fortran = np.asfortranarray(X)
    assert features_fingerprint(fortran) == features_fingerprint(X)
    assert features_fingerprint(X).startswith("sha256:")


# ---------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "first\n")
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_keeps_newlines_and_permissions(tmp_path):
    path = tmp_path / "out.csv"
    atomic_write_text(path, "a\nb\n")
    assert path.read_bytes() == b"a\nb\n"
    umask = os.umask(0)
    os.umask(umask)
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "out.json"
    path.write_text("old contents")

    def broken_fsync(fd):
        raise failure

    monkeypatch.setattr(atomic_module.os, "fsync", broken_fsync)
    with pytest.raises(type(failure)):
        atomic_write_bytes(path, b"new contents")
    assert path.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_write_failure_at_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_text("old")

    def broken_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(atomic_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_atomic_write_into_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "no" / "such" / "file.txt", "x")


def test_save_features_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "f.npy"
    save_features(path, X)
    monkeypatch.setattr(
        atomic_module.os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError)
    )
    with pytest.raises(OSError):
        save_features(path, X[:2])
    np.testing.assert_array_equal(load_features(path), X)
    assert [p.name for p in tmp_path.iterdir()] == ["f.npy"]
