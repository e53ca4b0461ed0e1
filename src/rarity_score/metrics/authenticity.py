"""Authenticity (Alaa et al., ICML 2022, "How Faithful is your Synthetic Data?"): is a generated
sample a likely copy of a real one?

A generated sample g is *unauthentic* when it lies closer to its nearest real sample r* than r*'s
own nearest other real sample does: ``d(g, r*) < d(r*, NN_R(r*))``. r* is the sample ``nearest``
reports (ties to the smallest real index), so both metrics share one reducer; ``d(r*, NN_R(r*))``
is the real 1-NN distance the manifold computes with the radii.

Per sample: ``authentic`` (False for a likely copy) and ``authenticity_ratio`` =
``d(g, r*) / d(r*, NN_R(r*))`` (below 1 exactly when unauthentic). Per set: ``authenticity``, the
fraction authentic. Choices, tested:

* the decision compares the two exact float64 distances (each the square root of an exact
  float64 squared distance, as ``nearest_real_distance`` and the radii), never float32 values;
* a sample at distance 0 from a real sample is an exact copy: unauthentic with ratio 0, also when
  r* has an exact duplicate in the real set (``0 < 0`` would call the copy authentic, and 0 / 0
  has no value; the distance 0 is what the ratio reports);
* when r* has a duplicate and g does not coincide with it, the denominator is 0: the ratio is
  +inf and g is authentic (it is no closer to r* than r*'s twin).
"""

from __future__ import annotations

import numpy as np

from rarity_score.metrics.base import (
    Column,
    Computed,
    Finished,
    Gallery,
    Metric,
    SetValue,
    SweepContext,
)
from rarity_score.metrics.nearest import NEAREST_REAL


def _compute(finished: Finished, context: SweepContext) -> tuple[dict[str, np.ndarray], None]:
    to_real = np.asarray(finished["nearest_real_distance"], dtype=np.float64)
    own = context.real_nearest_distance[finished["nearest_real_position"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = to_real / own
    copy = to_real == 0.0
    ratio[copy] = 0.0  # an exact copy, also of a duplicated real sample (0 / 0)
    authentic = ~(to_real < own) & ~copy
    return {"authentic": authentic, "authenticity_ratio": ratio}, None


def _summarize(computed: Computed) -> float | None:
    authentic = computed.columns.get("authentic")
    if authentic is None:
        return None
    return float(np.asarray(authentic, dtype=bool).mean())


AUTHENTICITY = Metric(
    name="authenticity",
    description=(
        "whether a generated sample is no closer to its nearest real sample than that sample's "
        "own nearest real neighbour (Alaa et al. 2022): False flags a likely copy"
    ),
    reducers=(NEAREST_REAL,),
    compute=_compute,
    columns=(
        Column(
            "authentic",
            "authentic",
            "bool",
            "false when the sample is closer to its nearest real sample r* than r*'s own nearest "
            "real neighbour: a likely copy",
        ),
        Column(
            "authenticity_ratio",
            "copy ratio",
            "float",
            "d(g, r*) / d(r*, nearest other real sample); below 1 for a likely copy, 0 for an "
            "exact copy",
            may_be_infinite=True,
        ),
    ),
    values=(SetValue("authenticity", "authenticity", ("authenticity",), "fraction"),),
    galleries=(
        Gallery(
            title="Likely copies of real samples",
            caption=(
                "generated samples closer to their nearest real sample than that sample's own "
                "nearest real neighbour, closest copies first"
            ),
            column="authentic",
            value=False,
            order_by="authenticity_ratio",
        ),
    ),
    summarize=_summarize,
)
