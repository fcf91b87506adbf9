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

from functools import lru_cache

import torch

from dinat_ref.checks import Window
from dinat_ref.neighborhood import neighbor_indices

__all__ = ["valid_slots"]


@lru_cache(maxsize=64)
def valid_slots(shape: tuple[int, ...], window: Window, device: torch.device) -> torch.Tensor:
    """(N, K) bool: False on the masked slots of causal windows (:func:`neighbor_indices`)."""
    _, valid = neighbor_indices(shape, *window.args())  # (N, K)
    return torch.as_tensor(valid, device=device)
