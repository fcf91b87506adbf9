"""dinat_ref.torch against the NumPy reference (and NATTEN, where installed).

Every check compares independent implementations on identical inputs: the tiled torch
backend, the gather qk/av, flex attention and NATTEN against :mod:`dinat_ref.numpy`
(float64 ground truth, hand-derived backward), plus ``torch.autograd.gradcheck``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_gather  # noqa: E402

import dinat_ref.numpy as ref  # noqa: E402
import dinat_ref.torch as nat  # noqa: E402
from dinat_ref.checks import Window  # noqa: E402
from dinat_ref.torch.backends import tiled  # noqa: E402

TOL = {  # (forward, backward) absolute+relative tolerance per dtype
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-4, 1e-3),
    torch.float16: (1e-2, None),
    torch.bfloat16: (5e-2, None),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny inputs: no thread hand-offs


def _random_config(rng: np.random.Generator, na_dim: int) -> dict:
    """A random valid window configuration; lengths often not divisible by the dilation."""
    ks, st, dil, causal, shape = [], [], [], [], []
    for _ in range(na_dim):
        k = int(rng.integers(2, 6 if na_dim < 3 else 4))  # odd and even kernels
        d = int(rng.integers(1, 4))
        s = int(rng.integers(1, k + 1))
        L = k * d + int(rng.integers(0, 2 * d + 3))  # L % d arbitrary
        ks.append(k), st.append(s), dil.append(d), shape.append(L)
        causal.append(bool(rng.random() < 0.3))
    return dict(shape=tuple(shape), kernel_size=tuple(ks), stride=tuple(st), dilation=tuple(dil),
                is_causal=tuple(causal), rpb=bool(rng.random() < 0.6))


def _sweep(seed: int, per_dim: dict[int, int]) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [_random_config(rng, n) for n, count in per_dim.items() for _ in range(count)]


SWEEP = _sweep(0, {1: 8, 2: 8, 3: 4})
FIXED = [  # hand-picked corners: stride = k, even k causal, non-square, 1x-sized groups
    dict(shape=(15,), kernel_size=(4,), stride=(4,), dilation=(2,), is_causal=(True,), rpb=True),
    dict(shape=(7, 12), kernel_size=(3, 4), stride=(1, 2), dilation=(2, 3), is_causal=(False, True),
         rpb=True),
    dict(shape=(4, 5, 6), kernel_size=(2, 2, 3), stride=(2, 1, 3), dilation=(2, 2, 2),
         is_causal=(True, True, False), rpb=True),
    dict(shape=(20, 9), kernel_size=(7, 3), stride=(1, 1), dilation=(2, 3), is_causal=(False, False),
         rpb=False),
]
CONFIGS = FIXED + SWEEP


def _ids(cfg: dict) -> str:
    c = "".join("c" if x else "n" for x in cfg["is_causal"])
    return (f"L{'x'.join(map(str, cfg['shape']))}-k{'x'.join(map(str, cfg['kernel_size']))}"
            f"-s{'x'.join(map(str, cfg['stride']))}-d{'x'.join(map(str, cfg['dilation']))}-{c}"
            f"{'-rpb' if cfg['rpb'] else ''}")


def _inputs(cfg: dict, seed: int = 1, batch: int = 2, heads: int = 2, dim: int = 8, dtype=np.float64):
    """Random q, k, v, rpb (rpb None if the config has none), rounded to ``dtype``."""
    rng = np.random.default_rng(seed)
    x = lambda *s: rng.standard_normal(s).astype(dtype)
    q, k, v = (x(batch, *cfg["shape"], heads, dim) for _ in range(3))
    rpb = x(heads, *(2 * kk - 1 for kk in cfg["kernel_size"])) if cfg["rpb"] else None
    return q, k, v, rpb


def _window(cfg: dict) -> tuple:
    return cfg["kernel_size"], cfg["stride"], cfg["dilation"], cfg["is_causal"]


def _fn(module, na_dim: int, suffix: str = ""):
    return getattr(module, f"na{na_dim}d{suffix}")


def _t(x, dtype, grad=False):
    return None if x is None else torch.tensor(x, dtype=dtype, requires_grad=grad)


def _close(got: torch.Tensor, want: np.ndarray, tol: float, what: str):
    np.testing.assert_allclose(got.detach().double().numpy(), want, rtol=tol, atol=tol, err_msg=what)


# ----------------------------------------------------------------------------------------
# Forward and backward vs the NumPy reference
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("return_lse", [True, False], ids=["lse", "fused"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=[_ids(c) for c in CONFIGS])
def test_torch_backend_matches_numpy_forward_and_backward(cfg, return_lse, dtype):
    na_dim = len(cfg["shape"])
    ks, st, dil, causal = _window(cfg)
    np_dtype = {torch.float64: np.float64, torch.float32: np.float32}[dtype]
    q, k, v, rpb = (None if a is None else a.astype(np.float64)
                    for a in _inputs(cfg, dtype=np_dtype))  # same values for both sides
    out, lse = _fn(ref, na_dim)(q, k, v, ks, st, dil, causal, None, rpb, True)
    d_out = np.random.default_rng(2).standard_normal(out.shape).astype(np_dtype).astype(np.float64)
    dq, dk, dv, drpb = _fn(ref, na_dim, "_backward")(d_out, q, k, v, out, lse, ks, st, dil, causal,
                                                     None, rpb)

    tq, tk, tv, trpb = (_t(a, dtype, grad=True) for a in (q, k, v, rpb))
    res = _fn(nat, na_dim)(tq, tk, tv, ks, st, dil, causal, None, trpb, return_lse, backend="torch")
    t_out = res[0] if return_lse else res
    fwd, bwd = TOL[dtype]
    _close(t_out, out, fwd, "out")
    if return_lse:
        _close(res[1], lse, fwd, "lse")
    (t_out * torch.tensor(d_out, dtype=dtype)).sum().backward()
    _close(tq.grad, dq, bwd, "dq")
    _close(tk.grad, dk, bwd, "dk")
    _close(tv.grad, dv, bwd, "dv")
    if rpb is not None:
        _close(trpb.grad, drpb, bwd, "drpb")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("cfg", CONFIGS[:6], ids=[_ids(c) for c in CONFIGS[:6]])
def test_torch_backend_half_precision_forward(cfg, dtype):
    na_dim = len(cfg["shape"])
    ks, st, dil, causal = _window(cfg)
    inputs = [_t(a, dtype) for a in _inputs(cfg)]
    as64 = [None if a is None else a.double().numpy() for a in inputs]  # the rounded values
    want = _fn(ref, na_dim)(*as64[:3], ks, st, dil, causal, None, as64[3])
    for return_lse in (False, True):
        got = _fn(nat, na_dim)(*inputs[:3], ks, st, dil, causal, None, inputs[3], return_lse,
                               backend="torch")
        got = got[0] if return_lse else got
        assert got.dtype == dtype
        _close(got, want, TOL[dtype][0], f"out ({dtype}, return_lse={return_lse})")


@pytest.mark.parametrize("tile", [(1, 1), (2, 3), (5, 2), (64, 64)])
def test_tiling_does_not_change_the_result(tile):
    """Any tile size (1 query, uneven, larger than the grid) gives the reference output."""
    cfg = FIXED[1]
    ks, st, dil, causal = _window(cfg)
    q, k, v, rpb = _inputs(cfg)
    want = ref.na2d(q, k, v, ks, st, dil, causal, 0.5, rpb)
    tq, tk, tv, trpb = (torch.tensor(a) for a in (q, k, v, rpb))
    for return_lse in (False, True):
        got, _ = tiled.forward(tq, tk, tv, Window(ks, st, dil, causal), 0.5, trpb,
                               return_lse=return_lse, tile=tile)
        _close(got, want, 1e-12, f"tile={tile}")
    s = tiled.qk(tq, tk, Window(ks, st, dil, causal), 0.5, trpb, tile=tile)
    want_s = ref.na2d_qk(q, k, ks, st, dil, causal, 0.5, rpb)
    assert torch.equal(torch.isinf(s), torch.as_tensor(np.isinf(want_s)))
    _close(s.masked_fill(s.isinf(), 0), np.where(np.isinf(want_s), 0, want_s), 1e-12, f"qk tile={tile}")
    p = torch.softmax(s, dim=-1)
    got = tiled.av(p, tv, Window(ks, st, dil, causal), tile=tile)
    _close(got, ref.na2d_av(p.numpy(), v, ks, st, dil, causal), 1e-12, f"av tile={tile}")


def test_tile_classes_shared_and_rare_biases():
    """A grid big enough that interior tiles share a bias and border tiles do not, batch 3."""
    cfg = dict(shape=(21, 37), kernel_size=(5, 4), stride=(1, 2), dilation=(2, 3),
               is_causal=(False, True), rpb=True)
    ks, st, dil, causal = _window(cfg)
    t = tiled.tiles(tiled.Layout(cfg["shape"], Window(ks, st, dil, causal), (4, 3), torch.device("cpu")))
    assert {shared for _, _, shared in t.classes} == {True, False}  # both kinds are exercised
    q, k, v, rpb = _inputs(cfg, batch=3, dim=4)
    want = ref.na2d(q, k, v, ks, st, dil, causal, None, rpb)
    args = [_t(a, torch.float64, grad=True) for a in (q, k, v, rpb)]
    got = tiled.fused_forward(*args[:3], Window(ks, st, dil, causal), 0.5, args[3], tile=(4, 3))
    _close(got, ref.na2d(q, k, v, ks, st, dil, causal, 0.5, rpb), 1e-12, "fused, scale 0.5")
    got = nat.na2d(*args[:3], ks, st, dil, causal, None, args[3], backend="torch")
    _close(got, want, 1e-12, "na2d")
    out, lse = ref.na2d(q, k, v, ks, st, dil, causal, None, rpb, True)
    d_out = np.ones_like(out)
    for grad, name, ref_grad in zip(torch.autograd.grad(got.sum(), args), ("dq", "dk", "dv", "drpb"),
                                    ref.na2d_backward(d_out, q, k, v, out, lse, ks, st, dil, causal,
                                                      None, rpb), strict=True):
        _close(grad, ref_grad, 1e-10, name)


@pytest.mark.parametrize("run_keys", [1, 300])
def test_runs_of_tiles_with_and_without_autograd(run_keys, monkeypatch):
    """Classes cut into runs of tiles, gathered run by run (no autograd) or all at once (autograd)."""
    monkeypatch.setattr(tiled, "RUN_KEYS", run_keys)  # 1 tile per run, or 2 (3 x 48 key rows each)
    cfg = dict(shape=(21, 37), kernel_size=(5, 4), stride=(1, 2), dilation=(2, 3),
               is_causal=(False, True), rpb=True)
    ks, st, dil, causal = _window(cfg)
    q, k, v, rpb = _inputs(cfg, batch=3, dim=4)
    out, lse = ref.na2d(q, k, v, ks, st, dil, causal, 0.5, rpb, True)
    for bias in (rpb, None):
        with torch.no_grad():
            args = [_t(a, torch.float64) for a in (q, k, v, bias)]
            got = tiled.fused_forward(*args[:3], Window(ks, st, dil, causal), 0.5, args[3], tile=(4, 3))
        want = ref.na2d(q, k, v, ks, st, dil, causal, 0.5, bias)
        _close(got, want, 1e-12, f"no grad, rpb={bias is not None}")
    args = [_t(a, torch.float64, grad=True) for a in (q, k, v, rpb)]
    got = tiled.fused_forward(*args[:3], Window(ks, st, dil, causal), 0.5, args[3], tile=(4, 3))
    _close(got, out, 1e-12, "autograd")
    d_out = np.random.default_rng(3).standard_normal(out.shape)
    grads = torch.autograd.grad(got, args, torch.tensor(d_out))
    want = ref.na2d_backward(d_out, q, k, v, out, lse, ks, st, dil, causal, 0.5, rpb)
    for grad, name, ref_grad in zip(grads, ("dq", "dk", "dv", "drpb"), want, strict=True):
        _close(grad, ref_grad, 1e-10, name)


def test_memory_is_linear_in_tokens():
    """The tile tables (and so the logits) hold O(N * prod(k)) entries, not O(N^2)."""
    per_token = []
    for L in (28, 56, 112):
        window = Window((7, 7), (1, 1), (1, 1), (False, False))
        tile = tiled.choose_tile((L, L), window)
        t = tiled.tiles(tiled.Layout((L, L), window, tile, torch.device("cpu")))
        per_token.append(t.mask.numel() / L**2)
    # (T + k - 1)^2 keys per query for T = 8, k = 7, times the padding of L to whole tiles
    assert max(per_token) <= 6 * 49, per_token
    assert max(per_token) / min(per_token) < 1.5, per_token  # flat, not growing with N


# ----------------------------------------------------------------------------------------
# qk / av (neighborhood layout) and gradcheck
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS[:10], ids=[_ids(c) for c in CONFIGS[:10]])
def test_qk_av_match_numpy_and_the_gather_form(cfg):
    """Tiled qk/av vs NumPy (values, -inf slots) and vs the plain torch gather (gradients too)."""
    na_dim = len(cfg["shape"])
    ks, st, dil, causal = _window(cfg)
    q, k, v, rpb = _inputs(cfg)
    want_s = _fn(ref, na_dim, "_qk")(q, k, ks, st, dil, causal, None, rpb)
    tq, tk, tv, trpb = (_t(a, torch.float64, grad=True) for a in (q, k, v, rpb))
    s = _fn(nat, na_dim, "_qk")(tq, tk, ks, st, dil, causal, None, trpb)
    assert torch.equal(torch.isinf(s), torch.as_tensor(np.isinf(want_s)))  # same masked slots
    finite = np.isfinite(want_s)
    np.testing.assert_allclose(s.detach().numpy()[finite], want_s[finite], rtol=1e-12, atol=1e-12)
    p = torch.softmax(s, dim=-1)
    out = _fn(nat, na_dim, "_av")(p, tv, ks, st, dil, causal)
    _close(out, _fn(ref, na_dim, "_av")(p.detach().numpy(), v, ks, st, dil, causal), 1e-12, "av")

    # The gather form (every neighbor copied out, as in the NumPy reference) must give the same
    # values and, through autograd, the same gradients.
    leaves = [x for x in (tq, tk, tv, trpb) if x is not None]
    d_out = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    grads = torch.autograd.grad((out * d_out).sum(), leaves)
    scale = q.shape[-1] ** -0.5
    window = Window(ks, st, dil, causal)
    s_g = torch_gather.qk(tq, tk, window, scale, trpb)
    out_g = torch_gather.av(torch.softmax(s_g, dim=-1), tv, window)
    torch.testing.assert_close(out_g, out, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, torch.autograd.grad((out_g * d_out).sum(), leaves), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


GRADCHECK = [  # small enough for a numerical Jacobian: stride, dilation, causal, even k, rpb
    dict(shape=(9,), kernel_size=(4,), stride=(2,), dilation=(2,), is_causal=(True,), rpb=True),
    dict(shape=(5, 7), kernel_size=(2, 3), stride=(1, 2), dilation=(2, 2), is_causal=(False, True), rpb=True),
    dict(shape=(3, 4, 4), kernel_size=(2, 2, 3), stride=(2, 1, 1), dilation=(1, 2, 1),
         is_causal=(True, False, False), rpb=True),
]


@pytest.mark.parametrize("cfg", GRADCHECK, ids=_ids)
def test_gradcheck_float64(cfg):
    na_dim = len(cfg["shape"])
    ks, st, dil, causal = _window(cfg)
    q, k, v, rpb = _inputs(cfg, batch=1, heads=1, dim=2)
    args = [_t(a, torch.float64, grad=True) for a in (q, k, v, rpb)]
    fn = lambda q, k, v, r: _fn(nat, na_dim)(q, k, v, ks, st, dil, causal, 0.7, r, backend="torch")
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)
    fn_lse = lambda q, k, v, r: _fn(nat, na_dim)(q, k, v, ks, st, dil, causal, 0.7, r, True)[1]
    assert torch.autograd.gradcheck(fn_lse, args, eps=1e-6, atol=1e-6)

    def unfused(q, k, v, r):  # qk -> softmax -> av, the path used when the weights are needed
        p = torch.softmax(_fn(nat, na_dim, "_qk")(q, k, ks, st, dil, causal, 0.7, r), dim=-1)
        return _fn(nat, na_dim, "_av")(p, v, ks, st, dil, causal)

    assert torch.autograd.gradcheck(unfused, args, eps=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------
# Other backends on CPU: flex (eager, forward) and NATTEN (its CPU subset, forward)
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cfg", [FIXED[1], FIXED[2]], ids=_ids)
def test_flex_backend_forward_matches_numpy(cfg, dtype):
    if nat.BACKENDS["flex"]._flex() is None:
        pytest.skip("this torch has no flex_attention")
    na_dim = len(cfg["shape"])
    ks, st, dil, causal = _window(cfg)
    q, k, v, rpb = _inputs(cfg, dim=16)
    out, lse = _fn(ref, na_dim)(q, k, v, ks, st, dil, causal, None, rpb, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, got_lse = _fn(nat, na_dim)(*(_t(a, dtype) for a in (q, k, v)), ks, st, dil, causal,
                                        None, None if rpb is None else _t(rpb, dtype), True, backend="flex")
    tol = TOL[dtype][0]
    _close(got, out, tol, "flex out")
    _close(got_lse, lse, tol, "flex lse")


NATTEN_CONFIGS = [
    dict(shape=(19,), kernel_size=(5,), stride=(2,), dilation=(3,), is_causal=(True,), rpb=False),
    dict(shape=(9, 13), kernel_size=(3, 4), stride=(1, 2), dilation=(2, 3), is_causal=(False, True),
         rpb=False),
    dict(shape=(4, 6, 7), kernel_size=(2, 3, 3), stride=(2, 1, 3), dilation=(2, 1, 2),
         is_causal=(True, False, False), rpb=False),
]


@pytest.mark.natten
@pytest.mark.parametrize("cfg", NATTEN_CONFIGS, ids=_ids)
def test_natten_backend_forward_matches_numpy(cfg):
    pytest.importorskip("natten")
    na_dim = len(cfg["shape"])
    ks, st, dil, causal = _window(cfg)
    q, k, v, _ = _inputs(cfg, dim=16, dtype=np.float32)
    out, lse = _fn(ref, na_dim)(*(a.astype(np.float64) for a in (q, k, v)), ks, st, dil, causal, None,
                                None, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, got_lse = _fn(nat, na_dim)(*(torch.tensor(a) for a in (q, k, v)), ks, st, dil, causal,
                                        None, None, True, backend="natten")
    _close(got, out, 1e-4, "natten out")
    _close(got_lse, lse, 1e-4, "natten lse")


# ----------------------------------------------------------------------------------------
# Backend selection and bad input
# ----------------------------------------------------------------------------------------

def _qkv(shape=(2, 10, 10, 2, 8), dtype=torch.float32, grad=False):
    return [torch.randn(shape, dtype=dtype, requires_grad=grad) for _ in range(3)]


def test_auto_picks_torch_on_cpu_and_explains_the_rest():
    q, k, v = _qkv()
    rpb = torch.randn(2, 5, 5)
    choice = nat.explain_backend(q, k, v, 3, rpb=rpb)
    assert choice.chosen == "torch"
    assert "rpb" in choice.reasons["natten"]  # NATTEN has no RPB
    assert "flex" in choice.reasons and "torch" in str(choice)
    choice = nat.explain_backend(*_qkv(grad=True), 3)
    assert choice.chosen == "torch" and "forward-only" in choice.reasons["flex"]


def test_explicit_backend_that_cannot_serve_says_which_would():
    q, k, v = _qkv()
    rpb = torch.randn(2, 5, 5)
    with pytest.raises(ValueError, match=r"backend='natten'.*rpb.*backend='(torch|flex)' would work"):
        nat.na2d(q, k, v, 3, rpb=rpb, backend="natten")
    with pytest.raises(ValueError, match=r"dtype is torch.float64; NATTEN takes float32.*'torch' would work"):
        nat.na2d(*_qkv(dtype=torch.float64), 3, backend="natten")
    with pytest.raises(ValueError, match=r"forward-only.*backend='torch' would work"):
        nat.na2d(*_qkv(grad=True), 3, backend="flex")
    with pytest.raises(ValueError, match=r"backend='cuda' is not one of"):
        nat.na2d(q, k, v, 3, backend="cuda")
    with pytest.raises(ValueError, match=r"no unfused qk/av.*backend='torch'"):
        nat.na2d_qk(q, k, 3, backend="natten")


@pytest.mark.parametrize(
    "make, error, pattern",
    [
        (lambda q, k, v: (q, k.double(), v, 3, {}), ValueError, r"key has dtype torch.float64"),
        (lambda q, k, v: (q.int(), k.int(), v.int(), 3, {}), (TypeError, ValueError), r"floating"),
        (lambda q, k, v: (q, k, v, 11, {}), ValueError, r"kernel_size \* dilation = 11 \* 1"),
        (lambda q, k, v: (q, k, v, 3, {"dilation": 4}), ValueError, r"kernel_size \* dilation = 3 \* 4"),
        (lambda q, k, v: (q, k, v, 3, {"rpb": torch.zeros(2, 3, 3)}), ValueError,
         r"rpb has shape \(2, 3, 3\)"),
        (lambda q, k, v: (q, k, v, 3, {"rpb": torch.zeros(2, 5, 5).double()}), ValueError, r"rpb has dtype"),
        (lambda q, k, v: (q, k.to("meta"), v, 3, {}), ValueError, r"key is on meta"),
        (lambda q, k, v: (q.numpy(), k, v, 3, {}), TypeError, r"query must be a torch.Tensor"),
        (lambda q, k, v: (q[0], k[0], v[0], 3, {}), ValueError, r"4 dims"),
        (lambda q, k, v: (q, k, v, 3, {"stride": 4}), ValueError, r"stride=4"),
    ],
    ids=["dtype-mix", "int-dtype", "kernel-too-large", "dilation-too-large", "rpb-shape", "rpb-dtype",
         "device-mix", "numpy-input", "wrong-rank", "stride-gt-kernel"],
)
def test_bad_input_raises_before_work(make, error, pattern):
    q, k, v = _qkv()
    *args, kwargs = make(q, k, v)
    with pytest.raises(error, match=pattern):
        nat.na2d(*args, **kwargs)


def test_av_rejects_wrong_probs_shape():
    q, k, v = _qkv()
    pattern = r"(probs|attention) has shape \(2, 10, 10, 2, 8\).*prod\(kernel_size\) = 9"
    with pytest.raises(ValueError, match=pattern):
        nat.na2d_av(torch.zeros(2, 10, 10, 2, 8), v, 3)
