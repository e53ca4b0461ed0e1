"""True float32 in torch: the one context that both the k-NN engine's torch backend and the
feature extractors run their float32 work under; and its one exception, the engine's tensor-core
GEMMs of ``precision="tf32"`` / ``"bf16"`` (:func:`tensor_core_matmul`).

A base module: it imports neither torch nor numpy (the caller passes its ``torch`` module), so the
engine and the extractors share it without either importing the other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["is_tensor", "tensor_core_matmul", "true_float32"]


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor, told without importing torch (an array-only caller never
    pays torch's import time)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


@contextlib.contextmanager
def true_float32(torch: Any, convolutions: bool = False) -> Iterator[None]:
    """Run float32 matrix products (and convolutions, if asked) in true float32: no TF32 on CUDA,
    no bf16 on CPUs that have it, whatever the caller set; the caller's settings come back after.

    TF32 keeps a 10-bit mantissa: it would void the engine's error bound, and make features
    depend on the GPU generation at the 1e-3 level.
    """
    with _applied(_precision_switches(torch, convolutions)):
        yield


@contextlib.contextmanager
def tensor_core_matmul(torch: Any) -> Iterator[None]:
    """As :func:`true_float32` for GEMMs, except that float32 GEMMs on CUDA may run on TF32
    tensor cores, and bfloat16 GEMMs may not reduce in less than float32 (split-K partial sums
    kept in bf16); the caller's settings come back after.

    For the engine's reduced-precision tiles only, whose inputs are already rounded to TF32 or
    bf16 values (exact in TF32) and whose error bound counts that rounding.
    """
    matmul = torch.backends.cuda.matmul
    switches = []
    for holder, name, value in _precision_switches(torch, convolutions=False):
        if holder is matmul:  # CUDA's float32 GEMMs: "tf32" (newer torch), allow_tf32 (older)
            value = "tf32" if name == "fp32_precision" else True
        switches.append((holder, name, value))
    if hasattr(matmul, "allow_bf16_reduced_precision_reduction"):
        switches.append((matmul, "allow_bf16_reduced_precision_reduction", False))
    with _applied(switches):
        yield


@contextlib.contextmanager
def _applied(switches: list[tuple[Any, str, Any]]) -> Iterator[None]:
    """Each ``(holder, attribute, value)`` set, and put back as found afterwards."""
    previous = [getattr(holder, name) for holder, name, _ in switches]
    for holder, name, value in switches:
        setattr(holder, name, value)
    try:
        yield
    finally:
        for (holder, name, _), value in zip(switches, previous, strict=True):
            setattr(holder, name, value)


def _precision_switches(torch: Any, convolutions: bool) -> list[tuple[Any, str, Any]]:
    """``(holder, attribute, full-precision value)`` of each setting that lets float32 work run
    in lower precision. Newer torch has per-backend ``fp32_precision`` (reading the legacy
    ``allow_tf32`` then raises); older torch only ``allow_tf32``."""
    backends = torch.backends
    kinds = ("matmul", "conv") if convolutions else ("matmul",)
    holders = [getattr(backends.cuda, "matmul", None)]
    for family in (getattr(backends, "mkldnn", None), getattr(backends, "cudnn", None)):
        holders += [getattr(family, kind, None) for kind in kinds]
    switches = [
        (holder, "fp32_precision", "ieee")
        for holder in holders
        if holder is not None and hasattr(holder, "fp32_precision")
    ]
    if switches:
        return switches
    legacy = [(backends.cuda.matmul, "allow_tf32", False)]
    if convolutions:
        legacy.append((backends.cudnn, "allow_tf32", False))
    return legacy
