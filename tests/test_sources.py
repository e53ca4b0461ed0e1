"""Loading inputs (rarity_score.sources): the one path of `rarity score`, compare and datasets.
What a given input is, which extractor the images go through, feature files that record none,
one feature space, and errors that name the set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rarity_score.sources as sources
from rarity_score.compare import score
from rarity_score.features.pipeline import FeatureSet, save_feature_set
from rarity_score.options import ExtractionOptions
from rarity_score.sources import InputSet, choose_extractor, kind_of, load_inputs, name_of


def _saved(path: Path, n: int, dim: int = 4, **record: str) -> Path:
    array = np.random.default_rng(n).normal(size=(n, dim)).astype(np.float32)
    return save_feature_set(path, FeatureSet(array, [f"s_{i}.png" for i in range(n)], **record))


def test_kinds_and_names(tmp_path):
    (tmp_path / "folder").mkdir()
    assert kind_of(tmp_path / "folder") == "folder"
    assert kind_of("x.tar.gz") == "archive" and kind_of("one.PNG") == "image"
    assert kind_of(["a.png", "b.png"]) == "paths" and kind_of(np.zeros((2, 8, 8, 3))) == "array"
    assert kind_of(FeatureSet(np.zeros((1, 2)), ["a"])) == "features"
    assert name_of(tmp_path / "psi.npz") == "psi" and name_of([1, 2]) == "generated"


def test_inputs_keep_their_order_and_record_where_they_came_from(tmp_path):
    real = _saved(tmp_path / "r.npz", 10, extractor="x")
    entries = [("the real set", "real", real), ("a", "a", np.zeros((3, 4)))]
    loaded = load_inputs(entries)
    assert [s.name for s in loaded] == ["real", "a"]
    assert loaded[0].source == str(real) and loaded[0].kind == "features"
    assert loaded[1].source == "ndarray (3, 4)" and not loaded[1].has_images
    assert isinstance(loaded[0], InputSet) and len(loaded[0].features) == 10


def test_a_named_extractor_is_recorded_for_features_that_record_none(tmp_path):
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros((5, 4), np.float32))
    options = ExtractionOptions(extractor="vgg16-fc2")
    (loaded,) = load_inputs([("the set", "s", plain)], options)
    assert loaded.features.extractor == "vgg16-fc2"
    (unnamed,) = load_inputs([("the set", "s", plain)])
    assert unnamed.features.extractor == ""  # nothing named, nothing invented


def test_extractors_that_disagree_are_refused():
    with pytest.raises(ValueError, match="different extractors"):
        choose_extractor(None, {"a": "x", "b": "y"})
    with pytest.raises(ValueError, match="a holds x features, but --extractor y"):
        choose_extractor("y", {"a": "x"})
    assert choose_extractor(None, {}) == "vgg16-fc2"


def test_errors_name_the_set(tmp_path):
    real = _saved(tmp_path / "r.npz", 10)
    with pytest.raises(ValueError, match=r"^the gen: .*missing"):
        load_inputs([("the real set", "real", real), ("the gen", "g", tmp_path / "missing")])
    with pytest.raises(ValueError, match=r"the gen \(.*\) is empty"):
        load_inputs([("the real set", "real", real), ("the gen", "g", np.zeros((0, 4)))])
    with pytest.raises(ValueError, match="dimensions differ"):
        load_inputs([("the real set", "real", real), ("the gen", "g", np.zeros((3, 5)))])
    with pytest.raises(ValueError, match=r"real features \(.*r\.npz\) \(10 samples\): k=10 needs"):
        score(real, np.zeros((3, 4)), k=10)


def test_score_goes_through_the_same_loading(tmp_path, monkeypatch):
    seen = []
    real = _saved(tmp_path / "r.npz", 12)

    def recording(entries, extraction=None):
        seen.append([where for where, _, _ in entries])
        return original(entries, extraction)

    original = sources.load_inputs
    monkeypatch.setattr(sources, "load_inputs", recording)
    scored = score(real, _saved(tmp_path / "g.npz", 6), metrics=["rarity"])
    assert seen == [["real features", "generated features"]]
    assert scored.fake.name == "g" and scored.evaluation.n_fake == 6
    reference = scored.leave_one_out()
    assert reference.n_fake == 12
