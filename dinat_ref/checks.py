"""Argument checks shared by every path (NumPy, torch, visualizers, verifier).

Every check runs *before* any work and raises a ``ValueError`` (``TypeError`` for a
wrong kind of object) whose message names the function, the argument, the value it
got and the rule it broke, so the message teaches the rule. Only ``.shape``,
``.dtype`` and ``.device`` are read from arrays, so NumPy arrays and torch tensors
go through the same code.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Ints = int | Sequence[int]
Bools = bool | Sequence[bool]

__all__ = [
    "Ints",
    "Bools",
    "Window",
    "as_tuple",
    "is_int",
    "check_window_args",
    "check_attention_args",
    "check_probs_args",
]


@dataclass(frozen=True)
class Window:
    """The window arguments of one N-D neighborhood, checked and one entry per spatial axis.

    Hashable, so it keys the index caches. Field order is the argument order everywhere:
    ``kernel_size, stride, dilation, is_causal``.

    Attributes:
        kernel_size: k per axis, ``k >= 2``.
        stride: s per axis, ``1 <= s <= k``.
        dilation: d per axis, ``d >= 1``.
        is_causal: per axis, whether a query sees only itself and keys before it.
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    is_causal: tuple[bool, ...]

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.kernel_size)

    @property
    def slots(self) -> int:
        """Neighbors per query, ``prod(kernel_size)``."""
        return math.prod(self.kernel_size)

    def args(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[bool, ...]]:
        """``(kernel_size, stride, dilation, is_causal)``, for the functions that take them apart."""
        return self.kernel_size, self.stride, self.dilation, self.is_causal


def as_tuple(value: Any, ndim: int, name: str, where: str, kind: type = int) -> tuple:
    """Turn ``value`` into a tuple of ``ndim`` entries of ``kind`` (int or bool).

    A single value is repeated on every axis; a sequence (or 1-D array) must have one
    entry per axis. ``as_tuple(3, 2, ...) == (3, 3)``; ``as_tuple((3, 5), 2, ...) == (3, 5)``.

    Raises:
        ValueError: a sequence with the wrong number of entries.
        TypeError: anything else that is not ``kind`` (floats, strings, ``True`` as an int).
    """
    is_kind = _is_bool if kind is bool else is_int
    article = "an" if kind is int else "a"
    if is_kind(value):
        return (kind(value),) * ndim
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()  # np.array([3, 5]) -> [3, 5]
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != ndim:
            raise ValueError(
                f"{where}: {name}={tuple(value)!r} has {len(value)} entries but the input has "
                f"{ndim} spatial axes; give {article} {kind.__name__} or a tuple of {ndim}."
            )
        if all(is_kind(x) for x in value):
            return tuple(kind(x) for x in value)
    raise TypeError(
        f"{where}: {name}={value!r} must be {article} {kind.__name__} or a tuple of {ndim} "
        f"{kind.__name__}s (one per spatial axis)."
    )


def is_int(x: Any) -> bool:
    """True for a Python or NumPy integer (anything with ``__index__``), but not for a bool."""
    if isinstance(x, (bool, np.bool_)):
        return False  # kernel_size=True is a mistake, not 1
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def _is_bool(x: Any) -> bool:
    """True for a Python or NumPy bool only (``is_causal=1`` is rejected, as in NATTEN)."""
    return isinstance(x, (bool, np.bool_))


def _is_floating(dtype: Any) -> bool:
    """Whether a NumPy or torch dtype is a real floating-point type."""
    if hasattr(dtype, "is_floating_point"):  # torch.dtype
        return bool(dtype.is_floating_point)
    return np.dtype(dtype).kind == "f"


def _check_axis(where: str, at: str, shape: tuple, L: int, k: int, s: int, d: int,
                check_fit: bool) -> None:
    """The per-axis rules ``L >= 1``, ``k >= 2``, ``d >= 1``, ``1 <= s <= k``, ``k * d <= L``."""
    if L < 1:
        raise ValueError(f"{where}: shape={shape} has {L} tokens{at}; every spatial axis needs >= 1.")
    if k < 2:
        raise ValueError(
            f"{where}: kernel_size={k}{at} is too small; a neighborhood needs kernel_size >= 2 "
            f"(kernel_size=1 would attend to the query alone)."
        )
    if d < 1:
        raise ValueError(f"{where}: dilation={d}{at} must be >= 1 (1 means no dilation).")
    if s < 1:
        raise ValueError(
            f"{where}: stride={s}{at} must be >= 1 (1 means every query has its own window)."
        )
    if s > k:
        raise ValueError(
            f"{where}: stride={s}{at} must satisfy 1 <= stride <= kernel_size={k}; a larger "
            f"stride would leave queries outside the window they share."
        )
    if check_fit and k * d > L:
        raise ValueError(
            f"{where}: kernel_size * dilation = {k} * {d} = {k * d} is larger than the "
            f"input's {L} tokens{at}. NA needs kernel_size * dilation <= length so every "
            f"dilation group holds a full window; the smallest input that works has "
            f"{k * d} tokens{at} (or lower kernel_size / dilation)."
        )


def check_window_args(
    shape: Ints,
    kernel_size: Ints,
    stride: Ints,
    dilation: Ints,
    is_causal: Bools,
    where: str,
    check_fit: bool = True,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[bool, ...]]:
    """Validate and normalize the window arguments of an N-D neighborhood.

    Rules (per axis): ``L >= 1``; ``k >= 2``; ``d >= 1``; ``1 <= s <= k``; ``k * d <= L``.

    Returns:
        ``(shape, kernel_size, stride, dilation, is_causal)`` as tuples of length ndim.
    """
    if is_int(shape):
        shape = (int(shape),)
    if isinstance(shape, np.ndarray) and shape.ndim == 1:
        shape = shape.tolist()
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(
            f"{where}: shape={shape!r} must be an int or a tuple of ints (the spatial axes' lengths)."
        )
    shape = tuple(shape)
    ndim = len(shape)
    if ndim == 0:
        raise ValueError(f"{where}: shape={shape} has no spatial axes; NA needs at least one.")
    shape = as_tuple(shape, ndim, "shape", where)
    kernel_size = as_tuple(kernel_size, ndim, "kernel_size", where)
    stride = as_tuple(stride, ndim, "stride", where)
    dilation = as_tuple(dilation, ndim, "dilation", where)
    is_causal = as_tuple(is_causal, ndim, "is_causal", where, kind=bool)

    for axis, (L, k, s, d) in enumerate(zip(shape, kernel_size, stride, dilation, strict=True)):
        _check_axis(where, f" on axis {axis}" if ndim > 1 else "", shape, L, k, s, d, check_fit)
    return shape, kernel_size, stride, dilation, is_causal




def shape_error(where: str, name: str, x: Any, expected: tuple, rule: str) -> ValueError:
    """The one wording of a wrong shape: ``{where}: {name} has shape X but must be Y: {rule}``."""
    got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
    return ValueError(f"{where}: {name} has shape {got} but must be {tuple(expected)}: {rule}.")


def _check_arrays(where: str, named: list[tuple[str, Any]], na_dim: int) -> list[tuple[str, Any]]:
    """Each given array is an array of rank ``na_dim + 3``; returns the given ones."""
    rank = na_dim + 3
    axes = ", ".join("XYZ"[:na_dim]) if na_dim > 1 else "length"
    present = [(name, x) for name, x in named if x is not None]
    for name, x in present:
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{where}: {name} must be an array or tensor, got {type(x).__name__}.")
        if len(x.shape) != rank:
            raise ValueError(
                f"{where}: {name} has shape {tuple(x.shape)} ({len(x.shape)} dims) but {na_dim}-D "
                f"neighborhood attention takes {rank}-dim inputs laid out as "
                f"(batch, {axes}, heads, dim)."
            )
        if x.shape[-1] == 0:
            raise ValueError(
                f"{where}: {name} has shape {tuple(x.shape)}, head dim 0; attention needs at least "
                f"one feature per head (batch 0 or heads 0 are fine and give empty outputs)."
            )
    return present


def _check_alike(where: str, present: list[tuple[str, Any]]) -> None:
    """The first array's dtype is floating; the others share its batch/spatial/heads, dtype, device."""
    ref_name, ref = present[0]
    if not _is_floating(ref.dtype):
        raise TypeError(
            f"{where}: {ref_name} has dtype {ref.dtype}; neighborhood attention needs floating-point "
            f"inputs (e.g. float32, or float64 for ground truth)."
        )
    for name, x in present[1:]:
        if tuple(x.shape[:-1]) != tuple(ref.shape[:-1]):
            raise ValueError(
                f"{where}: {name} has shape {tuple(x.shape)} but {ref_name} has "
                f"{tuple(ref.shape)}; batch, spatial and heads axes must match."
            )
        if x.dtype != ref.dtype:
            raise ValueError(
                f"{where}: {name} has dtype {x.dtype} but {ref_name} has {ref.dtype}; "
                f"q, k and v must share one dtype (cast them first)."
            )
        if getattr(x, "device", None) != getattr(ref, "device", None):
            raise ValueError(
                f"{where}: {name} is on {x.device} but {ref_name} is on {ref.device}; "
                f"put q, k, v (and rpb) on one device."
            )


def check_scale(scale: Any, where: str) -> None:
    """``scale`` is None or a finite, positive real number."""
    if scale is None:
        return
    if not isinstance(scale, numbers.Real) or isinstance(scale, (bool, np.bool_)):
        raise TypeError(f"{where}: scale={scale!r} must be a float or None (None means dim ** -0.5).")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(
            f"{where}: scale={scale!r} must be finite and > 0 (it multiplies q before q . k; "
            f"None means dim ** -0.5)."
        )


def _check_rpb(where: str, rpb: Any, ref_name: str, ref: Any, window: Window) -> None:
    """``rpb`` has shape ``(heads, 2k0-1, ...)`` and the inputs' dtype and device."""
    heads = int(ref.shape[-2])
    expected = (heads, *(2 * ks - 1 for ks in window.kernel_size))
    if not hasattr(rpb, "shape") or tuple(rpb.shape) != expected:
        raise shape_error(where, "rpb", rpb, expected, f"(heads, 2*kernel_size-1 per axis) for "
                          f"heads={heads}, kernel_size={window.kernel_size}")
    if rpb.dtype != ref.dtype:
        raise ValueError(
            f"{where}: rpb has dtype {rpb.dtype} but {ref_name} has {ref.dtype}; use one dtype."
        )
    if getattr(rpb, "device", None) != getattr(ref, "device", None):
        raise ValueError(f"{where}: rpb is on {rpb.device} but {ref_name} is on {ref.device}.")


def check_attention_args(
    q: Any,
    k: Any,
    v: Any,
    na_dim: int,
    kernel_size: Ints,
    stride: Ints,
    dilation: Ints,
    is_causal: Bools,
    rpb: Any = None,
    scale: float | None = None,
    where: str = "na",
) -> Window:
    """Check q/k/v (heads-last layout ``(B, *spatial, heads, dim)``) and the window arguments.

    ``k`` may be None (for ``na*_av``, where only ``q`` and ``v`` shapes matter) and
    ``v`` may be None (for ``na*_qk``). The steps: ranks and head dims, then matching
    shapes/dtypes/devices, then the window (:func:`check_window_args`), ``scale``, ``rpb``.

    Returns:
        The checked :class:`Window`, one entry per spatial axis.
    """
    present = _check_arrays(where, [("query", q), ("key", k), ("value", v)], na_dim)
    _check_alike(where, present)
    if q is not None and k is not None and q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{where}: query head dim {q.shape[-1]} != key head dim {k.shape[-1]}; q.k needs equal dims."
        )
    ref_name, ref = present[0]
    spatial = tuple(int(n) for n in ref.shape[1 : 1 + na_dim])
    _, *window = check_window_args(spatial, kernel_size, stride, dilation, is_causal, where=where)
    window = Window(*window)
    check_scale(scale, where)
    if rpb is not None:
        _check_rpb(where, rpb, ref_name, ref, window)
    return window


def check_probs_args(
    probs: Any, v: Any, na_dim: int, kernel_size: Ints, stride: Ints, dilation: Ints,
    is_causal: Bools, where: str,
) -> Window:
    """Check ``na*_av`` inputs: probs ``(B, *spatial, heads, prod(k))`` against v ``(B, *spatial, heads, D)``.

    Returns:
        The checked :class:`Window`.
    """
    window = check_attention_args(
        None, None, v, na_dim, kernel_size, stride, dilation, is_causal, where=where
    )
    expected = (*v.shape[:-1], window.slots)
    if not hasattr(probs, "shape") or tuple(probs.shape) != tuple(expected):
        raise shape_error(where, "probs", probs, expected, f"value's (batch, *spatial, heads) plus "
                          f"one slot per neighbor (prod(kernel_size) = {window.slots})")
    if probs.dtype != v.dtype:
        raise ValueError(
            f"{where}: probs has dtype {probs.dtype} but value has {v.dtype}; use one dtype."
        )
    return window
