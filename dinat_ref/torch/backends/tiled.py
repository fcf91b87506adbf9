"""The ``torch`` backend: tiled neighborhood attention with batched matmuls.

Gathering every query's ``K = prod(kernel_size)`` neighbors (as :mod:`dinat_ref.numpy` does) moves
``N * K * dim`` numbers around and multiplies ``N`` tiny ``1 x K`` rows: on a CPU that is
slower than dense attention. This file does the same math as a handful of large batched
matmuls instead, in three steps. Everything here is plain torch, so it runs on any device
and dtype and autograd differentiates it (q, k, v and rpb).

1. Regroup by dilation (DiNA, https://arxiv.org/abs/2209.15001). On an axis with dilation
   ``d`` token ``i`` lives in group ``g = i % d`` at position ``i' = i // d``, and only talks
   to its own group, where its window is an ordinary contiguous one. So we view the axis as
   ``d`` sequences of length ``ceil(L / d)``; groups with fewer tokens (``L % d != 0``) are
   padded with copies of their last query (their outputs are dropped).

2. Tile the queries. Inside a group, cut the queries into tiles of ``T`` per axis. Windows are
   shifted inward and move monotonically with the query, so the union of a tile's windows is
   one contiguous key block ``[start of first window, end of last window)`` of at most about
   ``T + k - 1`` keys per axis. Every tile gets a block of the same size ``KB`` (the largest
   one; shorter blocks are padded with repeated keys that the mask removes).

3. Attend each tile to its block, densely, with a mask. The logits of a tile are
   ``s = (scale q_tile) @ k_block^T + bias`` with ``bias = rpb[...]`` where the rule says
   "neighbor" and ``-inf`` elsewhere (the per-axis rule ``start' <= j' < end'``, ANDed over
   axes, so stride and causal windows come out right too), then ``softmax(s) @ v_block``.

Cost: every query meets ``prod(KB)`` keys instead of its ``K``, i.e. ``prod(KB) / K`` times the
flops of the gather (4x for T = 8, k = 7: 14^2 / 7^2), but in batched matmuls that run near
peak (or fused in ``scaled_dot_product_attention`` with the bias as its mask), and memory
``O(N * prod(KB))``, never ``O(N^2)``. :func:`choose_tile` picks ``T`` per axis from a small
cost model (logits + a per-tile overhead, padding included). :func:`qk` and :func:`av` reuse
the tiles for the neighborhood layout of :mod:`dinat_ref.numpy` (one slot per neighbor).
All index tables come from :func:`dinat_ref.neighborhood.axis_windows` and are cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from dinat_ref.checks import Window
from dinat_ref.neighborhood import axis_product, axis_windows
from dinat_ref.torch.backends import neighbor_tables
from dinat_ref.torch.backends.cache import table_cache, tracing
from dinat_ref.torch.backends.local import compute_dtype, safe_softmax

NAME = "torch"

# Tile-size model, fitted on CPU (benchmarks/bench_torch_na.py): time ~ logits + TILE_COST * tiles.
# Each tile costs about as much as this many logit entries (kernel launches, small matmuls).
TILE_COST = 8000
MAX_TILE = {1: 256, 2: 32, 3: 16}  # largest tile side choose_tile considers, by number of axes
MIN_SHARED, MAX_CLASSES = 4, 64  # a bias pattern shared by >= max(4, G/64) tiles gets its own call
RUN_KEYS = 8192  # key rows (tiles x batch x KB) per fused call, at most: the blocks stay in cache


def unavailable(req) -> str | None:
    """The torch backend serves every valid call (any device, any float dtype)."""
    return None


# ----------------------------------------------------------------------------------------
# Index tables (NumPy, from the shared rule), cached per layout
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _AxisTiles:
    """One axis, regrouped by dilation and tiled. ``d`` groups x ``nt`` tiles x ``T`` queries.

    Attributes:
        q_index: (d, nt, T) full-axis index of each tile query (padding repeats a real one).
        q_real: (d, nt, T) False for padding queries.
        k_index: (d, nt, KB) full-axis index of each key-block slot (clamped into the group).
        mask: (d, nt, T, KB) the rule: is block key ``kb`` in the window of tile query ``t``.
        rpb_index: (d, nt, T, KB) ``(k - 1) + j' - i'``, clipped into ``[0, 2k - 2]``.
        slot: (3, L, k) where each query's window slot sits in the tiled logits: tile
            (``g * nt + tile``), query in the tile, key in the block.
    """

    q_index: np.ndarray
    q_real: np.ndarray
    k_index: np.ndarray
    mask: np.ndarray
    rpb_index: np.ndarray
    slot: np.ndarray


def _axis_tiles(L: int, ks: int, s: int, d: int, causal: bool, tile: int) -> _AxisTiles:
    """Regroup one axis by dilation, cut each group into tiles of ``tile`` queries, find the blocks.

    ``L, ks, s, d, causal``: length, kernel size, stride, dilation and causality of the axis.
    """
    w = axis_windows(L, ks, s, d, causal)
    Lmax = -(-L // d)  # tokens in the largest group
    T = min(tile, Lmax)
    nt = -(-Lmax // T)
    g = np.arange(d)[:, None]  # (d, 1)
    Lg = -(-(L - g) // d)  # (d, 1) tokens in each group
    ip = np.arange(nt * T)[None, :]  # (1, P) position inside the group, padded
    ip_real = np.minimum(ip, Lg - 1)  # (d, P) padding repeats the group's last query
    i_full = ip_real * d + g  # (d, P) back to the full axis: i = i' * d + g
    start = (w.start[i_full] - g) // d  # (d, P) window start' in group coordinates
    end = start + w.count[i_full]  # (d, P) window end'
    start, end, ip_real = (x.reshape(d, nt, T) for x in (start, end, ip_real))
    # Windows move monotonically with the query, so a tile's union is [first start', last end').
    block_start = start.min(axis=-1)  # (d, nt)
    KB = int((end.max(axis=-1) - block_start).max())  # the widest block; all tiles use it
    kb = block_start[..., None] + np.arange(KB)  # (d, nt, KB) key j' in group coordinates
    k_index = np.minimum(kb, Lg[..., None] - 1) * d + g[..., None]  # (d, nt, KB) clamped, full axis
    j = kb[:, :, None, :]  # (d, nt, 1, KB)
    mask = (j >= start[..., None]) & (j < end[..., None])  # (d, nt, T, KB) the rule
    rpb_index = np.clip((ks - 1) + j - ip_real[..., None], 0, 2 * ks - 2)  # (d, nt, T, KB)
    return _AxisTiles(
        q_index=i_full.reshape(d, nt, T), q_real=(ip < Lg).reshape(d, nt, T),
        k_index=k_index, mask=mask, rpb_index=rpb_index, slot=_slots(w, d, nt, T, KB, block_start),
    )


def _slots(w, d: int, nt: int, T: int, KB: int, block_start: np.ndarray) -> np.ndarray:
    """(3, L, k): (tile, query-in-tile, key-in-block) of every window slot on one axis."""
    i = np.arange(len(w.start))  # (L,) query
    g, ig = i % d, i // d  # (L,) group and position inside it
    tile, t = ig // T, ig % T  # (L,) tile inside the group, query inside the tile
    kb = w.keys // d - block_start[g, tile][:, None]  # (L, k) key j' relative to the block
    return np.stack(np.broadcast_arrays((g * nt + tile)[:, None], t[:, None], kb))  # (3, L, k)


@lru_cache(maxsize=256)
def choose_tile(shape: tuple[int, ...], window: Window) -> tuple[int, ...]:
    """Queries per tile and axis that minimize ``logits + TILE_COST * tiles``.

    Small tiles waste little (a block is ``T + k - 1`` keys for ``T`` queries) but make many
    small matmuls; tiles that do not divide a dilation group pad it with dummy queries.
    Both counts factor over the axes, so every combination is scored at once.
    """
    logits, tiles_n = np.ones(1), np.ones(1)  # (combinations so far,)
    candidates = []
    for L, ks, s, d, c in zip(shape, *window.args(), strict=True):
        top = min(-(-L // d), MAX_TILE[len(shape)])  # no tile larger than a dilation group
        sizes = [T for T in range(1, top + 1) if T <= 16 or T % 8 == 0 or T == top]
        axis = [_axis_tiles(L, ks, s, d, c, T) for T in sizes]
        logits = np.outer(logits, [a.mask.size for a in axis]).ravel()  # (d*nt*T*KB per axis)
        tiles_n = np.outer(tiles_n, [a.q_index.shape[0] * a.q_index.shape[1] for a in axis]).ravel()
        candidates.append(list(sizes))
    best = int(np.argmin(logits + TILE_COST * tiles_n))
    best_index = np.unravel_index(best, [len(c) for c in candidates])  # one index per axis
    return tuple(int(c[i]) for c, i in zip(candidates, best_index, strict=True))


@dataclass(frozen=True)
class _Tiles:
    """The N-D tiling as flat torch index tables. ``G`` tiles (all groups), ``Tq`` queries and
    ``KB`` keys per tile; ``N`` tokens.

    Attributes:
        q_index: (G, Tq) flat query index of each tile slot.
        k_index: (G, KB) flat key index of each block slot.
        out_index: (N,) where each real query sits in the flattened (G * Tq) tile output.
        mask: (G, Tq, KB) bool, the rule.
        rpb_or_mask: (G * Tq * KB,) int32 index into ``rpb.flatten(1)`` (row-major over the
            ``2k - 1`` axes), or ``R = prod(2k - 1)`` (one past the last entry) where the rule
            says "not a neighbor".
        slot: (N, K) flat position in the (G, Tq, KB) logits of each query's window slot, so
            ``logits.flatten()[slot]`` is the neighborhood layout of :mod:`dinat_ref.numpy`.
        classes: ``(first tile, end tile, shared)`` runs of tiles; tiles are sorted so tiles
            with one bias pattern are contiguous (``shared``), rare patterns form the last run.
        class_bias: per class, its ``rpb_or_mask`` rows: (1, Tq*KB) if shared, else (tiles, Tq*KB),
            int64.
    """

    q_index: torch.Tensor
    k_index: torch.Tensor
    out_index: torch.Tensor
    mask: torch.Tensor
    rpb_or_mask: torch.Tensor
    slot: torch.Tensor
    classes: tuple[tuple[int, int, bool], ...]
    class_bias: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Layout:
    """Everything the tile tables depend on (the cache key): grid, window, tile size, device.

    Attributes:
        shape: spatial shape of the grid.
        window: the checked :class:`~dinat_ref.checks.Window`.
        tile: queries per tile on each axis (:func:`choose_tile` unless given).
        device: where the tables live.
    """

    shape: tuple[int, ...]
    window: Window
    tile: tuple[int, ...]
    device: torch.device


def _layout(x: torch.Tensor, window: Window, tile: tuple[int, ...] | None) -> Layout:
    """The layout of ``x`` (B, *spatial, heads, C) under ``window``."""
    shape = tuple(int(n) for n in x.shape[1 : 1 + window.ndim])
    return Layout(shape, window, tuple(tile or choose_tile(shape, window)), x.device)


def _product_3d(prev: np.ndarray, new: np.ndarray, combine) -> np.ndarray:
    """(Gp, Tp, KBp) and (Ga, Ta, KBa) tables -> (Gp*Ga, Tp*Ta, KBp*KBa), each row-major over axes."""
    out = combine(prev[:, None, :, None, :, None], new[None, :, None, :, None, :])
    return out.reshape(prev.shape[0] * new.shape[0], prev.shape[1] * new.shape[1], -1)


@table_cache(maxsize=64)
def tiles(layout: Layout) -> _Tiles:
    """Build (and cache) the tile tables of an N-D grid for one layout."""
    shape, kernel_size = layout.shape, layout.window.kernel_size
    axes = [_axis_tiles(*a) for a in zip(shape, *layout.window.args(), layout.tile, strict=True)]
    flat = lambda x: x.reshape(-1, x.shape[-1])  # (d, nt, X) -> (d*nt, X)
    # Flat token index, row-major over the grid: n = sum_a i_a * (L_{a+1} * ... * L_last).
    place = [int(np.prod(shape[a + 1 :])) for a in range(len(shape))]
    q_index = axis_product([flat(a.q_index) * p for a, p in zip(axes, place, strict=True)], np.add)  # (G, Tq)
    k_index = axis_product([flat(a.k_index) * p for a, p in zip(axes, place, strict=True)], np.add)  # (G, KB)
    q_real = axis_product([flat(a.q_real) for a in axes], np.logical_and)  # (G, Tq)
    mask = axes[0].mask.reshape(-1, *axes[0].mask.shape[2:])  # (G0, T0, KB0)
    ridx = axes[0].rpb_index.reshape(mask.shape)  # (G0, T0, KB0)
    for a, ks in zip(axes[1:], kernel_size[1:], strict=True):
        # (G, Tq, KB) tables: tiles, queries and keys each row-major over the axes.
        m = a.mask.reshape(-1, *a.mask.shape[2:])  # (Ga, Ta, KBa)
        mask = _product_3d(mask, m, np.logical_and)
        ridx = _product_3d(ridx, a.rpb_index.reshape(m.shape),
                           lambda p, n, ks=ks: p * (2 * ks - 1) + n)  # row-major over (2k_a - 1)
    G, Tq, KB = mask.shape
    rpb_or_mask = np.where(mask, ridx, _not_neighbor(layout.window))  # (G, Tq, KB)

    # Tiles with the same (mask, rpb index) pattern -- all interior tiles, typically -- can share
    # one (Tq, KB) bias. Sort tiles so each such class is contiguous; rare patterns go last.
    _, pattern, counts = np.unique(rpb_or_mask.reshape(G, -1), axis=0, return_inverse=True,
                                   return_counts=True)  # (G,) class of each tile
    pattern = pattern.reshape(-1)
    shared = counts[pattern] >= max(MIN_SHARED, G // MAX_CLASSES)  # (G,) big enough to share
    key = np.where(shared, pattern, len(counts))  # (G,) rare tiles: one last class
    order = np.argsort(key, kind="stable")  # (G,) new tile -> old tile
    rank = np.argsort(order)  # (G,) old tile -> new tile
    q_index, k_index, q_real, mask, rpb_or_mask = (
        x[order] for x in (q_index, k_index, q_real, mask, rpb_or_mask))
    bounds = np.flatnonzero(np.diff(key[order])) + 1  # class boundaries in the new order
    classes = tuple(
        (int(a), int(b), bool(shared[order[a]]))
        for a, b in zip(np.r_[0, bounds], np.r_[bounds, G], strict=True)
    )

    slot = _slot_positions(axes)  # (N, K), old tile numbering
    slot = rank[slot // (Tq * KB)] * (Tq * KB) + slot % (Tq * KB)  # (N, K), new tile numbering
    real = q_real.reshape(-1)  # (G * Tq,)
    out_index = np.empty(int(np.prod(shape)), dtype=np.int64)  # (N,)
    out_index[q_index.reshape(-1)[real]] = np.nonzero(real)[0]
    as_t = lambda x: torch.as_tensor(np.ascontiguousarray(x), device=layout.device)
    # int64 indices: the backward of index_select (index_add) is ~20x slower with int32 on CPU.
    class_bias = tuple(  # (1 or tiles, Tq*KB) per class: shared classes keep one row
        as_t(rpb_or_mask[a : a + 1] if is_shared else rpb_or_mask[a:b]).reshape(-1, Tq * KB).long()
        for a, b, is_shared in classes
    )
    rpb_or_mask = rpb_or_mask.astype(np.int32)  # (G, Tq, KB) the biggest table: keep it small
    return _Tiles(q_index=as_t(q_index), k_index=as_t(k_index), out_index=as_t(out_index),
                  mask=as_t(mask), rpb_or_mask=as_t(rpb_or_mask.reshape(-1)),
                  slot=as_t(slot), classes=classes, class_bias=class_bias)


def _not_neighbor(window: Window) -> int:
    """``R = prod(2k - 1)``: one past the last rpb entry, the value ``rpb_or_mask`` uses for "masked"."""
    return int(np.prod([2 * ks - 1 for ks in window.kernel_size]))


def _slot_positions(axes: list[_AxisTiles]) -> np.ndarray:
    """(N, K): flat (tile, query-in-tile, key-in-block) of every (query, window slot), N-D.

    Queries and slots are row-major over the axes (like :func:`neighbor_indices`); tiles,
    queries in a tile and keys in a block are row-major over the axes too (like :func:`tiles`).
    """
    tile, t, kb = axes[0].slot  # (L0, k0) each
    for a in axes[1:]:
        sizes = (a.q_index.shape[0] * a.q_index.shape[1], a.q_index.shape[2], a.k_index.shape[2])
        merged = []
        for prev, new, size in zip((tile, t, kb), a.slot, sizes, strict=True):
            both = prev[:, None, :, None] * size + new[None, :, None, :]  # (Nprev, La, Kprev, ka)
            merged.append(both.reshape(prev.shape[0] * new.shape[0], -1))
        tile, t, kb = merged
    Tq = int(np.prod([a.q_index.shape[2] for a in axes]))
    KB = int(np.prod([a.k_index.shape[2] for a in axes]))
    return (tile * Tq + t) * KB + kb  # (N, K)


@table_cache(maxsize=64)
def _mask_bias(layout: Layout, dtype: torch.dtype) -> torch.Tensor:
    """The rule as an additive bias: 0 for neighbors, -inf elsewhere. (G, Tq, KB)."""
    mask = tiles(layout).mask  # (G, Tq, KB) bool
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill_(~mask, float("-inf"))


@table_cache(maxsize=64)
def _slot_index(layout: Layout, heads: int) -> torch.Tensor:
    """(N, heads, K): flat position in the (G, heads, Tq * KB) tile logits of each (query, head, slot)."""
    t = tiles(layout)
    G, Tq, KB = t.mask.shape
    tile, offset = t.slot // (Tq * KB), t.slot % (Tq * KB)  # (N, K) which tile, where inside it
    h = torch.arange(heads, device=t.slot.device)[None, :, None]  # (1, heads, 1)
    return (tile[:, None, :] * heads + h) * (Tq * KB) + offset[:, None, :]  # (N, heads, K)


# ----------------------------------------------------------------------------------------
# The three steps (autograd does the backward)
# ----------------------------------------------------------------------------------------

def _to_tiles(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Steps 1-2, regroup + tile: (B, *spatial, H, C) -> (B*G, H, X, C) for an index (G, X).

    One index_select of whole (heads, dim) rows (a permutation when shapes divide evenly);
    the final transpose is a view.
    """
    B, H, C = x.shape[0], x.shape[-2], x.shape[-1]
    G, X = index.shape
    rows = x.reshape(B, -1, H, C).index_select(1, index.flatten())  # (B, G*X, H, C)
    return rows.view(B * G, X, H, C).transpose(1, 2)  # (B*G, H, X, C)


def _from_tiles(y: torch.Tensor, t: _Tiles, B: int) -> torch.Tensor:
    """Undo the tiling: (B*G, H, Tq, C) -> (B, N, H, C), each real query's row out of the tiles."""
    G, Tq = t.q_index.shape
    rows = y.transpose(1, 2).reshape(B, G * Tq, y.shape[1], -1)  # (B, G*Tq, H, C)
    return rows.index_select(1, t.out_index)  # (B, N, H, C)


def _bias(layout: Layout, rpb: torch.Tensor | None, dtype: torch.dtype, B: int, H: int) -> torch.Tensor:
    """Step 3's bias: -inf outside the rule, ``rpb[(k-1) + (j-i)/d per axis]`` inside.

    With rpb one gather does both: the rpb table gets an extra -inf entry that masked slots
    point at. Returns (B*G, H or 1, Tq, KB) (G, ... when B == 1).
    """
    t = tiles(layout)
    G, Tq, KB = t.mask.shape
    if rpb is None:
        bias = _mask_bias(layout, dtype)[:, None]  # (G, 1, Tq, KB), the same for every head
    else:
        table = F.pad(rpb.flatten(1).to(dtype), (0, 1), value=float("-inf"))  # (H, R + 1)
        index = t.rpb_or_mask.long()  # (G*Tq*KB,) cached as int32; the backward wants int64 (see tiles)
        bias = table.index_select(1, index).view(H, G, Tq, KB).transpose(0, 1)  # (G, H, Tq, KB)
    return bias.repeat(B, 1, 1, 1) if B > 1 else bias  # (B*G, H|1, Tq, KB)


def forward(q, k, v, window: Window, scale: float, rpb=None, return_lse: bool = True,
            tile: tuple[int, ...] | None = None):
    """Tiled NA: ``(out, lse)``, out (B, *spatial, heads, dim_v), lse (B, *spatial, heads) or None.

    Without ``return_lse`` this is :func:`fused_forward` (fused attention per class of tiles).
    With it, the logits of every tile are materialized (``O(N * prod(KB))``) for their
    log-sum-exp, with one bias for all tiles (:func:`_bias`), in float32 for half inputs.
    A query with nothing to attend to (all logits ``-inf``) gets output 0 and lse ``-inf``.
    """
    if not return_lse:
        return fused_forward(q, k, v, window, scale, rpb, tile), None
    B, H = q.shape[0], q.shape[-2]
    layout = _layout(q, window, tile)
    t = tiles(layout)
    ct = compute_dtype(q.dtype)  # float32 for half inputs: logits beyond 65504 stay finite
    q_t = _to_tiles(q, t.q_index).to(ct)  # (B*G, H, Tq, D)
    k_t = _to_tiles(k, t.k_index).to(ct)  # (B*G, H, KB, D)
    v_t = _to_tiles(v, t.k_index).to(ct)  # (B*G, H, KB, Dv)
    bias = _bias(layout, rpb, ct, B, H)  # (B*G, H|1, Tq, KB)

    s = torch.matmul(q_t * scale, k_t.transpose(-1, -2)) + bias  # (B*G, H, Tq, KB)
    lse = torch.logsumexp(s, dim=-1, keepdim=True)  # (B*G, H, Tq, 1), -inf for an empty row
    shift = torch.where(lse == float("-inf"), 0.0, lse)  # (B*G, H, Tq, 1) empty row: p = 0, not NaN
    out_t = torch.matmul(torch.exp(s - shift), v_t)  # (B*G, H, Tq, Dv)
    lse = _from_tiles(lse, t, B).view(q.shape[:-1])  # (B, *spatial, H), float32 for half inputs
    out = _from_tiles(out_t, t, B).view(*q.shape[:-1], v.shape[-1]).to(q.dtype)  # (B, *spatial, H, Dv)
    return out, lse


@table_cache(maxsize=64)
def _batch_rows(layout: Layout, B: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row indices for the fused path, where the batch sits *inside* each tile: (G, B, ...).

    Returns ``(q_rows (G*B*Tq,), k_rows (G*B*KB,), out_rows (B*N,))`` into the flattened
    (B*N) tokens, resp. the (G*B*Tq) tile rows, so each class of tiles is one contiguous slice.
    """
    t = tiles(layout)
    N = t.out_index.shape[0]
    G, Tq = t.q_index.shape
    b = torch.arange(B, device=t.q_index.device)  # (B,)
    q_rows = (b[None, :, None] * N + t.q_index[:, None, :]).flatten()  # (G*B*Tq,)
    k_rows = (b[None, :, None] * N + t.k_index[:, None, :]).flatten()  # (G*B*KB,)
    g, tq = t.out_index // Tq, t.out_index % Tq  # (N,) tile and row of each real query
    out_rows = ((g[None, :] * B + b[:, None]) * Tq + tq[None, :]).flatten()  # (B*N,)
    return q_rows, k_rows, out_rows


@table_cache(maxsize=64)
def _class_masks(layout: Layout, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """The rule as additive biases, one per tile class: (1 or tiles, 1, Tq, KB), 0 or -inf."""
    t = tiles(layout)
    G, Tq, KB = t.mask.shape
    R = _not_neighbor(layout.window)  # rpb_or_mask's "not a neighbor" value
    return tuple(torch.zeros(rows.shape, dtype=dtype, device=rows.device)
                 .masked_fill_(rows == R, float("-inf")).view(-1, 1, Tq, KB)
                 for rows in t.class_bias)


def _runs(classes: tuple[tuple[int, int, bool], ...], biases: tuple[torch.Tensor, ...], B: int,
          KB: int) -> list[tuple[int, int, torch.Tensor]]:
    """Cut the classes of tiles into runs of at most ``RUN_KEYS`` key rows (at least one tile).

    Returns ``(first tile, end tile, bias)`` per run, in tile order. A shared (1, ...) bias
    serves every run of its class; a per-tile bias is split along with its tiles (split, not
    slicing: its backward is one cat, where slices would each zero-fill the class's gradient).
    """
    step = max(1, RUN_KEYS // (B * KB))  # tiles per run
    runs = []
    for (first, end, shared), bias in zip(classes, biases, strict=True):
        starts = range(first, end, step)
        pieces = [bias] * len(starts) if shared else bias.split(step)  # (1|tiles, H|1, Tq, KB)
        runs += [(a, min(a + step, end), piece) for a, piece in zip(starts, pieces, strict=True)]
    return runs


def _run_rows(x: torch.Tensor, rows: torch.Tensor, X: int, runs, B: int):
    """Steps 1-2 for each run: (B, *spatial, H, C) -> per run a (tiles*B, H, X, C) view.

    ``rows`` (G*B*X,) index the flattened (B*N) tokens, tiles outer, batch inner (see
    :func:`_batch_rows`), so a run of tiles is one slice of it. When ``x`` needs a gradient,
    all rows are gathered by one index_select and then split: the backward of an index_select
    zero-fills a gradient as big as ``x``, so one call per run would do that once per run
    (and split's backward is one cat, where slices would each zero-fill a full gradient too).
    Otherwise the runs are gathered one at a time as the loop asks (a generator): small blocks
    that stay in cache and that the allocator reuses, instead of buffers of ~3N rows that the
    OS pages in afresh on every call (that made large grids slower per token).
    """
    H, C = x.shape[-2], x.shape[-1]
    flat = x.reshape(-1, H * C)  # (B*N, H*C): whole rows, index_select's fastest case
    if torch.is_grad_enabled() and x.requires_grad:
        parts = flat.index_select(0, rows).split([(end - first) * B * X for first, end, _ in runs])
    else:
        parts = (flat.index_select(0, rows[first * B * X : end * B * X]) for first, end, _ in runs)
    return (p.view(-1, X, H, C).transpose(1, 2) for p in parts)  # (tiles*B, H, X, C) each


def fused_forward(q, k, v, window: Window, scale: float, rpb=None,
                  tile: tuple[int, ...] | None = None) -> torch.Tensor:
    """The fast path of :func:`forward` (no lse): one fused SDPA call per run of tiles.

    Most tiles (all interior ones) share one bias pattern, so instead of gathering a
    (G, H, Tq, KB) bias from rpb (and scatter-adding its gradient back into a table of a
    few hundred entries), each class gathers one broadcast (1, H, Tq, KB) bias; the few tiles
    with rare patterns (borders, odd-sized groups) keep a bias each. Without rpb the bias is
    the rule alone (0 / -inf), cached per class. Classes are cut into runs of at most
    ``RUN_KEYS`` key rows, so each call's blocks stay small. The probabilities
    are never kept around, except when rpb needs a gradient (which is computed from them).
    """
    B, H = q.shape[0], q.shape[-2]
    layout = _layout(q, window, tile)
    t = tiles(layout)
    G, Tq, KB = t.mask.shape
    q_rows, k_rows, out_rows = _batch_rows(layout, B)
    # An rpb with -inf entries can leave a query nothing to attend to: then every run takes the
    # explicit path with safe_softmax (output 0 there, as NATTEN), not SDPA. (A trace cannot
    # branch on values: it takes the common path.)
    empty_rows = rpb is not None and not tracing() and bool(torch.isneginf(rpb).any())
    if rpb is None:
        biases = _class_masks(layout, q.dtype)  # per class (1|tiles, 1, Tq, KB)
    else:
        table = F.pad(rpb.flatten(1), (0, 1), value=float("-inf"))  # (H, R + 1): masked -> -inf
        biases = tuple(table.index_select(1, rows.flatten()).view(H, -1, Tq, KB).transpose(0, 1)
                       for rows in t.class_bias)  # per class (1|tiles, H, Tq, KB)
    runs = _runs(t.classes, biases, B, KB)
    # (B, *spatial, H, C) -> per run (tiles*B, H, X, C): tiles outer, batch inner, the tile's rows.
    q_runs, k_runs, v_runs = (_run_rows(x, rows, X, runs, B)
                              for x, rows, X in ((q, q_rows, Tq), (k, k_rows, KB), (v, k_rows, KB)))
    outs = []
    for (_, _, bias), qc, kc, vc in zip(runs, q_runs, k_runs, v_runs, strict=True):
        if B > 1 and bias.shape[0] > 1:  # one bias per tile: (tiles*B, H|1, Tq, KB), batch inner
            bias = bias.repeat_interleave(B, dim=0)  # (a single (1, ...) bias just broadcasts)
        if bias.requires_grad or empty_rows:
            # SDPA cannot fuse a bias that needs a gradient and falls back to this same math
            # (with extra masking passes); spelled out it is ~15% faster. Half inputs: float32.
            out_c = _explicit(qc, kc, vc, bias, scale, empty_rows)  # (tiles*B, H, Tq, Dv)
        else:
            out_c = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=bias, scale=scale)
        outs.append(out_c.transpose(1, 2))  # (tiles*B, Tq, H, Dv)
    out_t = torch.cat(outs) if len(outs) > 1 else outs[0]  # (G*B, Tq, H, Dv)
    out = out_t.reshape(G * B * Tq, -1).index_select(0, out_rows)  # (B*N, H*Dv)
    return out.view(*q.shape[:-1], v.shape[-1])  # (B, *spatial, H, Dv)


def _explicit(q_t, k_t, v_t, bias, scale: float, empty_rows: bool) -> torch.Tensor:
    """``softmax((scale q) k^T + bias) v`` spelled out, in float32 for half inputs: (X, H, Tq, Dv)."""
    ct = compute_dtype(q_t.dtype)
    s = torch.matmul(q_t.to(ct) * scale, k_t.to(ct).transpose(-1, -2)) + bias.to(ct)  # (X, H, Tq, KB)
    p = safe_softmax(s)[0] if empty_rows else torch.softmax(s, dim=-1)  # (X, H, Tq, KB)
    return torch.matmul(p, v_t.to(ct)).to(q_t.dtype)  # (X, H, Tq, Dv)


def qk(q, key, window: Window, scale: float, rpb=None, tile: tuple[int, ...] | None = None):
    """Logits in neighborhood layout, (B, *spatial, heads, K); masked slots ``-inf``.

    The tile logits are computed as in :func:`forward`, then each query's ``K`` window slots
    are picked out of its tile row (``tiles(...).slot``).
    """
    B, H = q.shape[0], q.shape[-2]
    layout = _layout(q, window, tile)
    t = tiles(layout)
    s = torch.matmul(_to_tiles(q, t.q_index) * scale, _to_tiles(key, t.k_index).transpose(-1, -2))
    s = s + _bias(layout, rpb, q.dtype, B, H)  # (B*G, H, Tq, KB)
    idx = _slot_index(layout, H)  # (N, H, K)
    s = s.reshape(B, -1).index_select(1, idx.flatten()).view(B, *idx.shape)  # (B, N, H, K)
    valid = neighbor_tables(layout.shape, window, q.device).valid  # (N, K); causal windows may be short
    s = s.masked_fill(~valid[None, :, None, :], float("-inf"))
    return s.view(*q.shape[:-1], idx.shape[-1])  # (B, *spatial, H, K)


def av(probs, v, window: Window, tile: tuple[int, ...] | None = None):
    """``out_n = sum_t probs[n, t] v[key t of n]``: (B, *spatial, heads, dim).

    The neighborhood-layout weights are scattered into (zero-filled) tile rows, then one
    batched matmul with the value blocks does the sums.
    """
    B, H = v.shape[0], v.shape[-2]
    layout = _layout(v, window, tile)
    t = tiles(layout)
    G, Tq, KB = t.mask.shape
    idx = _slot_index(layout, H)  # (N, H, K)
    valid = neighbor_tables(layout.shape, window, v.device).valid  # (N, K)
    p = probs.reshape(B, *idx.shape).masked_fill(~valid[None, :, None, :], 0)  # (B, N, H, K)
    p_t = p.new_zeros(B, G * H * Tq * KB).index_add(1, idx.flatten(), p.reshape(B, -1))
    out_t = torch.matmul(p_t.view(B * G, H, Tq, KB), _to_tiles(v, t.k_index))  # (B*G, H, Tq, Dv)
    return _from_tiles(out_t, t, B).view(*v.shape[:-1], v.shape[-1])  # (B, *spatial, H, Dv)
