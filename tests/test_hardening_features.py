"""Hardening of feature inputs: no value rounded on the way in, no traceback or unnamed error from
a hostile feature file, and no minute of retries before an offline extractor's one-line error."""

from __future__ import annotations

import socket
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

from rarity_score import RealManifold, evaluate
from rarity_score.io.features import FeatureFileError, load_features
from rarity_score.options import EngineOptions

RNG = np.random.default_rng(5)
REAL = RNG.standard_normal((30, 4))
FAKE = RNG.standard_normal((12, 4))
BIG = 2**53  # every integer up to here is a float64; 2**53 + 1 is not


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


# ---------------------------------------------------------------------- lossy conversions


def _big_integers(dtype: type) -> np.ndarray:
    """Integer features whose rows differ only beyond float64's precision."""
    values = np.zeros((6, 2), dtype=dtype)
    values[:, 0] = BIG
    values[:, 1] = np.arange(6, dtype=dtype) + BIG  # BIG + 1, + 3, + 5 round to neighbours
    return values


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_integers_beyond_2_53_are_refused(dtype):
    with pytest.raises(ValueError, match=r"real features: .*without rounding.*2\*\*53"):
        RealManifold(_big_integers(dtype), k=2)
    with pytest.raises(ValueError, match=r"fake features: .*without rounding"):
        evaluate(REAL[:, :2], _big_integers(dtype), k=2)


def test_integers_beyond_2_53_in_a_file_are_refused_naming_it(tmp_path, capsys):
    real = _save(tmp_path / "real.npy", (REAL * 1000).astype(np.int64))
    fake = _save(tmp_path / "fake.npy", (FAKE * 1000).astype(np.int64))
    assert run_cli(capsys, "score", "--real", real, "--fake", fake, "-q")[0] == 0
    big = (FAKE * 1000).astype(np.int64) + 2**60 + 1
    _save(fake, big)
    assert_one_line_error(*run_cli(capsys, "score", "--real", real, "--fake", fake), "fake.npy")
    with pytest.raises(FeatureFileError, match="without rounding"):
        load_features(fake)


def test_exact_integers_stay_accepted():
    # Up to 2**53, and beyond where float64 holds the value exactly (a power of two).
    real = np.arange(-40, 40, dtype=np.int64).reshape(20, 4) * 3
    real[0, 0], real[1, 1], real[2, 2] = BIG, -BIG, 2**62
    got = evaluate(real, real[5:10] + 1, k=3)
    want = evaluate(real.astype(np.float64), (real[5:10] + 1).astype(np.float64), k=3)
    np.testing.assert_array_equal(got.rarity, want.rarity)


def test_mixed_python_list_is_not_rounded():
    # numpy picks float64 for ints mixed with floats, rounding 2**53 + 1 without a word.
    rows = [[BIG + 1, 0.5], [BIG, 0.5], [0.0, 1.0]]
    with pytest.raises(ValueError, match="without rounding"):
        RealManifold(rows, k=1)
    RealManifold([[1, 0.5], [2, 0.5], [0.0, 1.0]], k=1)  # small ints convert exactly


@pytest.mark.skipif(
    np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant, reason="long double is float64"
)
def test_long_double_is_converted_only_when_exact():
    exact = REAL.astype(np.longdouble)
    np.testing.assert_array_equal(
        evaluate(exact, FAKE, k=3).rarity, evaluate(REAL, FAKE, k=3).rarity
    )
    finer = exact.copy()
    finer[3, 1] += np.longdouble(2) ** -60  # below float64's resolution near 1
    with pytest.raises(ValueError, match="without rounding"):
        evaluate(finer, FAKE, k=3)


def test_torch_integer_and_low_precision_tensors():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="without rounding"):
        RealManifold(torch.from_numpy(_big_integers(np.int64)), k=2)
    # float8 / bfloat16 hold values float32 holds exactly; numpy has neither type.
    eight = torch.from_numpy(REAL).to(torch.float8_e4m3fn)
    want = evaluate(eight.float().numpy(), FAKE, k=3).rarity
    for backend in ("numpy", "torch"):
        got = evaluate(eight, FAKE, k=3, engine=EngineOptions(backend=backend)).rarity
        np.testing.assert_array_equal(got, want)
    half = torch.from_numpy(REAL).to(torch.bfloat16)
    np.testing.assert_array_equal(
        evaluate(half, FAKE, k=3, engine=EngineOptions(backend="numpy")).rarity,
        evaluate(half.float().numpy(), FAKE, k=3).rarity,
    )


def test_timedelta_features_are_refused(tmp_path):
    # numpy counts timedelta64 as an integer type.
    path = _save(tmp_path / "t.npy", np.ones((3, 2), dtype="m8[s]"))
    with pytest.raises(FeatureFileError, match="real numeric array"):
        load_features(path)


# ---------------------------------------------------------------------- .pt files


def _torch_file(tmp_path: Path, tensor) -> Path:
    import torch

    path = tmp_path / "feats.pt"
    torch.save({"features": tensor}, path)
    return path


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_tensor_file_is_read_densely(tmp_path, capsys, layout):
    torch = pytest.importorskip("torch")
    dense = torch.from_numpy(FAKE.astype(np.float32))
    dense[dense < 0] = 0
    sparse = dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()
    np.testing.assert_array_equal(load_features(_torch_file(tmp_path, sparse)), dense.numpy())
    real = _save(tmp_path / "real.npy", REAL)
    code, _, err = run_cli(capsys, "score", "--real", real, "--fake", tmp_path / "feats.pt", "-q")
    assert code == 0 and err == ""


def test_sparse_tensor_too_big_to_densify_names_the_file(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    indices = torch.tensor([[0, 3], [1, 2]])
    huge = torch.sparse_coo_tensor(indices, torch.ones(2), (2**34, 2**20))
    path = _torch_file(tmp_path, huge)
    real = _save(tmp_path / "real.npy", REAL)
    code, out, err = run_cli(capsys, "score", "--real", real, "--fake", path)
    assert code == 1 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "feats.pt" in err and "MemoryError" in err


def test_float8_tensor_file_is_converted_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    eight = torch.from_numpy(FAKE).to(torch.float8_e5m2)
    loaded = load_features(_torch_file(tmp_path, eight))
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, eight.float().numpy())


def _refused_tensors(torch) -> dict[str, object]:
    values = torch.from_numpy(FAKE.astype(np.float32))
    return {
        "quantized": torch.quantize_per_tensor(values, 0.1, 0, torch.qint8),
        "complex": torch.complex(values, values),
        "bool": values > 0,
        "meta": torch.empty(12, 4, device="meta"),
        "nested": torch.nested.nested_tensor([torch.ones(2, 4), torch.ones(3, 4)]),
    }


@pytest.mark.parametrize("kind", ["quantized", "complex", "bool", "meta", "nested"])
def test_unreadable_tensor_kinds_give_one_line_naming_the_file(tmp_path, capsys, kind):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # prototype and deprecation notices of torch
        tensor = _refused_tensors(torch)[kind]
    path = _torch_file(tmp_path, tensor)
    real = _save(tmp_path / "real.npy", REAL)
    assert_one_line_error(*run_cli(capsys, "score", "--real", real, "--fake", path), "feats.pt")
    with pytest.raises(FeatureFileError):
        load_features(path)


# ---------------------------------------------------------------------- damaged headers


def _npy_declaring(shape: tuple[int, ...], data: bytes = b"\0" * 64) -> bytes:
    """A .npy whose header declares ``shape`` (float64) but which holds only ``data``."""
    import io

    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


@pytest.mark.parametrize("shape", [(10**12, 10**6), (1000, 1000)], ids=["exabytes", "megabytes"])
def test_npy_header_declaring_more_than_the_file_holds(tmp_path, capsys, shape):
    fake = tmp_path / "fake.npy"
    fake.write_bytes(_npy_declaring(shape))
    real = _save(tmp_path / "real.npy", REAL)
    code, out, err = run_cli(capsys, "score", "--real", real, "--fake", fake)
    assert_one_line_error(code, out, err, "fake.npy", "truncated or damaged")


def test_npz_member_declaring_more_than_it_holds(tmp_path, capsys):
    fake = tmp_path / "fake.npz"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("features.npy", _npy_declaring((10**12, 10**6)))
    real = _save(tmp_path / "real.npy", REAL)
    code, out, err = run_cli(capsys, "score", "--real", real, "--fake", fake)
    assert_one_line_error(code, out, err, "fake.npz", "truncated or damaged")


def test_stored_feature_set_with_a_damaged_names_array(tmp_path, capsys):
    # The layout `rarity features` writes: features plus names (read before the features).
    fake = tmp_path / "fake.npz"
    np.savez(
        fake, features=FAKE.astype(np.float32), names=np.array([f"{i}.png" for i in range(12)])
    )
    real = _save(tmp_path / "real.npy", REAL)
    assert run_cli(capsys, "score", "--real", real, "--fake", fake, "-q")[0] == 0
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("features.npy", _npy_declaring((12, 4), b"\0" * 12 * 4 * 8))
        archive.writestr("names.npy", _npy_declaring((10**12, 10**6)))
    code, out, err = run_cli(capsys, "score", "--real", real, "--fake", fake)
    assert_one_line_error(code, out, err, "fake.npz", "truncated or damaged")


def test_many_arrays_are_listed_briefly(tmp_path):
    path = tmp_path / "many.npz"
    np.savez(path, **{f"a{i:03d}": np.zeros((2, 2)) for i in range(500)})
    with pytest.raises(FeatureFileError) as caught:
        load_features(path)
    assert "a000" in str(caught.value) and "490 more" in str(caught.value)
    assert len(str(caught.value)) < 400


# ---------------------------------------------------------------------- errors name the set


def test_a_row_beyond_float32_reach_names_the_set_and_file(tmp_path, capsys):
    real = _save(tmp_path / "real.npy", REAL)
    far = FAKE.copy()
    far[7] = 1e20
    fake = _save(tmp_path / "samples.npy", far)
    code, out, err = run_cli(capsys, "score", "--real", real, "--fake", fake)
    assert_one_line_error(code, out, err, "generated features", "samples.npy", "row 7", "1e18")


def test_manifold_errors_use_the_given_labels():
    far = FAKE.copy()
    far[2] = -1e20
    manifold = RealManifold(REAL, k=3, label="the real set 'r'")
    with pytest.raises(ValueError, match=r"generated set 'g'.*row 2"):
        manifold.evaluate(far, label="generated set 'g'")
    nan = FAKE.copy()
    nan[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"generated set 'g' contain NaN.*row 4"):
        manifold.evaluate(nan, label="generated set 'g'")
    with pytest.raises(ValueError, match="the real set 'r' contain NaN"):
        RealManifold(np.where(REAL > 2, np.inf, REAL), k=3, label="the real set 'r'")


# ---------------------------------------------------------------------- offline extractors


class _SecondAttempt(BaseException):
    """A retry after the first failed connection: not caught by the libraries' retry loops."""


@pytest.fixture
def offline(monkeypatch, tmp_path) -> list[str]:
    """No network (every name lookup or connection fails; a second attempt aborts the test) and
    an empty Hugging Face hub cache. Yields the attempts made."""
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object):
        attempts.append(repr(args[:2]))
        if len(attempts) > 1:
            raise _SecondAttempt(f"network tried again: {attempts}")
        raise socket.gaierror(socket.EAI_NONAME, "no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return attempts


def _images(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16), (40 * i, 80, 120)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize(
    ("extractor", "module"),
    [("clip-vit-b32", "open_clip"), ("dinov2-vitl14", "transformers")],
)
@pytest.mark.parametrize("quiet", [True, False])
def test_offline_extractor_fails_at_once_with_one_line(
    offline, tmp_path, capsys, extractor, module, quiet
):
    pytest.importorskip(module)
    pytest.importorskip("PIL")
    images = _images(tmp_path / "images")
    argv = ["features", images, "-o", tmp_path / "f.npz", "--no-cache", "--extractor", extractor]
    code, out, err = run_cli(capsys, *argv, *(["-q"] if quiet else []))
    assert_one_line_error(code, out, err, extractor, "cannot be reached", "--weights")
    assert len(offline) <= 1


def _cached(hub: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A Hugging Face hub cache entry of ``repo`` (revision main) holding ``files``."""
    entry = hub / f"models--{repo.replace('/', '--')}"
    snapshot = entry / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("0123abcd")
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def test_cached_clip_weights_are_used_without_network(offline, tmp_path):
    pytest.importorskip("open_clip")
    from rarity_score.features import clip

    snapshot = _cached(tmp_path / "hub", clip.HF_REPO, {clip.HF_FILE: b"weights"})
    assert clip.checkpoint_path(None) == snapshot / clip.HF_FILE
    assert offline == []


def test_cached_dinov2_snapshot_is_used_without_network(offline, tmp_path):
    pytest.importorskip("transformers")
    from rarity_score.features import dinov2

    files = {"config.json": b"{}", "model.safetensors": b"weights"}
    snapshot = _cached(tmp_path / "hub", dinov2.HF_REPO, files)
    assert dinov2.resolve_weights(None) == snapshot
    assert offline == []


def test_an_expanded_tensor_too_big_to_copy_names_its_file(tmp_path, capsys):
    import torch
    from cli_helpers import run_cli

    path = tmp_path / "expand.pt"
    torch.save(torch.zeros(1).expand(2**40, 8), path)  # a few bytes standing for 32 TiB
    np.save(tmp_path / "fake.npy", np.zeros((5, 8), dtype=np.float32))
    code, _, err = run_cli(capsys, "score", "--real", path, "--fake", tmp_path / "fake.npy")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert "expand.pt" in lines[0] and "memory" in lines[0]


def test_an_npy_array_saved_under_an_npz_name_is_one_line(tmp_path, capsys):
    from cli_helpers import assert_one_line_error, run_cli

    wrong = tmp_path / "real.npz"
    with open(wrong, "wb") as handle:
        np.save(handle, np.zeros((10, 4), dtype=np.float32))
    np.save(tmp_path / "fake.npy", np.zeros((5, 4), dtype=np.float32))
    result = run_cli(capsys, "score", "--real", wrong, "--fake", tmp_path / "fake.npy")
    assert_one_line_error(*result, "real.npz", "not an .npz archive")


def test_an_npz_that_is_no_zip_never_suggests_unpickling(tmp_path, capsys):
    from cli_helpers import assert_one_line_error, run_cli

    wrong = tmp_path / "real.npz"
    wrong.write_bytes(bytes(range(7, 107)))  # np.load would take these bytes for a pickle
    np.save(tmp_path / "fake.npy", np.zeros((5, 4), dtype=np.float32))
    result = run_cli(capsys, "score", "--real", wrong, "--fake", tmp_path / "fake.npy")
    assert_one_line_error(*result, "real.npz", "not an .npz archive")
    assert "pickle" not in result[2]
