"""Neighborhood attention by gathering every query's neighbors: the simplest torch form.

Test-only: it mirrors :mod:`dinat_ref.numpy.attention` line for line (gather ``K`` neighbors
per query, dot, bias, mask, softmax, weighted sum) on torch tensors, so autograd gives a
backward that the tiled backend's can be checked against.
"""

from __future__ import annotations

import torch

from dinat_ref.neighborhood import neighbor_indices, rpb_indices


def _flatten(x: torch.Tensor, na_dim: int) -> torch.Tensor:
    """(B, *spatial, heads, C) -> (B, N, heads, C)."""
    return x.reshape(x.shape[0], -1, *x.shape[1 + na_dim :])


def qk(q, key, window, scale, rpb):
    """Logits in neighborhood layout: (B, *spatial, heads, K); masked slots ``-inf``."""
    na_dim = window.ndim
    spatial = tuple(q.shape[1 : 1 + na_dim])
    keys, valid = (torch.as_tensor(t) for t in neighbor_indices(spatial, *window.args()))  # (N, K)
    s = torch.einsum("bnhd,bnkhd->bnhk", _flatten(q, na_dim) * scale, _flatten(key, na_dim)[:, keys])
    if rpb is not None:
        idx = torch.as_tensor(rpb_indices(spatial, *window.args()))  # (N, K, ndim)
        b = rpb[(slice(None), *idx.unbind(-1))]  # (heads, N, K)
        s = s + b.permute(1, 0, 2)[None]  # (B, N, heads, K)
    s = s.masked_fill(~valid[None, :, None, :], float("-inf"))
    return s.reshape(*q.shape[:-1], s.shape[-1])


def av(probs, v, window):
    """``out_n = sum_t probs[n, t] v[keys[n, t]]``: (B, *spatial, heads, dim)."""
    na_dim = window.ndim
    keys, valid = (torch.as_tensor(t) for t in neighbor_indices(tuple(v.shape[1 : 1 + na_dim]),
                                                                 *window.args()))
    p = _flatten(probs, na_dim).masked_fill(~valid[None, :, None, :], 0)  # (B, N, heads, K)
    out = torch.einsum("bnhk,bnkhd->bnhd", p, _flatten(v, na_dim)[:, keys])  # (B, N, heads, D)
    return out.reshape(*v.shape[:-1], out.shape[-1])
