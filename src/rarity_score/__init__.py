"""rarity-score: the Rarity Score of generated images and the k-NN-sphere metrics that share it.

Public API: :func:`rarity_score`, :func:`evaluate`, :class:`RealManifold`, :class:`Evaluation`,
:func:`load_results` (read a results directory of ``rarity compare`` / ``rarity datasets``),
:func:`compare_spaces` (``rarity spaces``: the same samples in several feature spaces, compared)
and :func:`load_spaces` (read its output).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rarity_score.manifold import RealManifold, evaluate, rarity_score
    from rarity_score.results import Evaluation
    from rarity_score.results_dir import load_results
    from rarity_score.spaces.output import load_spaces
    from rarity_score.spaces.run import compare_spaces

from rarity_score._version import __version__

__all__ = [
    "Evaluation",
    "RealManifold",
    "__version__",
    "compare_spaces",
    "evaluate",
    "load_results",
    "load_spaces",
    "rarity_score",
]

# The public names load on first use (PEP 562), so that importing the package (as the `rarity`
# command does first) imports no numpy: a Ctrl-C during start-up lands where it is caught.
_HOMES = {
    "RealManifold": "rarity_score.manifold",
    "evaluate": "rarity_score.manifold",
    "rarity_score": "rarity_score.manifold",
    "Evaluation": "rarity_score.results",
    "load_results": "rarity_score.results_dir",
    "compare_spaces": "rarity_score.spaces.run",
    "load_spaces": "rarity_score.spaces.output",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'rarity_score' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
