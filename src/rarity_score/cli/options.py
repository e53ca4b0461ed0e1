"""The command line's options, each declared once, and the option values built once from them.

Every option that sets a field of :class:`~rarity_score.options.ExtractionOptions`,
:class:`~rarity_score.options.EngineOptions` or :class:`~rarity_score.demo.DemoConfig` takes its
argparse default from that field and its name from it (``--batch-size`` sets ``batch_size``), so
no default is written twice. The groups of options are parent parsers shared by every command
that takes them; an option that two groups take (``--batch-size`` of `score` and `demo`) has one
declaration (:data:`_SHARED`), and each group words its help.

argparse only turns text into numbers here; the values' checks are the option classes' own
(``__post_init__``), ``_validation.check_k``, ``metrics.check_names`` and
``engine.backend.check_device``: :func:`option_values` calls them right after parsing, before any
input is read, and names the option in their message (:class:`UsageError`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Any

from rarity_score import defaults
from rarity_score.io.names import shorten
from rarity_score.options import (
    EngineOptions,
    ExtractionOptions,
    OptionError,
    StatisticsOptions,
    on_device,
)

if TYPE_CHECKING:
    from rarity_score.demo import DemoConfig

__all__ = [
    "UsageError",
    "add_shared",
    "cluster_parent",
    "demo_options",
    "demo_values",
    "engine_parent",
    "extraction_parent",
    "option_values",
    "statistics_parent",
    "statistics_values",
    "verbosity_parent",
]

MIB = 2**20

#: Fields that no option sets as they are: the device is split by ``on_device``, the cache folder
#: comes with ``--no-cache``, the progress bars go with ``--quiet``.
_DECIDED = frozenset({"device", "cache_dir", "progress"})


class UsageError(ValueError):
    """A bad option value, found when the option values are built: reported as argparse reports
    its own errors (one line naming the option, exit 2, a pointer to ``--help``)."""


# ---------------------------------------------------------------------- type converters


def _number(convert: Callable[[str], Any], kind: str) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, refused unless a finite number. Only the text is
    judged here; the range of a value is its option class's check."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {kind}, got {shorten(text)!r}") from None
        if isinstance(value, float) and not math.isfinite(value):  # "inf", "nan", "1e400"
            raise argparse.ArgumentTypeError(f"expected a finite number, got {shorten(text)}")
        return value

    return parse


whole_number = _number(int, "a whole number")


def mebibytes(text: str) -> int:
    """--memory-budget: MiB on the command line (at least 1, a unit of the command line's own,
    so its check is here), bytes in :class:`~rarity_score.options.EngineOptions`."""
    value = _number(float, "a number")(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {shorten(text)}")
    return int(value * MIB)


# ---------------------------------------------------------------------- declarations


def field_default(cls: type, name: str) -> Any:
    """The default of the dataclass field ``cls.name``: the one value of that default."""
    for item in fields(cls):
        if item.name == name:
            if item.default is MISSING:
                raise TypeError(f"{cls.__name__}.{name} has no plain default")
            return item.default
    raise AttributeError(f"{cls.__name__} has no field {name!r}")


def _of(cls: type, name: str, **settings: Any) -> dict[str, Any]:
    """argparse settings of the option that sets ``cls.name``, with its default."""
    return {"default": field_default(cls, name), **settings}


#: Options taken by more than one group, by flag: everything but the help, which each group
#: words for its command.
_SHARED: dict[str, dict[str, Any]] = {
    "-k": {"type": whole_number, "default": defaults.K},
    "--device": {"default": None, "metavar": "DEVICE"},
    "--batch-size": _of(ExtractionOptions, "batch_size", type=whole_number, metavar="N"),
    "--workers": _of(ExtractionOptions, "workers", type=whole_number, metavar="N"),
    "--cache-dir": _of(ExtractionOptions, "cache_dir", metavar="DIR"),
    "--no-cache": {"action": "store_true"},
}


def add_shared(group: Any, flag: str, help: str) -> None:
    """Add the option ``flag`` as :data:`_SHARED` declares it, with this group's ``help``."""
    group.add_argument(flag, help=help, **_SHARED[flag])


_K_HELP = (
    "neighbourhood size: each real sample's sphere reaches to its k-th nearest other real "
    "sample (1 <= k <= number of real samples - 1; default %(default)s, as in the paper). "
    "Larger k gives larger spheres, more samples in the manifold and larger scores"
)

_NO_CACHE_HELP = "neither read nor write the feature cache"


def verbosity_parent() -> argparse.ArgumentParser:
    """-v and -q, accepted before and after the subcommand: SUPPRESS keeps the subcommand's
    defaults from overwriting a flag given before it (``main`` fills in the defaults)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log progress to stderr (-v: INFO, -vv: DEBUG; default: warnings only)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print no summary and no progress bar; log errors only",
    )
    return parent


def engine_parent(*, with_metrics: bool) -> argparse.ArgumentParser:
    """-k, --metrics (when asked) and the computation options of the k-NN sweep."""
    from rarity_score import metrics

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("metric options")
    add_shared(group, "-k", _K_HELP)
    if with_metrics:
        group.add_argument(
            "--metrics",
            default=None,
            metavar="LIST",
            help=(
                f"comma-separated metrics to compute, from: {', '.join(metrics.names())} "
                "(default: all)"
            ),
        )
    group = parent.add_argument_group("computation (results do not depend on these)")
    budget = field_default(EngineOptions, "memory_budget")
    # No argparse `choices`: the one check of a backend is EngineOptions'; the metavar lists them.
    group.add_argument(
        "--backend",
        **_of(EngineOptions, "backend", metavar="{" + ",".join(defaults.BACKENDS) + "}"),
        help="array library for the distance sweep (default: %(default)s; torch is optional)",
    )
    add_shared(
        group,
        "--device",
        "torch device: cpu, cuda, cuda:N or mps. It runs the feature extractor (image inputs) "
        "and the distance sweep, which it moves to the torch backend unless --backend numpy "
        "(default: extractor on cpu, sweep where --backend puts it)",
    )
    group.add_argument(
        "--memory-budget",
        **_of(EngineOptions, "memory_budget", type=mebibytes, metavar="MiB"),
        help=(
            "memory one tile of the distance sweep may use, in MiB (at least 1; "
            f"default: {budget // MIB})"
        ),
    )
    group.add_argument(
        "--precision",
        **_of(EngineOptions, "precision", metavar="{" + ",".join(defaults.PRECISIONS) + "}"),
        help=(
            "arithmetic of the distance tiles: float32, or tf32 / bf16 on CUDA tensor cores "
            "(torch backend; results stay exact, more pairs are re-checked in float64; "
            "default: %(default)s)"
        ),
    )
    return parent


def cluster_parent() -> argparse.ArgumentParser:
    """--dask: where the sweeps and the extraction run (the command runs inside
    ``rarity_score.cluster.use`` of its value)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("cluster (results do not depend on it)")
    group.add_argument(
        "--dask",
        default=None,
        type=_cluster_spec,
        metavar="ADDRESS|local[:N]",
        help=(
            "run the distance sweeps and the feature extraction on a Dask cluster: the address "
            "of a running scheduler (tcp://HOST:8786; the workers must see the input files and "
            "the feature cache at the same paths) or local:N for N worker processes made for "
            "this run (pip install 'rarity-score[dask]'; results are identical)"
        ),
    )
    return parent


def statistics_parent() -> argparse.ArgumentParser:
    """--bootstrap, --ci, --seed, --subsample, --stability: what a run adds to its point values
    and which samples it scores (:class:`~rarity_score.options.StatisticsOptions`)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("uncertainty and sample size")
    group.add_argument(
        "--bootstrap",
        **_of(StatisticsOptions, "bootstrap", type=whole_number, metavar="B"),
        help=(
            "percentile-bootstrap intervals of every summary value from B resamples of each "
            f"set's samples (at least {defaults.MIN_RESAMPLES}; 1000 is usual; default: off). "
            "The per-sample values are computed once, so this costs no extra sweep; the real "
            "set and its spheres stay fixed, so an interval covers the draw of the samples "
            "scored. Recall and coverage get none (they rest on the generated set as a whole). "
            "Needs scipy: pip install 'rarity-score[stats]'"
        ),
    )
    group.add_argument(
        "--ci",
        dest="level",
        **_of(StatisticsOptions, "level", type=_number(float, "a number"), metavar="LEVEL"),
        help="confidence level of the intervals (default: %(default)s)",
    )
    group.add_argument(
        "--seed",
        **_of(StatisticsOptions, "seed", type=whole_number, metavar="S"),
        help=(
            "seed of the resamples and random subsets; a run repeated with one seed gives the "
            "same numbers (default: %(default)s)"
        ),
    )
    group.add_argument(
        "--subsample",
        **_of(StatisticsOptions, "subsample", type=whole_number, metavar="N"),
        help=(
            "score N random samples of each set (the real set too; smaller sets whole): k-NN "
            "radii shrink as a set grows, so sets are comparable only at equal size"
        ),
    )
    group.add_argument(
        "--stability",
        action="store_true",
        help=(
            "also score against random parts of the real set ("
            + ", ".join(f"{100 * f:g} %%" for f in defaults.STABILITY_FRACTIONS if f < 1)
            + ") and show how the summary moves: whether the real set is large enough"
        ),
    )
    return parent


def statistics_values(args: argparse.Namespace) -> StatisticsOptions:
    """The :class:`~rarity_score.options.StatisticsOptions` of a command, checked (a bad value
    names its option; scipy is checked when intervals are asked, before any input is read)."""
    statistics: StatisticsOptions = _build(StatisticsOptions, _given(args, StatisticsOptions))
    if statistics.intervals:
        from rarity_score.uncertainty import require_scipy

        try:
            require_scipy()
        except ImportError as error:
            raise UsageError(str(error)) from None
    return statistics


def _cluster_spec(text: str) -> Any:
    """--dask: checked as text (dask is imported only when the cluster is first needed)."""
    from rarity_score import cluster

    try:
        return cluster.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def extraction_parent(*, several: bool = False) -> argparse.ArgumentParser:
    """The options of image inputs, shared by `score`, `compare`, `datasets`, `features` and
    `spaces` (--device is with the computation options, which it also affects). ``several``:
    --extractor is repeated, one feature space each (`rarity spaces`; a list, or None when not
    given, which :func:`option_values` leaves to the command: ``besides={"extractor"}``)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("feature extraction (image inputs)")
    if several:
        group.add_argument(
            "--extractor",
            action="append",
            default=None,
            metavar="SPACE",
            help=(
                "a feature space: an extractor (see `rarity extractors`), optionally followed "
                "by +pcaN, its features projected on the N leading principal directions of the "
                "real set (pixels+pca64); repeat for each space, at least two"
            ),
        )
    else:
        group.add_argument(
            "--extractor",
            **_of(ExtractionOptions, "extractor", metavar="NAME"),
            help=(
                "feature extractor for image inputs (see `rarity extractors`; default: "
                f"{defaults.EXTRACTOR}, the paper's space). With feature files it names the "
                "extractor that made them, recorded in the JSON"
            ),
        )
    group.add_argument(
        "--input-size",
        **_of(ExtractionOptions, "input_size", type=whole_number, metavar="PX"),
        help=(
            "network input side in pixels, for extractors that allow another one "
            "(efficientnet-lite0, pixels; default: the extractor's own); part of the "
            "preprocessing"
        ),
    )
    add_shared(
        group,
        "--batch-size",
        "images per forward pass (default: %(default)s; features do not depend on it)",
    )
    add_shared(
        group,
        "--workers",
        "worker processes that decode and preprocess images, 0 = none (default: %(default)s; "
        "worth raising on a GPU; features do not depend on it)",
    )
    group.add_argument(
        "--weights",
        **_of(ExtractionOptions, "weights", metavar="PATH"),
        help=(
            "weights file of the extractor, for machines without internet (default: the "
            "library's download, cached in the torch hub checkpoints folder)"
        ),
    )
    # Not an argparse mutually exclusive group: inside an argument group its options would be
    # listed apart from the group in --help; option_values checks the pair instead.
    add_shared(
        group,
        "--cache-dir",
        f"feature cache folder (default: ${defaults.CACHE_DIR_ENV}, else ~/.cache/rarity-score); "
        "features are reused while the files, extractor, preprocessing and weights are unchanged",
    )
    add_shared(group, "--no-cache", _NO_CACHE_HELP)
    group.add_argument(
        "--strict",
        action="store_true",
        help="fail on an unreadable image instead of skipping it with a warning",
    )
    group.add_argument(
        "--shard-size",
        **_of(ExtractionOptions, "shard_size", type=whole_number, metavar="N"),
        help=(
            "images per cache shard: a killed extraction resumes from the last complete shard "
            "(default: %(default)s)"
        ),
    )
    return parent


def demo_options(demo: argparse.ArgumentParser) -> None:
    """The options of `rarity demo`: where, how big (:class:`~rarity_score.demo.DemoConfig`'s
    fields), and how the features are computed."""
    from rarity_score.demo import DemoConfig

    group = demo.add_argument_group("output")
    group.add_argument(
        "--out",
        default="demo-output",
        metavar="DIR",
        help=(
            "output folder: new, empty, or an earlier demo output, which is updated "
            "(default: %(default)s)"
        ),
    )
    group.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="build the HTML reports and histogram.png files (default: yes)",
    )
    group = demo.add_argument_group("size (smaller runs faster; defaults are `make demo`'s)")
    for name, metavar, help in (
        ("samples_per_level", "N", "generated images per truncation level"),
        ("n_real", "N", "MNIST digits in the real set, at most 5000"),
        ("n_dataset", "N", "images per dataset in the dataset comparison, at most 1797"),
        (
            "input_size",
            "PX",
            "efficientnet-lite0 input side in pixels, at least 32; scores change with it",
        ),
    ):
        settings = _of(DemoConfig, name, type=whole_number, metavar=metavar)
        group.add_argument(_flag(name), **settings, help=f"{help} (default: %(default)s)")
    add_shared(group, "-k", "neighbourhood size (default: %(default)s)")
    seed = _of(DemoConfig, "seed", type=whole_number)
    group.add_argument("--seed", **seed, help="seed of the samples (default: %(default)s)")
    group = demo.add_argument_group("computation")
    add_shared(
        group,
        "--device",
        "torch device of the extractor and the sweep: cpu, cuda, cuda:N or mps (default: cpu)",
    )
    add_shared(group, "--batch-size", "images per forward pass (default: %(default)s)")
    add_shared(group, "--workers", "image decoding worker processes (default: %(default)s)")
    add_shared(
        group, "--cache-dir", "feature cache folder (default: DIR/cache inside the output folder)"
    )
    add_shared(group, "--no-cache", _NO_CACHE_HELP)


# ---------------------------------------------------------------------- option values


def option_values(
    args: argparse.Namespace, *, besides: Collection[str] = ()
) -> tuple[ExtractionOptions, EngineOptions]:
    """The extraction and engine options of a command, built once from its arguments, and the
    checks of every value given (k, metric names, device, the option classes' own), before any
    input is read. ``--device`` runs the extractor and the sweep
    (:func:`rarity_score.options.on_device`); ``--quiet`` turns both progress bars off (the
    sweep's is also off when stderr is not a terminal). ``besides``: fields that the command's
    own settings take instead (the demo's ``--input-size`` is its ``DemoConfig``'s)."""
    from rarity_score.engine.backend import check_device

    if hasattr(args, "k"):
        from rarity_score._validation import check_k

        _checked("-k", check_k, args.k)
    if getattr(args, "metrics", None) is not None:
        from rarity_score import metrics

        try:
            metrics.check_names(args.metrics, option="--metrics")
        except ValueError as error:
            raise UsageError(str(error)) from None
    check_device(args.device, option="--device")
    if args.no_cache and args.cache_dir is not None:
        raise ValueError("--no-cache and --cache-dir exclude each other; give one of them")
    progress = not args.quiet
    given = _given(args, ExtractionOptions, besides)
    given.update(cache_dir=False if args.no_cache else args.cache_dir, progress=progress)
    extraction = _build(ExtractionOptions, given)
    engine = _build(EngineOptions, {**_given(args, EngineOptions, besides), "progress": progress})
    return on_device(args.device, extraction=extraction, engine=engine)


def demo_values(
    args: argparse.Namespace,
) -> tuple[DemoConfig, ExtractionOptions, EngineOptions]:
    """The demo's sizes and settings (checked by ``DemoConfig``) and its option values."""
    from rarity_score.demo import DemoConfig

    given = _given(args, DemoConfig)
    extraction, engine = option_values(args, besides=given.keys())
    config: DemoConfig = _build(DemoConfig, given)
    return config, extraction, engine


#: Fields set by an option of another name than theirs.
_FLAGS = {"level": "--ci"}


def _flag(name: str) -> str:
    """The option that sets the field ``name``."""
    if name in _FLAGS:
        return _FLAGS[name]
    return f"-{name}" if len(name) == 1 else "--" + name.replace("_", "-")


def _given(args: argparse.Namespace, cls: type, besides: Collection[str] = ()) -> dict[str, Any]:
    """The fields of ``cls`` that the command's options set (but ``besides``), with their
    values."""
    names = [item.name for item in fields(cls) if item.name not in {*_DECIDED, *besides}]
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def _checked(flag: str, check: Callable[[Any], Any], value: Any) -> None:
    try:
        check(value)
    except ValueError as error:
        raise UsageError(f"argument {flag}: {error}") from None


def _build(cls: Callable[..., Any], values: Mapping[str, Any]) -> Any:
    """``cls(**values)``; a bad value of one field names the option that set it (a check of
    several fields together is raised as it is)."""
    try:
        return cls(**values)
    except OptionError as error:
        raise UsageError(f"argument {_flag(error.field)}: {error}") from None
