"""What the command line shows: the log on stderr, and the summaries, tables and written files
on stdout, from what the API returned (nothing is read back from disk to be printed)."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rarity_score import defaults
from rarity_score.io.run_record import COMPARABILITY

if TYPE_CHECKING:
    from rarity_score.compare import Scored
    from rarity_score.demo import DemoResult
    from rarity_score.features.info import ExtractorInfo
    from rarity_score.features.pipeline import FeatureSet
    from rarity_score.sources import InputSet

__all__ = [
    "configure_logging",
    "log_warning",
    "print_demo",
    "print_extractors",
    "print_features",
    "print_run",
    "print_score",
    "results_files",
]

logger = logging.getLogger(__name__)

WIDTH = 88  # wrap width of printed prose


def configure_logging(verbose: int, quiet: bool) -> None:
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


def log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Show library warnings (e.g. "recall needs more than k generated samples") as log lines."""
    logger.warning("%s", message)


def print_score(scored: Scored, real: str, fake: str, written: Sequence[Path]) -> None:
    """`rarity score`'s summary: the inputs, the per-set values and notes, the files written."""
    from rarity_score.results import format_summary

    extractor = scored.real.features.extractor or scored.fake.features.extractor
    inputs = dict(
        [
            _describe_input("real", real, scored.real),
            _describe_input("generated", fake, scored.fake),
            ("feature extractor", extractor or "unknown (precomputed features)"),
        ]
    )
    analysis = scored.analysis
    intervals = analysis.intervals[0] if analysis is not None and analysis.intervals else None
    print(format_summary(scored.evaluation.summary(), inputs, intervals), end="")
    print()
    if analysis is not None:
        from rarity_score.results_dir import stability_rows, statistics_text

        run = {"statistics": analysis.record, "mode": "score"}
        extra = statistics_text(run, (), stability_rows([scored.fake], analysis))
        if extra:
            print(extra, end="")
    print(textwrap.fill(COMPARABILITY, width=WIDTH))
    if written:
        print()
        _print_written(written)


def _describe_input(side: str, given: str, loaded: InputSet) -> tuple[str, str]:
    """The summary line of one input: ("real features", path) or ("real images", "path (n
    images, k unreadable skipped)")."""
    if loaded.kind == "features":
        return f"{side} features", str(given)
    features = loaded.features
    skipped = f", {len(features.skipped)} unreadable skipped" if features.skipped else ""
    return f"{side} images", f"{given} ({len(features)} images{skipped})"


def print_run(
    run: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    written: Sequence[Path],
    comparisons: Sequence[Mapping[str, Any]] = (),
    stability: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """The method, settings and summary table of a results directory (from what the run
    returned, or what `rarity report` read), its comparisons and stability steps, and the
    files written."""
    from rarity_score.results_dir import run_text

    print(run_text(run, rows, comparisons, stability), end="")
    if written:
        _print_written(written)


def results_files(path: Path, run: Mapping[str, Any]) -> list[Path]:
    """The files of a results directory worth naming, as its run.json lists them."""
    files = run.get("files") or {}
    tables = [path / name for name in ("summary.csv", "summary.json", "summary.md", "sets")]
    report = [path / name for name in ("report/index.html", "histogram.png") if name in files]
    return [path, *tables, *report]


def print_features(features: FeatureSet, source: str, path: Path) -> None:
    """`rarity features`: what was extracted from where, and the file written."""
    skipped = f"; {len(features.skipped)} unreadable skipped" if features.skipped else ""
    print(
        f"{features.extractor} features of {len(features)} images ({features.dim}-d) from "
        f"{source}{skipped}"
    )
    _print_written([path])


def print_extractors(infos: Sequence[ExtractorInfo]) -> None:
    """`rarity extractors`: one block per network (``info.family``), one line and its layer per
    extractor, the default marked; what the network's layers share (preprocessing, weights, the
    extra to install) is printed once under them."""
    width = max(len(info.name) for info in infos)
    dim_width = max(len(str(info.dim)) for info in infos)
    print("Feature extractors (* = default; choose one with --extractor NAME)")
    print(f"\n  {'name'.ljust(width)}  {'dim'.rjust(dim_width)}  input    extra")
    families: dict[str, list[ExtractorInfo]] = {}
    for info in infos:
        families.setdefault(info.family, []).append(info)
    for members in families.values():
        shared = [
            (label, texts.pop())
            for label, texts in (
                ("preprocessing", {info.preprocessing for info in members}),
                ("weights", {info.weights for info in members}),
                ("needs", {f"pip install 'rarity-score[{info.extra}]'" for info in members}),
            )
            if len(texts) == 1
        ]
        shared_labels = {label for label, _ in shared}
        for info in members:
            mark = "*" if info.name == defaults.EXTRACTOR else " "
            print(
                f"{mark} {info.name.ljust(width)}  {str(info.dim).rjust(dim_width)}  "
                f"{f'{info.input_size} px'.ljust(7)}  {info.extra}"
            )
            own = [
                (label, text)
                for label, text in (
                    ("layer", info.layer),
                    ("preprocessing", info.preprocessing),
                    ("weights", info.weights),
                    ("needs", f"pip install 'rarity-score[{info.extra}]'"),
                )
                if label not in shared_labels
            ]
            _print_fields(own)
        if len(members) > 1:
            print(f"    all {members[0].family} layers:")
        _print_fields(shared)
        print()


def _print_fields(fields: Sequence[tuple[str, str]]) -> None:
    for label, text in fields:
        print(
            textwrap.fill(
                text,
                width=WIDTH + 12,
                initial_indent=f"      {label:<14} ",
                subsequent_indent=" " * 21,
                break_on_hyphens=False,
            )
        )


def print_demo(result: DemoResult) -> None:
    """`rarity demo`: the two runs' tables, what the demo measured (the two findings, the
    agreement of the feature spaces, the filter example), the files written."""
    from rarity_score.demo import describe_findings, describe_rarest, describe_spaces
    from rarity_score.results_dir import run_text

    for title, run in (
        ("1. Truncation: MNIST against samples of the fitted model", result.truncation_run),
        ("2. Datasets: each against its own manifold, leave-one-out", result.datasets_run),
    ):
        print(title)
        print("=" * len(title))
        # The comparisons are printed once, with their verdicts, under "What the demo measured".
        print(run_text(run.run, run.rows, (), run.stability), end="")
        print()
    print("What the demo measured")
    print("======================")
    for line in describe_findings(result.findings):
        print(line)
    for line in describe_spaces(result.spaces_found):
        print(line)
    print(describe_rarest(result.rarest_found, result.rarest))
    _print_written(
        [
            result.out_dir / "demo.json",
            result.images,
            result.truncation,
            result.datasets,
            *(run.path for run in result.space_runs.values()),
            result.spaces,
            result.rarest,
            *result.reports,
            *result.histograms,
        ]
    )


def _print_written(paths: Sequence[Path]) -> None:
    print()
    print("Wrote")
    for path in paths:
        print(f"  {path}")
