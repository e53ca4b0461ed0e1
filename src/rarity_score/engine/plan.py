"""Tile planning: block sizes from a memory budget."""

from __future__ import annotations

import math

#: Bytes one tile entry may cost at worst: the float32 distance, a weighted copy, a mask, and, when
#: every entry is a candidate (k close to N), its row, column and value as a pair list.
BYTES_PER_ENTRY = 4 + 4 + 1 + 8 + 8 + 4


def plan_blocks(n: int, edge: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into nearly equal consecutive blocks of at most ``edge`` items."""
    count = max(1, math.ceil(n / max(1, edge)))
    size = math.ceil(n / count)
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def tile_edge(memory_budget: int, tile_size: int | None = None) -> int:
    """Edge of a square tile that fits ``memory_budget`` bytes (or ``tile_size`` if given)."""
    if tile_size is not None:
        if tile_size < 1:
            raise ValueError(f"tile_size must be at least 1, got {tile_size}")
        return int(tile_size)
    if memory_budget < 2**20:
        raise ValueError(f"memory_budget must be at least 1 MiB, got {memory_budget} bytes")
    return max(64, math.isqrt(memory_budget // BYTES_PER_ENTRY))
