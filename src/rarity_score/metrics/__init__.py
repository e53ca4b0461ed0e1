"""One reducer per metric: what it keeps from a tile, how it merges, what it reports.

Every reducer sees the same tiles of one sweep of real (rows, in increasing radius order) against
generated (columns) samples; see :mod:`rarity_score.engine.sweep`.
"""

from rarity_score.metrics.nearest import NearestReal
from rarity_score.metrics.prdc import FakeSphereHits, RealSphereCounts
from rarity_score.metrics.rarity import SmallestSphere
from rarity_score.metrics.realism import Realism

__all__ = ["FakeSphereHits", "NearestReal", "RealSphereCounts", "Realism", "SmallestSphere"]
