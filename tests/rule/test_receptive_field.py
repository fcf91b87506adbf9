"""Exact receptive fields against brute force: set propagation over the dense mask, and a
real numeric stack (NumPy NA layers with DiNAT's zero padding) probed token by token."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dinat_ref.neighborhood import dense_mask
from dinat_ref.numpy import na1d
from dinat_ref.receptive_field import (
    analytic_extent,
    layer_dependency,
    preset_stage_rfs,
    preset_table,
    receptive_field,
    receptive_fields_1d,
    rf_stats,
    stage_lengths,
)


def bfs_receptive_field(shape, kernel_size, dilations, stride=1, is_causal=False):
    """Brute force: walk back from each output through the layers, as sets of flat cells.

    Output ``q`` of layer ``l`` reads the layer's input at its neighbors (dense_mask row)
    and at itself (the residual). No padding: every layer must fit the grid.
    """
    masks = [dense_mask(shape, kernel_size, stride, d, is_causal) for d in dilations]
    N = masks[0].shape[0]
    rf = np.zeros((N, N), dtype=bool)
    for q in range(N):
        frontier = {q}
        for m in reversed(masks):  # last layer first
            frontier = {int(j) for t in frontier for j in np.nonzero(m[t])[0]} | frontier
        rf[q, sorted(frontier)] = True
    return rf


# (length, kernel_size, dilations, stride, causal): all fit without padding
CASES_1D = [
    (12, 3, [1, 1, 1], 1, False),
    (13, 3, [1, 3, 1], 1, False),
    (17, 4, [2, 1], 1, False),  # even kernel
    (16, 5, [1, 3], 2, False),  # strided
    (15, 3, [1, 2, 1], 1, True),  # causal
    (11, 2, [5, 1], 1, False),  # k * d = 10 of 11
]


@pytest.mark.parametrize("L,k,dils,s,causal", CASES_1D)
def test_1d_matches_set_propagation(L, k, dils, s, causal):
    exact = receptive_fields_1d(L, k, dils, stride=s, is_causal=causal)  # (layers, L, L)
    for n in range(1, len(dils) + 1):
        np.testing.assert_array_equal(exact[n - 1], bfs_receptive_field((L,), k, dils[:n], s, causal))


@pytest.mark.parametrize(
    "shape,k,dils,causal",
    [
        ((7, 9), 3, [1, 2], False),
        ((6, 10), (3, 4), [(1, 2), (2, 1)], False),
        ((8, 7), 3, [1, (2, 2), 1], (True, False)),
        ((4, 5, 4), 2, [1, 2], False),
    ],
)
def test_nd_kronecker_matches_set_propagation(shape, k, dils, causal):
    np.testing.assert_array_equal(
        receptive_field(shape, k, dils, is_causal=causal), bfs_receptive_field(shape, k, dils, 1, causal)
    )


def numeric_dependence(L, k, dils, seed=0):
    """Which inputs change which outputs of a real stack of NA layers, found by perturbation.

    Each layer is DiNAT's: zero-pad the (already normalized) tokens at the end up to
    k * d if the axis is shorter, project to q/k/v (with biases, so padded tokens are
    not zero keys), run NumPy na1d on the padded axis, crop, add the residual.
    """
    rng = np.random.default_rng(seed)
    dim = 4
    # Small weights keep the softmax soft, so every path's effect is far above round-off.
    params = [(0.3 * rng.standard_normal((3, dim, dim)), 0.3 * rng.standard_normal((3, dim))) for _ in dils]

    def forward(x):  # x (L, dim)
        for (w, b), d in zip(params, dils, strict=True):
            Lp = max(L, k * d)
            xp = np.concatenate([x, np.zeros((Lp - L, dim))])  # (Lp, dim) zero tokens at the end
            q, kk, v = (xp @ w[i] + b[i] for i in range(3))  # (Lp, dim) each
            out = na1d(q[None, :, None], kk[None, :, None], v[None, :, None], kernel_size=k, dilation=d)
            x = x + out[0, :L, 0]  # (L, dim) crop the padding, residual
        return x

    x0 = rng.standard_normal((L, dim))
    y0 = forward(x0)
    dep = np.zeros((L, L), dtype=bool)
    for j in range(L):
        x = x0.copy()
        x[j] += rng.standard_normal(dim)
        dep[:, j] = np.abs(forward(x) - y0).max(axis=1) > 1e-12
    return dep


@pytest.mark.parametrize(
    "L,k,dils",
    [
        (11, 3, [1, 2, 1]),  # fits
        (10, 3, [1, 4, 1]),  # 3 * 4 = 12 > 10: padded
        (5, 7, [1, 1]),  # shorter than one plain window (DiNAT's 7x7 last stage at small inputs)
        (20, 7, [1, 8, 1]),  # DiNAT's first stage at a small input: padded to 56
    ],
)
def test_padding_matches_a_real_padded_stack(L, k, dils):
    np.testing.assert_array_equal(receptive_fields_1d(L, k, dils)[-1], numeric_dependence(L, k, dils))


def test_padded_tokens_change_windows_not_just_cut_them():
    # L=10, k=3, d=4, padded to 12: group 0 holds real tokens 0, 4, 8 (and no padding),
    # group 2 holds real 2, 6 and the padded 10. Token 2 sees 2 and 6 (and the zero token 10).
    m = layer_dependency(10, 3, dilation=4)
    assert np.nonzero(m[2])[0].tolist() == [2, 6]
    assert np.nonzero(m[0])[0].tolist() == [0, 4, 8]
    with pytest.raises(ValueError, match="kernel_size \\* dilation"):
        layer_dependency(10, 3, dilation=4, pad_to_window=False)


def test_paper_numbers():
    # DiNAT paper: three 7x7 NA layers see 19 tokens per axis; NA, DiNA (d=8), NA see all 56.
    assert receptive_fields_1d(56, 7, [1, 1, 1])[-1, 28].sum() == 3 * (7 - 1) + 1 == 19
    assert receptive_fields_1d(56, 7, [1, 8, 1])[-1].all()
    assert stage_lengths(224) == [56, 28, 14, 7]


def _interior(L, k, dils, causal):
    """Queries whose whole chain of windows stays clear of both borders."""
    total = int(sum(dils))
    left = (k - 1) * total if causal else (k // 2) * total
    right = 0 if causal else (k - 1 - k // 2) * total
    return [q for q in range(L) if q - left >= 0 and q + right <= L - 1]


@pytest.mark.parametrize("causal", [False, True])
def test_analytic_formula_away_from_borders(causal):
    checked = 0
    for L, k in itertools.product([20, 31, 40], [2, 3, 4, 5, 7]):
        for dils in itertools.product([1, 2, 3], repeat=3):
            if k * max(dils) > L:
                continue
            rf = receptive_fields_1d(L, k, list(dils), is_causal=causal)[-1]
            stats = rf_stats(rf)
            formula = analytic_extent(k, dils)
            for q in _interior(L, k, dils, causal):
                assert stats.extent[q] == formula, (L, k, dils, q)
                # No holes when, smallest dilation first, each d_i <= 1 + (k - 1) * (sum of the earlier).
                ds = sorted(dils)
                if all(d <= 1 + (k - 1) * sum(ds[:i]) for i, d in enumerate(ds) if i > 0) and ds[0] == 1:
                    assert stats.count[q] == formula
                checked += 1
            # Near the borders windows shift inward: the field is never larger than the formula says.
            assert (stats.count <= min(L, formula)).all() and (stats.extent <= min(L, formula)).all()
    assert checked > 500


def test_na_formula_and_border_shrink():
    k = 5
    for layers in range(1, 5):
        rf = receptive_fields_1d(40, k, [1] * layers)[-1]
        assert rf[20].sum() == layers * (k - 1) + 1
        # The corner query: its own window is [0, k - 1] (shifted, reach k - 1); every earlier
        # layer adds (k - 1) / 2 on the right only, so it sees 1 + (k - 1) (layers + 1) / 2.
        assert np.nonzero(rf[0])[0].tolist() == list(range(1 + (k - 1) * (layers + 1) // 2))


def test_presets_table():
    rows = preset_stage_rfs("mini")
    assert [r.length for r in rows] == [56, 28, 14, 7]
    assert all(r.full_fraction == 1.0 for r in rows)  # DiNAT: every stage ends seeing its whole axis
    assert rows[0].na_center == 19  # an NA-only first stage sees 3 * 6 + 1
    # Small input: every stage pads, and the real-token field is still the whole axis.
    small = preset_stage_rfs("mini", image_size=128)
    assert [r.padded for r in small] == [56, 28, 14, 7] and [r.length for r in small] == [32, 16, 8, 4]
    from dinat_ref.config import PRESETS

    assert set(PRESETS) <= set(preset_table().split())  # every preset has a row
    big = preset_stage_rfs("large-384")  # trained at 384: 96, 48, 24, 12 tokens, no padding
    assert [r.length for r in big] == [96, 48, 24, 12] and all(r.padded == r.length for r in big)
    with pytest.raises(ValueError, match="preset="):
        preset_stage_rfs("huge")
