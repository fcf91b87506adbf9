"""The reference semantics under bad and extreme input, the same on every path.

* NaN / inf stay local: only the queries whose neighborhood (or own row) holds a non-finite
  number are affected, and exactly as in the NumPy reference (NaN, +inf, -inf query for query).
  The NumPy reference is first checked against a brute-force loop over the dense mask.
* Half precision: logits beyond fp16's 65504 never turn into NaN; every path agrees with the
  float64 reference within fp16/bf16 tolerances, forward and backward.
* A query with nothing to attend to (every logit ``-inf``): output 0, lse ``-inf``, zero gradients.
* Zero-size batch or heads give empty outputs; bad ``scale``, head dim 0 and torch tensors
  given to the NumPy functions raise clear errors.

The sweeps are hypothesis searches over 1D/2D/3D, odd/even kernels, stride, dilation, causal
and rpb, on every backend that runs on this machine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dinat_ref.numpy as rn
from dinat_ref.neighborhood import dense_mask

torch = pytest.importorskip("torch")

import dinat_ref.torch as nat  # noqa: E402

SWEEP = settings(max_examples=25, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HEADS, DIM = 2, 4  # DIM a power of two, so NATTEN's CPU path can join


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny inputs: no thread hand-offs


# ----------------------------------------------------------------------------------------
# An independent judge: attention query by query over the dense mask
# ----------------------------------------------------------------------------------------

def brute_force(q, k, v, window, scale, rpb):
    """Loop over queries; keys from :func:`dense_mask`; RPB index from coordinates.

    A query whose logits are all ``-inf`` gets output 0 and lse ``-inf`` (the documented answer).
    """
    ks, st_, dil, causal = window
    shape = q.shape[1:-2]
    n_tok = math.prod(shape)
    mask = dense_mask(shape, ks, st_, dil, causal)  # (N, N)
    coords = np.stack(np.unravel_index(np.arange(n_tok), shape), axis=-1)  # (N, ndim)
    qf, kf, vf = (x.reshape(x.shape[0], n_tok, *x.shape[-2:]) for x in (q, k, v))
    out = np.zeros((*qf.shape[:-1], vf.shape[-1]))
    lse = np.zeros(qf.shape[:-1])
    for n in range(n_tok):
        keys = np.flatnonzero(mask[n])
        s = scale * np.einsum("bhd,bjhd->bhj", qf[:, n], kf[:, keys])  # (B, H, J)
        if rpb is not None:
            rel = (np.array(ks) - 1) + (coords[keys] - coords[n]) // np.array(dil)  # (J, ndim)
            s = s + rpb[(slice(None), *rel.T)][None]  # (B, H, J)
        for b, h in np.ndindex(s.shape[:2]):
            row = s[b, h]
            if np.all(row == -np.inf):
                out[b, n, h], lse[b, n, h] = 0.0, -np.inf
                continue
            m = row.max()
            with np.errstate(invalid="ignore"):  # inf - inf = NaN: the NaN the reference must give
                w = np.exp(row - m)
            out[b, n, h] = (w / w.sum()) @ vf[b, keys, h]
            lse[b, n, h] = m + np.log(w.sum())
    return out.reshape(*q.shape[:-1], v.shape[-1]), lse.reshape(q.shape[:-1])


def assert_same(got, want, tol: float, what: str):
    """Same NaN / +inf / -inf entries, and the finite ones close (relative to the largest)."""
    got = got.detach().double().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        bad = test(got) != test(want)
        assert not bad.any(), f"{what}: {name} pattern differs at {np.argwhere(bad)[:5].tolist()}"
    fin = np.isfinite(want)
    scale = 1.0 + (np.abs(want[fin]).max() if fin.any() else 0.0)
    err = np.abs(got[fin] - want[fin]).max() if fin.any() else 0.0
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol} * {scale:.3g}"


# ----------------------------------------------------------------------------------------
# Random configurations
# ----------------------------------------------------------------------------------------

@st.composite
def windows(draw):
    """(shape, (kernel_size, stride, dilation, is_causal)): odd and even k, uneven groups."""
    na_dim = draw(st.integers(1, 3))
    shape, ks, st_, dil, causal = [], [], [], [], []
    for _ in range(na_dim):
        k = draw(st.integers(2, 5 if na_dim == 1 else 3))
        d = draw(st.integers(1, 3 if na_dim < 3 else 2))
        ks.append(k), dil.append(d), st_.append(draw(st.integers(1, k)))
        shape.append(k * d + draw(st.integers(0, 3 if na_dim < 3 else 1)))
        causal.append(draw(st.booleans()))
    return tuple(shape), (tuple(ks), tuple(st_), tuple(dil), tuple(causal))


def _inputs(seed, shape, window, use_rpb, batch=1, amplitude=1.0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((batch, *shape, HEADS, DIM)) for _ in range(3))
    rpb = rng.standard_normal((HEADS, *(2 * x - 1 for x in window[0]))) if use_rpb else None
    return q * amplitude, k * amplitude, v, rpb


def _available(q, k, v, window, rpb, needs_grad=False):
    """Backends that can serve this call here (torch always; flex/NATTEN where they apply)."""
    args = [torch.tensor(x, requires_grad=needs_grad) if x is not None else None for x in (q, k, v, rpb)]
    choice = nat.explain_backend(*args[:3], *window, rpb=args[3])
    return [name for name, why in choice.reasons.items() if not why.startswith("skipped")]


def _torch(x, dtype=torch.float64, grad=False):
    return None if x is None else torch.tensor(x, dtype=dtype).requires_grad_(grad)


# ----------------------------------------------------------------------------------------
# 1. NaN / inf stay local
# ----------------------------------------------------------------------------------------

POISON = st.lists(st.tuples(st.sampled_from("qkv"), st.integers(0, 10**6),
                            st.sampled_from([math.nan, math.inf, -math.inf])), min_size=1, max_size=2)


def _poison(arrays: dict, poisons):
    for name, where, value in poisons:
        flat = arrays[name].reshape(-1)
        flat[where % flat.size] = value


def _check_nonfinite_forward(case, use_rpb, poisons, seed, backends):
    shape, window = case
    q, k, v, rpb = _inputs(seed, shape, window, use_rpb)
    _poison(dict(q=q, k=k, v=v), poisons)
    fn = getattr(rn, f"na{len(shape)}d")
    want, want_lse = fn(q, k, v, *window, 0.5, rpb, return_lse=True)
    judge, judge_lse = brute_force(q, k, v, window, 0.5, rpb)
    assert_same(want, judge, 1e-12, "numpy vs brute force")
    assert_same(want_lse, judge_lse, 1e-12, "numpy lse vs brute force")
    tfn = getattr(nat, f"na{len(shape)}d")
    for backend in set(backends) & set(_available(q, k, v, window, rpb)):
        dtype = torch.float32 if backend == "natten" else torch.float64
        tol = 1e-4 if dtype == torch.float32 else 1e-10
        for return_lse in (False, True):
            got = tfn(*(_torch(x, dtype) for x in (q, k, v)), *window, 0.5, _torch(rpb, dtype),
                      return_lse, backend=backend)
            got = got[0] if return_lse else got
            assert_same(got, want, tol, f"{backend} out (return_lse={return_lse})")
    if use_rpb and "torch" in backends:  # rpb needs a gradient: the explicit softmax path
        got = tfn(*(_torch(x) for x in (q, k, v)), *window, 0.5, _torch(rpb, grad=True), backend="torch")
        assert_same(got, want, 1e-10, "torch out (rpb requires grad)")


@SWEEP
@given(case=windows(), use_rpb=st.booleans(), poisons=POISON, seed=st.integers(0, 2**16))
def test_nonfinite_inputs_stay_local_forward(case, use_rpb, poisons, seed):
    _check_nonfinite_forward(case, use_rpb, poisons, seed, ("torch", "natten"))


@settings(SWEEP, max_examples=5)
@given(case=windows(), use_rpb=st.booleans(), poisons=POISON, seed=st.integers(0, 2**16))
def test_nonfinite_inputs_stay_local_forward_flex(case, use_rpb, poisons, seed):
    """Flex attention too (few examples: on CPU each new shape costs seconds of tracing)."""
    _check_nonfinite_forward(case, use_rpb, poisons, seed, ("flex",))


NAN_POISON = st.lists(st.tuples(st.sampled_from("qkv"), st.integers(0, 10**6), st.just(math.nan)),
                      min_size=1, max_size=2)


@settings(SWEEP, max_examples=15)
@given(case=windows(), use_rpb=st.booleans(), poisons=NAN_POISON, seed=st.integers(0, 2**16))
def test_nan_inputs_stay_local_backward(case, use_rpb, poisons, seed):
    """Gradients (dq, dk, dv, drpb) keep the reference's NaN pattern too.

    (With an inf input the gradients are NaN or inf depending on how the chain rule is
    ordered; only NaN, where every order agrees, is compared.)
    """
    shape, window = case
    q, k, v, rpb = _inputs(seed, shape, window, use_rpb)
    _poison(dict(q=q, k=k, v=v), poisons)
    na_dim = len(shape)
    out, lse = getattr(rn, f"na{na_dim}d")(q, k, v, *window, 0.5, rpb, return_lse=True)
    d_out = np.random.default_rng(seed + 1).standard_normal(out.shape)
    want = getattr(rn, f"na{na_dim}d_backward")(d_out, q, k, v, out, lse, *window, 0.5, rpb)
    leaves = [_torch(x, grad=True) for x in (q, k, v, rpb)]
    got = getattr(nat, f"na{na_dim}d")(*leaves[:3], *window, 0.5, leaves[3], backend="torch")
    assert_same(got, out, 1e-10, "torch out")
    grads = torch.autograd.grad(got, [x for x in leaves if x is not None], torch.tensor(d_out))
    for name, g, w in zip(("dq", "dk", "dv", "drpb"), grads, want, strict=False):
        assert_same(g, w, 1e-8, f"torch {name}")


def test_one_nan_key_leaves_the_rest_of_its_tile_alone():
    """A hand-made case: one NaN key on a 16x16 grid, k=3, touches exactly its 3x3 neighbors."""
    q, k, v, _ = _inputs(0, (16, 16), ((3, 3),), False)
    k[0, 5, 7, 0, 0] = math.nan
    out = nat.na2d(_torch(q), _torch(k), _torch(v), 3, backend="torch")
    bad = torch.isnan(out).any(-1)[0, :, :, 0]  # (16, 16) head 0
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:7, 6:9] = True  # the queries whose 3x3 window holds (5, 7)
    assert torch.equal(bad, expected)
    assert not torch.isnan(out[..., 1, :]).any()  # the other head is clean


def test_av_keeps_an_inf_value_local():
    q, k, v, _ = _inputs(1, (12, 11), ((3, 4),), False)
    v[0, 2, 3, 1, 2] = math.inf
    probs = rn.na2d_qk(q, k, (3, 4))
    probs = np.exp(probs - probs.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    want = rn.na2d_av(probs, v, (3, 4))
    got = nat.na2d_av(_torch(probs), _torch(v), (3, 4))
    assert_same(got, want, 1e-10, "na2d_av")
    assert 0 < np.isinf(want).sum() < want.size // 10


# ----------------------------------------------------------------------------------------
# 2. Half precision: float32 logits, softmax and lse inside
# ----------------------------------------------------------------------------------------

HALF_TOL = {torch.float16: (1e-2, 5e-2), torch.bfloat16: (5e-2, 1e-1)}  # (forward, backward)


def _check_half_forward(case, use_rpb, seed, dtype, backends):
    shape, window = case
    q, k, v, rpb = _inputs(seed, shape, window, use_rpb, amplitude=120.0)
    half = [_torch(x, dtype) for x in (q, k, v, rpb)]
    q, k, v, rpb = (None if x is None else x.double().numpy() for x in half)  # the rounded values
    fn, tfn = getattr(rn, f"na{len(shape)}d"), getattr(nat, f"na{len(shape)}d")
    want, want_lse = fn(q, k, v, *window, 1.0, rpb, return_lse=True)
    tol = HALF_TOL[dtype][0]
    for backend in set(backends) & set(_available(q, k, v, window, rpb)):
        got, got_lse = tfn(*half[:3], *window, 1.0, half[3], True, backend=backend)
        assert got_lse.dtype == torch.float32  # lse of half inputs is float32 (it may pass 65504)
        assert_same(got, want, tol, f"{backend} {dtype} out (lse path)")
        assert_same(got_lse.double() / 1e5, want_lse / 1e5, tol, f"{backend} {dtype} lse / 1e5")
        got = tfn(*half[:3], *window, 1.0, half[3], backend=backend)
        assert got.dtype == dtype
        assert_same(got, want, tol, f"{backend} {dtype} out (fused)")


@SWEEP
@given(case=windows(), use_rpb=st.booleans(), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([torch.float16, torch.bfloat16]))
def test_half_precision_large_logits_forward(case, use_rpb, seed, dtype):
    """Logits up to ~1e5 (beyond fp16's 65504): every path matches float64 on the rounded inputs."""
    _check_half_forward(case, use_rpb, seed, dtype, ("torch", "natten"))


@settings(SWEEP, max_examples=5)
@given(case=windows(), use_rpb=st.booleans(), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([torch.float16, torch.bfloat16]))
def test_half_precision_large_logits_forward_flex(case, use_rpb, seed, dtype):
    _check_half_forward(case, use_rpb, seed, dtype, ("flex",))


@settings(SWEEP, max_examples=15)
@given(case=windows(), seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.float16, torch.bfloat16]))
def test_half_precision_large_logits_backward(case, seed, dtype):
    """rpb needs a gradient (every DiNAT layer in training): forward and all four gradients."""
    shape, window = case
    q, k, v, rpb = _inputs(seed, shape, window, True, amplitude=120.0)
    leaves = [_torch(x, dtype, grad=True) for x in (q, k, v, rpb)]
    q, k, v, rpb = (x.detach().double().numpy() for x in leaves)
    na_dim = len(shape)
    out, lse = getattr(rn, f"na{na_dim}d")(q, k, v, *window, 1.0, rpb, return_lse=True)
    d_out = np.random.default_rng(seed).standard_normal(out.shape)
    d_out_h = torch.tensor(d_out, dtype=dtype)
    want = getattr(rn, f"na{na_dim}d_backward")(d_out_h.double().numpy(), q, k, v, out, lse, *window,
                                                1.0, rpb)
    got = getattr(nat, f"na{na_dim}d")(*leaves[:3], *window, 1.0, leaves[3], backend="torch")
    assert_same(got, out, HALF_TOL[dtype][0], f"{dtype} out")
    grads = torch.autograd.grad(got, leaves, d_out_h)
    for name, g, w in zip(("dq", "dk", "dv", "drpb"), grads, want, strict=True):
        assert_same(g, w, HALF_TOL[dtype][1], f"{dtype} {name}")


# ----------------------------------------------------------------------------------------
# 3. Nothing to attend to: output 0, lse -inf, zero gradients
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("na_dim", [1, 2, 3])
def test_fully_masked_rows_give_zero_output_and_minus_inf_lse(na_dim):
    shape = {1: (9,), 2: (7, 8), 3: (4, 5, 4)}[na_dim]
    window = ((3,) * na_dim,)
    q, k, v, rpb = _inputs(2, shape, window, True)
    rpb[:] = -np.inf
    rpb[1, (0,) * na_dim] = 0.0  # head 1 keeps one relative position: some queries see a key
    fn, tfn = getattr(rn, f"na{na_dim}d"), getattr(nat, f"na{na_dim}d")
    want, want_lse = fn(q, k, v, 3, rpb=rpb, return_lse=True)
    assert np.all(want[..., 0, :] == 0) and np.all(want_lse[..., 0] == -np.inf)  # head 0: nothing
    assert np.isfinite(want[..., 1, :]).all()
    judge, judge_lse = brute_force(q, k, v, (3, 1, 1, False), DIM**-0.5, rpb)
    assert_same(want, judge, 1e-12, "numpy vs brute force")
    assert_same(want_lse, judge_lse, 1e-12, "numpy lse vs brute force")
    tq, tk, tv, trpb = (_torch(x) for x in (q, k, v, rpb))
    for backend in _available(q, k, v, window, rpb):
        got, got_lse = tfn(tq, tk, tv, 3, rpb=trpb, return_lse=True, backend=backend)
        assert_same(got, want, 1e-10, f"{backend} out")
        assert_same(got_lse, want_lse, 1e-10, f"{backend} lse")
        assert_same(tfn(tq, tk, tv, 3, rpb=trpb, backend=backend), want, 1e-10, f"{backend} out (fused)")

    # Backward: zero gradients where nothing was attended, no NaN anywhere.
    d_out = np.ones_like(want)
    ref_grads = getattr(rn, f"na{na_dim}d_backward")(d_out, q, k, v, want, want_lse, 3, rpb=rpb)
    leaves = [_torch(x, grad=True) for x in (q, k, v, rpb)]
    got = tfn(*leaves[:3], 3, rpb=leaves[3], backend="torch")
    grads = torch.autograd.grad(got.sum(), leaves)
    for name, g, w in zip(("dq", "dk", "dv", "drpb"), grads, ref_grads, strict=True):
        assert np.isfinite(w).all(), f"numpy {name} has NaN/inf"
        assert_same(g, w, 1e-10, f"torch {name}")
    assert np.all(ref_grads[0][..., 0, :] == 0)  # dq of the empty head


# ----------------------------------------------------------------------------------------
# 7. Zero-size inputs; 8. torch tensors in the NumPy functions; scale
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch, heads", [(0, 2), (2, 0)])
def test_zero_batch_or_heads_give_empty_outputs(batch, heads):
    shape = (batch, 6, 7, heads, 4)
    q = np.zeros(shape)
    rpb = np.zeros((heads, 5, 5))
    out, lse = rn.na2d(q, q, q, 3, rpb=rpb, return_lse=True)
    assert out.shape == shape and lse.shape == shape[:-1]
    assert rn.na2d_qk(q, q, 3, rpb=rpb).shape == (*shape[:-1], 9)
    assert rn.na2d_av(np.zeros((*shape[:-1], 9)), q, 3).shape == shape
    grads = rn.na2d_backward(q, q, q, q, out, lse, 3, rpb=rpb)
    assert [g.shape for g in grads] == [shape] * 3 + [rpb.shape]

    leaves = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in (shape,) * 3 + (rpb.shape,)]
    for backend in ("torch", "flex"):
        with torch.no_grad():
            out, lse = nat.na2d(*leaves[:3], 3, rpb=leaves[3], return_lse=True, backend=backend)
        assert out.shape == shape and lse.shape == shape[:-1], backend
    out = nat.na2d(*leaves[:3], 3, rpb=leaves[3])
    grads = torch.autograd.grad(out.sum(), leaves)
    assert [tuple(g.shape) for g in grads] == [shape] * 3 + [rpb.shape]
    assert all(not g.any() for g in grads)
    s = nat.na2d_qk(leaves[0], leaves[1], 3, rpb=leaves[3])
    assert s.shape == (*shape[:-1], 9)
    assert nat.na2d_av(torch.softmax(s, -1), leaves[2], 3).shape == shape


@pytest.mark.parametrize("module", [rn, nat], ids=["numpy", "torch"])
def test_head_dim_zero_is_a_clear_error(module):
    x = np.zeros((1, 6, 7, 2, 0))
    x = torch.tensor(x) if module is nat else x
    with pytest.raises(ValueError, match=r"query has shape \(1, 6, 7, 2, 0\), head dim 0"):
        module.na2d(x, x, x, 3)


@pytest.mark.parametrize("fn, args", [
    ("na2d", lambda t, a: (t, a, a, 3)),
    ("na2d", lambda t, a: (a, a, t, 3)),
    ("na2d_qk", lambda t, a: (a, t, 3)),
    ("na2d_av", lambda t, a: (t, a, 3)),
    ("na2d_backward", lambda t, a: (a, a, a, a, a, t, 3)),
])
def test_torch_tensors_in_numpy_functions_say_what_to_do(fn, args):
    a = np.zeros((1, 6, 7, 2, 9))
    t = torch.zeros(1, 6, 7, 2, 9)
    names = {"na2d": ["q", "k", "v"], "na2d_qk": ["q", "k"], "na2d_av": ["probs", "v"],
             "na2d_backward": ["d_out", "q", "k", "v", "out", "lse"]}[fn]
    call_args = args(t, a)
    name = names[next(i for i, x in enumerate(call_args) if x is t)]
    torch_fn = fn.removesuffix("_backward")
    with pytest.raises(TypeError, match=rf"{fn}: {name} is a torch\.Tensor.*dinat_ref\.torch\.{torch_fn} .*"
                                        rf"\.numpy\(\)"):
        getattr(rn, fn)(*call_args)


@pytest.mark.parametrize("scale", [math.nan, math.inf, -math.inf, 0.0, -0.5])
@pytest.mark.parametrize("module", [rn, nat], ids=["numpy", "torch"])
def test_scale_must_be_finite_and_positive(module, scale):
    x = np.zeros((1, 6, 7, 2, 4))
    x = torch.tensor(x) if module is nat else x
    with pytest.raises(ValueError, match=rf"scale={scale!r} must be finite and > 0"):
        module.na2d(x, x, x, 3, scale=scale)
    with pytest.raises(ValueError, match="must be finite and > 0"):
        module.na2d_qk(x, x, 3, scale=scale)
