"""Selecting samples of a results directory: the rarest, the most common, a band of rarity, the
samples out of the manifold, the likely copies; written as files (copies or symbolic links of
the original images) or as a list (``rarity filter``).

:func:`select` picks the rows of one set of a loaded results directory by a :class:`Rule`;
:func:`write_selection` writes them into a folder, :func:`write_list` as one CSV file.

The rules and their order (rank 1 first)
    ``rarest N``
        the N in-manifold samples of largest rarity, rarest first;
    ``most-common N``
        the N in-manifold samples of smallest rarity (the most typical), most common first;
    ``quantile LO HI``
        the in-manifold samples with ``q(LO) <= rarity <= q(HI)``, where ``q`` is
        ``numpy.quantile`` (linear interpolation) over the set's in-manifold rarities, most
        common first (``quantile 0 0.1``: the most typical 10 %);
    ``out-of-manifold``
        every sample out of the real manifold, farthest from its nearest real sample first
        (``nearest_real_distance``; row order when the set does not hold it, as in ``datasets``
        mode);
    ``unauthentic``
        every likely copy of a real sample (``authentic`` false), closest copies first
        (``authenticity_ratio`` ascending).

    Ties: samples with equal scores keep the set's row order (the lower row first), so a
    selection is the same on every run. ``rarest`` and ``most-common`` take in-manifold samples
    only (out of the manifold there is no rarity); an N larger than what there is takes all.

The images
    are read only from the source the run recorded (``run.json``), and only when that source's
    :meth:`~rarity_score.io.images.ImageCollection.fingerprint` (names, sizes, modification
    times) still equals the one the run recorded (:func:`rarity_score.io.recorded.
    open_recorded`, as the report's thumbnails): a source not recorded, moved, changed, or
    recorded without a fingerprint is refused, never guessed at. Within it a sample is found by
    its name among the source's own names (never used as a path), and each file is checked
    again (size and modification time) as it is copied or linked. Symbolic links
    (``how="link"``) need images that are files (a folder, a list file, an image file), not
    archive members. A set without image files (its features were scored, or images held in
    memory, or a list of paths whose location the run did not record:
    :meth:`Selection.missing_images`) gives ``selection.csv`` and ``filter.json`` only, with a
    warning.

The output folder
    holds ``NNN_<base name>`` files in rank order (the rank zero-padded to the width of the
    count, then the original's base name made a safe file name: no folder separators, no
    control or format characters, at most 150 bytes; a longer name keeps its extension and a
    hash of the whole name), ``selection.csv`` and ``filter.json`` (the rule, the set, the
    source, every selected sample and the list of the files written, with their SHA-256, and of
    the links, with their targets). It is written into a staging folder beside it and renamed
    into place when complete (:func:`rarity_score.io.publish.publish_folder`): an interrupted
    run leaves no half folder. An existing folder is replaced only when it is empty or an
    earlier output of ``rarity filter`` holding exactly what its ``filter.json`` lists,
    unchanged (each file and link checked again as it is removed); anything else is refused,
    naming up to three of the files that are not ours. It must not be, lie in or hold the
    results directory, an image source of the run or an image a list file of the run names.

The list (``selection.csv``, and the file :func:`write_list` writes)
    has the columns ``path`` (where the image lies: the file, ``ARCHIVE:MEMBER``, empty for a
    set without image files), ``name``, the score the samples were ordered by under its own
    name (``rarity``, ``nearest_real_distance`` or ``authenticity_ratio``; no column for the
    row order), ``rank``, and in an output folder ``file`` (its file there). :func:`write_list`
    never replaces a file, and refuses a path in the results directory or an image folder of
    the run.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from rarity_score.compare import compare
    >>> from rarity_score.results_dir import load_results
    >>> rng = np.random.default_rng(0)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> run = compare(rng.normal(size=(60, 2)), {"gen": rng.normal(size=(30, 2))},
    ...               folder / "run", k=3, report=False)
    >>> results = load_results(run.path)
    >>> chosen = select(results, Rule.rarest(3))
    >>> [s.rank for s in chosen.rows], chosen.score_name
    ([1, 2, 3], 'rarity')
    >>> inside = results.sets[0].rarity[results.sets[0].in_manifold]
    >>> [s.score for s in chosen.rows] == sorted(inside, reverse=True)[:3]
    True
    >>> print(write_list(chosen, folder / "rarest.csv").read_text().splitlines()[0])
    path,name,rarity,rank
"""

from __future__ import annotations

from rarity_score.filtering.names import file_names
from rarity_score.filtering.rules import RULES, Rule, Selected, Selection, select
from rarity_score.filtering.write import (
    FORMAT,
    _earlier_output,  # noqa: F401  (the demo's check, until it calls check_earlier_output)
    check_earlier_output,
    write_list,
    write_selection,
)

__all__ = [
    "FORMAT",
    "RULES",
    "Rule",
    "Selected",
    "Selection",
    "check_earlier_output",
    "file_names",
    "select",
    "write_list",
    "write_selection",
]
