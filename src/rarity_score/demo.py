"""A small synthetic feature set for the offline demo (``rarity demo``).

The real set lies near a curved low-dimensional manifold embedded in ``dim`` dimensions, denser at
its centre than in its tails, like features of a dataset with common and uncommon images. The
generated set mixes four groups whose rarity behaviour is known in advance:

``typical``
    fresh samples from the same distribution as the real set: in the manifold, ordinary scores.
``rare``
    samples from the tails of the latent distribution, still on the manifold but where real
    samples are sparse: large k-NN spheres, so high rarity scores (some fall outside).
``off_manifold``
    typical samples pushed away from the manifold: outside every real sphere, so no score.
``near_duplicate``
    copies of real samples with tiny noise (memorised training images): in the manifold with
    ordinary rarity (as common as the real samples they copy), but a nearest real sample at
    almost zero distance.

Everything here is pure: arrays in, arrays out, no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DEMO_GROUPS", "DemoData", "group_breakdown", "make_demo_features"]

#: Generated-sample groups and the fraction of the generated set each one takes.
DEMO_GROUPS: dict[str, float] = {
    "typical": 0.65,
    "rare": 0.10,
    "off_manifold": 0.10,
    "near_duplicate": 0.15,
}

_LATENT_DIM = 3
_HIDDEN = 32
_THICKNESS = 0.02  # norm of the noise around the manifold, relative to the manifold's spread
_PUSH = (0.4, 0.8)  # how far off_manifold samples are pushed, relative to the manifold's spread
_TAIL = (2.0, 2.8)  # latent radius of the rare samples, in standard deviations per dimension


@dataclass(frozen=True)
class DemoData:
    """Synthetic real and generated features, and the group of every generated sample."""

    real: np.ndarray
    fake: np.ndarray
    groups: np.ndarray  # one group name (see DEMO_GROUPS) per generated sample

    @property
    def names(self) -> list[str]:
        """One readable name per generated sample, e.g. ``rare_0003``."""
        counters: dict[str, int] = {}
        names = []
        for group in self.groups.tolist():
            counters[group] = counters.get(group, -1) + 1
            names.append(f"{group}_{counters[group]:04d}")
        return names


def make_demo_features(
    n_real: int = 2000, n_fake: int = 1000, dim: int = 64, seed: int = 0
) -> DemoData:
    """Make the demo's real and generated feature sets (float32), reproducibly from ``seed``.

    >>> data = make_demo_features(n_real=50, n_fake=20, dim=8, seed=1)
    >>> data.real.shape, data.fake.shape, data.real.dtype
    ((50, 8), (20, 8), dtype('float32'))
    >>> sorted(set(data.groups.tolist()))
    ['near_duplicate', 'off_manifold', 'rare', 'typical']
    """
    if n_real < 2:
        raise ValueError(f"the demo needs at least 2 real samples, got n_real={n_real}")
    if n_fake < 1:
        raise ValueError(f"the demo needs at least 1 generated sample, got n_fake={n_fake}")
    if dim < 1:
        raise ValueError(f"the feature dimension must be at least 1, got dim={dim}")
    rng = np.random.default_rng(seed)
    latent = min(_LATENT_DIM, dim)
    weights_in = rng.normal(size=(latent, _HIDDEN)) / np.sqrt(latent)
    bias = rng.normal(scale=0.3, size=_HIDDEN)
    weights_out = rng.normal(size=(_HIDDEN, dim)) / np.sqrt(_HIDDEN)

    def curve(z: np.ndarray) -> np.ndarray:
        return np.asarray(np.tanh(z @ weights_in + bias) @ weights_out)

    probe = curve(rng.normal(size=(256, latent)))
    spread = float(np.sqrt(((probe - probe.mean(axis=0)) ** 2).sum(axis=1).mean()))

    def embed(z: np.ndarray) -> np.ndarray:
        points = curve(z)
        noise = rng.normal(scale=_THICKNESS * spread / np.sqrt(dim), size=points.shape)
        return points + noise

    real = embed(rng.normal(size=(n_real, latent)))

    counts = _group_counts(n_fake)
    parts: list[np.ndarray] = []
    groups: list[str] = []
    for group, count in counts.items():
        if count == 0:
            continue
        if group == "typical":
            part = embed(rng.normal(size=(count, latent)))
        elif group == "rare":
            direction = rng.normal(size=(count, latent))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            radius = rng.uniform(*_TAIL, size=(count, 1)) * np.sqrt(latent)
            part = embed(direction * radius)
        elif group == "off_manifold":
            base = embed(rng.normal(size=(count, latent)))
            push = rng.normal(size=(count, dim))
            push /= np.linalg.norm(push, axis=1, keepdims=True)
            part = base + push * spread * rng.uniform(*_PUSH, size=(count, 1))
        else:  # near_duplicate
            rows = rng.choice(n_real, size=count, replace=count > n_real)
            noise = _THICKNESS * spread / np.sqrt(dim) / 20
            part = real[rows] + rng.normal(scale=noise, size=(count, dim))
        parts.append(part)
        groups.extend([group] * count)
    fake = np.concatenate(parts, axis=0)
    return DemoData(
        real=real.astype(np.float32),
        fake=fake.astype(np.float32),
        groups=np.array(groups),
    )


def group_breakdown(
    groups: Sequence[str] | np.ndarray,
    in_manifold: np.ndarray,
    rarity: np.ndarray,
    nearest_real_distance: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Per demo group: sample count, how many are in the manifold, their median rarity, and
    (when given) the median distance to the nearest real sample over the whole group.

    >>> rows = group_breakdown(["a", "a", "b"], np.array([True, False, True]),
    ...                        np.array([1.0, np.nan, 3.0]))
    >>> rows[0]
    {'group': 'a', 'n': 2, 'n_in_manifold': 1, 'median_rarity': 1.0, 'median_nearest_real': None}
    """
    labels = np.asarray(groups)
    inside = np.asarray(in_manifold, dtype=bool)
    scores = np.asarray(rarity, dtype=np.float64)
    rows = []
    for group in dict.fromkeys(labels.tolist()):
        mask = labels == group
        kept = scores[mask & inside]
        nearest = None
        if nearest_real_distance is not None:
            nearest = float(np.median(np.asarray(nearest_real_distance, dtype=np.float64)[mask]))
        rows.append(
            {
                "group": group,
                "n": int(mask.sum()),
                "n_in_manifold": int(kept.size),
                "median_rarity": float(np.median(kept)) if kept.size else None,
                "median_nearest_real": nearest,
            }
        )
    return rows


def _group_counts(n_fake: int) -> dict[str, int]:
    """Split ``n_fake`` over the groups by their fractions; ``typical`` takes the rounding."""
    counts = {group: round(fraction * n_fake) for group, fraction in DEMO_GROUPS.items()}
    counts["typical"] = 0
    while sum(counts.values()) > n_fake:
        largest = max((g for g in counts if g != "typical"), key=lambda g: counts[g])
        counts[largest] -= 1
    counts["typical"] = n_fake - sum(counts.values())
    return counts
