"""Backends of :mod:`dinat_ref.torch`, and the index tables they share.

Every backend asks :mod:`dinat_ref.neighborhood` for the windows (NumPy tables) and turns
them into torch tensors here, cached per ``(shape, kernel_size, stride, dilation,
is_causal, device)`` so a model that calls the same layer shape again pays nothing.

Backends:

* ``torch`` (:mod:`.tiled`): pure torch, any device and dtype, autograd forward/backward.
* ``flex`` (:mod:`.flex`): ``torch.nn.attention.flex_attention`` with a block mask from the rule.
* ``natten`` (:mod:`.natten`): NATTEN 0.21's fused kernels.

:mod:`.gather` holds the plain "gather every neighbor" math used for ``na*_qk`` / ``na*_av``
(the neighborhood layout) and as the simplest correct forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from dinat_ref.neighborhood import axis_windows, neighbor_indices, rpb_indices

__all__ = ["NeighborTables", "neighbor_tables", "axis_tables", "AxisTables"]


@dataclass(frozen=True)
class NeighborTables:
    """Flat neighbor tables of an N-D grid, as torch tensors on one device.

    Attributes:
        keys: (N, K) int64 flat key index of each (query, slot); masked slots hold a valid key.
        valid: (N, K) bool, False on masked (causal) slots.
        rpb_flat: (N, K) int64 index into ``rpb.flatten(1)`` (row-major over the 2k-1 axes).
    """

    keys: torch.Tensor
    valid: torch.Tensor
    rpb_flat: torch.Tensor


@lru_cache(maxsize=64)
def neighbor_tables(
    shape: tuple[int, ...], kernel_size: tuple[int, ...], stride: tuple[int, ...],
    dilation: tuple[int, ...], is_causal: tuple[bool, ...], device: torch.device,
) -> NeighborTables:
    """The rule's ``neighbor_indices`` / ``rpb_indices`` as cached torch tensors."""
    keys, valid = neighbor_indices(shape, kernel_size, stride, dilation, is_causal)  # (N, K) x2
    idx = rpb_indices(shape, kernel_size, stride, dilation, is_causal)  # (N, K, ndim)
    flat = idx[..., 0]
    for a in range(1, len(shape)):  # row-major over (2k0-1, 2k1-1, ...)
        flat = flat * (2 * kernel_size[a] - 1) + idx[..., a]
    as_t = lambda x: torch.as_tensor(x, device=device)
    return NeighborTables(keys=as_t(keys), valid=as_t(valid), rpb_flat=as_t(flat))


@dataclass(frozen=True)
class AxisTables:
    """One axis's windows (from :func:`dinat_ref.neighborhood.axis_windows`) as torch tensors.

    Attributes:
        start: (L,) int64 first key of each query's window, full-axis coordinates.
        count: (L,) int64 number of keys in the window.
        group: (L,) int64 dilation group ``i % d``.
    """

    start: torch.Tensor
    count: torch.Tensor
    group: torch.Tensor


@lru_cache(maxsize=256)
def axis_tables(
    length: int, kernel_size: int, stride: int, dilation: int, is_causal: bool, device: torch.device
) -> AxisTables:
    """Per-axis window start / count / group, cached per configuration and device."""
    w = axis_windows(length, kernel_size, stride, dilation, is_causal)
    as_t = lambda x: torch.as_tensor(x, dtype=torch.int64, device=device)
    return AxisTables(start=as_t(w.start), count=as_t(w.count), group=as_t(w.group))
