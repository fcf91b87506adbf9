"""The NumPy reference against brute force, and its backward against finite differences.

The brute force below is written from :func:`dense_mask` alone: every query against
every key (an ``(N, N)`` score matrix), ``-inf`` where the mask is False, a plain
softmax over all ``N`` keys. Its relative positional bias is built per (query, key)
pair from grid coordinates, ``(k - 1) + (j - i) / d`` per axis, without asking
:func:`rpb_indices`. Nothing here uses the gather path it checks.
"""

from __future__ import annotations

from math import prod

import numpy as np
import pytest

from dinat_ref.neighborhood import dense_mask
from dinat_ref.numpy import (
    na1d,
    na1d_av,
    na1d_backward,
    na1d_qk,
    na2d,
    na2d_av,
    na2d_backward,
    na2d_qk,
    na3d,
    na3d_av,
    na3d_backward,
    na3d_qk,
)

FORWARD = {1: na1d, 2: na2d, 3: na3d}
QK = {1: na1d_qk, 2: na2d_qk, 3: na3d_qk}
AV = {1: na1d_av, 2: na2d_av, 3: na3d_av}
BACKWARD = {1: na1d_backward, 2: na2d_backward, 3: na3d_backward}


# ----------------------------------------------------------------------------------------
# Brute force: dense masked softmax attention over all N x N pairs
# ----------------------------------------------------------------------------------------

def dense_logits(q, k, shape, kernel_size, stride, dilation, is_causal, scale, rpb):
    """(B, heads, N, N) logits with -inf outside the mask, and the (N, N) mask."""
    B, heads, D = q.shape[0], q.shape[-2], q.shape[-1]
    N = prod(shape)
    mask = dense_mask(shape, kernel_size, stride, dilation, is_causal)  # (N, N)
    qf = q.reshape(B, N, heads, D)
    kf = k.reshape(B, N, heads, D)
    c = D**-0.5 if scale is None else scale
    s = np.einsum("bnhd,bmhd->bhnm", qf * c, kf)  # (B, heads, N, N)
    if rpb is not None:
        coords = np.stack(np.unravel_index(np.arange(N), shape), axis=-1)  # (N, ndim)
        rel = coords[None, :, :] - coords[:, None, :]  # (N, N, ndim): key minus query
        ks, dil = np.array(kernel_size), np.array(dilation)
        assert (rel[mask] % dil == 0).all()  # neighbors share the query's dilation group
        idx = np.where(mask[..., None], (ks - 1) + rel // dil, 0)  # (N, N, ndim)
        s = s + rpb[(slice(None), *(idx[..., a] for a in range(len(shape))))][None]  # (B, heads, N, N)
    return np.where(mask, s, -np.inf), mask


def dense_attention(q, k, v, shape, kernel_size, stride, dilation, is_causal, scale, rpb):
    """out (B, *shape, heads, Dv) and natural-log lse (B, *shape, heads), the slow obvious way."""
    B, heads = q.shape[0], q.shape[-2]
    N = prod(shape)
    s, _ = dense_logits(q, k, shape, kernel_size, stride, dilation, is_causal, scale, rpb)
    m = s.max(axis=-1, keepdims=True)
    p = np.exp(s - m)
    lse = (m[..., 0] + np.log(p.sum(axis=-1)))  # (B, heads, N)
    p = p / p.sum(axis=-1, keepdims=True)  # (B, heads, N, N)
    out = np.einsum("bhnm,bmhd->bnhd", p, v.reshape(B, N, heads, -1))
    return out.reshape(v.shape), lse.transpose(0, 2, 1).reshape(q.shape[:-1])


# ----------------------------------------------------------------------------------------
# Random configurations (odd/even k, stride, dilation with L % d != 0, per-axis causal, rpb)
# ----------------------------------------------------------------------------------------

def random_config(rng, ndim):
    max_k, max_d, extra = {1: (7, 3, 5), 2: (4, 2, 3), 3: (3, 2, 1)}[ndim]
    ks = tuple(int(rng.integers(2, max_k + 1)) for _ in range(ndim))
    dil = tuple(int(rng.integers(1, max_d + 1)) for _ in range(ndim))
    shape = tuple(k * d + int(rng.integers(0, extra + 1)) for k, d in zip(ks, dil, strict=True))
    stride = tuple(int(rng.integers(1, k + 1)) for k in ks)
    causal = tuple(bool(rng.random() < 0.3) for _ in range(ndim))
    return shape, ks, stride, dil, causal


# Hand-picked cases that must always be in the sweep.
FIXED = [
    ((10,), (3,), (1,), (2,), (False,)),  # L=10, d=2: the border case of the hand-checked tests
    ((9,), (4,), (2,), (2,), (True,)),  # even k, L % d != 0, stride, causal
    ((8, 5), (3, 3), (1, 1), (1, 1), (False, False)),  # non-square
    ((7, 9), (2, 3), (2, 3), (3, 2), (True, False)),  # even k, stride, dilation, per-axis causal
    ((4, 5, 6), (2, 3, 2), (2, 1, 1), (1, 1, 3), (False, True, False)),
]
RANDOM = [random_config(np.random.default_rng(seed), 1 + seed % 3) for seed in range(30)]


def make_inputs(rng, shape, ks, heads=2, dim=4, dim_v=None, batch=2, dtype=np.float64):
    q, k = (rng.standard_normal((batch, *shape, heads, dim)).astype(dtype) for _ in range(2))
    v = rng.standard_normal((batch, *shape, heads, dim_v or dim)).astype(dtype)
    rpb = rng.standard_normal((heads, *(2 * kk - 1 for kk in ks))).astype(dtype)
    return q, k, v, rpb


@pytest.mark.parametrize("cfg", FIXED + RANDOM, ids=str)
@pytest.mark.parametrize("with_rpb", [False, True], ids=["no_rpb", "rpb"])
def test_forward_matches_dense_brute_force(cfg, with_rpb, rng):
    shape, ks, stride, dil, causal = cfg
    nd = len(shape)
    q, k, v, rpb = make_inputs(rng, shape, ks, dim_v=3)
    rpb = rpb if with_rpb else None
    scale = 0.7 if with_rpb else None
    out, lse = FORWARD[nd](q, k, v, ks, stride, dil, causal, scale=scale, rpb=rpb, return_lse=True)
    ref_out, ref_lse = dense_attention(q, k, v, shape, ks, stride, dil, causal, scale, rpb)
    assert out.shape == v.shape and out.dtype == np.float64
    assert lse.shape == q.shape[:-1]
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lse, ref_lse, rtol=0, atol=1e-12)
    plain = FORWARD[nd](q, k, v, ks, stride, dil, causal, scale=scale, rpb=rpb)
    np.testing.assert_array_equal(plain, out)  # return_lse changes nothing else


@pytest.mark.parametrize("cfg", FIXED + RANDOM[:12], ids=str)
def test_qk_and_av_match_dense(cfg, rng):
    shape, ks, stride, dil, causal = cfg
    nd, N, K = len(shape), prod(shape), prod(ks)
    q, k, v, rpb = make_inputs(rng, shape, ks)
    logits = QK[nd](q, k, ks, stride, dil, causal, rpb=rpb)  # (B, *shape, heads, K)
    assert logits.shape == (*q.shape[:-1], K)
    s = logits.reshape(q.shape[0], N, q.shape[-2], K)  # (B, N, heads, K)
    dense, mask = dense_logits(q, k, shape, ks, stride, dil, causal, None, rpb)  # (B, heads, N, N)
    finite = np.isfinite(s)  # (B, N, heads, K): the real neighbor slots
    for n in range(N):
        # Slots are row-major over the window, so the real slots list the mask's keys in flat order.
        want = dense[:, :, n, mask[n]]  # (B, heads, n_real)
        got = s[:, n][finite[:, n]].reshape(want.shape[0], want.shape[1], -1)  # (B, heads, n_real)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        assert (s[:, n][~finite[:, n]] == -np.inf).all()
    if not any(causal):
        assert finite.all()

    # av with arbitrary weights: the dense matrix holds the same weights at the mask's keys.
    probs = rng.random(s.shape)  # (B, N, heads, K), junk in masked slots must be ignored
    out = AV[nd](probs.reshape(logits.shape), v, ks, stride, dil, causal)
    P = np.zeros((q.shape[0], q.shape[-2], N, N))  # (B, heads, N, N)
    for n in range(N):
        P[:, :, n, mask[n]] = probs[:, n][finite[:, n]].reshape(P.shape[0], P.shape[1], -1)
    ref = np.einsum("bhnm,bmhd->bnhd", P, v.reshape(v.shape[0], N, *v.shape[-2:])).reshape(v.shape)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)

    # softmax(qk) then av is the fused forward.
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    fused = FORWARD[nd](q, k, v, ks, stride, dil, causal, rpb=rpb)
    np.testing.assert_allclose(AV[nd](p, v, ks, stride, dil, causal), fused, rtol=0, atol=1e-12)


def test_float32_stays_float32(rng):
    shape, ks, stride, dil, causal = (9, 8), (3, 2), (2, 1), (2, 3), (False, True)
    q, k, v, rpb = make_inputs(rng, shape, ks, dtype=np.float32)
    out, lse = na2d(q, k, v, ks, stride, dil, causal, rpb=rpb, return_lse=True)
    logits = na2d_qk(q, k, ks, stride, dil, causal, rpb=rpb)
    assert out.dtype == lse.dtype == logits.dtype == np.float32
    assert na2d_av(np.ones_like(logits), v, ks, stride, dil, causal).dtype == np.float32
    grads = na2d_backward(np.ones_like(out), q, k, v, out, lse, ks, stride, dil, causal, rpb=rpb)
    assert all(g.dtype == np.float32 for g in grads)
    # And it is float32-accurate against the float64 brute force.
    up = [x.astype(np.float64) for x in (q, k, v, rpb)]
    ref_out, ref_lse = dense_attention(*up[:3], shape, ks, stride, dil, causal, None, up[3])
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=2e-6)
    np.testing.assert_allclose(lse, ref_lse, rtol=0, atol=2e-6)


def test_large_logits_do_not_overflow(rng):
    """The max-subtracted softmax survives logits far beyond exp's float32 range."""
    q, k, v, _ = make_inputs(rng, (12,), (3,), dtype=np.float32)
    out = na1d(q * 100, k * 100, v, 3)
    assert np.isfinite(out).all()


# ----------------------------------------------------------------------------------------
# Backward: finite differences in float64
# ----------------------------------------------------------------------------------------

GRAD_CASES = [
    # (shape, kernel_size, stride, dilation, is_causal)
    ((7,), (3,), (1,), (2,), (False,)),
    ((9,), (4,), (2,), (2,), (True,)),
    ((6,), (2,), (2,), (1,), (False,)),
    ((5, 4), (3, 2), (1, 2), (1, 2), (False, False)),
    ((5, 6), (2, 3), (2, 1), (2, 1), (True, False)),
    ((3, 4, 4), (2, 2, 3), (1, 2, 1), (1, 2, 1), (False, True, False)),
]


def _numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of x (in place, restored)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = f()
        flat[i] = old - eps
        lo = f()
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return g


@pytest.mark.parametrize("cfg", GRAD_CASES, ids=str)
@pytest.mark.parametrize("with_rpb", [False, True], ids=["no_rpb", "rpb"])
def test_backward_matches_finite_differences(cfg, with_rpb, rng):
    shape, ks, stride, dil, causal = cfg
    nd = len(shape)
    q, k, v, rpb = make_inputs(rng, shape, ks, heads=2, dim=2, dim_v=3, batch=1)
    rpb = rpb if with_rpb else None
    scale = 0.9
    g = rng.standard_normal(v.shape)  # dL/dout for the loss L = sum(out * g)

    def loss():
        return float((FORWARD[nd](q, k, v, ks, stride, dil, causal, scale=scale, rpb=rpb) * g).sum())

    out, lse = FORWARD[nd](q, k, v, ks, stride, dil, causal, scale=scale, rpb=rpb, return_lse=True)
    dq, dk, dv, drpb = BACKWARD[nd](g, q, k, v, out, lse, ks, stride, dil, causal, scale=scale, rpb=rpb)
    for name, x, analytic in (("dq", q, dq), ("dk", k, dk), ("dv", v, dv)) + (
        (("drpb", rpb, drpb),) if with_rpb else ()
    ):
        assert analytic.shape == x.shape, name
        np.testing.assert_allclose(analytic, _numerical_grad(loss, x), rtol=1e-6, atol=1e-8, err_msg=name)
    if not with_rpb:
        assert drpb is None


def test_backward_default_scale_and_batch(rng):
    """Default scale (dim ** -0.5) and a batch of 2: drpb sums over the batch."""
    shape, ks = (4, 5), (2, 3)
    q, k, v, rpb = make_inputs(rng, shape, ks, heads=1, dim=4, batch=2)
    g = rng.standard_normal(v.shape)

    def loss():
        return float((na2d(q, k, v, ks, rpb=rpb) * g).sum())

    out, lse = na2d(q, k, v, ks, rpb=rpb, return_lse=True)
    dq, dk, dv, drpb = na2d_backward(g, q, k, v, out, lse, ks, rpb=rpb)
    for x, analytic in ((q, dq), (k, dk), (v, dv), (rpb, drpb)):
        np.testing.assert_allclose(analytic, _numerical_grad(loss, x), rtol=1e-6, atol=1e-8)
