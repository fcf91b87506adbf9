"""Attention statistics against answers worked out by hand.

Distances and entropies are checked on attention whose answer is known without the code:
uniform attention (entropy ``log K``; distances from the windows written out by hand),
one-hot attention (entropy 0; the distance to the chosen key). Rollout is checked against
the same product built densely from :func:`dinat_ref.neighborhood.dense_mask`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dinat_ref.analysis import (
    attention_distance,
    attention_entropy,
    attention_rollout,
    mean_attention_distance,
    mean_attention_entropy,
)
from dinat_ref.neighborhood import dense_mask

# 1-D, L=5, k=3: the windows are [0,1,2], [0,1,2], [1,2,3], [2,3,4], [2,3,4] (shifted inward).
SELF_SLOT = [0, 1, 1, 1, 2]  # where each query sits in its own window


def _one_hot(slots, heads=1):
    attn = np.zeros((1, len(slots), heads, 3))  # (B, L, heads, K)
    attn[0, np.arange(len(slots)), :, slots] = 1.0
    return attn


def test_uniform_attention_1d_distance_and_entropy():
    attn = np.full((2, 5, 3, 3), 1 / 3)  # (B, L, heads, K)
    d = attention_distance(attn, 3)
    # q0: (0+1+2)/3 = 1; interior: (1+0+1)/3 = 2/3; q4: 1.
    np.testing.assert_allclose(d[0, :, 0], [1, 2 / 3, 2 / 3, 2 / 3, 1], rtol=1e-12)
    np.testing.assert_allclose(mean_attention_distance(attn, 3), [0.8] * 3, rtol=1e-12)
    np.testing.assert_allclose(mean_attention_distance(attn, 3, cell_size=4.0), [3.2] * 3, rtol=1e-12)
    np.testing.assert_allclose(attention_entropy(attn, 3), math.log(3), rtol=1e-12)
    np.testing.assert_allclose(mean_attention_entropy(attn, 3, normalize=True), 1.0, rtol=1e-12)


def test_one_hot_attention_1d():
    on_self = _one_hot(SELF_SLOT)
    np.testing.assert_array_equal(attention_distance(on_self, 3)[0, :, 0], 0.0)
    np.testing.assert_array_equal(attention_entropy(on_self, 3), 0.0)
    first = _one_hot([0] * 5)  # every query looks at the first key of its window
    np.testing.assert_allclose(attention_distance(first, 3)[0, :, 0], [0, 1, 1, 1, 2])
    # Dilation 2 on 7 tokens: group 0 = {0,2,4,6}; query 6's window is [2,4,6] -> first key at 4 cells.
    d = attention_distance(np.eye(3)[[0] * 7][None, :, None], 3, dilation=2)
    assert d[0, 6, 0] == 4.0 and d[0, 0, 0] == 0.0


def test_uniform_attention_2d_dilated_middle_query():
    # 6x6, k=3, d=2: query (2, 2) reads rows {0,2,4} x cols {0,2,4}: 4 keys at 2, 4 at 2*sqrt(2).
    attn = np.full((1, 6, 6, 2, 9), 1 / 9)
    d = attention_distance(attn, 3, dilation=2)
    assert d.shape == (1, 6, 6, 2)
    np.testing.assert_allclose(d[0, 2, 2], (4 * 2 + 4 * 2 * math.sqrt(2)) / 9, rtol=1e-12)
    # Corner (0, 0) reads rows/cols {0,2,4}: offsets 0, 2, 4 on each axis.
    offs = [0, 2, 4]
    want = np.mean([math.hypot(a, b) for a in offs for b in offs])
    np.testing.assert_allclose(d[0, 0, 0], want, rtol=1e-12)


def test_causal_entropy_counts_only_real_keys():
    # Causal 1-D, k=3: query 0 has one key, query 1 two, the rest three; uniform over them.
    attn = np.zeros((1, 6, 1, 3))
    for i, n in enumerate([1, 2, 3, 3, 3, 3]):
        attn[0, i, 0, :n] = 1 / n  # the valid slots come first in a causal window
    h = attention_entropy(attn, 3, is_causal=True)[0, :, 0]
    np.testing.assert_allclose(h, [0, math.log(2)] + [math.log(3)] * 4, rtol=1e-12)
    hn = attention_entropy(attn, 3, is_causal=True, normalize=True)[0, :, 0]
    np.testing.assert_allclose(hn, [0, 1, 1, 1, 1, 1], rtol=1e-12)


def test_torch_gives_the_numpy_numbers():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 7, 9, 3, 9))
    attn = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    t = torch.from_numpy(attn)
    for fn in (mean_attention_distance, mean_attention_entropy):
        got = fn(t, 3, dilation=(2, 3))
        assert isinstance(got, torch.Tensor) and got.shape == (3,)
        np.testing.assert_allclose(got.numpy(), fn(attn, 3, dilation=(2, 3)), rtol=1e-12)
    ro = attention_rollout([t, t], 3, [1, (2, 3)], query=(3, 4))
    np.testing.assert_allclose(ro.numpy(), attention_rollout([attn, attn], 3, [1, (2, 3)], query=(3, 4)),
                               rtol=1e-12)


def _dense_uniform(shape, k, d):
    m = dense_mask(shape, k, dilation=d).astype(float)  # (N, N)
    return m / m.sum(1, keepdims=True)


def test_rollout_equals_the_dense_product():
    shape, k = (6, 7), 3
    uniform = np.full((1, *shape, 2, 9), 1 / 9)
    eye = np.eye(42)
    a1, a2 = _dense_uniform(shape, k, 1), _dense_uniform(shape, k, 2)
    want = (0.5 * eye + 0.5 * a2) @ (0.5 * eye + 0.5 * a1)  # layer 2 after layer 1
    got = attention_rollout([uniform, uniform], k, [1, 2])
    np.testing.assert_allclose(got[0], want, rtol=1e-12)
    np.testing.assert_allclose(got[0].sum(1), 1.0, rtol=1e-12)
    one = attention_rollout([uniform, uniform], k, [1, 2], query=(0, 6))
    np.testing.assert_allclose(one[0].ravel(), want[6], rtol=1e-12)
    np.testing.assert_allclose(attention_rollout([uniform], k, [1], residual=0.0)[0], a1, rtol=1e-12)


def test_rollout_of_attention_on_self_is_the_identity():
    attn = _one_hot(SELF_SLOT, heads=2)
    for fusion in ("mean", "max", "min"):
        np.testing.assert_allclose(attention_rollout([attn] * 3, 3, [1] * 3, head_fusion=fusion)[0],
                                   np.eye(5), atol=1e-15)


def test_bad_input_is_refused_with_the_rule():
    attn = np.full((1, 5, 1, 3), 1 / 3)
    with pytest.raises(ValueError, match="probabilities"):
        attention_distance(np.log(attn), 3)
    with pytest.raises(ValueError, match="slots"):
        attention_entropy(attn, 5)
    with pytest.raises(TypeError, match="NumPy array or a torch tensor"):
        attention_distance(attn.tolist(), 3)
    with pytest.raises(ValueError, match=r"\(B, \*spatial, heads, K\)"):
        attention_distance(attn[0, :, 0], 3)
    with pytest.raises(ValueError, match="one dilation per layer"):
        attention_rollout([attn, attn], 3, [1])
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout([attn], 3, [1], head_fusion="sum")
    with pytest.raises(ValueError, match="one grid"):
        attention_rollout([attn, np.full((1, 6, 1, 3), 1 / 3)], 3, [1, 1])


def test_model_statistics_match_the_scattered_maps():
    """The slot-table distance equals the distance read off the scattered grid maps."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from dinat_ref.analysis import model_attention_rollout, model_attention_statistics
    from dinat_ref.torch import digits as train_digits
    from dinat_ref.viz.attention_maps import model_attention

    model = train_digits.load_pretrained()
    _, _, x_test, _ = train_digits.load_digits_split()
    stats = model_attention_statistics(model, x_test[:3])
    assert [(s.stage, s.layer, s.dilation) for s in stats] == [(0, 0, 1), (0, 1, 3), (1, 0, 1), (1, 1, 2)]
    for s in stats:
        assert np.all(s.distance > 0) and np.all((s.normalized_entropy > 0) & (s.normalized_entropy <= 1))
    # One query, by the independent path: scatter onto the grid, weight the cell-centre distances.
    pixel = (21, 21)
    for lay in model_attention(model, x_test[:1], pixel, layers="all"):
        heads, h, w = lay.maps.shape
        rr, cc = np.mgrid[:h, :w]
        dist = np.hypot(rr - lay.query_cell[0], cc - lay.query_cell[1]) * lay.cell_px  # (h, w)
        by_grid = (lay.maps * dist).sum(axis=(1, 2))  # (heads,)
        from dinat_ref.analysis import model_attentions

        attn = model_attentions(model, x_test[:1])[[(0, 0), (0, 1), (1, 0), (1, 1)].index(
            (lay.stage, lay.layer))].double().numpy()
        per_query = attention_distance(attn, lay.kernel_size, lay.dilation, cell_size=lay.cell_px)
        np.testing.assert_allclose(per_query[0, lay.query_cell[0], lay.query_cell[1]], by_grid, rtol=1e-6)
    ro = model_attention_rollout(model, x_test[:1], 0, (5, 5))
    assert ro.shape == (12, 12) and abs(ro.sum() - 1) < 1e-9 and ro[5, 5] == ro.max()
    with pytest.raises(ValueError, match="holds 3 images"):
        model_attention_rollout(model, x_test[:3], 0, (5, 5))
    with pytest.raises(TypeError, match="torch"):
        model_attention_statistics(model, x_test[:1].numpy())
