"""A small neighborhood-attention kernel written from scratch, and deliberately wrong copies of it.

The verifier is only worth something if it catches real mistakes. ``make_kernel()``
builds an independent gather kernel (it computes its own windows from the per-axis
formula; it does not call :mod:`dinat_ref.neighborhood`), and ``make_kernel(mutation)``
builds the same kernel with one classic bug. The kernel takes NumPy arrays or torch
tensors (heads-last), so it also exercises the verifier's backward checks.
"""

from __future__ import annotations

import numpy as np

MUTATIONS = {
    "naive_clamp": "window start clamp(i - (k//2)*d) over the whole axis, ignoring dilation groups",
    "group_div": "dilation group taken from i // d instead of i % d",
    "even_k_off": "even kernels centered one off: (k-1)//2 keys on the left instead of k//2",
    "hw_swap": "height/width swapped: each axis uses the other axis' length (bounds-clamped)",
    "no_scale": "the scale is never applied",
    "rpb_sign": "RPB offset sign flipped: rpb[(k-1) - (j-i)/d]",
    "rpb_axes": "RPB axes swapped: rpb[h, x_offset, y_offset]",
    "causal_leak": "causal window leaks one future key",
    "stride_leader": "stride leader is the first query of the stride group, not the middle one",
    "softmax_axis": "softmax over the heads axis instead of the neighbor slots",
    "grad_detached": "keys detached from autograd (forward right, dk zero)",
}

# The kind of mistake the verifier's diagnosis must name for each mutation (when it names one).
EXPECTED_KIND = {
    "naive_clamp": "wrong_window",
    "group_div": "wrong_window",
    "even_k_off": "wrong_window",
    "hw_swap": "wrong_window",
    "stride_leader": "wrong_window",
    "causal_leak": "causal_leakage",
    "no_scale": "wrong_scale",
    "rpb_sign": "wrong_rpb",
    "rpb_axes": "wrong_rpb",
    "softmax_axis": "wrong_normalization",
    "grad_detached": "wrong_backward",
}


def _axis(L: int, k: int, s: int, d: int, causal: bool, bug: str | None, n: int | None = None):
    """Per-axis windows of queries 0..n-1 (default n = L) on an axis of length L.

    Returns key index (n, k), valid (n, k) and the relative offset j' - i' (n, k).
    """
    i = np.arange(L if n is None else n)
    g = (i // d) % d if bug == "group_div" else i % d  # dilation group of each query
    ig = i // d  # index inside the group
    Lg = -(-(L - g) // d)  # group sizes, ceil((L - g) / d)
    t = np.arange(k)[None, :]
    if bug == "naive_clamp" and not causal:
        start = np.clip(i - (k // 2) * d, 0, L - 1 - (k - 1) * d)  # full-axis start, may leave the group
        keys = start[:, None] + t * d
        return keys, np.ones_like(keys, dtype=bool), (keys - i[:, None]) // d
    if causal:
        leader = np.minimum((ig // s) * s + (0 if bug == "stride_leader" else s - 1), Lg - 1)
        start = np.maximum(leader - k + 1, 0)
        end = np.minimum(ig + (2 if bug == "causal_leak" else 1), Lg)
    else:
        left = (k - 1) // 2 if bug == "even_k_off" else k // 2
        leader = np.minimum((ig // s) * s + (0 if bug == "stride_leader" else s // 2), Lg - 1)
        start = np.clip(leader - left, 0, Lg - k)
        end = start + k
    key_g = start[:, None] + t  # (L, k) j'
    valid = key_g < end[:, None]
    key_g = np.minimum(key_g, end[:, None] - 1)
    return key_g * d + g[:, None], valid, key_g - ig[:, None]


def _windows(shape, ks, st, dil, causal, bug):
    """Flat keys (N, K), valid (N, K) and per-axis RPB index (N, K, ndim), row-major."""
    ndim = len(shape)
    per_axis = []
    for a in range(ndim):
        L = shape[ndim - 1 - a] if bug == "hw_swap" else shape[a]
        keys, valid, off = _axis(L, ks[a], st[a], dil[a], causal[a], bug, n=shape[a])
        if bug == "hw_swap":  # a bounds-checked kernel clamps instead of crashing
            keys = np.clip(keys, 0, shape[a] - 1)
        sign = -1 if bug == "rpb_sign" else 1
        per_axis.append((keys, valid, (ks[a] - 1) + sign * off))
    # Product over axes with meshgrids: query (q0..), slot (t0..) -> flat key, all valid, rpb index.
    q_grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    t_grid = np.meshgrid(*[np.arange(k) for k in ks], indexing="ij")
    qs = [g.reshape(-1, 1) for g in q_grid]  # ndim x (N, 1)
    ts = [g.reshape(1, -1) for g in t_grid]  # ndim x (1, K)
    flat = np.zeros((len(qs[0]), len(ts[0][0])), dtype=np.int64)
    valid = np.ones_like(flat, dtype=bool)
    rpb_idx = []
    for a, (keys, v, r) in enumerate(per_axis):
        flat = flat * shape[a] + keys[qs[a], ts[a]]
        valid &= v[qs[a], ts[a]]
        rpb_idx.append(r[qs[a], ts[a]])
    if bug == "rpb_axes":
        rpb_idx = rpb_idx[::-1]
    return flat, valid, rpb_idx


def make_kernel(bug: str | None = None):
    """A fused kernel ``fn(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb)``."""
    if bug is not None and bug not in MUTATIONS:
        raise ValueError(f"unknown mutation {bug!r}; choose from {sorted(MUTATIONS)}")

    def na(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None):
        ndim = q.ndim - 3
        tup = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x,) * ndim
        shape = tuple(q.shape[1:1 + ndim])
        keys, valid, rpb_idx = _windows(shape, tup(kernel_size), tup(stride), tup(dilation),
                                        tup(is_causal), bug)
        torch_in = not isinstance(q, np.ndarray)
        if torch_in:
            import torch

            keys, valid = torch.as_tensor(keys), torch.as_tensor(valid)
            rpb_idx = [torch.as_tensor(r) for r in rpb_idx]
            if bug == "grad_detached":
                k = k.detach()
        B, H, D = q.shape[0], q.shape[-2], q.shape[-1]
        qf, kf, vf = (x.reshape(B, -1, H, x.shape[-1]) for x in (q, k, v))  # (B, N, H, D)
        c = D ** -0.5 if scale is None else scale
        if bug == "no_scale":
            c = 1.0
        logits = (qf[:, :, None] * kf[:, keys]).sum(-1) * c  # (B, N, K, H)
        if rpb is not None:
            bias = rpb[(slice(None), *rpb_idx)]  # (H, N, K)
            bias = bias.permute(1, 2, 0) if torch_in else bias.transpose(1, 2, 0)  # (N, K, H)
            logits = logits + bias[None]
        axis = 3 if bug == "softmax_axis" else 2
        if torch_in:
            logits = logits.masked_fill(~valid[None, :, :, None], float("-inf"))
            p = logits.softmax(dim=axis)
        else:
            logits = np.where(valid[None, :, :, None], logits, -np.inf)
            with np.errstate(invalid="ignore"):  # softmax_axis: all-masked rows give NaN, as in torch
                e = np.exp(logits - logits.max(axis=axis, keepdims=True))
                p = e / e.sum(axis=axis, keepdims=True)  # (B, N, K, H)
        out = (p[..., None] * vf[:, keys]).sum(2)  # (B, N, H, D)
        return out.reshape(v.shape)

    na.__name__ = na.__qualname__ = f"na_{bug or 'correct'}"
    return na


correct_na = make_kernel()
