"""Checks on user input, with messages that say what is wrong and what to do.

Every check of an array's values reads it a block of rows at a time (:func:`row_blocks`): a
memory-mapped feature file larger than memory is checked without a second copy of it, and the
temporaries (masks, conversions) stay a few MiB whatever the array's size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score._torch import is_tensor

if TYPE_CHECKING:  # only a type: checking inputs loads no engine
    from rarity_score.engine.backend import Backend


def as_features(x: Any, name: str, backend: Backend) -> Any:
    """``x`` as a 2-D floating array on ``backend``, or a ValueError naming ``name`` (the set as
    the user knows it, e.g. ``"real features"`` or ``"generated features fake.npz"``).

    Values are never rounded on the way: integers beyond 2**53 and long doubles that float64
    cannot hold exactly are refused (see :func:`exact_floats`). A float16/32/64 numpy array is
    used as it is, not copied (a memory-mapped feature file stays mapped), and every check reads
    it a block of rows at a time; integers and long doubles become one float64 copy."""
    if is_tensor(x):
        array = tensor_features(x, name, keep_tensor=backend.name == "torch")
    else:
        array = exact_floats(_as_numpy(x, name), name)
    array = backend.asarray(array)
    shape = tuple(array.shape)
    if len(shape) != 2:
        hint = " (a single feature vector? pass x.reshape(1, -1))" if len(shape) == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D array of shape (samples, features); got shape {shape}{hint}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name} are empty (0 samples); pass at least one row")
    if shape[1] == 0:
        raise ValueError(f"{name} have 0 dimensions; each sample needs a feature vector")
    finite = finite_rows(array)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{name} contain NaN or inf in {len(bad)} of {shape[0]} rows "
            f"(first: row {bad[0]}); remove or repair those samples"
        )
    return array


#: Every integer of magnitude up to 2**53 is a float64; beyond, only some are.
_EXACT_INTEGERS = 2**53

#: Elements a check reads at once (4 MiB of float32): bounds its temporaries, so that checking a
#: memory-mapped array never holds a mask, or a conversion, of the whole of it.
_BLOCK_ELEMENTS = 2**20


def row_blocks(array: Any, elements: int | None = None) -> Iterator[tuple[int, Any]]:
    """``(start, array[start:stop])`` over consecutive blocks of rows of about ``elements``
    elements in all (default about a million; at least one row), views, not copies; a 0-d array
    is one block.

    >>> [(start, block.shape) for start, block in row_blocks(np.zeros((3, 2**19)))]
    [(0, (2, 524288)), (2, (1, 524288))]
    """
    if len(array.shape) == 0:
        yield 0, array
        return
    per_row = math.prod(array.shape[1:])
    step = max(1, (_BLOCK_ELEMENTS if elements is None else elements) // max(1, per_row))
    for start in range(0, int(array.shape[0]), step):
        yield start, array[start : start + step]


def exact_floats(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as float16, float32 or float64, converted without rounding, or a ValueError
    naming ``name``.

    Floating arrays up to float64 pass unchanged (a memory-mapped one stays mapped: nothing is
    copied); integers become float64, which holds every integer up to 2**53 and only some beyond,
    so an integer it would round is refused (it would silently move samples and change
    decisions); long doubles become float64 when every value survives the round trip. Booleans,
    complex numbers, objects, strings and records are refused. Integers and long doubles are
    checked a block of rows at a time (:func:`check_exact`); the float64 result is the one copy.

    >>> exact_floats(np.array([[1, 2**53]]), "x").dtype
    dtype('float64')
    >>> exact_floats(np.array([[2**53 + 1]]), "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: x: 1 value cannot be converted to float64 without rounding ...
    """
    dtype = array.dtype
    if dtype.kind == "f" and dtype.itemsize <= 8:
        return array
    if dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must be real numbers; got dtype {dtype}; convert them with "
            "array.astype(np.float32)"
        )
    if dtype.kind in "iu" and dtype.itemsize <= 4:
        return np.asarray(array, dtype=np.float64)  # every such integer is a float64
    converted = np.empty(array.shape, dtype=np.float64)
    _refuse_rounding_blockwise(array, name, converted)
    return converted


def check_exact(array: np.ndarray, name: str) -> None:
    """Raise the ValueError of :func:`exact_floats` for ``array`` without converting it: a block
    of rows is read, checked and dropped at a time (what a feature file's reader checks)."""
    dtype = array.dtype
    if dtype.kind not in "iuf":
        exact_floats(array, name)  # its message for other dtypes
    elif dtype.itemsize > (4 if dtype.kind in "iu" else 8):
        _refuse_rounding_blockwise(array, name, None)


def _refuse_rounding_blockwise(array: np.ndarray, name: str, out: np.ndarray | None) -> None:
    """Refuse the values of ``array`` (64-bit integers or long doubles) that float64 would round,
    a block of rows at a time, with the message :func:`_refuse_rounding` gives for the whole;
    ``out``: where to write the float64 values."""
    rounded_in: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]] = (
        _rounded_integers if array.dtype.kind in "iu" else _rounded_long_doubles
    )
    count = 0
    first: tuple[int, ...] | None = None
    # An eighth of the usual block: these checks make some 36 bytes of temporaries per element.
    for start, block in row_blocks(array, max(1, _BLOCK_ELEMENTS // 8)):
        rounded, converted = rounded_in(block)
        if out is not None:
            target = out[start : start + len(block)] if out.ndim else out
            target[...] = block if converted is None else converted
        found = int(np.count_nonzero(rounded))
        if found and first is None:
            at = tuple(int(i) for i in np.argwhere(rounded)[0])
            first = (start + at[0], *at[1:]) if at else at
        count += found
    if first is not None:
        _refuse_at(array, count, first, name)


def _rounded_integers(array: np.ndarray) -> tuple[np.ndarray, None]:
    """Where float64 would round 64-bit integers (a mask of ``array``'s shape)."""
    rounded = np.zeros(array.shape, dtype=bool)
    large = (array > _EXACT_INTEGERS) | (array < -_EXACT_INTEGERS)
    if not large.any():
        return rounded, None
    values = array[large]
    converted = values.astype(np.float64)
    # Rounding may carry to 2**63 (2**64 unsigned), which does not cast back.
    in_range = converted < float(np.iinfo(array.dtype).max)
    back = np.where(in_range, converted, 0.0).astype(array.dtype)
    rounded[large] = ~in_range | (back != values)
    return rounded, None


def _rounded_long_doubles(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where float64 would round long doubles, and the float64 values."""
    converted = array.astype(np.float64)
    # NaN never equals itself; the finite check reports it.
    rounded = (converted.astype(array.dtype) != array) & ~np.isnan(array)
    return rounded, converted


def _refuse_rounding(array: np.ndarray, rounded: np.ndarray, name: str) -> None:
    if not rounded.any():
        return
    first = tuple(int(i) for i in np.argwhere(rounded)[0])
    _refuse_at(array, int(rounded.sum()), first, name)


def _refuse_at(array: np.ndarray, count: int, first: tuple[int, ...], name: str) -> None:
    """The one message for ``count`` values that would round, the first at index ``first``."""
    where = f"row {first[0]}, column {first[1]}" if len(first) == 2 else f"index {first}"
    value = array[first]
    kind = "integer" if isinstance(value, (int, np.integer)) else str(array.dtype)
    raise ValueError(
        f"{name}: {count} value{'s' if count > 1 else ''} cannot be converted to float64 "
        f"without rounding (first: {where}, the {kind} {value}); the scores would "
        "be computed on other values. Scale the features into float64's exact range (integers "
        "up to 2**53), or round them yourself with array.astype(np.float64)"
    )


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """Anything array-like as a numpy array; a nested list whose numbers numpy would round while
    choosing one dtype (big integers mixed with floats) is refused."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return np.asarray(x)
    array = np.asarray(x)
    if array.dtype.kind == "f" and array.size:
        # Python ints and floats compare exactly, so this finds every rounded int.
        exact = np.asarray(x, dtype=object)
        if exact.shape == array.shape:
            rounded = np.frompyfunc(_is_rounded, 2, 1)(exact, array).astype(bool)
            _refuse_rounding(exact, rounded, name)
    return array


def _is_rounded(given: Any, converted: float) -> bool:
    return isinstance(given, int) and not isinstance(given, bool) and given != converted


def tensor_features(
    tensor: Any, name: str, *, keep_tensor: bool = False, floats: bool = True
) -> Any:
    """A torch tensor's values as a numpy array (or, with ``keep_tensor``, a dense torch tensor
    on its device) of a floating dtype the engine handles, converted exactly, or a ValueError
    naming ``name``.

    float8 and bfloat16 become float32 (exact); sparse tensors become dense (exact) when the
    dense array fits in memory (else MemoryError); integers follow :func:`exact_floats`, or keep
    their dtype with ``floats=False``. Quantized, nested and meta tensors (no values, or values
    only up to a rounding scale) are refused, as are booleans and complex numbers."""
    import torch

    tensor = tensor.detach()
    if getattr(tensor, "is_nested", False):
        raise ValueError(
            f"{name} are a nested tensor (rows of different lengths); features need one "
            "length: save a 2-D tensor"
        )
    if tensor.is_meta:
        raise ValueError(
            f"{name} are a meta tensor, which has a shape but no values; save the tensor "
            "itself, not one built on the meta device"
        )
    if tensor.is_quantized:
        raise ValueError(
            f"{name} are a quantized tensor ({tensor.dtype}); its values are only defined up "
            "to its quantization scale: save tensor.dequantize() if that is what you mean"
        )
    if tensor.layout != torch.strided:
        check_fits_in_memory(
            tuple(tensor.shape), tensor.element_size(), f"{name} (a sparse tensor, made dense)"
        )
        tensor = tensor.to_dense()
    else:  # an expanded view (stride 0) of a few bytes can stand for terabytes once copied
        check_fits_in_memory(tuple(tensor.shape), tensor.element_size(), name)
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(
            f"{name} must be real numbers; got dtype {tensor.dtype}; convert them with "
            "tensor.float()"
        )
    exact_in_float32 = tensor.is_floating_point() and tensor.element_size() == 1  # float8
    if exact_in_float32 or (tensor.dtype == torch.bfloat16 and not keep_tensor):
        tensor = tensor.float()  # numpy has no float8 / bfloat16; float32 holds them exactly
    if keep_tensor and tensor.is_floating_point():
        return tensor
    try:
        array = tensor.cpu().numpy()
    except TypeError as error:  # a dtype numpy lacks (e.g. torch's unsigned types on old torch)
        raise ValueError(
            f"{name} have dtype {tensor.dtype}, which cannot be read as numbers here; "
            "convert them with tensor.float()"
        ) from error
    return exact_floats(array, name) if floats else array


def check_fits_in_memory(shape: tuple[int, ...], itemsize: int, name: str) -> None:
    """Raise a MemoryError naming ``name`` when an array of ``shape`` would not fit in this
    machine's physical memory, before anything is allocated (a damaged header or a sparse
    tensor can declare exabytes)."""
    needed = math.prod(shape) * itemsize
    available = _physical_memory()
    if available is not None and needed > available:
        raise MemoryError(
            f"{name}: an array of shape {shape} needs {_bytes(needed)}, more than this machine's "
            f"{_bytes(available)} of memory"
        )


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # not POSIX: let numpy try
        return None


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} bytes"  # pragma: no cover


def finite_rows(array: Any) -> np.ndarray:
    """Whether each row of a 2-D numpy array or torch tensor holds only finite values (a numpy
    bool per row), read a block of rows at a time: no mask of the whole array is made.

    >>> finite_rows(np.array([[1.0, 2.0], [np.nan, 0.0], [np.inf, 1.0]]))
    array([ True, False, False])
    """
    if isinstance(array, np.ndarray):
        finite = np.ones(array.shape[0], dtype=bool)
        if array.dtype.kind == "f":  # integers are always finite
            for start, block in row_blocks(array):
                finite[start : start + len(block)] = np.isfinite(block).all(axis=1)
        return finite
    import torch

    # Per-block flags stay on the array's device; one transfer at the end.
    parts = [torch.isfinite(block).all(dim=1) for _, block in row_blocks(array)]
    if not parts:
        return np.ones(0, dtype=bool)
    return np.asarray(torch.cat(parts).cpu().numpy(), dtype=bool)


def check_k(k: Any, n_real: int | None = None, *, label: str = "the real set") -> int:
    """k as an int in ``1 .. n_real - 1``: the one check of k, with one message per way it fails.

    ``n_real`` None checks only that k is a whole number of at least 1 (before the set is read);
    ``label`` names the set whose k-NN spheres k is for (``"real features r.npz"``; a dataset of
    a leave-one-out comparison).

    >>> check_k(3, 10)
    3
    >>> check_k(5, 4, label="the real set")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the real set (4 samples): k=5 needs at least k + 1 = 6 samples; choose k ... 3
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number of at least 1, got {k!r}")
    if n_real is None or k <= n_real - 1:
        return int(k)
    sizes = f"{label} ({n_real} sample{'s' if n_real != 1 else ''})"
    needs = f"k={k} needs at least k + 1 = {k + 1} samples"
    if n_real < 2:
        raise ValueError(f"{sizes}: {needs}; k-NN spheres need at least 2 samples")
    raise ValueError(f"{sizes}: {needs}; choose k between 1 and {n_real - 1}")


def check_same_dim(real_dim: int, fake_dim: int, fake_name: str = "fake features") -> None:
    if real_dim != fake_dim:
        raise ValueError(
            f"{fake_name} have {fake_dim} dimensions but the real features have "
            f"{real_dim}; both must come from the same feature extractor"
        )
