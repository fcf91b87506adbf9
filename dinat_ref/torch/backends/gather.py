"""Neighborhood attention by gathering every query's neighbors: the simplest torch form.

It mirrors :mod:`dinat_ref.numpy.attention` line for line (gather ``K`` neighbors per query,
dot, bias, mask, softmax, weighted sum), so autograd gives the backward for free. It is the
shape the outside world sees for ``na*_qk`` / ``na*_av`` (neighborhood layout, one slot per
neighbor), and it is memory ``O(N * K * dim)`` for the gathered keys.
"""

from __future__ import annotations

import torch

from dinat_ref.torch.backends import neighbor_tables


def _flatten(x: torch.Tensor, na_dim: int) -> torch.Tensor:
    """(B, *spatial, heads, C) -> (B, N, heads, C)."""
    return x.reshape(x.shape[0], -1, *x.shape[1 + na_dim :])


def gather_bias(rpb: torch.Tensor, rpb_flat: torch.Tensor) -> torch.Tensor:
    """RPB of every (query, slot): rpb (heads, 2k0-1, ...), rpb_flat (N, K) -> (N, heads, K)."""
    b = rpb.flatten(1)[:, rpb_flat]  # (heads, N, K)
    return b.permute(1, 0, 2)  # (N, heads, K)


def qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, na_dim):
    """Logits in neighborhood layout: (B, *spatial, heads, K); masked slots ``-inf``."""
    spatial = tuple(q.shape[1 : 1 + na_dim])
    t = neighbor_tables(spatial, kernel_size, stride, dilation, is_causal, q.device)
    qf = _flatten(q, na_dim) * scale  # (B, N, heads, D)
    k_nb = _flatten(k, na_dim)[:, t.keys]  # (B, N, K, heads, D)
    s = torch.einsum("bnhd,bnkhd->bnhk", qf, k_nb)  # (B, N, heads, K)
    if rpb is not None:
        s = s + gather_bias(rpb, t.rpb_flat)[None]  # (B, N, heads, K)
    s = s.masked_fill(~t.valid[None, :, None, :], float("-inf"))  # (B, N, heads, K)
    return s.reshape(*q.shape[:-1], s.shape[-1])  # (B, *spatial, heads, K)


def av(probs, v, kernel_size, stride, dilation, is_causal, na_dim):
    """``out_n = sum_t probs[n, t] v[keys[n, t]]``: (B, *spatial, heads, dim)."""
    spatial = tuple(v.shape[1 : 1 + na_dim])
    t = neighbor_tables(spatial, kernel_size, stride, dilation, is_causal, v.device)
    p = _flatten(probs, na_dim).masked_fill(~t.valid[None, :, None, :], 0)  # (B, N, heads, K)
    v_nb = _flatten(v, na_dim)[:, t.keys]  # (B, N, K, heads, D)
    out = torch.einsum("bnhk,bnkhd->bnhd", p, v_nb)  # (B, N, heads, D)
    return out.reshape(*v.shape[:-1], out.shape[-1])


def forward(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb, na_dim):
    """``out = softmax(qk) . v_nb`` and the natural-log ``lse``.

    Returns:
        out (B, *spatial, heads, D) and lse (B, *spatial, heads).
    """
    s = qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, na_dim)  # (B, *sp, heads, K)
    lse = torch.logsumexp(s, dim=-1)  # (B, *spatial, heads)
    p = torch.exp(s - lse[..., None])  # (B, *spatial, heads, K), masked slots exp(-inf) = 0
    return av(p, v, kernel_size, stride, dilation, is_causal, na_dim), lse
