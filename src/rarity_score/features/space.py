"""The one check that several feature sets lie in one feature space.

Rarity scores are distances in feature space, so every command and function that puts sets
together (``rarity score``, ``rarity compare``, ``rarity datasets`` and their Python functions)
calls :func:`check_one_space` before any distance is computed.

Two sets are in one space when their features have the same dimension and, for each of the
extractor's name, its preprocessing (input size, normalisation) and its weights fingerprint,
the values recorded with the sets agree. A set that records nothing for an attribute (a plain
``.npy`` file, an array) cannot be checked against the others on that attribute: it is accepted
as given (its dimension is still checked), and what it does not record is written as unknown in
the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rarity_score.features.pipeline import FeatureSet

__all__ = ["check_extractor_fits", "check_one_space", "describe_space"]

#: The recorded attributes that define a feature space, with their name in messages.
_RECORDED = (
    ("extractor", "extractors", "extract every set with one --extractor"),
    (
        "preprocessing",
        "preprocessings",
        "extract every set with one extractor and one --input-size",
    ),
    ("weights_id", "extractor weights", "extract every set with the same --weights"),
)


def check_one_space(sets: Sequence[tuple[str, FeatureSet]]) -> None:
    """Raise ``ValueError`` unless the ``(label, features)`` sets share one feature space: the
    same dimension, and no two different recorded extractors, preprocessings or weights. Labels
    name the sets in the message (e.g. ``"--real real.npz"``, ``"generated set 'a' (a.npz)"``).
    """
    if not sets:
        return
    first_label, first = sets[0]
    for label, features in sets[1:]:
        if features.dim != first.dim:
            raise ValueError(
                f"feature dimensions differ: {label} has {features.dim}-dimensional features "
                f"but {first_label} has "
                f"{first.dim}-dimensional ones; every set must come from the same feature "
                "extractor"
            )
    for attribute, what, remedy in _RECORDED:
        seen = {label: getattr(f, attribute) for label, f in sets if getattr(f, attribute)}
        if len(set(seen.values())) > 1:
            described = "; ".join(f"{label}: {value}" for label, value in seen.items())
            raise ValueError(
                f"the sets' features come from different {what} ({described}); scores are "
                f"comparable only within one feature space: {remedy}"
            )


def check_extractor_fits(
    known: Sequence[tuple[str, FeatureSet]],
    extractor: Any,
    images: Sequence[str],
    input_size: int | None = None,
) -> None:
    """Before any image is extracted: raise ``ValueError`` when the ``(label, features)`` sets
    already loaded have a dimension that ``extractor`` (a registry name or an extractor) cannot
    make for the image inputs labelled ``images``; minutes of extraction would end in the same
    refusal. ``input_size`` is the one the extraction asks for (a ``pixels`` space's dimension
    follows it). An unknown name passes (the extractor's own lookup says what is wrong)."""
    if not known or not images:
        return
    from rarity_score.features import registry

    info = getattr(extractor, "info", None)
    if info is None:
        try:
            info = registry.info(str(extractor), input_size=input_size)
        except ValueError:
            return
    for label, features in known:
        if features.dim != info.dim:
            raise ValueError(
                f"feature dimensions differ: {label} has {features.dim}-dimensional features "
                f"but {info.name}, the extractor for {images[0]}, makes {info.dim}-dimensional "
                "ones; every set must come from the same feature extractor"
            )


def describe_space(features: FeatureSet) -> dict[str, str | int | None]:
    """What a set records of its feature space, for run records (``None``: not recorded)."""
    return {
        "extractor": features.extractor or None,
        "preprocessing": features.preprocessing or None,
        "weights_id": features.weights_id or None,
        "dim": features.dim,
    }
