"""The commands of ``rarity``, one function each: build the option values once
(:func:`~rarity_score.cli.options.option_values`), call the Python API, print what it returned
(:mod:`rarity_score.cli.output`). No maths and no file format here.

The API is imported inside each command: ``rarity --help`` and a usage error load none of it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rarity_score import defaults
from rarity_score.cli import output
from rarity_score.cli.inputs import check_outputs, default_name, named_sources
from rarity_score.cli.options import UsageError, demo_values, option_values, statistics_values

if TYPE_CHECKING:
    from rarity_score.results_dir import RunResult

__all__ = [
    "compare_command",
    "datasets_command",
    "demo_command",
    "extractors_command",
    "features_command",
    "report_command",
    "score_command",
    "spaces_command",
]

logger = logging.getLogger(__name__)


def score_command(args: argparse.Namespace) -> int:
    from rarity_score.compare import check_output, score
    from rarity_score.results_dir import write_score_record, write_table

    extraction, engine = option_values(args)
    statistics = statistics_values(args)
    check_outputs(
        {"--real": args.real, "--fake": args.fake},
        files={"--out": args.out, "--json": args.json},
        folders={"--report": args.report},
    )
    # The inputs were checked against --report above; here what it holds, and the cache.
    report = check_output(args.report, [], extraction) if args.report is not None else None
    scored = score(
        args.real,
        args.fake,
        k=args.k,
        metrics=args.metrics,
        extraction=extraction,
        engine=engine,
        statistics=statistics,
    )
    written = []
    if args.out is not None:
        fake = scored.fake.features
        written.append(
            write_table(args.out, scored.evaluation, fake.names if fake.has_names else None)
        )
    if args.json is not None:
        written.append(
            write_score_record(
                args.json,
                scored.evaluation,
                scored.real,
                scored.fake,
                engine=engine,
                command=args.command_line,
                analysis=scored.analysis,
            )
        )
    if report is not None:
        written.append(scored.save(report, command=args.command_line).path)
    _log_written(written)
    if not args.quiet:
        output.print_score(scored, args.real, args.fake, written)
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from rarity_score.compare import compare

    fakes = named_sources(args.fake, "generated set", "--fake ")
    inputs = {"--real": args.real, **{f"--fake {name}": path for name, path in fakes.items()}}
    return _results_command(args, inputs, partial(compare, args.real, fakes, metrics=args.metrics))


def datasets_command(args: argparse.Namespace) -> int:
    from rarity_score.compare import compare_datasets

    datasets = named_sources(args.datasets, "dataset", "")
    inputs = {f"dataset {name!r}": path for name, path in datasets.items()}
    return _results_command(args, inputs, partial(compare_datasets, datasets))


def _results_command(
    args: argparse.Namespace, inputs: dict[str, str], run: Callable[..., RunResult]
) -> int:
    """`compare` and `datasets`: ``run(out_dir, ...)`` writes a results directory; print it."""
    extraction, engine = option_values(args)
    statistics = statistics_values(args)
    check_outputs(inputs, folders={"--out": args.out})
    result = run(
        args.out,
        k=args.k,
        extraction=extraction,
        engine=engine,
        statistics=statistics,
        report=args.report,
        command=args.command_line,
    )
    if not args.quiet:
        files = output.results_files(result.path, result.run)
        output.print_run(result.run, result.rows, files, result.comparisons, result.stability)
    return 0


def spaces_command(args: argparse.Namespace) -> int:
    """`rarity spaces`: the image form (--real, --fake, --extractor) or the directory form
    (RESULTS_DIR ...), never both; at least two spaces."""
    from rarity_score.spaces.run import compare_spaces

    extraction, engine = option_values(args, besides={"extractor"})
    statistics = statistics_values(args)
    image_form = [
        flag
        for flag, given in (
            ("--real", args.real),
            ("--fake", args.fake),
            ("--extractor", args.extractor),
        )
        if given
    ]
    if args.results_dirs and image_form:
        raise UsageError(
            f"give results directories or {', '.join(image_form)} (images scored in each "
            "space), not both: the two forms do not mix"
        )
    real: str | None = None
    fakes: dict[str, str] | None = None
    spaces: list[str] | dict[str, str]
    if image_form:
        missing = [flag for flag in ("--real", "--fake", "--extractor") if flag not in image_form]
        if missing:
            raise UsageError(
                f"the image form needs --real, --fake and --extractor (one per space); "
                f"{' and '.join(missing)} missing"
            )
        spaces = list(args.extractor)
        real = args.real
        fakes = named_sources(args.fake, "generated set", "--fake ", default=default_name)
        inputs = {"--real": real, **{f"--fake {name}": path for name, path in fakes.items()}}
        given = len(spaces)
        how = "--extractor A --extractor B"
    else:
        if not args.results_dirs:
            raise UsageError(
                "give two or more results directories, or --real, --fake and an --extractor "
                "per space"
            )
        if args.k != defaults.K or args.metrics is not None:
            raise UsageError(
                "-k and --metrics apply to the image form; results directories are compared "
                "as they were scored"
            )
        spaces = named_sources(args.results_dirs, "space", "", default=default_name)
        inputs = {f"space {name!r}": path for name, path in spaces.items()}
        given = len(args.results_dirs)
        how = "two results directories"
    if given < 2:
        raise UsageError(f"give at least two spaces to compare ({how}), not {given}")
    check_outputs(inputs, folders={"--out": args.out})
    result = compare_spaces(
        spaces,
        args.out,
        real=real,
        fakes=fakes,
        k=args.k if image_form else None,
        metrics=args.metrics,
        extraction=extraction if image_form else None,
        engine=engine,
        statistics=statistics,
        report=args.report,
        command=args.command_line,
    )
    if not args.quiet:
        _print_spaces(result.run, result.rows, result.path)
    return 0


def _print_spaces(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], root: Path) -> None:
    """The spaces compared, the agreement table (:func:`rarity_score.spaces.output.run_text`)
    and the files written, as their run.json lists them."""
    from rarity_score.spaces.output import run_text

    print(run_text(run, rows), end="")
    files = run.get("files") or {}
    written = [root, *(root / name for name in ("summary.csv", "summary.json", "summary.md"))]
    written.append(root / "sets")
    if any(name.startswith("spaces/") for name in files):
        written.append(root / "spaces")
    if "report/index.html" in files:
        written.append(root / "report" / "index.html")
    print()
    print("Wrote")
    for path in written:
        print(f"  {path}")


def report_command(args: argparse.Namespace) -> int:
    from rarity_score.io.run_record import is_spaces_output
    from rarity_score.report import build_report
    from rarity_score.results_dir import load_results

    if is_spaces_output(args.results_dir):
        return _spaces_report_command(args)
    _refuse_a_part_of_a_spaces_output(Path(args.results_dir))
    results = load_results(args.results_dir)  # refused here, before the report starts
    index = Path(build_report(args.results_dir))
    written = [index, results.root / "histogram.png"]  # the report draws the one histogram
    _log_written(written[:1])
    if not args.quiet:
        output.print_run(
            results.run, results.summary, written, results.comparisons, results.stability
        )
    return 0


def _refuse_a_part_of_a_spaces_output(folder: Path) -> None:
    """A results directory inside an output of `rarity spaces` is part of that output (its
    run.json lists the files): a report built into it would make the whole folder one that the
    next run refuses to replace, so it is refused here (its report is built with the run)."""
    from rarity_score.io.run_record import is_spaces_output, read_json

    resolved = folder.resolve()
    outer = resolved.parent.parent
    if resolved.parent.name != "spaces" or not is_spaces_output(outer):
        return
    try:
        files = read_json(outer / "run.json").get("files") or {}
    except (OSError, ValueError, AttributeError):
        return
    if f"spaces/{resolved.name}/run.json" in files:
        raise ValueError(
            f"{folder} is part of the output of rarity spaces {outer}, whose files are one "
            "unit: its report is built with it (run rarity spaces again without --no-report); "
            f"rarity report {outer} rebuilds the comparison's report"
        )


def _spaces_report_command(args: argparse.Namespace) -> int:
    """`rarity report` of an output of `rarity spaces`."""
    from rarity_score.report.spaces import build_spaces_report
    from rarity_score.spaces.output import load_spaces

    results = load_spaces(args.results_dir)  # refused here, before the report starts
    index = Path(build_spaces_report(args.results_dir))
    _log_written([index])
    if not args.quiet:
        from rarity_score.spaces.output import run_text

        print(run_text(results.run, results.summary), end="")
        print()
        print("Wrote")
        print(f"  {index}")
    return 0


def features_command(args: argparse.Namespace) -> int:
    from rarity_score.features.pipeline import extract_features, save_feature_set
    from rarity_score.io.images import is_feature_file

    extraction, _ = option_values(args)
    check_outputs({"INPUT": args.input}, files={"-o/--out": args.out})
    if is_feature_file(args.input):
        raise ValueError(
            f"INPUT {args.input} is a feature file, not images: `rarity features` extracts "
            "features from images; give the file to `rarity score` or `rarity compare` as it is"
        )
    if Path(args.out).suffix.lower() not in (".npz", ".npy"):
        raise ValueError(
            f"cannot write -o/--out {args.out}: give an .npz file (or .npy, without names)"
        )
    features = extract_features(args.input, extraction)
    path = save_feature_set(args.out, features)
    _log_written([path])
    if not args.quiet:
        output.print_features(features, args.input, path)
    return 0


def extractors_command(args: argparse.Namespace) -> int:
    from rarity_score.features import list_extractors

    infos = list_extractors()
    if not args.quiet:
        output.print_extractors(infos)
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from rarity_score.demo import run_demo

    config, extraction, engine = demo_values(args)

    def log(line: str) -> None:
        if not args.quiet:
            print(f"rarity demo: {line}", file=sys.stderr, flush=True)

    result = run_demo(
        args.out,
        config,
        extraction=extraction,
        engine=engine,
        report=args.report,
        log=log,
        command=args.command_line,
    )
    if not args.quiet:
        output.print_demo(result)
    return 0


def _log_written(paths: list[Path]) -> None:
    for path in paths:
        logger.info("wrote %s", path)
