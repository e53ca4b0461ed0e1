"""The ``rarity`` command: score precomputed feature files, or run the offline demo.

Thin by design: parse the arguments, call the Python API, print. No maths here.

Logging goes to stderr: warnings only by default, ``-v`` adds progress (INFO), ``-vv`` adds
details (DEBUG), ``-q`` keeps errors only and prints no summary. Exit status: 0 on success,
2 on bad input or usage (one line ``rarity: error: ...`` on stderr), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rarity_score import __version__, defaults
from rarity_score.io.features import features_fingerprint, load_features, save_features
from rarity_score.results import Evaluation, format_summary

__all__ = ["main"]

logger = logging.getLogger(__name__)

_MIB = 2**20
_WIDTH = 88  # wrap width of printed prose

_COMPARABILITY = (
    "Rarity scores are distances in feature space: they are comparable only between runs that "
    "use the same feature extractor, the same real reference set and the same k."
)

_SCORE_DESCRIPTION = f"""\
Score generated samples against real samples, from precomputed feature files
(.npy, .npz, .pt/.pth; one row per sample, one column per feature; FILE.npz:NAME picks one
array of an .npz file).

Each real sample gets a k-NN sphere: the open ball reaching to its k-th nearest other real
sample. The union of these spheres is the real manifold. A generated sample inside at least
one sphere gets a rarity score: the radius of the smallest real sphere that contains it
(large = it sits where real samples are sparse, i.e. it is uncommon). A generated sample
outside every sphere is "out of the manifold": its fidelity is not guaranteed, it gets no
rarity score (an empty cell in the CSV, null in the JSON), and the summary statistics are over
in-manifold samples only, with the out-of-manifold count and fraction reported beside them.

{textwrap.fill(_COMPARABILITY, width=92)}
"""

_DEMO_DESCRIPTION = """\
Run the whole pipeline offline on a small synthetic feature set: real samples near a curved
low-dimensional manifold, and generated samples that mix typical samples, rare samples (from
the manifold's sparse tails), off-manifold samples (which get no score) and near-duplicates of
real samples. Writes real.npy, fake.npy, per_sample.csv and summary.json into the output
folder and prints the same summary as `rarity score`, plus a breakdown by group.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rarity`` command line with ``argv`` (default: ``sys.argv[1:]``); return the
    exit status instead of exiting."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error (already printed)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    args.verbose = getattr(args, "verbose", 0)
    args.quiet = getattr(args, "quiet", False)
    _configure_logging(args.verbose, args.quiet)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _log_warning
            return int(args.handler(args))
    except (ValueError, OSError, ImportError) as error:  # FeatureFileError is a ValueError
        logger.debug("error details", exc_info=True)
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"rarity: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rarity: interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------- commands


def _cmd_score(args: argparse.Namespace) -> int:
    _check_output_folder(args.out)
    _check_output_folder(args.json)
    real = load_features(args.real)
    fake = load_features(args.fake)
    inputs = {"real features": f"{args.real}", "generated features": f"{args.fake}"}
    extra = {
        "feature_extractor": args.extractor,
        "real_features": str(args.real),
        "fake_features": str(args.fake),
    }
    evaluation = _evaluate(args, real, fake, extra, real_label=str(args.real))
    written = _write_outputs(evaluation, args.out, args.json, extra)
    if not args.quiet:
        inputs["feature extractor"] = args.extractor or "unknown (precomputed features)"
        _print_summary(evaluation, inputs, written)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from rarity_score.demo import group_breakdown, make_demo_features

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = make_demo_features(n_real=args.n_real, n_fake=args.n_fake, dim=args.dim, seed=args.seed)
    real_path = save_features(out / "real.npy", data.real)
    fake_path = save_features(out / "fake.npy", data.fake)
    logger.info("wrote synthetic features to %s and %s", real_path, fake_path)
    # Same path as `rarity score`: read the files back rather than use the arrays in memory.
    real = load_features(real_path)
    fake = load_features(fake_path)
    extractor = f"synthetic (rarity demo, seed {args.seed})"
    extra = {
        "feature_extractor": extractor,
        "real_features": str(real_path),
        "fake_features": str(fake_path),
        "demo": {"n_real": args.n_real, "n_fake": args.n_fake, "dim": args.dim, "seed": args.seed},
    }
    evaluation = _evaluate(args, real, fake, extra, real_label=str(real_path))
    written = [real_path, fake_path]
    written += _write_outputs(
        evaluation, out / "per_sample.csv", out / "summary.json", extra, names=data.names
    )
    if not args.quiet:
        inputs = {
            "real features": str(real_path),
            "generated features": str(fake_path),
            "feature extractor": extractor,
        }
        _print_summary(evaluation, inputs, [])
        if "rarity" in evaluation.metrics:
            rows = group_breakdown(
                data.groups,
                evaluation.in_manifold,
                evaluation.rarity,
                evaluation.nearest_real_distance,
            )
            _print_breakdown(rows)
        _print_written(written)
    return 0


# ---------------------------------------------------------------------- shared steps


def _evaluate(
    args: argparse.Namespace,
    real: Any,
    fake: Any,
    extra: dict[str, Any],
    *,
    real_label: str,
) -> Evaluation:
    from rarity_score import evaluate

    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature dimensions differ: the real features have {real.shape[1]} columns, the "
            f"generated features {fake.shape[1]}; both must come from the same feature extractor"
        )
    n_real = real.shape[0]
    if not 1 <= args.k <= n_real - 1:
        raise ValueError(
            f"k={args.k} is out of range for {n_real} real samples ({real_label}): "
            f"k must be between 1 and n_real - 1 = {n_real - 1}"
        )
    extra["real_fingerprint"] = features_fingerprint(real)
    extra["fake_fingerprint"] = features_fingerprint(fake)
    logger.info(
        "evaluating %d generated against %d real samples (dim %d, k=%d)",
        fake.shape[0],
        n_real,
        real.shape[1],
        args.k,
    )
    options: dict[str, Any] = {"metrics": args.metrics, "backend": args.backend}
    if args.device is not None:
        options["device"] = args.device
    if args.memory_budget is not None:
        options["memory_budget"] = int(args.memory_budget * _MIB)
    extra["requested_backend"] = args.backend
    if args.device is not None:
        extra["requested_device"] = args.device
    return evaluate(real, fake, args.k, **options)


def _check_output_folder(path: str | None) -> None:
    """Fail before the computation, not after it, when an output cannot be written."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"cannot write {target}: it is a directory; give a file name")
    if not target.parent.is_dir():
        raise ValueError(f"cannot write {target}: folder {target.parent} does not exist")


def _write_outputs(
    evaluation: Evaluation,
    csv_path: str | Path | None,
    json_path: str | Path | None,
    extra: dict[str, Any],
    names: Sequence[str] | None = None,
) -> list[Path]:
    written = []
    if csv_path is not None:
        written.append(evaluation.write_csv(csv_path, names=names))
    if json_path is not None:
        written.append(evaluation.write_json(json_path, extra))
    for path in written:
        logger.info("wrote %s", path)
    return written


def _print_summary(evaluation: Evaluation, inputs: dict[str, str], written: list[Path]) -> None:
    print(format_summary(evaluation.summary(), inputs), end="")
    print()
    print(textwrap.fill(_COMPARABILITY, width=_WIDTH))
    if written:
        print()
        _print_written(written)


def _print_breakdown(rows: list[dict[str, Any]]) -> None:
    header = ("group", "samples", "in manifold", "median rarity", "median nearest real")
    table = [header] + [
        (
            str(row["group"]),
            str(row["n"]),
            str(row["n_in_manifold"]),
            "n/a" if row["median_rarity"] is None else f"{row['median_rarity']:.4g}",
            "n/a" if row["median_nearest_real"] is None else f"{row['median_nearest_real']:.4g}",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print()
    print("Demo groups (the generated set is built from known kinds of samples)")
    for line in table:
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        print("  " + "  ".join(cells))


def _print_written(paths: list[Path]) -> None:
    print()
    print("Wrote")
    for path in paths:
        print(f"  {path}")


# ---------------------------------------------------------------------- parsing


def _build_parser() -> argparse.ArgumentParser:
    # Verbosity flags are accepted before and after the subcommand; SUPPRESS keeps the
    # subcommand's defaults from overwriting a flag given before it.
    verbosity = argparse.ArgumentParser(add_help=False)
    group = verbosity.add_argument_group("output")
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
        help="print no summary; log errors only",
    )

    engine = argparse.ArgumentParser(add_help=False)
    options = engine.add_argument_group("metric options")
    options.add_argument(
        "-k",
        type=_positive_int,
        default=defaults.K,
        help=(
            "neighbourhood size: each real sample's sphere reaches to its k-th nearest other real "
            "sample (1 <= k <= number of real samples - 1; default %(default)s, as in the paper). "
            "Larger k gives larger spheres, more samples in the manifold and larger scores"
        ),
    )
    options.add_argument(
        "--metrics",
        type=_metric_list,
        default=None,
        metavar="LIST",
        help=(
            "comma-separated metrics to compute, from: "
            f"{', '.join(defaults.METRICS)} (default: all)"
        ),
    )
    compute = engine.add_argument_group("computation (results do not depend on these)")
    compute.add_argument(
        "--backend",
        choices=("auto", "numpy", "torch"),
        default=defaults.BACKEND,
        help="array library for the distance sweep (default: %(default)s; torch is optional)",
    )
    compute.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help=(
            "torch device for the sweep: cpu, cuda or cuda:N; implies the torch backend "
            "(default: none, the sweep runs where --backend puts it)"
        ),
    )
    compute.add_argument(
        "--memory-budget",
        type=_positive_float,
        default=None,
        metavar="MiB",
        help=(
            "memory one tile of the distance sweep may use, in MiB (at least 1; "
            f"default: {defaults.MEMORY_BUDGET // _MIB})"
        ),
    )

    parser = argparse.ArgumentParser(
        prog="rarity",
        description=(
            "Rarity Score (Han et al., ICLR 2023) of generated samples, with improved "
            "precision/recall, density/coverage and realism, from k-NN spheres of real samples."
        ),
        parents=[verbosity],
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} (rarity-score)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    score = commands.add_parser(
        "score",
        parents=[verbosity, engine],
        help="score generated features against real features",
        description=_SCORE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = score.add_argument_group("inputs and outputs")
    files.add_argument(
        "--real",
        required=True,
        metavar="REAL",
        help="features of the real reference set (FILE.npy, FILE.npz[:NAME], FILE.pt[:NAME])",
    )
    files.add_argument(
        "--fake",
        required=True,
        metavar="FAKE",
        help="features of the generated samples, same extractor and dimension as REAL",
    )
    files.add_argument(
        "--out",
        metavar="CSV",
        help=(
            "write one row per generated sample: in_manifold, rarity (empty when out of the "
            "manifold), the real sample whose sphere gave the score, the nearest real sample, ..."
        ),
    )
    files.add_argument(
        "--json",
        metavar="JSON",
        help="write settings and summary as JSON (missing values are null)",
    )
    files.add_argument(
        "--extractor",
        metavar="NAME",
        default=None,
        help="name of the feature extractor that made the features, recorded in the JSON",
    )
    score.set_defaults(handler=_cmd_score)

    demo = commands.add_parser(
        "demo",
        parents=[verbosity, engine],
        help="run the pipeline on a synthetic feature set (offline, no images needed)",
        description=_DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = demo.add_argument_group("synthetic data")
    data.add_argument(
        "--out",
        default="demo-output",
        metavar="DIR",
        help="output folder, created if missing (default: %(default)s)",
    )
    data.add_argument("--n-real", type=_positive_int, default=2000, help="real samples")
    data.add_argument("--n-fake", type=_positive_int, default=1000, help="generated samples")
    data.add_argument("--dim", type=_positive_int, default=64, help="feature dimension")
    data.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.set_defaults(handler=_cmd_demo)

    # No parser.set_defaults(verbose=...) here: the flag actions are shared with the subparsers
    # (argparse parents), so that would overwrite a flag given before the subcommand.
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    """Send the package's log records to stderr at the level the flags ask for."""
    level = (
        logging.ERROR
        if quiet
        else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    )
    package_logger = logging.getLogger("rarity_score")
    for handler in list(package_logger.handlers):
        if getattr(handler, "_rarity_cli", False):
            package_logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("rarity: %(levelname)s: %(message)s"))
    handler._rarity_cli = True  # type: ignore[attr-defined]
    package_logger.addHandler(handler)
    package_logger.setLevel(level)


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Show library warnings (e.g. "recall needs more than k generated samples") as log lines."""
    logger.warning("%s", message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _metric_list(text: str) -> tuple[str, ...] | None:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return None
    unknown = [name for name in names if name not in defaults.METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(defaults.METRICS)} or 'all'"
        )
    return tuple(dict.fromkeys(names))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
