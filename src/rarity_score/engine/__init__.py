"""The exact, memory-bounded k-NN sphere engine: tiles of float32 distances, exact re-decisions."""

from rarity_score.engine.backend import Backend, NumpyBackend, TorchBackend, select_backend
from rarity_score.engine.exact import Smallest, knn_radii
from rarity_score.engine.plan import plan_blocks, tile_edge
from rarity_score.engine.points import Frame, PointSet
from rarity_score.engine.sweep import Reducer, sweep
from rarity_score.engine.tiles import Tile

__all__ = [
    "Backend",
    "Frame",
    "NumpyBackend",
    "PointSet",
    "Reducer",
    "Smallest",
    "Tile",
    "TorchBackend",
    "knn_radii",
    "plan_blocks",
    "select_backend",
    "sweep",
    "tile_edge",
]
