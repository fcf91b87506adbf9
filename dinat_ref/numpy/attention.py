"""Neighborhood attention in NumPy: the reference, read like a textbook.

Dense self-attention lets every query ``i`` look at every key ``j``::

    out_i = sum_j softmax_j(s_ij) v_j ,   s_ij = (scale * q_i) . k_j + b_ij

Neighborhood attention (NA, https://arxiv.org/abs/2204.07143) keeps the formula but
lets ``j`` range only over the neighborhood ``N(i)`` that :mod:`dinat_ref.neighborhood`
defines; dilated NA (DiNA, https://arxiv.org/abs/2209.15001) spreads that
neighborhood out by a dilation. We never build the ``N x N`` score matrix. Instead
we *gather* the ``K = prod(kernel_size)`` neighbors of every query into a
``(N, K)`` table and do the math on that table, so memory is ``O(N * K)``:

1. ``keys[n, t]``: flat index of query ``n``'s ``t``-th neighbor (from the shared rule).
2. ``k_nb = k[:, keys]``: ``(B, N, K, heads, dim)``, the neighbors' keys, side by side.
3. ``s = (scale * q) . k_nb + rpb[...]``: ``(B, N, heads, K)`` logits, ``-inf`` on masked slots.
4. ``p = softmax(s)`` over the K slots, max-subtracted so ``exp`` never overflows.
5. ``out = p . v_nb``.

Layout is NATTEN 0.21's, heads last: ``(B, *spatial, heads, dim)``. Every function works
in the input dtype; float64 in, float64 ground truth out. The 1D/2D/3D functions at the
end are thin names over the N-D ones.
"""

from __future__ import annotations

import math

import numpy as np

from dinat_ref.checks import Bools, Ints, Window, check_attention_args, check_probs_args, shape_error
from dinat_ref.neighborhood import neighbor_indices, rpb_indices

__all__ = [
    "na_forward", "na_qk", "na_av", "na_backward",
    "na1d", "na2d", "na3d", "na1d_qk", "na2d_qk", "na3d_qk", "na1d_av", "na2d_av", "na3d_av",
    "na1d_backward", "na2d_backward", "na3d_backward",
]


# ----------------------------------------------------------------------------------------
# Building blocks: flatten the grid, gather neighbors, add the bias
# ----------------------------------------------------------------------------------------

def _numpy_only(where: str, **arrays) -> None:
    """A torch tensor here would be silently copied (or fail deep inside NumPy): say what to do."""
    torch_fn = where.removesuffix("_backward")  # torch: autograd gives the backward
    for name, x in arrays.items():
        if type(x).__module__.split(".")[0] == "torch":
            raise TypeError(
                f"{where}: {name} is a torch.{type(x).__name__}; dinat_ref.numpy takes NumPy "
                f"arrays. Use dinat_ref.torch.{torch_fn} for tensors, or pass "
                f"{name}.detach().cpu().numpy()."
            )


def _flatten(x: np.ndarray, na_dim: int) -> np.ndarray:
    """(B, *spatial, heads, C) -> (B, N, heads, C), N = prod(spatial), row-major."""
    return x.reshape(x.shape[0], math.prod(x.shape[1 : 1 + na_dim]), *x.shape[1 + na_dim :])


def _gather(x: np.ndarray, keys: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Neighbors of every query: x (B, N, heads, C), keys (N, K) -> (B, N, K, heads, C).

    With ``valid`` (N, K), masked slots hold 0 instead of a repeated key, so that their
    weight 0 never meets an inf or NaN there (``0 * inf = NaN``).
    """
    nb = x[:, keys]  # (B, N, K, heads, C)
    if valid is None or valid.all():
        return nb
    return np.where(valid[None, :, :, None, None], nb, 0).astype(x.dtype, copy=False)


def _bias(rpb: np.ndarray, rpb_idx: np.ndarray) -> np.ndarray:
    """RPB of every (query, slot): rpb (heads, 2k0-1, ...), rpb_idx (N, K, ndim) -> (N, heads, K)."""
    per_axis = tuple(rpb_idx[..., a] for a in range(rpb_idx.shape[-1]))  # ndim x (N, K)
    b = rpb[(slice(None), *per_axis)]  # (heads, N, K)
    return b.transpose(1, 0, 2)  # (N, heads, K)


def _scale(q: np.ndarray, scale: float | None) -> float:
    """The logit scale: ``dim ** -0.5`` unless given."""
    return q.shape[-1] ** -0.5 if scale is None else scale


def _logits(q, key, window: Window, scale, rpb):
    """Scaled, biased, masked logits ``s = (scale q) . k_nb + b``.

    Returns:
        ``(s, keys, valid)``: logits (B, N, heads, K) with ``-inf`` on masked slots, and the
        (N, K) neighbor table they were gathered with (reused for ``v``) and its mask.
    """
    na_dim = window.ndim
    spatial = q.shape[1 : 1 + na_dim]
    keys, valid = neighbor_indices(spatial, *window.args())  # (N, K) x2
    qf = _flatten(q, na_dim) * q.dtype.type(_scale(q, scale))  # (B, N, heads, D), scaled *before* q.k
    k_nb = _gather(_flatten(key, na_dim), keys)  # (B, N, K, heads, D)
    s = np.einsum("bnhd,bnkhd->bnhk", qf, k_nb)  # (B, N, heads, K)
    if rpb is not None:
        idx = rpb_indices(spatial, *window.args())  # (N, K, ndim)
        s = s + _bias(rpb, idx)[None]  # (B, N, heads, K)
    if not valid.all():  # only causal windows have masked slots
        s = np.where(valid[None, :, None, :], s, -np.inf).astype(q.dtype, copy=False)  # (B, N, heads, K)
    return s, keys, valid


def _softmax(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable softmax over the last axis, and its log-sum-exp.

    ``p_t = exp(s_t - m) / sum_u exp(s_u - m)`` with ``m = max_u s_u``; ``lse = m + log sum exp(s - m)``.
    A row with every logit ``-inf`` (nothing to attend to) gets ``p = 0`` and ``lse = -inf``,
    as NATTEN and flex attention give, so its output is 0.
    """
    m = s.max(axis=-1, keepdims=True)  # (..., 1) the slot with the largest logit
    m = np.where(m == -np.inf, 0, m)  # (..., 1) a fully masked row: exp(-inf - 0) = 0, not NaN
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf; inf - inf = NaN, as meant
        e = np.exp(s - m)  # (..., K) in [0, 1], masked slots exp(-inf) = 0
        z = e.sum(axis=-1, keepdims=True)  # (..., 1) >= 1, or 0 for a fully masked row
        lse = (m + np.log(z))[..., 0]  # -inf for a fully masked row
        return e / np.where(z == 0, 1, z), lse


# ----------------------------------------------------------------------------------------
# The N-D operators
# ----------------------------------------------------------------------------------------

def na_qk(q, k, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1, is_causal: Bools = False,
          scale: float | None = None, rpb=None, *, na_dim: int):
    """Logits of every query against its neighbors, in neighborhood layout.

    Returns:
        (B, *spatial, heads, prod(kernel_size)); slots row-major over the window, masked slots ``-inf``.
    """
    where = f"na{na_dim}d_qk"
    _numpy_only(where, q=q, k=k, rpb=rpb)
    window = check_attention_args(
        q, k, None, na_dim, kernel_size, stride, dilation, is_causal, rpb, scale, where)
    s, _, _ = _logits(q, k, window, scale, rpb)  # (B, N, heads, K)
    return s.reshape(*q.shape[:-1], s.shape[-1])  # (B, *spatial, heads, K)


def na_av(probs, v, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
          is_causal: Bools = False, *, na_dim: int):
    """Weighted sum of neighbor values: ``out_n = sum_t probs[n, t] v[keys[n, t]]``.

    Args:
        probs: (B, *spatial, heads, prod(kernel_size)), e.g. a softmax of :func:`na_qk`.
        v: (B, *spatial, heads, dim).
    """
    where = f"na{na_dim}d_av"
    _numpy_only(where, probs=probs, v=v)
    window = check_probs_args(probs, v, na_dim, kernel_size, stride, dilation, is_causal, where)
    keys, valid = neighbor_indices(v.shape[1 : 1 + na_dim], *window.args())  # (N, K) x2
    p = np.where(valid[None, :, None, :], _flatten(probs, na_dim), 0)  # (B, N, heads, K)
    v_nb = _gather(_flatten(v, na_dim), keys, valid)  # (B, N, K, heads, D)
    out = np.einsum("bnhk,bnkhd->bnhd", p, v_nb)  # (B, N, heads, D)
    return out.reshape(v.shape)


def na_forward(q, k, v, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
               is_causal: Bools = False, scale: float | None = None, rpb=None,
               return_lse: bool = False, *, na_dim: int):
    """Fused NA forward: ``out = softmax(na_qk(q, k)) . v_nb``.

    Args:
        q, k: (B, *spatial, heads, D) queries and keys; ``na_dim`` spatial axes.
        v: (B, *spatial, heads, Dv) values (Dv may differ from D).
        kernel_size: k per axis (one int for all axes, or a tuple), ``k >= 2``.
        stride: s per axis, ``1 <= s <= k``; queries in a stride group share one window.
        dilation: d per axis, ``d >= 1``, with ``k * d <= length``.
        is_causal: per axis; a causal axis sees only the query and keys before it.
        scale: multiplies q before ``q . k``; None means ``D ** -0.5``; finite and > 0.
        rpb: (heads, 2k0-1, ...) relative positional bias added to the scaled logits,
            indexed at ``(k - 1) + (j - i) / d`` per axis; None for no bias.
        return_lse: also return the log-sum-exp of the logits.

    Returns:
        out (B, *spatial, heads, dim), and with ``return_lse`` also the natural-log
        log-sum-exp of the logits, (B, *spatial, heads), which the backward pass reuses.
        A query whose every logit is ``-inf`` gets output 0 and lse ``-inf``.
    """
    where = f"na{na_dim}d"
    _numpy_only(where, q=q, k=k, v=v, rpb=rpb)
    window = check_attention_args(
        q, k, v, na_dim, kernel_size, stride, dilation, is_causal, rpb, scale, where)
    s, keys, valid = _logits(q, k, window, scale, rpb)  # (B, N, heads, K)
    p, lse = _softmax(s)  # (B, N, heads, K), (B, N, heads)
    v_nb = _gather(_flatten(v, na_dim), keys, valid)  # (B, N, K, heads, Dv)
    out = np.einsum("bnhk,bnkhd->bnhd", p, v_nb).reshape(*v.shape)  # (B, *spatial, heads, Dv)
    return (out, lse.reshape(q.shape[:-1])) if return_lse else out


def _check_saved(where: str, d_out, q, v, out, lse) -> None:
    """``d_out`` and ``out`` have v's shape, ``lse`` has q's (B, *spatial, heads)."""
    for name, x, like, what in (("d_out", d_out, v.shape, "value's shape"),
                                ("out", out, v.shape, "value's shape"),
                                ("lse", lse, q.shape[:-1], "query's (B, *spatial, heads)")):
        if not hasattr(x, "shape") or tuple(x.shape) != tuple(like):
            raise shape_error(where, name, x, like, what)


def na_backward(d_out, q, k, v, out, lse, kernel_size: Ints, stride: Ints = 1,
                dilation: Ints = 1, is_causal: Bools = False, scale: float | None = None,
                rpb=None, *, na_dim: int):
    """Gradients of a scalar loss through :func:`na_forward`, derived by hand.

    With ``s_nt = c q_n . k_{j(n,t)} + b_nt`` (``c`` the scale, ``j(n,t)`` the key in slot t),
    ``p = softmax_t(s)`` and ``o_n = sum_t p_nt v_{j(n,t)}``, and ``g_n = dL/do_n``:

    * ``dL/dv_j  = sum_{(n,t): j(n,t)=j} p_nt g_n``              (scatter-add over who saw j)
    * ``dL/dp_nt = g_n . v_{j(n,t)}``
    * ``dL/ds_nt = p_nt (dL/dp_nt - D_n)``, ``D_n = sum_t p_nt dL/dp_nt = g_n . o_n``
      (the softmax Jacobian ``diag(p) - p p^T``; the ``g . o`` form avoids a second sum)
    * ``dL/dq_n  = c sum_t dL/ds_nt k_{j(n,t)}``
    * ``dL/dk_j  = c sum_{(n,t): j(n,t)=j} dL/ds_nt q_n``          (scatter-add)
    * ``dL/drpb[h, r] = sum_{b, (n,t): idx(n,t)=r} dL/ds_bnht``     (scatter-add over RPB entries)

    ``p`` is recomputed from the saved ``lse`` as ``exp(s - lse)``, as fused kernels do.
    Masked slots have ``p = 0`` and so contribute nothing; a fully masked query
    (``lse = -inf``) has ``p = 0`` everywhere and gets zero gradients.

    Returns:
        ``(dq, dk, dv, drpb)``; ``drpb`` is None when ``rpb`` is None.
    """
    where = f"na{na_dim}d_backward"
    _numpy_only(where, d_out=d_out, q=q, k=k, v=v, out=out, lse=lse, rpb=rpb)
    window = check_attention_args(
        q, k, v, na_dim, kernel_size, stride, dilation, is_causal, rpb, scale, where)
    _check_saved(where, d_out, q, v, out, lse)
    c = _scale(q, scale)
    s, keys, valid = _logits(q, k, window, scale, rpb)  # (B, N, heads, K)
    lse = _flatten(np.where(lse == -np.inf, 0, lse)[..., None], na_dim)  # fully masked: p = exp(-inf) = 0
    p = np.exp(s - lse)  # (B, N, heads, K)
    g = _flatten(d_out, na_dim)  # (B, N, heads, Dv)
    qf, kf, vf = (_flatten(x, na_dim) for x in (q, k, v))  # (B, N, heads, D)

    dp = np.einsum("bnhd,bnkhd->bnhk", g, _gather(vf, keys, valid))  # (B, N, heads, K)
    D = np.einsum("bnhd,bnhd->bnh", g, _flatten(out, na_dim))  # (B, N, heads)
    ds = p * (dp - D[..., None])  # (B, N, heads, K)

    dq = c * np.einsum("bnhk,bnkhd->bnhd", ds, _gather(kf, keys, valid))  # (B, N, heads, D)
    # Scatter-adds: every (query n, slot t) sends its share to key keys[n, t].
    dv = np.zeros_like(vf)  # (B, N, heads, Dv)
    dk = np.zeros_like(kf)  # (B, N, heads, D)
    np.add.at(dv, (slice(None), keys), np.einsum("bnhk,bnhd->bnkhd", p, g))
    np.add.at(dk, (slice(None), keys), c * np.einsum("bnhk,bnhd->bnkhd", ds, qf))

    drpb = None
    if rpb is not None:
        idx = rpb_indices(q.shape[1 : 1 + na_dim], *window.args())  # (N, K, ndim)
        drpb = np.zeros_like(rpb)  # (heads, 2k0-1, ...)
        ds_nhk = ds.sum(axis=0).transpose(1, 0, 2)  # (heads, N, K), summed over batch
        np.add.at(drpb, (slice(None), *(idx[..., a] for a in range(na_dim))), ds_nhk)
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape), drpb


# ----------------------------------------------------------------------------------------
# 1D / 2D / 3D names, as in NATTEN: the arguments are those of the N-D functions above
# ----------------------------------------------------------------------------------------

def na1d(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
         return_lse=False):
    """1-D neighborhood attention on ``(B, L, heads, dim)``; see :func:`na_forward`."""
    return na_forward(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb, return_lse, na_dim=1)


def na2d(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
         return_lse=False):
    """2-D neighborhood attention on ``(B, H, W, heads, dim)``; see :func:`na_forward`."""
    return na_forward(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb, return_lse, na_dim=2)


def na3d(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
         return_lse=False):
    """3-D neighborhood attention on ``(B, D, H, W, heads, dim)``; see :func:`na_forward`."""
    return na_forward(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb, return_lse, na_dim=3)


def na1d_qk(q, k, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None):
    """1-D logits in neighborhood layout, ``(B, L, heads, k)``; see :func:`na_qk`."""
    return na_qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, na_dim=1)


def na2d_qk(q, k, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None):
    """2-D logits in neighborhood layout, ``(B, H, W, heads, k0 * k1)``; see :func:`na_qk`."""
    return na_qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, na_dim=2)


def na3d_qk(q, k, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None):
    """3-D logits in neighborhood layout, ``(B, D, H, W, heads, k0 * k1 * k2)``; see :func:`na_qk`."""
    return na_qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, na_dim=3)


def na1d_av(probs, v, kernel_size, stride=1, dilation=1, is_causal=False):
    """1-D weighted sum of neighbor values; see :func:`na_av`."""
    return na_av(probs, v, kernel_size, stride, dilation, is_causal, na_dim=1)


def na2d_av(probs, v, kernel_size, stride=1, dilation=1, is_causal=False):
    """2-D weighted sum of neighbor values; see :func:`na_av`."""
    return na_av(probs, v, kernel_size, stride, dilation, is_causal, na_dim=2)


def na3d_av(probs, v, kernel_size, stride=1, dilation=1, is_causal=False):
    """3-D weighted sum of neighbor values; see :func:`na_av`."""
    return na_av(probs, v, kernel_size, stride, dilation, is_causal, na_dim=3)


def na1d_backward(d_out, q, k, v, out, lse, kernel_size, stride=1, dilation=1, is_causal=False,
                  scale=None, rpb=None):
    """Gradients through :func:`na1d`, ``(dq, dk, dv, drpb)``; see :func:`na_backward`."""
    return na_backward(d_out, q, k, v, out, lse, kernel_size, stride, dilation, is_causal, scale, rpb,
                       na_dim=1)


def na2d_backward(d_out, q, k, v, out, lse, kernel_size, stride=1, dilation=1, is_causal=False,
                  scale=None, rpb=None):
    """Gradients through :func:`na2d`, ``(dq, dk, dv, drpb)``; see :func:`na_backward`."""
    return na_backward(d_out, q, k, v, out, lse, kernel_size, stride, dilation, is_causal, scale, rpb,
                       na_dim=2)


def na3d_backward(d_out, q, k, v, out, lse, kernel_size, stride=1, dilation=1, is_causal=False,
                  scale=None, rpb=None):
    """Gradients through :func:`na3d`, ``(dq, dk, dv, drpb)``; see :func:`na_backward`."""
    return na_backward(d_out, q, k, v, out, lse, kernel_size, stride, dilation, is_causal, scale, rpb,
                       na_dim=3)
