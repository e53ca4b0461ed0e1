"""rarity-score: the Rarity Score of generated images and the k-NN-sphere metrics that share it.

Public API: :func:`rarity_score`, :func:`evaluate`, :class:`RealManifold`, :class:`Evaluation`.
"""

from __future__ import annotations

from rarity_score.manifold import RealManifold, evaluate, rarity_score
from rarity_score.results import Evaluation

__version__ = "0.1.0"

__all__ = ["Evaluation", "RealManifold", "__version__", "evaluate", "rarity_score"]
