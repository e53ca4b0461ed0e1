"""The +pcaN projection: against an eigendecomposition of the covariance (computed differently),
the sign rule, invariance under rotations, translations and scalings, the spec and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from rarity_score.features.pipeline import FeatureSet
from rarity_score.features.projection import Projection, parse_space, project


def _data(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    """Correlated Gaussian features with well-separated variances (no near-tied directions)."""
    rng = np.random.default_rng(seed)
    scales = 2.0 ** -np.arange(dim)  # variances 1, 1/4, 1/16, ...
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return (rng.normal(size=(rows, dim)) * scales) @ basis.T + rng.normal(size=dim) * 3


def _orthogonal(dim: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


# ----------------------------------------------------------------------------- parse_space


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("pixels+pca64", ("pixels", 64)),
        ("efficientnet-lite0-stage2+pca1", ("efficientnet-lite0-stage2", 1)),
        ("vgg16-fc2", ("vgg16-fc2", None)),
        ("  pixels+pca10 ", ("pixels", 10)),
        ("pixels+pca1000", ("pixels", 1000)),
    ],
)
def test_parse_space(spec: str, expected: tuple[str, int | None]) -> None:
    assert parse_space(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "pixels+pca0",
        "pixels+pcax",
        "pixels+pca",
        "pixels+",
        "+pca5",
        "pixels+pca-3",
        "pixels+pca064",  # one spelling per space
        "pixels+pca3+pca4",
        "pixels +pca3",
        "pixels+ pca3",
        "pixels+PCA3",
        "pixels+pca3.5",
        "pixels+tsne2",
    ],
)
def test_parse_space_refuses(spec: str) -> None:
    with pytest.raises(ValueError, match="NAME\\+pcaN") as caught:
        parse_space(spec)
    assert repr(spec) in str(caught.value) and "\n" not in str(caught.value)


def test_parse_space_refuses_empty() -> None:
    for spec in ("", "   "):
        with pytest.raises(ValueError, match="empty space spec"):
            parse_space(spec)


# -------------------------------------------------------------------------------- the fit


def test_equals_the_covariance_eigenvectors() -> None:
    """The components are the leading eigenvectors of the covariance matrix (eigh, a different
    route than the SVD of the centred data), in decreasing order of variance, up to sign; the
    projected real set is centred and uncorrelated, with those eigenvalues as variances."""
    real = _data(200, 9)
    fakes = _data(30, 9, seed=1)
    projection = Projection.fit(real, 5)
    assert projection.components.shape == (5, 9) and projection.components.dtype == np.float64
    np.testing.assert_allclose(projection.mean, real.mean(axis=0), rtol=0, atol=1e-12)

    values, vectors = np.linalg.eigh(np.cov(real, rowvar=False))
    order = np.argsort(values)[::-1][:5]
    reference = vectors[:, order].T  # (5, 9)
    signs = np.sign(np.sum(reference * projection.components, axis=1))
    np.testing.assert_allclose(projection.components, reference * signs[:, None], atol=1e-9)
    np.testing.assert_allclose(
        projection.components @ projection.components.T, np.eye(5), atol=1e-12
    )

    expected = (fakes - real.mean(axis=0)) @ reference.T * signs
    np.testing.assert_allclose(projection.apply(fakes), expected, atol=1e-9)
    on_real = projection.apply(real)
    np.testing.assert_allclose(on_real.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(np.cov(on_real, rowvar=False), np.diag(values[order]), atol=1e-9)


def test_sign_rule() -> None:
    """Each direction's largest-magnitude loading is positive, so the projection depends on the
    data alone: negating or reordering the real set gives the same directions."""
    real = _data(60, 7, seed=3)
    projection = Projection.fit(real, 4)
    for row in projection.components:
        assert row[np.argmax(np.abs(row))] > 0
    flipped = Projection.fit(-real, 4)  # LAPACK's signs may differ; the rule fixes them
    np.testing.assert_allclose(flipped.components, projection.components, atol=1e-10)
    np.testing.assert_allclose(flipped.apply(-real), -projection.apply(real), atol=1e-10)
    shuffled = Projection.fit(real[np.random.default_rng(0).permutation(60)], 4)
    np.testing.assert_allclose(shuffled.components, projection.components, atol=1e-10)
    # a direction whose two largest loadings tie: the first of them is positive
    tied = Projection.fit(np.array([[1.0, -1.0], [-1.0, 1.0], [2.0, -2.0]]), 1)
    np.testing.assert_allclose(tied.components, [[np.sqrt(0.5), -np.sqrt(0.5)]], atol=1e-12)


def test_rotation_translation_and_scaling() -> None:
    """Fitted on a rotated, shifted and scaled copy of the real set and applied to the same
    transform of the fakes, the projection gives the same coordinates times the scale, up to
    each direction's sign: the distances the metrics see are the same, scaled."""
    real, fakes = _data(80, 6, seed=4), _data(20, 6, seed=5)
    rotation, shift, scale = _orthogonal(6, 6), np.arange(6.0) - 2.5, 3.0

    def move(x: np.ndarray) -> np.ndarray:
        return scale * x @ rotation + shift

    ours = Projection.fit(real, 3)
    theirs = Projection.fit(move(real), 3)
    a, b = ours.apply(fakes), theirs.apply(move(fakes))
    signs = np.sign(np.sum(a * b, axis=0))
    np.testing.assert_allclose(b, scale * a * signs, atol=1e-9)

    def distances(x: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x[:, None] - x[None], axis=-1)

    np.testing.assert_allclose(distances(b), scale * distances(a), atol=1e-9)
    # a translation alone changes nothing at all (up to rounding), signs included
    shifted = Projection.fit(real + shift, 3)
    np.testing.assert_allclose(shifted.apply(fakes + shift), a, atol=1e-9)


def test_all_directions_preserve_distances() -> None:
    """With N = dim (rows > dim) the projection is a rigid motion: every distance is kept."""
    real, fakes = _data(40, 5, seed=7), _data(10, 5, seed=8)
    projection = Projection.fit(real, 5)
    x, y = projection.apply(fakes), fakes
    np.testing.assert_allclose(
        np.linalg.norm(x[:, None] - x[None], axis=-1),
        np.linalg.norm(y[:, None] - y[None], axis=-1),
        atol=1e-10,
    )


def test_float32_features_are_upcast() -> None:
    real = _data(50, 4).astype(np.float32)
    projection = Projection.fit(real, 2)
    reference = Projection.fit(real.astype(np.float64), 2)
    assert np.array_equal(projection.components, reference.components)
    out = projection.apply(real[:3])
    assert out.dtype == np.float64 and out.shape == (3, 2)
    assert np.array_equal(out, reference.apply(real[:3].astype(np.float64)))


def test_projection_is_read_only() -> None:
    projection = Projection.fit(_data(20, 3), 2)
    with pytest.raises(ValueError):
        projection.components[0, 0] = 1.0
    with pytest.raises(AttributeError):
        projection.mean = np.zeros(3)  # type: ignore[misc]
    assert (projection.n, projection.dim) == (2, 3)
    with pytest.raises(ValueError, match=r"\(D,\) mean and \(N, D\) components"):
        Projection(mean=np.zeros(3), components=np.zeros((2, 4)))


# ----------------------------------------------------------------------------- the errors


def test_too_many_directions() -> None:
    real = _data(6, 10)
    assert Projection.fit(real, 5).n == 5  # 6 samples span 5 directions
    with pytest.raises(ValueError, match="6 samples of dimension 10, which span at most 5"):
        Projection.fit(real, 6)
    with pytest.raises(ValueError, match="span at most 3"):
        Projection.fit(_data(50, 3), 4)
    with pytest.raises(ValueError, match="span at most 0"):
        Projection.fit(_data(1, 3), 1)


def test_directions_without_variance() -> None:
    rng = np.random.default_rng(0)
    flat = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 5))  # a plane through 0 in 5-d
    assert Projection.fit(flat, 2).n == 2
    with pytest.raises(ValueError, match="vary along only 2") as caught:
        Projection.fit(flat, 3)
    assert "+pca2" in str(caught.value)
    with pytest.raises(ValueError, match="are all equal"):
        Projection.fit(np.ones((5, 3)), 1)


@pytest.mark.parametrize("n", [0, -1, 2.0, True, "3"])
def test_bad_counts(n: object) -> None:
    with pytest.raises(ValueError, match="whole number from 1"):
        Projection.fit(_data(20, 4), n)  # type: ignore[arg-type]


def test_bad_arrays() -> None:
    real = _data(20, 4)
    with pytest.raises(ValueError, match="2-D"):
        Projection.fit(real[0], 1)
    bad = real.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        Projection.fit(bad, 1)
    with pytest.raises(ValueError, match="must be numbers"):
        Projection.fit(real.astype(str), 1)
    projection = Projection.fit(real, 2)
    with pytest.raises(ValueError, match="dimension 5, but the projection was fitted on 4"):
        projection.apply(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        projection.apply(np.full((1, 4), np.inf))


# ------------------------------------------------------------------------------ project()


def _feature_set(features: np.ndarray, **fields: str) -> FeatureSet:
    names = [f"img{i}.png" for i in range(features.shape[0])]
    return FeatureSet(features=features, names=names, **fields)  # type: ignore[arg-type]


def test_project_keeps_the_set_and_names_the_space() -> None:
    real = _data(30, 6)
    fields = {
        "extractor": "pixels",
        "source": "real/",
        "preprocessing": "PIL bicubic resize to 32x32",
        "weights_id": "none",
        "images_fingerprint": "sha256:abc",
    }
    features = FeatureSet(
        features=real.astype(np.float32),
        names=[f"img{i}.png" for i in range(30)],
        skipped=[("bad.png", "truncated")],
        **fields,
    )
    projection = Projection.fit(features.features, 4)
    out = project(features, projection, "pixels+pca4")
    assert out.features.dtype == np.float64 and out.features.shape == (30, 4)
    assert np.array_equal(out.features, projection.apply(features.features))
    assert out.names == features.names and out.names is not features.names
    assert out.skipped == features.skipped
    assert (out.source, out.weights_id, out.images_fingerprint) == (
        "real/",
        "none",
        "sha256:abc",
    )
    assert out.extractor == "pixels+pca4"
    assert out.preprocessing == (
        "PIL bicubic resize to 32x32; then projected on the 4 leading principal directions of "
        "the real set"
    )
    assert features.features.shape == (30, 6)  # the input is left alone
    # unknown stays unknown (a plain .npy records neither)
    plain = project(_feature_set(real), projection, "pixels+pca4")
    assert (plain.extractor, plain.preprocessing) == ("pixels+pca4", "")


def test_project_checks_the_spec() -> None:
    real = _data(30, 6)
    features = _feature_set(real, extractor="pixels")
    projection = Projection.fit(real, 3)
    with pytest.raises(ValueError, match="no \\+pcaN"):
        project(features, projection, "pixels")
    with pytest.raises(
        ValueError, match="asks for 4 principal directions but the projection has 3"
    ):
        project(features, projection, "pixels+pca4")
    with pytest.raises(ValueError, match=r"projection of vgg16-fc2 features.*holds pixels"):
        project(features, projection, "vgg16-fc2+pca3")
    assert project(features, projection, "PIXELS+pca3").dim == 3  # names are case-insensitive
    with pytest.raises(ValueError, match="dimension 5"):
        project(_feature_set(np.zeros((2, 5))), projection, "pixels+pca3")
