"""Input and output at the edges of the package: feature files and atomic file writing."""

from __future__ import annotations

from rarity_score.io.atomic import atomic_write_bytes, atomic_write_text
from rarity_score.io.features import (
    FEATURE_SUFFIXES,
    FeatureFileError,
    features_fingerprint,
    load_features,
    save_features,
)

__all__ = [
    "FEATURE_SUFFIXES",
    "FeatureFileError",
    "atomic_write_bytes",
    "atomic_write_text",
    "features_fingerprint",
    "load_features",
    "save_features",
]
