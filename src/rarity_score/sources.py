"""What a given input is, which extractor its images go through, and loading it: the one path by
which ``rarity score``, :func:`~rarity_score.compare.compare`,
:func:`~rarity_score.compare.compare_datasets` and :func:`~rarity_score.compare.score` turn
their inputs into features.

An input is anything :func:`~rarity_score.features.pipeline.load_or_extract` reads: images (a
folder, an archive, a ``.txt`` list, an image file, a sequence of paths, an array of images) or
features (a feature file, a 2-D array, a :class:`~rarity_score.features.pipeline.FeatureSet`).
:func:`load_inputs` reads the feature inputs first, so that the extractor they record decides the
one every image input goes through (:func:`choose_extractor`), refuses what cannot work before
any image is extracted, and checks at the end that every set lies in one feature space.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score import defaults
from rarity_score.features.pipeline import FeatureSet, load_or_extract
from rarity_score.features.space import check_extractor_fits, check_one_space
from rarity_score.io.images import (
    ARCHIVE_EXTENSIONS,
    IMAGE_EXTENSIONS,
    ImageCollection,
    is_feature_file,
    open_images,
)
from rarity_score.io.names import printable, shorten
from rarity_score.io.run_record import IMAGE_KINDS
from rarity_score.options import ExtractionOptions

if TYPE_CHECKING:
    from rarity_score.features.info import FeatureExtractor

__all__ = [
    "InputSet",
    "check_names",
    "choose_extractor",
    "kind_of",
    "label",
    "load_inputs",
    "name_of",
]

#: ``(label, name, source)``: how messages name an input, the set's name, what was given.
Entry = tuple[str, str, Any]


@dataclass(frozen=True)
class InputSet:
    """One named input of a run: its features and where they came from.

    Attributes:
        name: the set's name as the user gave it (``"psi=0.7"``).
        source: the input as a string: an absolute path for files and folders (``file.npz:key``
            keeps its key), a description for arrays.
        kind: ``"folder"``, ``"archive"``, ``"list"``, ``"image"`` (one image file),
            ``"paths"`` (a sequence of image paths), ``"array"`` (images in memory) or
            ``"features"`` (a feature file or array).
        features: the :class:`~rarity_score.features.pipeline.FeatureSet` (rows, names, skipped).
        given: a path input as it was given (``"real.npy"``, relative paths kept), None for
            anything else; ``rarity score --json`` records it as typed.
    """

    name: str
    source: str
    kind: str
    features: FeatureSet = field(repr=False)
    given: str | None = None
    #: The set's size before ``--subsample`` replaced it by a random subset (:meth:`subset`),
    #: None when every sample is scored.
    subsampled_from: int | None = None

    @classmethod
    def describe(cls, name: str, given: Any, features: FeatureSet) -> InputSet:
        """The record of ``features``, loaded from ``given`` (anything ``load_or_extract`` reads).

        >>> import numpy as np
        >>> s = InputSet.describe("a", np.zeros((2, 3)), load_or_extract(np.zeros((2, 3))))
        >>> s.kind, s.has_images, s.source
        ('features', False, 'ndarray (2, 3)')
        """
        return cls(
            name=name,
            source=_source_text(given, features),
            kind=kind_of(given),
            features=features,
            given=os.fsdecode(given) if isinstance(given, (str, os.PathLike)) else None,
        )

    def subset(self, size: int, seed: int) -> InputSet:
        """This set with ``size`` of its samples drawn at random (every sample when it has at
        most ``size``): the rows of :func:`rarity_score.uncertainty.subset_rows`, seeded by
        ``seed`` and the set's name, in their order; names and skipped list kept.

        >>> import numpy as np
        >>> s = InputSet.describe("a", np.arange(20.0).reshape(10, 2),
        ...                       load_or_extract(np.arange(20.0).reshape(10, 2)))
        >>> part = s.subset(4, seed=0)
        >>> len(part.features), part.subsampled_from, part.features.names == sorted(
        ...     part.features.names, key=lambda name: int(name[1:]))
        (4, 10, True)
        """
        from rarity_score.uncertainty import subset_rows

        n = len(self.features)
        if size >= n:
            return self
        rows = subset_rows(n, size, seed, salt=self.name)
        features = replace(
            self.features,
            features=np.asarray(self.features.features)[rows],
            names=[self.features.names[i] for i in rows.tolist()],
        )
        return replace(self, features=features, subsampled_from=n)

    @property
    def has_images(self) -> bool:
        """Whether the per-sample names are images that ``open_images(source)`` opens again."""
        return self.kind in IMAGE_KINDS


def kind_of(given: Any) -> str:
    """What ``given`` is, as :attr:`InputSet.kind` says it (decided from its type and name; a
    path need not exist).

    >>> import numpy as np
    >>> kind_of("photos.zip"), kind_of("list.txt"), kind_of("f.npz:real"), kind_of(np.zeros((2, 2)))
    ('archive', 'list', 'features', 'features')
    """
    if isinstance(given, FeatureSet):
        return "features"
    if isinstance(given, ImageCollection):
        return "image" if given.kind == "paths" and len(given) == 1 else given.kind
    if isinstance(given, (str, os.PathLike)):
        if is_feature_file(given):
            return "features"
        path = Path(given)
        if path.is_dir():
            return "folder"
        lower = path.name.lower()
        if lower.endswith(ARCHIVE_EXTENSIONS):
            return "archive"
        if lower.endswith(".txt"):
            return "list"
        if lower.endswith(IMAGE_EXTENSIONS):
            return "image"
        return "paths"
    shape = getattr(given, "shape", None)
    if shape is not None:
        return "features" if len(shape) == 2 else "array"
    return "paths"


def _is_features(given: Any) -> bool:
    """Whether ``given`` holds features already (read as they are, never extracted)."""
    shape = getattr(given, "shape", None)
    return (
        isinstance(given, FeatureSet)
        or is_feature_file(given)
        or (shape is not None and hasattr(given, "dtype") and len(shape) == 2)
    )


def _source_text(given: Any, features: FeatureSet) -> str:
    if isinstance(given, (str, os.PathLike)):
        return os.path.abspath(os.fspath(given))
    if isinstance(given, ImageCollection) and given.kind in ("folder", "archive", "list"):
        return os.path.abspath(given.source)
    return features.source or type(given).__name__


def name_of(given: Any, default: str = "generated") -> str:
    """A set name for an input given without one (``rarity score --fake DIR``): the file or
    folder name without its suffix (and without an ``.npz`` key), else ``default``.

    >>> import numpy as np
    >>> name_of("samples/psi0.7/"), name_of("f.npz:fake"), name_of(np.zeros((2, 2)))
    ('psi0', 'f', 'generated')
    """
    if not isinstance(given, (str, os.PathLike)):
        return default
    from rarity_score.io.features import split_key

    return split_key(os.fspath(given))[0].stem or default


def label(what: str, name: str) -> str:
    """How messages name a set: ``generated set 'psi=0.7'`` (a long name shortened)."""
    return f"{what} {shorten(name)!r}"


def check_names(names: Iterable[str], what: str) -> list[str]:
    """The set names, refused (ValueError) when one is empty or two are equal, also as the
    outputs write them (escaped, see :mod:`rarity_score.io.names`), or when there is none."""
    out: list[str] = []
    written: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"every {what} needs a non-empty name, got {shorten(repr(name))}")
        if name in out or printable(name) in written:
            raise ValueError(
                f"duplicate {what} name {shorten(name)!r}: each set needs its own name"
            )
        out.append(name)
        written.add(printable(name))
    if not out:
        raise ValueError(f"give at least one {what}")
    return out


def choose_extractor(
    given: str | FeatureExtractor | None, recorded: Mapping[str, str]
) -> str | FeatureExtractor:
    """The extractor for image inputs: ``given``, else the one the feature inputs recorded (so
    images land in the same space), else the default. ``recorded`` maps each feature input's label
    to the extractor it records; disagreements, among them or with ``given``, are refused.

    >>> choose_extractor(None, {"the real set": "tiny"})
    'tiny'
    >>> choose_extractor("vgg16-fc2", {"the real set": "tiny"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the real set holds tiny features, but --extractor vgg16-fc2 was asked for; ...
    """
    wanted = given if isinstance(given, str) or given is None else given.info.name
    if wanted is not None:
        for where, name in recorded.items():
            if name != wanted:
                raise ValueError(
                    f"{where} holds {name} features, but --extractor {wanted} was asked for; "
                    "scores are comparable only within one feature extractor"
                )
    if len(set(recorded.values())) > 1:
        described = ", ".join(f"{where}: {name}" for where, name in recorded.items())
        raise ValueError(
            f"the feature files come from different extractors ({described}); use one "
            "feature extractor for every set"
        )
    if given is not None:
        return given
    return next(iter(recorded.values()), defaults.EXTRACTOR)


def load_inputs(
    entries: Sequence[Entry], extraction: ExtractionOptions | None = None
) -> list[InputSet]:
    """Load ``(label, name, source)`` entries, in their order.

    Feature inputs are read first; image inputs are then all opened (a missing or empty one
    refused) and checked against the features' dimension before the first is extracted, with
    the one extractor they share (:func:`choose_extractor`). Feature inputs that record no
    extractor are taken to come from the one ``extraction`` names, when it names one. Every set
    must be non-empty and all in one feature space. Errors (ValueError) start with the label.
    """
    extraction = extraction or ExtractionOptions()
    loaded: dict[int, InputSet] = {}
    for i, (where, name, source) in enumerate(entries):
        if _is_features(source):
            with _naming(where):
                loaded[i] = InputSet.describe(name, source, load_or_extract(source))
    recorded = {
        entries[i][0]: s.features.extractor for i, s in loaded.items() if s.features.extractor
    }
    extractor = choose_extractor(extraction.extractor, recorded)
    if extraction.extractor is not None:
        named = extractor if isinstance(extractor, str) else extractor.info.name
        for i, s in loaded.items():  # "with feature files it names the extractor that made them"
            if not s.features.extractor:
                loaded[i] = replace(s, features=replace(s.features, extractor=named))
    images: dict[int, ImageCollection] = {}
    for i, (where, _, source) in enumerate(entries):
        if i not in loaded:
            with _naming(where):
                images[i] = open_images(source)
    check_extractor_fits(
        [(entries[i][0], s.features) for i, s in loaded.items()],
        extractor,
        [entries[i][0] for i in images],
        extraction.input_size,
    )
    for i, collection in images.items():
        where, name, source = entries[i]
        with _naming(where), contextlib.closing(collection):
            features = load_or_extract(collection, replace(extraction, extractor=extractor))
            loaded[i] = InputSet.describe(name, source, features)
    sets = [loaded[i] for i in range(len(entries))]
    _check_one_space([(entries[i][0], s) for i, s in enumerate(sets)])
    return sets


@contextlib.contextmanager
def _naming(where: str) -> Iterator[None]:
    """Prefix the message of a ValueError (bad input) with the set it concerns."""
    try:
        yield
    except ValueError as error:
        if str(error).startswith(where):
            raise
        raise ValueError(f"{where}: {error}") from error


def _check_one_space(sets: Sequence[tuple[str, InputSet]]) -> None:
    """Every set non-empty and all in one feature space (the one check every command uses:
    :func:`rarity_score.features.space.check_one_space`)."""
    for where, s in sets:
        if len(s.features) == 0:
            raise ValueError(f"{where} ({s.source}) is empty (0 samples); give at least one sample")
    check_one_space([(f"{where} ({s.source})", s.features) for where, s in sets])
