"""The neighborhood rule: who attends to whom.

This module is the single source of truth for the index logic of neighborhood
attention (NA) and dilated neighborhood attention (DiNA). The NumPy reference,
the torch backends, the visualizers and the kernel verifier all ask it; nobody
else re-derives a window. It is NumPy only.

The rule, per axis (NATTEN 0.21; it agrees with NATTEN 0.14-0.17 where those overlap)
-------------------------------------------------------------------------------
An axis of length ``L`` is split into ``d`` *dilation groups*: token ``i`` is in
group ``g = i % d`` at position ``i' = i // d`` inside it. Inside its group a query
sees an ordinary (non-dilated) window of ``k`` consecutive group members, so in
the full axis it sees every ``d``-th token::

    g  = i % d ; i' = i // d                  # dilation group and index inside it
    Lg = ceil((L - g) / d)                    # number of tokens in group g
    left = k // 2 ; right = k // 2 + (k % 2) - 1     # even k: k/2 left, k/2-1 right

    non-causal: leader = min((i' // s) * s + s // 2, Lg - 1)
                start' = clamp(leader - left, 0, Lg - k) ; end' = start' + k
    causal:     leader = min((i' // s) * s + s - 1, Lg - 1)
                start' = max(leader - k + 1, 0)         ; end' = min(i' + 1, Lg)

    keys on this axis: j = j' * d + g  for j' in [start', end')

Three consequences worth remembering:

* Windows are *shifted inward* at the borders, never zero-padded: a corner query
  still sees ``k`` real keys (non-causal), its window just stops being centered.
* Stride ``s`` does not downsample. The queries of one stride group (``s``
  consecutive group members) share the window of their *leader*.
* The N-D neighborhood is the product of the per-axis sets: a key is a neighbor
  iff it is one on every axis (the dense mask is the AND over axes).

Neighbor slots
--------------
Each query has ``k`` *slots* per axis: slot ``t`` holds key ``j' = start' + t``.
Non-causal windows fill all ``k`` slots; causal windows fill only
``end' - start'`` of them, and the rest are *masked* (their key index is clamped
to a valid key so gathers never go out of bounds, and ``valid`` is False).
In N-D the slots are ordered row-major over the window, like ``np.ndindex``.

Relative positional bias (RPB)
------------------------------
The bias a query ``i`` gives key ``j`` on one axis is ``rpb[(k - 1) + (j - i) / d]``
(``(j - i) / d = j' - i'`` is an integer because both are in one group). The index
is in ``[0, 2k - 2]`` for every window the rule can make, causal and even ``k``
included, so the parameter has ``2k - 1`` entries per axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from dinat_ref.checks import Bools, Ints, as_tuple, check_window_args

__all__ = [
    "AxisWindows",
    "axis_windows",
    "axis_product",
    "neighbor_indices",
    "neighbors_of",
    "dense_mask",
    "rpb_indices",
    "dilation_groups",
]


@dataclass(frozen=True)
class AxisWindows:
    """The windows of every query on one axis, in full-axis coordinates.

    Attributes:
        start: (L,) first key of each query's window (``start' * d + g``).
        count: (L,) number of keys in the window (``end' - start'``); ``k`` unless causal.
        keys: (L, k) key index in each slot; masked slots repeat a valid key.
        valid: (L, k) whether the slot holds a real neighbor.
        rpb_index: (L, k) RPB entry each slot uses, ``(k - 1) + (j - i) / d``.
        group: (L,) dilation group ``i % d`` of each query.
    """

    start: np.ndarray
    count: np.ndarray
    keys: np.ndarray
    valid: np.ndarray
    rpb_index: np.ndarray
    group: np.ndarray


def axis_windows(
    length: int, kernel_size: int, stride: int = 1, dilation: int = 1, is_causal: bool = False
) -> AxisWindows:
    """Apply the per-axis rule to every query ``i in [0, L)`` at once.

    Args:
        length: L, the number of tokens on the axis.
        kernel_size: k, the window size (``k >= 2``, ``k * d <= L``).
        stride: s, queries per shared window (``1 <= s <= k``).
        dilation: d, the gap between neighbors (``d >= 1``).
        is_causal: if True, a query sees only itself and keys before it.

    Returns:
        An :class:`AxisWindows` with ``(L,)`` and ``(L, k)`` integer arrays.
    """
    check_window_args(
        (length,), (kernel_size,), (stride,), (dilation,), (bool(is_causal),), where="axis_windows"
    )
    L, k, s, d = length, kernel_size, stride, dilation
    i = np.arange(L)  # (L,) query index
    g = i % d  # (L,) dilation group
    ig = i // d  # (L,) index inside the group, i'
    Lg = -(-(L - g) // d)  # (L,) size of the group, ceil((L - g) / d)
    left = k // 2

    if is_causal:
        leader = np.minimum((ig // s) * s + s - 1, Lg - 1)  # (L,) last query of the stride group
        start_g = np.maximum(leader - k + 1, 0)  # (L,) start'
        end_g = np.minimum(ig + 1, Lg)  # (L,) end': never past the query itself
    else:
        leader = np.minimum((ig // s) * s + s // 2, Lg - 1)  # (L,) middle query of the stride group
        start_g = np.clip(leader - left, 0, Lg - k)  # (L,) shift inward at the borders
        end_g = start_g + k  # (L,) end'

    slot = np.arange(k)  # (k,)
    key_g = start_g[:, None] + slot[None, :]  # (L, k) j' of each slot
    valid = key_g < end_g[:, None]  # (L, k) causal windows may be short
    key_g = np.minimum(key_g, end_g[:, None] - 1)  # (L, k) masked slots repeat the last real key
    keys = key_g * d + g[:, None]  # (L, k) back to full-axis coordinates: j = j' * d + g
    rpb_index = (k - 1) + (key_g - ig[:, None])  # (L, k) (k - 1) + (j - i) / d
    return AxisWindows(
        start=start_g * d + g, count=end_g - start_g, keys=keys, valid=valid,
        rpb_index=rpb_index, group=g,
    )


def _per_axis(shape, kernel_size, stride, dilation, is_causal, where) -> list[AxisWindows]:
    """Check the N-D arguments once (naming the public function), then run the rule per axis."""
    shape, kernel_size, stride, dilation, is_causal = check_window_args(
        shape, kernel_size, stride, dilation, is_causal, where=where
    )
    return [
        axis_windows(L, k, s, d, c)
        for L, k, s, d, c in zip(shape, kernel_size, stride, dilation, is_causal, strict=True)
    ]


def axis_product(tables: list[np.ndarray], combine) -> np.ndarray:
    """The row-major product over axes of per-axis ``(L_a, X_a)`` tables: ``(prod L, prod X)``.

    Entry ``[(i0, i1, ...), (t0, t1, ...)]`` (rows and columns each row-major over the axes) is
    ``combine`` folded over the axes' entries ``table_a[i_a, t_a]``, e.g. ``np.logical_and``
    for "a neighbor on every axis".
    """
    out = tables[0]  # (rows so far, columns so far)
    for t in tables[1:]:
        both = combine(out[:, None, :, None], t[None, :, None, :])  # (Nprev, L, Xprev, X)
        out = both.reshape(out.shape[0] * t.shape[0], -1)  # the new axis is the fastest
    return out


def neighbor_indices(shape: Ints, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
                     is_causal: Bools = False) -> tuple[np.ndarray, np.ndarray]:
    """Flat key index of every (query, slot) pair of an N-D grid.

    Queries and keys are numbered row-major over ``shape`` (``np.ravel_multi_index``);
    slots are numbered row-major over the window.

    Returns:
        ``(keys, valid)``, both ``(N, K)`` with ``N = prod(shape)`` and ``K = prod(kernel_size)``.
        Masked slots (``valid == False``, causal only) hold a valid key so gathers stay in bounds.
    """
    axes = _per_axis(shape, kernel_size, stride, dilation, is_causal, "neighbor_indices")
    lengths = [len(a.start) for a in axes]
    # Flat index n = sum_a j_a * (L_{a+1} * ... * L_last), so the per-axis terms just add up.
    place = [prod(lengths[a + 1 :]) for a in range(len(axes))]
    keys = axis_product([a.keys * p for a, p in zip(axes, place, strict=True)], np.add)  # (N, K)
    valid = axis_product([a.valid for a in axes], np.logical_and)  # (N, K)
    return keys.astype(np.int64, copy=False), valid


def rpb_indices(shape: Ints, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
                is_causal: Bools = False) -> np.ndarray:
    """RPB index of every (query, slot) pair: ``(N, K, ndim)``, one index per axis.

    ``rpb[head][tuple(idx[n, t])]`` is the bias query ``n`` adds to its slot ``t``: per axis
    ``(k - 1) + (j - i) / d`` for query coordinate ``i`` and key coordinate ``j``, read off
    :func:`neighbor_indices` (masked slots repeat a real key, so their index is in range too).
    """
    shape, kernel_size, _, dilation, _ = check_window_args(
        shape, kernel_size, stride, dilation, is_causal, where="rpb_indices"
    )
    keys, _ = neighbor_indices(shape, kernel_size, stride, dilation, is_causal)  # (N, K)
    i = np.unravel_index(np.arange(keys.shape[0]), shape)  # ndim x (N,) query coordinates
    j = np.unravel_index(keys, shape)  # ndim x (N, K) key coordinates
    per_axis = [(ks - 1) + (ja - ia[:, None]) // d
                for ia, ja, ks, d in zip(i, j, kernel_size, dilation, strict=True)]  # ndim x (N, K)
    return np.stack(per_axis, axis=-1)  # (N, K, ndim)


def neighbors_of(query: Ints, shape: Ints, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
                 is_causal: Bools = False) -> list[tuple[int, ...]]:
    """The keys one query attends to, as sorted coordinate tuples.

    >>> neighbors_of(8, 10, kernel_size=3, dilation=2)
    [(4,), (6,), (8,)]
    """
    axes = _per_axis(shape, kernel_size, stride, dilation, is_causal, "neighbors_of")
    grid_shape = tuple(len(a.start) for a in axes)
    query = as_tuple((query,) if np.ndim(query) == 0 else query, len(axes), "query", "neighbors_of")
    if any(not 0 <= q < L for q, L in zip(query, grid_shape, strict=True)):
        raise ValueError(
            f"neighbors_of: query={query} is not a position on the grid of shape "
            f"{grid_shape}; give one in-range index per axis."
        )
    per_axis = [a.keys[q][a.valid[q]].tolist() for q, a in zip(query, axes, strict=True)]  # ndim lists
    grid = np.meshgrid(*per_axis, indexing="ij")  # ndim arrays of shape (n0, n1, ...)
    points = zip(*(g.ravel() for g in grid), strict=True)
    return sorted(tuple(int(c) for c in point) for point in points)


def dense_mask(shape: Ints, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
               is_causal: Bools = False) -> np.ndarray:
    """The ``(N, N)`` boolean mask: ``mask[query, key]`` is True iff query attends to key.

    Built from the window bounds directly (same group, inside ``[start, start + count*d)``),
    not from :func:`neighbor_indices`, so the two can check each other. O(N^2) memory:
    for small grids, pictures and tests only.
    """
    shape, kernel_size, stride, dilation, is_causal = check_window_args(
        shape, kernel_size, stride, dilation, is_causal, where="dense_mask"
    )
    per_axis = []
    for L, ks, st, d, c in zip(shape, kernel_size, stride, dilation, is_causal, strict=True):
        a = axis_windows(L, ks, st, d, c)
        j = np.arange(L)[None, :]  # (1, L) key index
        stop = a.start + a.count * d  # (L,) one past the window, in full-axis steps
        same_group = (j % d) == a.group[:, None]  # (L, L)
        inside = (j >= a.start[:, None]) & (j < stop[:, None])  # (L, L)
        per_axis.append(same_group & inside)  # (L, L) query i sees key j on this axis
    return axis_product(per_axis, np.logical_and)  # (N, N): a neighbor on every axis


def dilation_groups(shape: Ints, dilation: Ints) -> np.ndarray:
    """Dilation group of every grid cell as one integer, row-major over the per-axis groups.

    Cells with the same number can attend to each other (if close enough); others never can.
    """
    shape, _, _, dilation, _ = check_window_args(
        shape, 2, 1, dilation, False, where="dilation_groups", check_fit=False
    )
    per_axis = np.meshgrid(*(np.arange(L) % d for L, d in zip(shape, dilation, strict=True)), indexing="ij")
    return np.ravel_multi_index(per_axis, dilation)  # shape
