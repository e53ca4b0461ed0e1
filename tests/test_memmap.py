"""Feature files read memory-mapped: the same results as in memory, the file never written, the
same refusals, and no copy of the array on the way to the engine.

The refusal tests shrink the validation block (``_validation._BLOCK_ELEMENTS``) so that a small
array spans many blocks and a bad value can sit in the last one.
"""

from __future__ import annotations

import json
import os
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from checks import assert_matches_reference, engine_with
from datagen import dataset, reference

from rarity_score import _validation, evaluate
from rarity_score._validation import as_features, finite_rows, row_blocks
from rarity_score.engine.backend import NumpyBackend
from rarity_score.io import features as io_features
from rarity_score.io.features import (
    FeatureFileError,
    features_fingerprint,
    load_features,
    save_features,
)
from rarity_score.manifold import RealManifold

TINY_BLOCK = 48  # elements: a few rows per block on the data sets below


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_validation, "_BLOCK_ELEMENTS", TINY_BLOCK)


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _same_evaluation(got, want) -> None:
    """Every column identical bit for bit (NaN payloads too) and the same summary."""
    assert list(got.columns) == list(want.columns)
    for name, column in want.columns.items():
        assert got.columns[name].dtype == column.dtype, name
        assert got.columns[name].tobytes() == column.tobytes(), name
    assert json.dumps(got.to_dict(per_sample=False), sort_keys=True) == json.dumps(
        want.to_dict(per_sample=False), sort_keys=True
    )


# ---------------------------------------------------------------------- what load_features returns


def test_an_npy_file_comes_back_as_a_read_only_map_of_the_file(tmp_path: Path) -> None:
    array = np.arange(40, dtype=np.float32).reshape(10, 4)
    path = _save(tmp_path / "f.npy", array)
    loaded = load_features(path)
    assert isinstance(loaded, np.memmap)
    assert Path(loaded.filename or "") == path.resolve()
    assert not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)
    with pytest.raises(ValueError):
        loaded[0, 0] = 1.0
    with pytest.raises(ValueError):
        loaded.flags.writeable = True  # the pages are mapped read-only


def test_stored_npz_members_are_mapped_and_compressed_ones_read(tmp_path: Path) -> None:
    array = np.arange(60, dtype=np.float32).reshape(15, 4)
    np.savez(tmp_path / "stored.npz", real=array, other=np.zeros(3))
    np.savez_compressed(tmp_path / "packed.npz", real=array)
    stored = load_features(f"{tmp_path / 'stored.npz'}:real")
    packed = load_features(tmp_path / "packed.npz")
    assert isinstance(stored, np.memmap) and not stored.flags.writeable
    assert not isinstance(packed, np.memmap)
    np.testing.assert_array_equal(stored, array)
    np.testing.assert_array_equal(packed, array)


def test_a_feature_set_written_by_rarity_features_is_mapped(tmp_path: Path) -> None:
    from rarity_score.features.pipeline import FeatureSet, read_feature_set, save_feature_set

    array = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
    names = [f"img_{i}.png" for i in range(12)]
    path = save_feature_set(tmp_path / "f.npz", FeatureSet(features=array, names=names))
    loaded = read_feature_set(path)
    assert isinstance(loaded.features, np.memmap)
    assert loaded.names == names
    np.testing.assert_array_equal(loaded.features, array)


def test_a_damaged_stored_member_is_refused_by_its_checksum(tmp_path: Path) -> None:
    array = np.ones((20, 4), dtype=np.float32)
    path = tmp_path / "f.npz"
    np.savez(path, features=array)
    data = bytearray(path.read_bytes())
    at = data.index(np.ones(1, np.float32).tobytes()) + 40  # a byte of the values
    data[at] ^= 0x01  # still a finite float32: only the checksum can tell
    path.write_bytes(bytes(data))
    with pytest.raises(FeatureFileError) as caught:
        load_features(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:features: ") and "CRC-32" in message
    assert "\n" not in message


def test_the_map_keeps_the_old_file_when_a_new_one_is_renamed_over_it(tmp_path: Path) -> None:
    path = _save(tmp_path / "f.npy", np.zeros((6, 3), dtype=np.float32))
    loaded = load_features(path)
    save_features(path, np.ones((6, 3), dtype=np.float32))  # atomic: written aside, renamed
    np.testing.assert_array_equal(loaded, 0.0)
    np.testing.assert_array_equal(load_features(path), 1.0)


def test_an_array_larger_than_memory_is_mapped_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    array = np.ones((64, 8), dtype=np.float32)
    npy = _save(tmp_path / "f.npy", array)
    np.savez_compressed(tmp_path / "f.npz", features=array)
    monkeypatch.setattr(_validation, "_physical_memory", lambda: 1024)  # a 1 KiB machine
    assert isinstance(load_features(npy), np.memmap)
    with pytest.raises(MemoryError, match="more than this machine's"):
        load_features(tmp_path / "f.npz")  # read into memory: still checked


def test_where_mapping_fails_the_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    array = np.random.default_rng(1).normal(size=(9, 3))
    path = _save(tmp_path / "f.npy", array)

    def no_mmap(*args: object, **kwargs: object) -> None:
        raise OSError("mmap not supported on this file system")

    monkeypatch.setattr(io_features.np, "memmap", no_mmap)
    loaded = load_features(path)
    assert type(loaded) is np.ndarray
    np.testing.assert_array_equal(loaded, array)


def test_fingerprints_do_not_depend_on_the_layout(tmp_path: Path) -> None:
    array = np.random.default_rng(2).normal(size=(37, 11)).astype(np.float32)
    fortran = load_features(_save(tmp_path / "f.npy", np.asfortranarray(array)))
    assert isinstance(fortran, np.memmap) and fortran.flags.f_contiguous
    want = features_fingerprint(array)
    assert features_fingerprint(fortran) == want
    assert features_fingerprint(load_features(_save(tmp_path / "c.npy", array))) == want
    # The digest is the one of the C-order bytes (as before blocks): shape, dtype, values.
    assert features_fingerprint(array[:, ::2]) == features_fingerprint(array[:, ::2].copy())
    assert features_fingerprint(np.float64(3.0)) == features_fingerprint(np.array([3.0]))


# ---------------------------------------------------------------------- results


_SMALL_CASES = [
    ("duplicates", np.float32),
    ("duplicates", np.float64),
    ("integer_ties", np.float16),
    ("integer_ties", np.int16),
    ("offset_tiny", np.float64),
]


@pytest.mark.parametrize(
    "name, dtype, layout",
    [(*case, layout) for case in _SMALL_CASES for layout in ("npy", "fortran", "npz")]
    + [("embedded", np.float32, "npz")],  # 256-d ReLU features, the map unaligned
)
def test_mapped_inputs_give_the_in_memory_results_bit_for_bit(
    tmp_path: Path, engine_options: dict, name: str, dtype: type, layout: str
) -> None:
    ds = dataset(name)
    real, fake = ds.real.astype(dtype), ds.fake.astype(dtype)
    k = ds.ks[0]
    paths = []
    for label, array in (("real", real), ("fake", fake)):
        path = tmp_path / f"{label}.{'npz' if layout == 'npz' else 'npy'}"
        if layout == "npz":
            np.savez(path, features=array)  # stored, unaligned for the engine
        else:
            np.save(path, np.asfortranarray(array) if layout == "fortran" else array)
        paths.append(path)
    before = [p.read_bytes() for p in paths]
    mapped_real, mapped_fake = (load_features(p) for p in paths)
    assert isinstance(mapped_real, np.memmap) and isinstance(mapped_fake, np.memmap)
    # Small tiles: the sweep reads many blocks of the maps, in radius order too.
    engine = engine_with(engine_options, tile_size=48)
    got = evaluate(mapped_real, mapped_fake, k, engine=engine)
    want = evaluate(real.copy(), fake.copy(), k, engine=engine)
    _same_evaluation(got, want)
    loo = RealManifold(mapped_real, k, engine=engine).leave_one_out()
    _same_evaluation(loo, RealManifold(real.copy(), k, engine=engine).leave_one_out())
    if dtype in (np.float64, np.int16) or name == "integer_ties":  # values as the oracle has them
        assert_matches_reference(got, reference(name, k))
    assert [p.read_bytes() for p in paths] == before  # the user's files are never written


def test_a_scoring_run_leaves_the_files_untouched(tmp_path: Path) -> None:
    from rarity_score.compare import compare

    ds = dataset("duplicates")
    real = _save(tmp_path / "real.npy", ds.real.astype(np.float32))
    fake = tmp_path / "fake.npz"
    np.savez(fake, features=ds.fake.astype(np.float32))
    before = {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in (real, fake)}
    result = compare(str(real), {"g": str(fake)}, tmp_path / "out", k=2, report=False)
    run = json.loads((result.path / "run.json").read_text())
    assert run["real"]["fingerprint"] == features_fingerprint(ds.real.astype(np.float32))
    assert {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in before} == before


# ---------------------------------------------------------------------- refusals, block by block


def test_a_nan_in_the_last_block_is_refused_with_the_usual_message(
    tmp_path: Path, tiny_blocks: None
) -> None:
    array = np.random.default_rng(3).normal(size=(40, 6)).astype(np.float32)
    array[39, 5] = np.nan
    array[3, 0] = np.inf
    path = _save(tmp_path / "f.npy", array)
    with pytest.raises(FeatureFileError) as caught:
        load_features(path)
    assert str(caught.value) == (
        f"{path}: 2 row(s) contain NaN or infinite values (rows 3, 39); remove or recompute them"
    )
    mapped = np.load(path, mmap_mode="r")  # mapped without the file check: the engine's check
    with pytest.raises(ValueError) as caught:
        as_features(mapped, "real features f.npy", NumpyBackend())
    assert str(caught.value) == (
        "real features f.npy contain NaN or inf in 2 of 40 rows (first: row 3); "
        "remove or repair those samples"
    )


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_integers_float64_would_round_are_refused_in_any_block(
    tmp_path: Path, tiny_blocks: None, dtype: type
) -> None:
    array = np.zeros((50, 4), dtype=dtype)
    array[30, 1] = 2**53 + 1  # not a float64
    array[49, 3] = np.iinfo(dtype).max  # rounds up to 2**63 (2**64): does not cast back
    array[10, 2] = 2**53 + 2  # a float64: fine
    path = _save(tmp_path / "f.npy", array)
    assert len(list(row_blocks(array))) > 4
    message = (
        "2 values cannot be converted to float64 without rounding (first: row 30, column 1, "
        "the integer 9007199254740993); the scores would be computed on other values. Scale "
        "the features into float64's exact range (integers up to 2**53), or round them yourself "
        "with array.astype(np.float64)"
    )
    with pytest.raises(FeatureFileError) as caught:
        load_features(path)
    assert str(caught.value) == f"{path}: {message}"
    with pytest.raises(ValueError) as caught:
        as_features(np.load(path, mmap_mode="r"), "x", NumpyBackend())
    assert str(caught.value) == f"x: {message}"
    array[30, 1] = array[49, 3] = 0
    path = _save(tmp_path / "ok.npy", array)
    converted = as_features(load_features(path), "x", NumpyBackend())
    assert converted.dtype == np.float64 and converted[10, 2] == 2.0**53 + 2


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="long double is float64 here")
def test_long_doubles_are_converted_block_by_block_and_refused_when_lossy(
    tmp_path: Path, tiny_blocks: None
) -> None:
    array = np.random.default_rng(4).normal(size=(30, 3)).astype(np.longdouble)
    converted = as_features(load_features(_save(tmp_path / "ok.npy", array)), "x", NumpyBackend())
    assert converted.dtype == np.float64
    np.testing.assert_array_equal(converted, array.astype(np.float64))
    array[29, 2] = np.longdouble(1) + np.finfo(np.longdouble).eps
    path = _save(tmp_path / "bad.npy", array)
    with pytest.raises(FeatureFileError, match=r"1 value cannot .*first: row 29, column 2"):
        load_features(path)


def test_an_int_file_is_checked_without_a_conversion_and_scored(tmp_path: Path) -> None:
    ds = dataset("integer_ties")
    real = _save(tmp_path / "real.npy", ds.real.astype(np.int64))
    fake = _save(tmp_path / "fake.npy", ds.fake.astype(np.int32))
    got = evaluate(load_features(real), load_features(fake), 3)
    assert_matches_reference(got, reference("integer_ties", 3))


def test_finite_rows_of_tensors_go_block_by_block(tiny_blocks: None) -> None:
    torch = pytest.importorskip("torch")
    array = np.random.default_rng(5).normal(size=(33, 7))
    array[[0, 20, 32], [1, 6, 0]] = [np.nan, np.inf, -np.inf]
    want = np.isfinite(array).all(axis=1)
    np.testing.assert_array_equal(finite_rows(array), want)
    np.testing.assert_array_equal(finite_rows(torch.from_numpy(array)), want)
    assert finite_rows(np.zeros((0, 3))).shape == (0,)


# ---------------------------------------------------------------------- no copy


def test_validating_a_mapped_array_allocates_far_less_than_the_array(tmp_path: Path) -> None:
    """load_features' checks, the engine's input checks and the fingerprint read the map a block
    at a time: numpy allocates a small fraction of the array (a copy, or a mask of the whole
    array, would show as at least a quarter of it)."""
    rng = np.random.default_rng(6)
    path = tmp_path / "big.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(20_000, 256))
    for _, block in row_blocks(out):
        block[...] = rng.random(block.shape, dtype=np.float32)
    out.flush()
    del out
    size = 20_000 * 256 * 4
    tracemalloc.start()
    try:
        mapped = load_features(path)
        data = as_features(mapped, "real features", NumpyBackend())
        fingerprint = features_fingerprint(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(mapped, np.memmap) and np.may_share_memory(data, mapped)
    assert fingerprint == features_fingerprint(np.load(path))
    assert peak < size / 8, f"validation allocated {peak} bytes for a {size}-byte array"


def test_checking_a_mapped_int64_file_keeps_no_conversion(tmp_path: Path) -> None:
    path = tmp_path / "ints.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.int64, shape=(20_000, 256))
    out[...] = 2**53 + 2  # every value beyond 2**53 (looked at closely), every one exact
    out.flush()
    del out
    tracemalloc.start()
    try:
        mapped = load_features(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.int64
    assert peak < mapped.nbytes / 4, f"checking allocated {peak} of {mapped.nbytes} bytes"


def test_a_zip_member_written_any_way_is_still_read(tmp_path: Path) -> None:
    """A stored member after others (its local header anywhere in the file, with or without a
    zip64 extra field) maps; a deflated one is read."""
    array = np.arange(24, dtype=np.float64).reshape(6, 4)
    member = tmp_path / "m.npy"
    np.save(member, array)
    path = tmp_path / "f.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("first.npy", member.read_bytes() * 2)
        archive.write(member, "features.npy")  # no zip64 extra field, unlike np.savez's
        archive.write(member, "deflated.npy", compress_type=zipfile.ZIP_DEFLATED)
    stored = load_features(f"{path}:features")
    deflated = load_features(f"{path}:deflated")
    assert isinstance(stored, np.memmap) and not isinstance(deflated, np.memmap)
    np.testing.assert_array_equal(stored, array)
    np.testing.assert_array_equal(deflated, array)


def test_an_encrypted_or_unknown_method_member_is_a_feature_file_error(tmp_path):
    import struct

    from rarity_score.io.features import FeatureFileError, load_features

    np.savez(tmp_path / "b.npz", features=np.ones((3, 2), np.float32))
    data = (tmp_path / "b.npz").read_bytes()
    encrypted = bytearray(data)
    encrypted[6] |= 1  # the local header's "encrypted" flag
    encrypted[encrypted.find(b"PK\x01\x02") + 8] |= 1  # and the central directory's
    (tmp_path / "enc.npz").write_bytes(bytes(encrypted))
    unknown = bytearray(data)
    at = unknown.find(b"PK\x01\x02") + 10
    unknown[at : at + 2] = struct.pack("<H", 99)  # compression method 99
    (tmp_path / "m99.npz").write_bytes(bytes(unknown))
    for name in ("enc.npz", "m99.npz"):
        with pytest.raises(FeatureFileError, match=name):
            load_features(tmp_path / name)
