"""Array operations of the sweep behind one small interface: numpy, or torch on CPU / CUDA.

Only the per-element work of a tile runs here (GEMM, comparisons, selecting candidates, exact
re-computation of a few pairs). Everything a backend returns to the engine is a small numpy array,
so the metric reducers are plain numpy whatever the device.

A backend also carries the precision of its GEMMs (:data:`PRECISION_BITS`): float32, or, on the
torch backend, TF32 or bf16 inputs with float32 accumulation (CUDA tensor cores; on a CPU the
same rounding is applied explicitly, so the same bound and re-decisions run and are tested
there), and counts what the sweep re-decided in float64 (:class:`SweepCounts`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from rarity_score._torch import is_tensor, tensor_core_matmul, true_float32
from rarity_score.options import OptionError

logger = logging.getLogger(__name__)

#: Rows converted to float64 at once when preparing a block; bounds the temporary memory.
_PREPARE_CHUNK_ROWS = 1024
#: Pairs re-computed exactly at once; bounds the (pairs x D) float64 temporary.
_EXACT_CHUNK_PAIRS = 2048

#: Explicit mantissa bits of the GEMM inputs in each precision (``defaults.PRECISIONS``): float32
#: 23, TF32 10, bfloat16 7; all three have float32's 8-bit exponent.
PRECISION_BITS = {"float32": 23, "tf32": 10, "bf16": 7}


def input_unit_roundoff(precision: str) -> float:
    """Unit roundoff of the GEMM inputs in ``precision`` (round to nearest: half an ulp of 1):
    float32 2^-24, TF32 2^-11, bf16 2^-8."""
    return 2.0 ** -(PRECISION_BITS[precision] + 1)


@dataclass
class SweepCounts:
    """What a backend's sweeps computed, and how much of it was re-decided in float64.

    Counted in this process only (a Dask worker's counts stay on the worker). ``band_entries``:
    tile entries within the error bound of a sphere's radius; ``candidates``: order-statistic
    candidates (k-NN radii, nearest neighbours, realism) that the bound could not place;
    ``scanned_queries``: queries without a certificate, recomputed against every reference;
    ``exact_pairs``: every float64 distance computed, the scans' included.
    """

    tile_entries: int = 0
    band_entries: int = 0
    candidates: int = 0
    scanned_queries: int = 0
    exact_pairs: int = 0

    @property
    def redecided(self) -> int:
        """Tile entries and candidates re-decided in float64 (scans not included)."""
        return self.band_entries + self.candidates

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return asdict(self)

    def reset(self) -> None:
        """Every count back to 0 (before a run to be measured alone)."""
        for name in self.as_dict():
            setattr(self, name, 0)


class Backend(Protocol):
    """What the tile sweep needs from an array library."""

    name: str
    #: Precision of the GEMM inputs (a key of :data:`PRECISION_BITS`); the error bound follows it.
    precision: str
    #: :func:`input_unit_roundoff` of ``precision``.
    unit_roundoff: float
    counts: SweepCounts

    def asarray(self, x: Any) -> Any:
        """The features as this backend's array (on its device), dtype kept."""

    def to_numpy(self, x: Any) -> np.ndarray:
        """A host numpy copy."""

    def column_mean(self, x: Any) -> np.ndarray:
        """Float64 mean of the rows."""

    def prepare(self, x: Any, rows: np.ndarray, center: np.ndarray, scale: float) -> Any:
        """Float32 ``(x[rows] - center) * scale``, with the subtraction done in float64."""

    def squared_norms(self, block: Any) -> np.ndarray:
        """Float64 squared norms of the rows of a float32 block."""

    def take_rows(self, block: Any, rows: np.ndarray) -> Any:
        """The rows ``rows`` of a block."""

    def gemm_operand(self, block: Any) -> Any:
        """A float32 block (from :meth:`prepare`) as the GEMMs read it: rounded to nearest to
        ``precision`` (the block itself in float32; its memory may be reused)."""

    def sqdist_tile(self, a: Any, b: Any, a_sq: np.ndarray, b_sq: np.ndarray) -> Any:
        """Float32 ``|a|^2 + |b|^2 - 2 a b^T`` by one GEMM of two :meth:`gemm_operand` blocks,
        with float32 accumulation."""

    def mask_entries(self, tile: Any, rows: np.ndarray, cols: np.ndarray) -> None:
        """Set the entries ``tile[rows[n], cols[n]]`` to +inf."""

    def pairs_below(
        self, tile: Any, thresholds: np.ndarray, axis: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(i, j, value)`` of the entries strictly below a per-row (axis=0) or per-column
        (axis=1) float32 threshold."""

    def smallest(
        self, tile: Any, count: int, axis: int, bound: np.ndarray | None, weights: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates ``(i, j, value)`` that contain, for every column (axis=0) or row (axis=1), its
        ``count`` smallest values of ``tile * weights`` (weights along the other axis), skipping
        values not below ``bound`` (values the caller already knows are not among its smallest)."""

    def exact_sqdist(self, x: Any, rows_x: np.ndarray, y: Any, rows_y: np.ndarray) -> np.ndarray:
        """Float64 ``sum((x[i] - y[j])**2)`` for the pairs ``(rows_x[n], rows_y[n])``, by direct
        differences: the definition every float32 decision is checked against."""


def _rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x[rows]``, as a view when the rows are consecutive (no gather copy)."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
        return x[rows[0] : rows[-1] + 1]
    return x[rows]


def _f32(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32)


class NumpyBackend:
    """The default backend: numpy with its BLAS; no dependency beyond numpy. Float32 only."""

    name = "numpy"
    precision = "float32"
    unit_roundoff = input_unit_roundoff("float32")

    def __init__(self) -> None:
        self.counts = SweepCounts()

    def asarray(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def column_mean(self, x: np.ndarray) -> np.ndarray:
        total = np.zeros(x.shape[1], dtype=np.float64)
        for start in range(0, x.shape[0], _PREPARE_CHUNK_ROWS):
            total += x[start : start + _PREPARE_CHUNK_ROWS].sum(axis=0, dtype=np.float64)
        return total / x.shape[0]

    def prepare(self, x: np.ndarray, rows: np.ndarray, center: np.ndarray, scale: float) -> Any:
        if x.dtype.itemsize <= 4:
            # float16/32 values and the float32 centre differ by one float32 rounding at most.
            block = np.empty((len(rows), x.shape[1]), dtype=np.float32)
            np.subtract(_rows(x, rows), center.astype(np.float32), out=block)
            if scale != 1.0:
                block *= np.float32(scale)
            return block
        out = np.empty((len(rows), x.shape[1]), dtype=np.float32)
        for start in range(0, len(rows), _PREPARE_CHUNK_ROWS):
            chunk = rows[start : start + _PREPARE_CHUNK_ROWS]
            out[start : start + len(chunk)] = (x[chunk].astype(np.float64) - center) * scale
        return out

    def squared_norms(self, block: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", block, block, dtype=np.float64)

    def take_rows(self, block: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return block[rows]

    def gemm_operand(self, block: np.ndarray) -> np.ndarray:
        return block

    def sqdist_tile(self, a: Any, b: Any, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
        self.counts.tile_entries += a.shape[0] * b.shape[0]
        tile = a @ b.T
        tile *= -2.0
        tile += _f32(a_sq)[:, None]
        tile += _f32(b_sq)[None, :]
        return tile

    def mask_entries(self, tile: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        tile[rows, cols] = np.inf

    def pairs_below(
        self, tile: np.ndarray, thresholds: np.ndarray, axis: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        limit = _f32(thresholds)[:, None] if axis == 0 else _f32(thresholds)[None, :]
        # flatnonzero is an order of magnitude faster than nonzero on a 2-D mask.
        flat = np.flatnonzero(tile < limit)
        i, j = np.divmod(flat, tile.shape[1])
        return i, j, tile[i, j]

    def smallest(
        self,
        tile: np.ndarray,
        count: int,
        axis: int,
        bound: np.ndarray | None,
        weights: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Every comparison broadcasts along the contiguous layout of the tile: numpy is several
        # times slower on a transposed view.
        ref_axis = axis  # per column (axis=0): the references are the rows
        if weights is not None:
            shaped = _f32(weights)[:, None] if ref_axis == 0 else _f32(weights)[None, :]
            tile = tile * shaped
        n_refs = tile.shape[ref_axis]
        n_queries = tile.shape[1 - ref_axis]
        limit = np.full(n_queries, np.inf, np.float32) if bound is None else _f32(bound)
        if n_refs > count and not np.isfinite(limit).all():
            # A first bound: the count-th smallest of this tile (along rows, where numpy's
            # partition is fast) or of a sample of it; either is at least the count-th smallest
            # of everything, so nothing that matters is filtered out.
            if ref_axis == 1:
                first = np.partition(tile, count - 1, axis=1)[:, count - 1]
            else:
                first = np.partition(tile[: 64 * count], count - 1, axis=0)[count - 1]
            limit = np.minimum(limit, first)
        shaped_limit = limit[None, :] if ref_axis == 0 else limit[:, None]
        # flatnonzero is an order of magnitude faster than nonzero on a 2-D mask.
        flat = np.flatnonzero(tile <= shaped_limit)
        i, j = np.divmod(flat, tile.shape[1])
        return i, j, tile[i, j]

    def exact_sqdist(
        self, x: np.ndarray, rows_x: np.ndarray, y: np.ndarray, rows_y: np.ndarray
    ) -> np.ndarray:
        self.counts.exact_pairs += len(rows_x)
        out = np.empty(len(rows_x), dtype=np.float64)
        step = max(1, _EXACT_CHUNK_PAIRS * 512 // max(1, x.shape[1]))
        for start in range(0, len(rows_x), step):
            stop = start + step
            diff = x[rows_x[start:stop]].astype(np.float64) - y[rows_y[start:stop]]
            out[start:stop] = np.einsum("ij,ij->i", diff, diff)
        return out


class TorchBackend:
    """torch on CPU or CUDA, with GEMMs in ``precision``.

    float32 (the default): GEMMs run with TF32 switched off (its 10-bit mantissa would void the
    float32 error bound that makes the pass exact after re-decision). ``"tf32"`` / ``"bf16"``:
    the blocks are rounded to nearest to 10 / 7 mantissa bits (:meth:`gemm_operand`), and the
    GEMMs multiply those values exactly and accumulate in float32: on CUDA on tensor cores (TF32
    math, or bf16 operands with float32 output), elsewhere as plain float32 GEMMs, which compute
    the same products and so run the same bound and re-decisions on a CPU.
    """

    name = "torch"

    def __init__(self, device: str | None = None, precision: str = "float32") -> None:
        import torch

        if precision not in PRECISION_BITS:
            raise ValueError(
                f"unknown precision {precision!r}: use one of {', '.join(PRECISION_BITS)}"
            )
        self._torch = torch
        self.device = torch.device(device or "cpu")
        self.precision = precision
        self.unit_roundoff = input_unit_roundoff(precision)
        self.counts = SweepCounts()
        self._tensor_cores = self.device.type == "cuda" and precision != "float32"
        self._bf16_operands: bool | None = None  # decided on the first block (needs the GPU)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Shipped to Dask workers as its device and precision (a module does not pickle); under
        # dask-cuda each worker sees its own GPU as "cuda".
        return (TorchBackend, (str(self.device), self.precision))

    def full_precision(self) -> contextlib.AbstractContextManager[None]:
        """Run GEMMs in true float32, restoring the caller's settings afterwards."""
        return true_float32(self._torch)

    def gemm_precision(self) -> contextlib.AbstractContextManager[None]:
        """The GEMM settings of this backend's precision, the caller's restored afterwards: true
        float32, except tensor cores on CUDA for TF32 / bf16 (inputs rounded beforehand)."""
        if self._tensor_cores:
            return tensor_core_matmul(self._torch)
        return self.full_precision()

    def asarray(self, x: Any) -> Any:
        torch = self._torch
        if isinstance(x, torch.Tensor):
            return x.detach().to(self.device)
        array = np.asarray(x)
        if array.flags.writeable:
            return torch.as_tensor(array, device=self.device)
        # A read-only array (a memory-mapped feature file) is shared, not copied: the sweep never
        # writes into its inputs, so torch's warning about writes does not apply.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.as_tensor(array, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, np.ndarray):
            return x
        return x.detach().cpu().numpy()

    def _index(self, rows: np.ndarray) -> Any:
        return self._torch.as_tensor(rows, dtype=self._torch.int64, device=self.device)

    def column_mean(self, x: Any) -> np.ndarray:
        total = self._torch.zeros(x.shape[1], dtype=self._torch.float64, device=self.device)
        for start in range(0, x.shape[0], _PREPARE_CHUNK_ROWS):
            total += x[start : start + _PREPARE_CHUNK_ROWS].to(self._torch.float64).sum(dim=0)
        return self.to_numpy(total) / x.shape[0]

    def prepare(self, x: Any, rows: np.ndarray, center: np.ndarray, scale: float) -> Any:
        torch = self._torch
        if x.dtype in (torch.float16, torch.bfloat16, torch.float32):
            block = x[self._index(rows)].to(torch.float32)
            block -= torch.as_tensor(center, dtype=torch.float32, device=self.device)
            block *= scale
            return block
        out = torch.empty((len(rows), x.shape[1]), dtype=torch.float32, device=self.device)
        center_t = torch.as_tensor(center, dtype=torch.float64, device=self.device)
        for start in range(0, len(rows), _PREPARE_CHUNK_ROWS):
            chunk = self._index(rows[start : start + _PREPARE_CHUNK_ROWS])
            block = (x[chunk].to(torch.float64) - center_t) * scale
            out[start : start + len(chunk)] = block.to(torch.float32)
        return out

    def squared_norms(self, block: Any) -> np.ndarray:
        wide = block.to(self._torch.float64)
        return self.to_numpy((wide * wide).sum(dim=1))

    def take_rows(self, block: Any, rows: np.ndarray) -> Any:
        return block[self._index(rows)]

    def gemm_operand(self, block: Any) -> Any:
        if self.precision == "float32":
            return block
        # Rounded here, to nearest, on every device: cuBLAS does not document how it converts
        # float32 inputs to TF32 (the tensor-core instruction itself reads the top 19 bits,
        # which truncates), and the error bound assumes round-to-nearest (unit roundoff 2^-11 /
        # 2^-8). Already-TF32 values convert exactly whichever way the GEMM rounds.
        rounded = round_mantissa(self._torch, block, PRECISION_BITS[self.precision])
        if self._uses_bf16_operands():
            return rounded.to(self._torch.bfloat16)  # exact: the values are bf16 already
        return rounded

    def _uses_bf16_operands(self) -> bool:
        """Whether bf16 GEMMs take bfloat16 operands with a float32 result (aten::mm.dtype, in
        torch >= 2.8 on CUDA GPUs with bf16 tensor cores, compute capability 8.0 and up).
        Otherwise the bf16-rounded float32 values go through TF32 GEMMs: bf16 values are exact
        in TF32, so products and accumulation are as in bf16 tensor-core GEMMs (at TF32 speed;
        a GPU without TF32 runs them as float32 GEMMs)."""
        if self._bf16_operands is None:
            torch = self._torch
            self._bf16_operands = (
                self._tensor_cores
                and self.precision == "bf16"
                and hasattr(torch.ops.aten.mm, "dtype")
                and torch.cuda.get_device_capability(self.device) >= (8, 0)
            )
        return self._bf16_operands

    def sqdist_tile(self, a: Any, b: Any, a_sq: np.ndarray, b_sq: np.ndarray) -> Any:
        torch = self._torch
        self.counts.tile_entries += a.shape[0] * b.shape[0]
        with self.gemm_precision():
            if a.dtype == torch.bfloat16:
                # bf16 tensor cores: exact products, float32 accumulation and result.
                tile = torch.mm(a, b.T, out_dtype=torch.float32)
            else:
                tile = a @ b.T
        tile *= -2.0
        tile += torch.as_tensor(_f32(a_sq), device=self.device)[:, None]
        tile += torch.as_tensor(_f32(b_sq), device=self.device)[None, :]
        return tile

    def mask_entries(self, tile: Any, rows: np.ndarray, cols: np.ndarray) -> None:
        tile[self._index(rows), self._index(cols)] = float("inf")

    def pairs_below(
        self, tile: Any, thresholds: np.ndarray, axis: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        limit = self._torch.as_tensor(_f32(thresholds), device=self.device)
        limit = limit[:, None] if axis == 0 else limit[None, :]
        i, j = self._torch.nonzero(tile < limit, as_tuple=True)
        return self.to_numpy(i), self.to_numpy(j), self.to_numpy(tile[i, j])

    def smallest(
        self, tile: Any, count: int, axis: int, bound: np.ndarray | None, weights: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        view = tile.T if axis == 0 else tile
        if weights is not None:
            view = view * torch.as_tensor(_f32(weights), device=self.device)[None, :]
        take = min(count, view.shape[1])
        values, part = torch.topk(view, take, dim=1, largest=False)
        q = np.repeat(np.arange(view.shape[0]), take)
        r = self.to_numpy(part).reshape(-1)
        flat_values = self.to_numpy(values).reshape(-1)
        return (r, q, flat_values) if axis == 0 else (q, r, flat_values)

    def exact_sqdist(self, x: Any, rows_x: np.ndarray, y: Any, rows_y: np.ndarray) -> np.ndarray:
        torch = self._torch
        self.counts.exact_pairs += len(rows_x)
        out = np.empty(len(rows_x), dtype=np.float64)
        step = max(1, _EXACT_CHUNK_PAIRS * 512 // max(1, x.shape[1]))
        for start in range(0, len(rows_x), step):
            stop = start + step
            diff = x[self._index(rows_x[start:stop])].to(torch.float64) - y[
                self._index(rows_y[start:stop])
            ].to(torch.float64)
            out[start:stop] = self.to_numpy((diff * diff).sum(dim=1))
        return out


def round_mantissa(torch: Any, block: Any, bits: int) -> Any:
    """A float32 tensor rounded to nearest (ties to even) to ``bits`` explicit mantissa bits, in
    place: TF32 (10) or bfloat16 (7) values, kept as float32 (the formats share its exponent, so
    subnormals round the same way). Integer arithmetic on the bit patterns: adding half an ulp
    of the kept bits (less one, plus the kept last bit, for ties to even) carries into the kept
    bits exactly when rounding up; the sign bit is never reached for finite values.
    """
    drop = 23 - bits
    raw = block.view(torch.int32)
    carry = raw >> drop
    carry &= 1
    carry += (1 << (drop - 1)) - 1
    raw += carry
    raw &= -(1 << drop)
    return block


#: The device strings accepted everywhere (``--device``, ``device=``), in words and as a pattern.
DEVICE_FORMS = "cpu, cuda, cuda:N (N = 0, 1, ...) or mps"
_DEVICE_PATTERN = r"(cpu|cuda|mps)(:[0-9]+)?"


def check_device(device: str | None, *, option: str = "device") -> None:
    """Refuse a bad or unavailable device with a ValueError naming ``option`` (torch raises
    RuntimeError or even AssertionError for these), before any weights are loaded or any work
    starts. The one device check of the package: the CLI calls it up front for ``--device``.

    A device this machine lacks (``cuda`` without a CUDA GPU) is refused as bad input too: the
    remedy is another ``--device``, not another machine. ``None`` (the default) passes; a CPU
    device needs no torch.
    """
    if device is None:
        return
    text = str(device)  # a str or a torch.device
    if not re.fullmatch(_DEVICE_PATTERN, text):
        raise ValueError(f"unknown {option} {text[:40]!r}: use {DEVICE_FORMS}")
    kind, _, index_text = text.partition(":")
    if kind == "cpu":
        return
    try:
        import torch
    except ImportError as error:
        raise ValueError(
            f"{option} {text!r} needs PyTorch: pip install 'rarity-score[torch]'"
        ) from error
    other = "device='cpu'" if option == "device" else f"{option} cpu"
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                f"{option} {text!r} asked for, but this PyTorch has no usable Apple MPS device; "
                f"use {other}"
            )
        return
    if not torch.cuda.is_available():
        raise ValueError(
            f"{option} {text!r} asked for, but this PyTorch has no usable CUDA device; "
            f"use {other} or install a CUDA build of torch"
        )
    if index_text and int(index_text) >= torch.cuda.device_count():
        raise ValueError(
            f"{option} {text!r} asked for, but only {torch.cuda.device_count()} CUDA "
            "device(s) are visible"
        )


def select_backend(
    backend: str, device: str | None, *inputs: Any, precision: str = "float32"
) -> Backend:
    """The backend for these inputs: ``"auto"`` keeps torch tensors on their device (torch) and
    runs everything else with numpy; ``device`` implies torch. ``precision``: the tiles'
    arithmetic (a key of :data:`PRECISION_BITS`, ``defaults.PRECISIONS``); not float32 needs the
    torch backend, and is fast on CUDA tensor cores only (elsewhere the rounding is simulated)."""
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    if precision not in PRECISION_BITS:
        raise OptionError(
            "precision",
            f"unknown precision {precision!r}: use one of {', '.join(PRECISION_BITS)}",
        )
    tensors = [x for x in inputs if is_tensor(x)]
    use_torch = backend == "torch" or (backend == "auto" and (bool(tensors) or device is not None))
    if not use_torch:
        if precision != "float32":
            raise OptionError(
                "precision",
                f"precision {precision!r} needs the torch backend (the numpy one computes float32 "
                "only): use --backend torch --device cuda (backend='torch', device='cuda')",
            )
        if device not in (None, "cpu"):
            raise ValueError(
                f"device={device!r} needs backend='torch' (numpy runs on the CPU only)"
            )
        return NumpyBackend()
    try:
        import torch  # noqa: F401 (present, or the message below)
    except ImportError as err:
        raise ValueError(
            "backend='torch' needs PyTorch: pip install 'rarity-score[torch]'"
        ) from err
    if device is None:
        device = str(tensors[0].device) if tensors else "cpu"
    check_device(device)
    chosen = TorchBackend(device, precision)
    if precision != "float32" and chosen.device.type != "cuda":
        logger.info(
            "precision %s on %s: no tensor cores, the rounding is applied explicitly; as exact "
            "as float32 and slower",
            precision,
            chosen.device,
        )
    return chosen
