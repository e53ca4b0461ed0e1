"""Errors of the feature extractors, under the name they have always been imported by.

They live in :mod:`rarity_score._errors`, below every layer that raises them (the image readers
and the report raise them too, and must not import the feature extractors for it).
"""

from __future__ import annotations

from rarity_score._errors import MissingDependency, WeightsUnavailable, require

__all__ = ["MissingDependency", "WeightsUnavailable", "require"]
