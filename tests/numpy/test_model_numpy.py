"""NumPy layers against independent implementations (math.erf, torch.nn.functional), and the
NumPy model's own checks (input validation, padding path, attention map layout)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dinat_ref import DinatConfig
from dinat_ref.hf.weights import random_state_dict
from dinat_ref.numpy import DinatForImageClassification, DinatModel
from dinat_ref.numpy.layers import conv2d, erf, erfc, gelu, layer_norm, linear, softmax


def test_erf_and_erfc_match_math_to_float64_precision():
    x = np.concatenate([np.linspace(-7, 7, 20001), np.linspace(-30, 30, 2001),
                        np.random.default_rng(0).normal(0, 2, 5000), [0.0, 0.46875, -0.46875, 4.0, -4.0]])
    ref_erf = np.array([math.erf(v) for v in x])
    ref_erfc = np.array([math.erfc(v) for v in x])
    np.testing.assert_allclose(erf(x), ref_erf, rtol=0, atol=4e-16)
    keep = ref_erfc > 1e-300  # beyond x ~ 26.5 erfc underflows in float64
    np.testing.assert_allclose(erfc(x)[keep], ref_erfc[keep], rtol=5e-15, atol=0)
    assert erf(np.float32(0.5)).dtype == np.float32


def test_gelu_is_exact_erf_gelu():
    x = np.concatenate([np.linspace(-12, 12, 100001), [0.0, -40.0, 40.0]])
    ref = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x])  # x * Phi(x)
    np.testing.assert_allclose(gelu(x), ref, rtol=1e-14, atol=1e-15)
    # tanh approximation differs by ~1e-3: make sure we are not it
    tanh_gelu = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert np.abs(gelu(x) - tanh_gelu).max() > 1e-4
    x32 = x.astype(np.float32)
    assert gelu(x32).dtype == np.float32
    np.testing.assert_allclose(gelu(x32), ref, rtol=2e-6, atol=2e-6)


def test_conv_linear_layer_norm_softmax_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for (h, w, stride, pad) in [(9, 7, 2, 1), (8, 8, 1, 1), (5, 6, 2, 0)]:
        x = rng.normal(size=(2, h, w, 3))
        wt, b = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
        ref = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(wt), torch.from_numpy(b),
                       stride=stride, padding=pad).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(conv2d(x, wt, b, stride, pad), ref, rtol=1e-12, atol=1e-12)
    x, wt, b = rng.normal(size=(2, 3, 5, 8)), rng.normal(size=(6, 8)), rng.normal(size=6)
    np.testing.assert_allclose(linear(x, wt, b), F.linear(*map(torch.from_numpy, (x, wt, b))).numpy(),
                               rtol=1e-12, atol=1e-12)
    g, beta = rng.normal(size=8), rng.normal(size=8)
    ref = F.layer_norm(torch.from_numpy(x), (8,), torch.from_numpy(g), torch.from_numpy(beta), 1e-5).numpy()
    np.testing.assert_allclose(layer_norm(x, g, beta, 1e-5), ref, rtol=1e-12, atol=1e-12)
    s = rng.normal(size=(3, 7)) * 30
    s[0, 2] = -np.inf
    np.testing.assert_allclose(softmax(s), torch.from_numpy(s).softmax(-1).numpy(), rtol=1e-12, atol=1e-15)


CFG = DinatConfig(embed_dim=16, depths=[1, 2], num_heads=[2, 4], kernel_size=3, dilations=[[2], [1, 3]],
                  num_labels=4, layer_scale_init_value=1.0)


def test_padding_path_and_attention_layout(rng):
    sd = random_state_dict(CFG, seed=0, dtype=np.float64)
    model = DinatForImageClassification(CFG, sd, dtype=np.float64)
    x = rng.normal(size=(1, 3, 12, 20))  # tokens 3x5, then 2x3: smaller than 3*2, 3*1, 3*3 windows
    out = model(x, output_attentions=True, output_hidden_states=True)
    assert [a.shape for a in out.attentions] == [(1, 6, 6, 2, 9), (1, 3, 3, 4, 9), (1, 9, 9, 4, 9)]
    for a in out.attentions:
        np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-12)
    assert [h.shape for h in out.hidden_states] == [(1, 3, 5, 16), (1, 2, 3, 32), (1, 2, 3, 32)]
    assert [h.shape for h in out.reshaped_hidden_states] == [(1, 16, 3, 5), (1, 32, 2, 3), (1, 32, 2, 3)]
    assert out.logits.shape == (1, 4) and out.hidden_states[-1].shape == (1, 2, 3, 32)
    # the fused path (no attention maps) computes the same
    np.testing.assert_allclose(model(x).logits, out.logits, rtol=1e-12, atol=1e-12)


def test_losses_and_bad_inputs(rng):
    sd = random_state_dict(CFG, seed=1)
    model = DinatForImageClassification(CFG, sd)
    x = rng.normal(size=(3, 3, 16, 16)).astype(np.float32)
    out = model(x, labels=np.array([0, 3, 1]))
    z = out.logits - out.logits.max(-1, keepdims=True)
    ref = -np.mean((z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(3), [0, 3, 1]])
    assert out.loss == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ValueError, match=r"pixel_values has shape \(3, 16, 16\)"):
        model(x[0])
    with pytest.raises(ValueError, match="num_channels=3"):
        model(x[:, :2])
    with pytest.raises(ValueError, match="float dtype"):
        DinatModel(CFG, random_state_dict(CFG, "model"), dtype=np.int32)
