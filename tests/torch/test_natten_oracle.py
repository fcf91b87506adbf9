"""NATTEN itself as the oracle: ``natten.na1d/na2d/na3d`` against the NumPy reference.

Runs where NATTEN is importable (CI installs it) and skips with the reason otherwise.
On CPU only NATTEN's flex backend runs: forward only, fp32, head_dim a power of two,
no RPB. Every new configuration costs NATTEN a fresh flex-attention trace (a few
tenths of a second), so the grids are small and drawn from a few fixed shapes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed; the NATTEN oracle needs it")
natten = pytest.importorskip(
    "natten", reason="NATTEN is not installed (pip install --no-build-isolation natten==0.21.7 after torch)"
)

from dinat_ref.numpy import na1d, na2d, na3d  # noqa: E402

pytestmark = [pytest.mark.natten, pytest.mark.filterwarnings("ignore")]

REFERENCE = {1: na1d, 2: na2d, 3: na3d}
SHAPES = {1: [(16,), (23,)], 2: [(8, 9), (10, 7)], 3: [(4, 5, 6), (6, 4, 5)]}
N_CONFIGS = 102


def sweep(n: int, seed: int = 2022) -> list[tuple]:
    """A seeded mix of 1D/2D/3D configurations: odd/even k, stride, dilation, per-axis causal."""
    rng = np.random.default_rng(seed)
    configs = []
    for i in range(n):
        ndim = 1 + i % 3
        shape = SHAPES[ndim][int(rng.integers(len(SHAPES[ndim])))]
        ks, st, dil = [], [], []
        for L in shape:
            d = int(rng.integers(1, 4)) if rng.random() < 0.5 else 1
            d = min(d, L // 2)
            k = int(rng.integers(2, min(7, L // d) + 1))
            ks.append(k)
            dil.append(d)
            st.append(int(rng.integers(1, k + 1)) if rng.random() < 0.4 else 1)
        causal = tuple(bool(rng.random() < 0.25) for _ in shape)
        head_dim = int(rng.choice([8, 16]))
        configs.append((shape, tuple(ks), tuple(st), tuple(dil), causal, head_dim))
    return configs


CONFIGS = sweep(N_CONFIGS)


def test_sweep_is_diverse():
    """The sweep covers what it claims to (so a shrunken sweep cannot pass silently)."""
    assert len(CONFIGS) >= 100
    assert {len(c[0]) for c in CONFIGS} == {1, 2, 3}
    assert any(max(c[2]) > 1 for c in CONFIGS)  # stride
    assert any(max(c[3]) > 1 for c in CONFIGS)  # dilation
    assert any(any(c[4]) for c in CONFIGS)  # causal
    assert any(any(k % 2 == 0 for k in c[1]) for c in CONFIGS)  # even kernels
    assert any(any(L % d for L, d in zip(c[0], c[3], strict=True)) for c in CONFIGS)  # L % d != 0


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_natten_matches_reference(cfg):
    shape, ks, stride, dil, causal, head_dim = cfg
    nd = len(shape)
    gen = torch.Generator().manual_seed(hash(cfg) % 2**31)
    q, k, v = (torch.randn(1, *shape, 2, head_dim, generator=gen) for _ in range(3))  # fp32
    fn = {1: natten.na1d, 2: natten.na2d, 3: natten.na3d}[nd]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = fn(q, k, v, kernel_size=ks, stride=stride, dilation=dil, is_causal=causal)
    ref = REFERENCE[nd](*(x.double().numpy() for x in (q, k, v)), ks, stride, dil, causal)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-5)
