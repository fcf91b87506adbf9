"""The neighborhood rule, checked two ways that do not trust the code under test.

1. Hand-checked cases: every expected index list below was worked out on paper from
   the rule (written out in the comment above each case), not copied from a run.
2. Properties (hypothesis) that any correct rule must satisfy, stated without the
   rule's formulas: window sizes, dilation groups, the query inside its window,
   stride groups sharing one window, causality, RPB ranges, and agreement between
   the independent views (``neighbor_indices``, ``dense_mask``, ``neighbors_of``,
   ``rpb_indices``, ``axis_windows``).
"""

from __future__ import annotations

from math import prod

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dinat_ref.neighborhood import (
    axis_windows,
    dense_mask,
    dilation_groups,
    neighbor_indices,
    neighbors_of,
    rpb_indices,
)

# ----------------------------------------------------------------------------------------
# Hand-checked 1-D cases: (L, k, s, d, causal, query) -> keys
# ----------------------------------------------------------------------------------------

HAND_1D = [
    # L=10, k=3, d=2. Query 8: group 0 = {0,2,4,6,8}, i'=4 is its last member, so the
    # window shifts left to members 2..4 -> keys 4, 6, 8. (A naive clamp of
    # i - (k//2)*d = 6 would give 6, 8, 10: 10 is off the axis.)
    ((10, 3, 1, 2, False), 8, [4, 6, 8]),
    # Query 1: group 1 = {1,3,5,7,9}, i'=0 is its first member -> members 0..2 -> 1, 3, 5.
    # (A naive clamp of 1 - 2 = -1 to 0 would start at key 0, which is in group 0.)
    ((10, 3, 1, 2, False), 1, [1, 3, 5]),
    # Query 9: group 1, i'=4, the last of 5 members -> members 2..4 -> 5, 7, 9.
    ((10, 3, 1, 2, False), 9, [5, 7, 9]),
    # Query 4: group 0, i'=2, centered -> members 1..3 -> 2, 4, 6.
    ((10, 3, 1, 2, False), 4, [2, 4, 6]),
    # L=9 is not divisible by d=2: group 0 = {0,2,4,6,8} (5), group 1 = {1,3,5,7} (4).
    # Query 7: group 1, i'=3 is the last member -> members 1..3 -> 3, 5, 7.
    ((9, 3, 1, 2, False), 7, [3, 5, 7]),
    # Query 8: group 0, i'=4 last -> members 2..4 -> 4, 6, 8.
    ((9, 3, 1, 2, False), 8, [4, 6, 8]),
    # L=7, k=2, d=3: groups {0,3,6}, {1,4}, {2,5}. Even k=2: one to the left, none right.
    # Query 6: group 0, i'=2 -> members 1..2 -> 3, 6.
    ((7, 2, 1, 3, False), 6, [3, 6]),
    # Query 3: group 0, i'=1 -> members 0..1 -> 0, 3.
    ((7, 2, 1, 3, False), 3, [0, 3]),
    # Query 4: group 1 has 2 members, so its one window is members 0..1 -> 1, 4.
    ((7, 2, 1, 3, False), 4, [1, 4]),
    # Query 0: first member of group 0 -> 0, 3.
    ((7, 2, 1, 3, False), 0, [0, 3]),
    # Even k=4 on L=10, no dilation: 2 to the left, 1 to the right.
    ((10, 4, 1, 1, False), 5, [3, 4, 5, 6]),
    ((10, 4, 1, 1, False), 3, [1, 2, 3, 4]),
    ((10, 4, 1, 1, False), 2, [0, 1, 2, 3]),  # 2 - 2 = 0 still fits
    ((10, 4, 1, 1, False), 0, [0, 1, 2, 3]),  # shifted right at the left border
    ((10, 4, 1, 1, False), 8, [6, 7, 8, 9]),  # 8 - 2 = 6, ends at 9: fits exactly
    ((10, 4, 1, 1, False), 9, [6, 7, 8, 9]),  # shifted left at the right border
    # Stride 2 (L=10, k=3): stride groups {0,1}, {2,3}, ...; leader = first + s//2 = first + 1.
    ((10, 3, 2, 1, False), 4, [4, 5, 6]),  # group {4,5}, leader 5 -> 4..6
    ((10, 3, 2, 1, False), 5, [4, 5, 6]),
    ((10, 3, 2, 1, False), 0, [0, 1, 2]),  # leader 1 -> 0..2
    ((10, 3, 2, 1, False), 8, [7, 8, 9]),  # leader 9 -> 8..10 shifts left to 7..9
    # Stride 3 (L=10, k=3): groups {0,1,2}, {3,4,5}, {6,7,8}, {9}; leaders 1, 4, 7, min(10, 9)=9.
    ((10, 3, 3, 1, False), 2, [0, 1, 2]),
    ((10, 3, 3, 1, False), 3, [3, 4, 5]),
    ((10, 3, 3, 1, False), 8, [6, 7, 8]),
    ((10, 3, 3, 1, False), 9, [7, 8, 9]),
    # Stride 2 with dilation 2 on L=12: group 0 = {0,2,...,10} (6 members).
    # Query 10 (i'=5) and query 8 (i'=4) share stride group {4,5}, leader i'=5 -> members 3..5.
    ((12, 3, 2, 2, False), 10, [6, 8, 10]),
    ((12, 3, 2, 2, False), 8, [6, 8, 10]),
    # Queries 4 (i'=2) and 6 (i'=3): stride group {2,3}, leader 3 -> members 2..4.
    ((12, 3, 2, 2, False), 4, [4, 6, 8]),
    ((12, 3, 2, 2, False), 6, [4, 6, 8]),
    # Causal, k=3: the query and up to k-1 keys before it.
    ((10, 3, 1, 1, True), 0, [0]),
    ((10, 3, 1, 1, True), 1, [0, 1]),
    ((10, 3, 1, 1, True), 5, [3, 4, 5]),
    # Causal with d=2 on L=10: query 5 is group 1, i'=2 -> members 0..2 -> 1, 3, 5.
    ((10, 3, 1, 2, True), 5, [1, 3, 5]),
    ((10, 3, 1, 2, True), 2, [0, 2]),
    ((10, 3, 1, 2, True), 9, [5, 7, 9]),
    # Causal, stride 2: leader = last of the stride group; start = leader - k + 1; stop at the query.
    ((10, 3, 2, 1, True), 4, [3, 4]),  # group {4,5}: start 5-2=3, query 4 stops at 4
    ((10, 3, 2, 1, True), 5, [3, 4, 5]),
    ((10, 3, 2, 1, True), 0, [0]),  # group {0,1}: start max(1-2, 0) = 0
    ((10, 3, 2, 1, True), 1, [0, 1]),
    # Causal, stride 3 on L=10: group {6,7,8} starts at 8-2=6; group {9} has leader min(11, 9)=9.
    ((10, 3, 3, 1, True), 6, [6]),
    ((10, 3, 3, 1, True), 7, [6, 7]),
    ((10, 3, 3, 1, True), 9, [7, 8, 9]),
    # Causal, even k=4 on L=8.
    ((8, 4, 1, 1, True), 6, [3, 4, 5, 6]),
    ((8, 4, 1, 1, True), 2, [0, 1, 2]),
]


@pytest.mark.parametrize("config, query, expected", HAND_1D)
def test_hand_checked_1d(config, query, expected):
    L, k, s, d, causal = config
    assert neighbors_of(query, L, k, s, d, causal) == [(j,) for j in expected]
    w = axis_windows(L, k, s, d, causal)
    assert w.keys[query][w.valid[query]].tolist() == expected
    assert w.start[query] == expected[0]
    assert w.count[query] == len(expected)
    assert w.group[query] == query % d
    keys, valid = neighbor_indices(L, k, s, d, causal)
    assert keys[query][valid[query]].tolist() == expected
    assert np.flatnonzero(dense_mask(L, k, s, d, causal)[query]).tolist() == expected


# RPB index (k - 1) + (j - i) / d, worked out from the hand-checked keys above.
HAND_RPB = [
    ((10, 3, 1, 2, False), 8, [0, 1, 2]),  # keys 4, 6, 8: (j - 8) / 2 = -2, -1, 0
    ((10, 3, 1, 2, False), 1, [2, 3, 4]),  # keys 1, 3, 5: 0, 1, 2
    ((10, 3, 1, 2, False), 4, [1, 2, 3]),  # keys 2, 4, 6: centered
    ((10, 4, 1, 1, False), 9, [0, 1, 2, 3]),  # keys 6..9: -3..0
    ((10, 4, 1, 1, False), 0, [3, 4, 5, 6]),  # keys 0..3: 0..3, the top of [0, 2k-2]
    ((10, 3, 2, 1, False), 4, [2, 3, 4]),  # keys 4, 5, 6 seen from 4
    ((10, 3, 2, 1, False), 5, [1, 2, 3]),  # the same keys seen from 5
    ((10, 3, 1, 1, True), 5, [0, 1, 2]),  # keys 3, 4, 5
    ((10, 3, 1, 1, True), 1, [1, 2]),  # keys 0, 1 (the third slot is masked)
]


@pytest.mark.parametrize("config, query, expected", HAND_RPB)
def test_hand_checked_rpb_index(config, query, expected):
    w = axis_windows(*config)
    assert w.rpb_index[query][w.valid[query]].tolist() == expected
    idx = rpb_indices(*config)  # (N, K, 1)
    _, valid = neighbor_indices(*config)
    assert idx[query, valid[query], 0].tolist() == expected


def test_causal_masked_slots_stay_in_bounds():
    # L=10, k=3 causal: query 0 fills slot 0 only, query 1 slots 0-1, query 2 all three.
    keys, valid = neighbor_indices(10, 3, is_causal=True)
    assert valid[:3].tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert keys.min() >= 0 and keys.max() <= 9
    assert (valid[3:]).all()


def test_corner_of_non_square_grid_has_nine_neighbors():
    # 8x5 grid, k=3: corner (0, 0) sees rows 0..2 x cols 0..2; corner (7, 4) rows 5..7 x cols 2..4.
    assert neighbors_of((0, 0), (8, 5), 3) == [(r, c) for r in range(3) for c in range(3)]
    assert neighbors_of((7, 4), (8, 5), 3) == [(r, c) for r in (5, 6, 7) for c in (2, 3, 4)]
    # (7, 0): rows 5..7, cols 0..2.
    assert neighbors_of((7, 0), (8, 5), 3) == [(r, c) for r in (5, 6, 7) for c in (0, 1, 2)]
    keys, valid = neighbor_indices((8, 5), 3)
    assert keys.shape == (40, 9) and valid.all()
    # Slots are row-major over the window: flat key = 5 * row + col.
    assert keys[0].tolist() == [0, 1, 2, 5, 6, 7, 10, 11, 12]
    assert dense_mask((8, 5), 3)[0].sum() == 9


def test_hand_checked_2d_dilated():
    # 9x12 grid, k=3, d=2, query (0, 11).
    # Rows: L=9, query 0 is group 0, i'=0 -> members 0..2 -> rows 0, 2, 4.
    # Cols: L=12, query 11 is group 1 = {1,3,...,11} (6 members), i'=5 -> members 3..5 -> 7, 9, 11.
    expected = [(r, c) for r in (0, 2, 4) for c in (7, 9, 11)]
    assert neighbors_of((0, 11), (9, 12), 3, dilation=2) == expected
    # The mask row of flat query 0 * 12 + 11 = 11 has exactly those cells.
    row = dense_mask((9, 12), 3, dilation=2)[11]
    assert np.flatnonzero(row).tolist() == [12 * r + c for r, c in expected]


def test_hand_checked_2d_per_axis():
    # 6x6, k=3, causal on rows only, query (1, 0): rows 0..1 (causal), cols 0..2 (shifted right).
    expected = [(r, c) for r in (0, 1) for c in (0, 1, 2)]
    assert neighbors_of((1, 0), (6, 6), 3, is_causal=(True, False)) == expected
    # 6x7, k=(2, 4), stride (1, 2), query (5, 3):
    # rows: k=2 (1 left, 0 right), 5 - 1 = 4 -> rows 4, 5.
    # cols: stride group {2, 3}, leader 2 + 1 = 3, 3 - 2 = 1 -> cols 1..4.
    expected = [(r, c) for r in (4, 5) for c in (1, 2, 3, 4)]
    assert neighbors_of((5, 3), (6, 7), (2, 4), stride=(1, 2)) == expected


def test_hand_checked_3d():
    # 4x5x6, k=(2, 3, 2), d=(1, 1, 3), query (3, 0, 5).
    # Axis 0: L=4, k=2, query 3 -> 3 - 1 = 2 -> 2, 3.
    # Axis 1: L=5, k=3, query 0 -> shifted right -> 0, 1, 2.
    # Axis 2: L=6, k=2, d=3: query 5 is group 2 = {2, 5} (2 members) -> 2, 5.
    expected = [(a, b, c) for a in (2, 3) for b in (0, 1, 2) for c in (2, 5)]
    got = neighbors_of((3, 0, 5), (4, 5, 6), (2, 3, 2), dilation=(1, 1, 3))
    assert got == expected and len(got) == 12


def test_hand_checked_dilation_groups():
    # 3x4 grid with d=(1, 2): one row group, two column groups (even and odd columns).
    assert dilation_groups((3, 4), (1, 2)).tolist() == [[0, 1, 0, 1]] * 3
    # d=(2, 2) on 3x3: four groups numbered row-major over (row % 2, col % 2).
    assert dilation_groups((3, 3), 2).tolist() == [[0, 1, 0], [2, 3, 2], [0, 1, 0]]


# ----------------------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------------------

@st.composite
def axis_configs(draw, max_k=5, max_d=3, max_extra=6):
    """One axis: (L, k, s, d, causal) with k * d <= L."""
    k = draw(st.integers(2, max_k))
    d = draw(st.integers(1, max_d))
    L = draw(st.integers(k * d, k * d + max_extra))
    s = draw(st.integers(1, k))
    causal = draw(st.booleans())
    return L, k, s, d, causal


@st.composite
def grid_configs(draw):
    """1 to 3 axes, kept small enough for an (N, N) mask."""
    ndim = draw(st.integers(1, 3))
    small = {1: {}, 2: dict(max_k=4, max_d=2, max_extra=3), 3: dict(max_k=3, max_d=2, max_extra=2)}
    axes = [draw(axis_configs(**small[ndim])) for _ in range(ndim)]
    return tuple(tuple(a[i] for a in axes) for i in range(5))  # shape, k, s, d, causal


PROPS = settings(max_examples=60, deadline=None)


def _group_members(L, d, g):
    return list(range(g, L, d))


@PROPS
@given(axis_configs())
def test_axis_window_properties(cfg):
    L, k, s, d, causal = cfg
    w = axis_windows(L, k, s, d, causal)
    for i in range(L):
        g = i % d
        members = _group_members(L, d, g)  # the tokens of the query's dilation group
        ip = members.index(i)  # i': its position in the group
        keys = w.keys[i][w.valid[i]].tolist()
        # Keys are consecutive members of the query's own dilation group, on the axis.
        assert all(0 <= j < L and j % d == g for j in keys)
        pos = [members.index(j) for j in keys]
        assert pos == list(range(pos[0], pos[0] + len(pos)))
        assert w.start[i] == keys[0] and w.count[i] == len(keys) and w.group[i] == g
        # Masked slots (if any) come after the real ones and still hold an in-range key.
        assert w.valid[i].tolist() == [True] * len(keys) + [False] * (k - len(keys))
        assert 0 <= w.keys[i].min() and w.keys[i].max() < L
        # The RPB index is (k - 1) + (j - i) / d and stays inside the 2k - 1 table.
        assert w.rpb_index[i][w.valid[i]].tolist() == [(k - 1) + (j - i) // d for j in keys]
        assert 0 <= w.rpb_index[i].min() and w.rpb_index[i].max() <= 2 * k - 2
        # The query's stride group: s consecutive members; all share the last one's start.
        stride_group = members[(ip // s) * s : (ip // s) * s + s]
        if causal:
            assert keys[-1] == i  # the query itself, nothing after it
            assert len(set(w.start[stride_group].tolist())) == 1
            last = stride_group[-1]  # the leader sees min(k, its position + 1) keys
            assert w.count[last] == min(k, members.index(last) + 1)
            if s == 1:
                assert len(keys) == min(k, ip + 1)
        else:
            assert len(keys) == k  # every query sees exactly k keys: shifted, never padded
            assert i in keys  # the window contains the query
            assert all(w.keys[m].tolist() == w.keys[i].tolist() for m in stride_group)
            if s == 1 and ip >= k // 2 and ip + (k - 1 - k // 2) < len(members):
                # Far from the border the window is centered: k//2 left, the rest right.
                assert pos[0] == ip - k // 2


@PROPS
@given(axis_configs())
def test_non_causal_window_is_nearest_to_stride_leader(cfg):
    """Of all k-member windows that fit in the group, the rule picks the one centered closest."""
    L, k, s, d, _ = cfg
    w = axis_windows(L, k, s, d, False)
    for i in range(L):
        members = _group_members(L, d, i % d)
        ip = members.index(i)
        leader = min((ip // s) * s + s // 2, len(members) - 1)  # the middle of the stride group
        # Candidate starts a with [a, a + k) inside the group; distance of their "center slot" to the leader.
        starts = range(len(members) - k + 1)
        best = min(starts, key=lambda a: abs(a + k // 2 - leader))
        assert members.index(int(w.start[i])) == best


@PROPS
@given(grid_configs())
def test_nd_views_agree(cfg):
    shape, ks, stride, dil, causal = cfg
    N, K = prod(shape), prod(ks)
    keys, valid = neighbor_indices(shape, ks, stride, dil, causal)
    mask = dense_mask(shape, ks, stride, dil, causal)
    idx = rpb_indices(shape, ks, stride, dil, causal)
    groups = dilation_groups(shape, dil).ravel()
    assert keys.shape == valid.shape == (N, K) and mask.shape == (N, N) and idx.shape == (N, K, len(shape))
    assert keys.min() >= 0 and keys.max() < N
    coords = np.stack(np.unravel_index(np.arange(N), shape), axis=-1)  # (N, ndim)
    for n in range(N):
        real = keys[n][valid[n]]
        # neighbor_indices and dense_mask (built independently) name the same keys, no repeats.
        assert len(set(real.tolist())) == len(real)
        assert sorted(real.tolist()) == np.flatnonzero(mask[n]).tolist()
        # Slots are row-major over the window, so real keys appear in increasing flat order.
        assert (np.diff(real) > 0).all()
        # neighbors_of returns the same cells as coordinate tuples.
        assert neighbors_of(tuple(coords[n]), shape, ks, stride, dil, causal) == [
            tuple(int(c) for c in coords[j]) for j in real
        ]
        # Every neighbor is in the query's dilation group.
        assert (groups[real] == groups[n]).all()
        # Product structure: as many neighbors as the per-axis counts multiply to.
        rel = coords[real] - coords[n]  # (n_real, ndim) key minus query
        assert len(real) == prod(len(set(coords[real][:, a].tolist())) for a in range(len(shape)))
        # RPB index from the coordinates: (k - 1) + (j - i) / d per axis, inside [0, 2k - 2].
        assert (rel % np.array(dil) == 0).all()
        assert (idx[n][valid[n]] == (np.array(ks) - 1) + rel // np.array(dil)).all()
        assert (idx[n] >= 0).all() and (idx[n] <= 2 * np.array(ks) - 2).all()
        # Causal axes never look ahead; the query is always its own neighbor.
        for a, c in enumerate(causal):
            if c:
                assert (rel[:, a] <= 0).all()
        assert n in real
    if not any(causal):
        assert valid.all() and (mask.sum(axis=1) == K).all()  # exactly prod(k) each


@settings(max_examples=30, deadline=None)
@given(grid_configs())
def test_product_of_axes(cfg):
    """The N-D mask is the AND of the per-axis masks (checked on coordinates)."""
    shape, ks, stride, dil, causal = cfg
    mask = dense_mask(shape, ks, stride, dil, causal)
    axes = zip(shape, ks, stride, dil, causal, strict=True)
    per_axis = [dense_mask(L, k, s, d, c) for L, k, s, d, c in axes]  # (L, L) each
    coords = np.stack(np.unravel_index(np.arange(prod(shape)), shape), axis=-1)  # (N, ndim)
    expected = np.ones_like(mask)
    for a, m in enumerate(per_axis):
        expected &= m[coords[:, a][:, None], coords[:, a][None, :]]
    assert (mask == expected).all()
