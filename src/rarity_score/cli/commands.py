"""The commands of ``rarity``, one function each: build the option values once
(:func:`~rarity_score.cli.options.option_values`), call the Python API, print what it returned
(:mod:`rarity_score.cli.output`). No maths and no file format here.

The API is imported inside each command: ``rarity --help`` and a usage error load none of it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rarity_score.cli import output
from rarity_score.cli.inputs import check_outputs, named_sources
from rarity_score.cli.options import demo_values, option_values

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
]

logger = logging.getLogger(__name__)


def score_command(args: argparse.Namespace) -> int:
    from rarity_score.compare import score
    from rarity_score.results_dir import check_output_dir, write_score_record, write_table

    extraction, engine = option_values(args)
    check_outputs(
        {"--real": args.real, "--fake": args.fake},
        files={"--out": args.out, "--json": args.json},
        folders={"--report": args.report},
    )
    report = check_output_dir(args.report) if args.report is not None else None
    scored = score(
        args.real, args.fake, k=args.k, metrics=args.metrics, extraction=extraction, engine=engine
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
    check_outputs(inputs, folders={"--out": args.out})
    result = run(
        args.out,
        k=args.k,
        extraction=extraction,
        engine=engine,
        report=args.report,
        command=args.command_line,
    )
    if not args.quiet:
        output.print_run(result.run, result.rows, output.results_files(result.path, result.run))
    return 0


def report_command(args: argparse.Namespace) -> int:
    from rarity_score.report import build_report
    from rarity_score.results_dir import load_results

    results = load_results(args.results_dir)  # refused here, before the report starts
    index = Path(build_report(args.results_dir))
    written = [index, results.root / "histogram.png"]  # the report draws the one histogram
    _log_written(written[:1])
    if not args.quiet:
        output.print_run(results.run, results.summary, written)
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
