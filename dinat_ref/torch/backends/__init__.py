"""Backends of :mod:`dinat_ref.torch`, and the index table they share.

Every backend asks :mod:`dinat_ref.neighborhood` for the windows (NumPy tables) and turns
them into torch tensors, cached per (shape, :class:`~dinat_ref.checks.Window`, device) so a
model that calls the same layer shape again pays nothing.

Backends:

* ``torch`` (:mod:`.tiled`): pure torch, any device and dtype, autograd forward/backward;
  also serves ``na*_qk`` / ``na*_av`` (the neighborhood layout, one slot per neighbor).
* ``flex`` (:mod:`.flex`): ``torch.nn.attention.flex_attention`` with a block mask from the rule.
* ``natten`` (:mod:`.natten`): NATTEN 0.21's fused kernels.

Each backend module has ``NAME``, ``unavailable(request) -> str | None`` (why it cannot serve a
call) and ``forward(q, k, v, window, scale, rpb, return_lse) -> (out, lse or None)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dinat_ref.checks import Window
from dinat_ref.neighborhood import neighbor_indices, rpb_indices
from dinat_ref.torch.backends.cache import table_cache

__all__ = ["NeighborTables", "neighbor_tables"]


@dataclass(frozen=True)
class NeighborTables:
    """Flat neighbor tables of an N-D grid, as torch tensors on one device.

    Attributes:
        keys: (N, K) int64 flat key index of each (query, slot); masked slots hold a valid key.
        valid: (N, K) bool, False on the masked slots of causal windows.
        rpb_flat: (N, K) int64 index into ``rpb.flatten(1)`` (row-major over the 2k-1 axes).
    """

    keys: torch.Tensor
    valid: torch.Tensor
    rpb_flat: torch.Tensor


@table_cache(maxsize=64)
def neighbor_tables(shape: tuple[int, ...], window: Window, device: torch.device) -> NeighborTables:
    """The rule's :func:`neighbor_indices` and :func:`rpb_indices` as cached torch tensors."""
    keys, valid = neighbor_indices(shape, *window.args())  # (N, K) x2
    idx = rpb_indices(shape, *window.args())  # (N, K, ndim)
    flat = np.ravel_multi_index(tuple(np.moveaxis(idx, -1, 0)), [2 * ks - 1 for ks in window.kernel_size])
    as_t = lambda x: torch.as_tensor(x, device=device)
    return NeighborTables(keys=as_t(keys), valid=as_t(valid), rpb_flat=as_t(flat))
