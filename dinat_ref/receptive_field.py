"""Exact receptive fields of stacked NA / DiNA layers, by composing neighborhoods.

Papers: NA https://arxiv.org/abs/2204.07143, DiNA / DiNAT https://arxiv.org/abs/2209.15001.
NumPy only; the pictures are in :mod:`dinat_ref.viz.rf`.

What is computed
----------------
The receptive field (RF) of output token ``q`` after ``n`` layers is the set of input
tokens ``j`` that can change it. One transformer layer (attention + residual + MLP;
LayerNorm and the MLP act on each token alone) makes output ``q`` depend on exactly
the keys in its neighborhood plus itself (the residual), so its *dependency matrix* is::

    M_l[q, j] = j in N_l(q)  or  j == q          # (L, L) bool; N_l from dinat_ref.neighborhood

(the rule always puts the query in its own window, so the ``j == q`` term changes
nothing, but it is what the residual says). Stacking layers composes the relations::

    RF_n = M_n o M_{n-1} o ... o M_1 ,   (A o B)[q, j] = any_m A[q, m] and B[m, j]

a boolean matrix product: exact, no estimate. We count ``|RF_n(q)|`` (tokens that
influence ``q``) and the *extent* ``max - min + 1`` of that set (they differ when the
set has holes, e.g. after a single dilated layer).

N-D grids need no extra work: the N-D mask is the Kronecker product of the per-axis
masks (a key is a neighbor iff it is one on every axis), and
``(A (x) B) o (C (x) D) = (A o C) (x) (B o D)``, so the N-D receptive field is the
product of the per-axis ones. :func:`receptive_field` builds it that way; the tests
check it against brute-force propagation on the N-D dense mask.

DiNAT pads short axes
---------------------
A DiNAT layer needs ``kernel_size * dilation <= L`` on each axis. When an axis is
shorter, DiNAT (SHI-Labs and Hugging Face ``DinatLayer.maybe_pad``) pads it with zero
tokens *at the end* (right / bottom) up to ``k * d``, runs attention on the padded
grid and crops the padding away again. The padded tokens really exist: real queries
attend to them (they take softmax weight), and the windows of real queries are the
windows of the *padded* grid. But they are zero vectors (padding comes after the
LayerNorm) recreated in every layer, so they never carry information from a real
token. The dependency among real tokens is therefore the padded grid's mask
restricted to real queries and real keys::

    Lp = max(L, k * d) ;  M = dense_mask(Lp, k, s, d)[:L, :L]

and we report receptive fields on the ``L`` real tokens only. ``pad_to_window=False``
refuses short axes instead (the plain NA rule).

Analytic formulas and where they fail
-------------------------------------
Away from the borders, one layer of kernel ``k`` and dilation ``d`` adds ``(k-1)/2 * d``
on each side, so ``l`` layers with dilations ``d_1..d_l`` reach::

    extent = 1 + (k - 1) * sum_i d_i            # NA (all d_i = 1): l (k - 1) + 1

(odd ``k``). It is exact for a query far enough from both ends that no window in the
chain is shifted inward, and when the axis is long enough to hold it. Near a border the
windows shift inward instead of being cut, so the field is lopsided and usually
*smaller* (a corner query of three NA layers with k=7 sees 13 tokens, not 19); and it
is always capped at ``L``. The formula gives the extent, not the count: the sum of the
offset sets has no holes when every ``d_i <= 1 + (k - 1) * sum_{j<i} d_j`` (taking the
layers smallest dilation first), which holds for DiNAT's [1, d, 1] patterns but not
for a lone dilated layer (``k`` tokens spread over ``1 + (k-1) d``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil

import numpy as np

from dinat_ref.checks import Bools, Ints, as_tuple, check_window_args
from dinat_ref.neighborhood import dense_mask

__all__ = [
    "layer_dependency",
    "receptive_fields_1d",
    "receptive_field",
    "analytic_extent",
    "RFStats",
    "rf_stats",
    "stage_lengths",
    "StageRF",
    "preset_stage_rfs",
    "preset_table",
    "format_dilations",
]


# ----------------------------------------------------------------------------------------
# One layer, many layers
# ----------------------------------------------------------------------------------------

def layer_dependency(length: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                     is_causal: bool = False, pad_to_window: bool = True) -> np.ndarray:
    """``M[q, j]``: output ``q`` of one NA/DiNA layer depends on input ``j``. ``(L, L)`` bool.

    Args:
        length: L, real tokens on the axis.
        kernel_size, stride, dilation, is_causal: the layer's window (see :mod:`dinat_ref.neighborhood`).
        pad_to_window: if True and ``k * d > L``, follow DiNAT: pad to ``k * d`` with zero
            tokens at the end, use the padded grid's windows, keep real tokens only.
    """
    check_window_args(length, kernel_size, stride, dilation, is_causal,
                      where="layer_dependency", check_fit=not pad_to_window)
    padded = max(length, kernel_size * dilation) if pad_to_window else length
    mask = dense_mask(padded, kernel_size, stride, dilation, is_causal)  # (Lp, Lp)
    mask = mask[:length, :length]  # (L, L) real queries, real keys: padding carries nothing
    return mask | np.eye(length, dtype=bool)  # (L, L) the residual: a token always depends on itself


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean matrix product ``(a o b)[q, j] = any_m a[q, m] and b[m, j]``."""
    return (a.astype(np.int64) @ b.astype(np.int64)) > 0  # counts paths, then "at least one"


def receptive_fields_1d(length: int, kernel_size: int, dilations: Sequence[int], stride: int = 1,
                        is_causal: bool = False, pad_to_window: bool = True) -> np.ndarray:
    """Exact receptive field after each layer of a 1-D stack: ``(n_layers, L, L)`` bool.

    ``rf[l, q, j]`` is True iff input token ``j`` of the stack can change output ``q`` of
    layer ``l + 1``. Layer ``i`` uses ``dilations[i]``.

    >>> rf = receptive_fields_1d(56, 7, [1, 1, 1])
    >>> int(rf[-1, 28].sum())          # three NA layers: 3 * (7 - 1) + 1
    19
    >>> int(receptive_fields_1d(56, 7, [1, 8, 1])[-1, 28].sum())   # DiNA: the whole axis
    56
    """
    if len(dilations) == 0:
        raise ValueError("receptive_fields_1d: dilations=[] has no layers; give one dilation per layer.")
    rf = np.eye(length, dtype=bool)  # (L, L) zero layers: each token sees itself
    out = []
    for d in dilations:
        m = layer_dependency(length, kernel_size, stride, int(d), is_causal, pad_to_window)  # (L, L)
        rf = _compose(m, rf)  # (L, L) the new layer reads the previous layer's outputs
        out.append(rf)
    return np.stack(out)  # (n_layers, L, L)


def receptive_field(
    shape: Ints,
    kernel_size: Ints,
    dilations: Sequence[Ints],
    stride: Ints = 1,
    is_causal: Bools = False,
    pad_to_window: bool = True,
) -> np.ndarray:
    """Exact N-D receptive field after the whole stack: ``(N, N)`` bool, row-major cells.

    Built as the Kronecker product of per-axis fields (see the module docstring); O(N^2)
    memory, so small grids only. ``dilations[i]`` is layer ``i``'s dilation (int or per axis).
    """
    shape, kernel_size, stride, _, is_causal = check_window_args(
        shape, kernel_size, stride, 1, is_causal, where="receptive_field", check_fit=False
    )
    ndim = len(shape)
    per_layer = [as_tuple(d, ndim, f"dilations[{i}]", "receptive_field") for i, d in enumerate(dilations)]
    rf = np.ones((1, 1), dtype=bool)
    for a in range(ndim):
        axis_rf = receptive_fields_1d(
            shape[a], kernel_size[a], [d[a] for d in per_layer], stride[a], is_causal[a], pad_to_window
        )[-1]  # (L_a, L_a)
        rf = np.kron(rf, axis_rf).astype(bool)  # row-major: the new axis is the fastest
    return rf  # (N, N)


def analytic_extent(kernel_size: int, dilations: Sequence[int]) -> int:
    """``1 + (k - 1) * sum(d_i)``: the extent of the field away from borders (odd ``k``).

    For ``l`` plain NA layers this is ``l * (k - 1) + 1``.
    """
    return 1 + (kernel_size - 1) * int(sum(dilations))


@dataclass(frozen=True)
class RFStats:
    """Per-query summary of a ``(L, L)`` receptive-field matrix.

    Attributes:
        count: (L,) tokens in the field.
        lo, hi: (L,) first and last token in the field.
        extent: (L,) ``hi - lo + 1``; equals ``count`` iff the field has no holes.
    """

    count: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    extent: np.ndarray


def rf_stats(rf: np.ndarray) -> RFStats:
    """Summarize ``rf`` (``(L, L)`` bool, one row per query)."""
    L = rf.shape[1]
    idx = np.arange(L)
    lo = np.where(rf, idx, L).min(axis=1)  # (L,)
    hi = np.where(rf, idx, -1).max(axis=1)  # (L,)
    return RFStats(count=rf.sum(axis=1), lo=lo, hi=hi, extent=hi - lo + 1)


# ----------------------------------------------------------------------------------------
# DiNAT presets, stage by stage
# ----------------------------------------------------------------------------------------

def _preset(name: str) -> tuple[list[int], int, list[list[int]], int]:
    """(depths, kernel_size, dilations, resolution) of a preset of :mod:`dinat_ref.config`."""
    from dinat_ref.config import PRESET_RESULTS, PRESETS

    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is unknown; choose one of {sorted(PRESETS)}.")
    p = PRESETS[name]
    return list(p["depths"]), int(p["kernel_size"]), [list(d) for d in p["dilations"]], \
        int(PRESET_RESULTS[name]["resolution"])


def stage_lengths(image_size: int, n_stages: int = 4) -> list[int]:
    """Tokens per axis in each stage: the patch embedding (two 3x3 stride-2 convs, padding 1)
    divides by 4, each downsampler (3x3 stride-2 conv, padding 1) by 2, rounding up.

    >>> stage_lengths(224)
    [56, 28, 14, 7]
    """
    n = ceil(ceil(image_size / 2) / 2)
    out = [n]
    for _ in range(n_stages - 1):
        n = ceil(n / 2)
        out.append(n)
    return out


@dataclass(frozen=True)
class StageRF:
    """Receptive field of one DiNAT stage, in that stage's tokens, per axis.

    Attributes:
        preset, image_size, stage: which model, at which input resolution, which stage (0-based).
        length: real tokens per axis; ``padded``: the longest padded axis any layer used.
        kernel_size, dilations: the stage's layers.
        analytic: ``1 + (k - 1) * sum(d)``, uncapped.
        center: tokens in the field of the middle query (``L // 2``).
        min_count, max_count: smallest / largest field over all queries.
        full_fraction: fraction of queries whose field is the whole axis.
        layers_to_full: layers after which every query sees the whole axis (None: never).
        na_center: ``center`` for the same stage with every dilation set to 1 (an NA-only model).
        na_min_count: ``min_count`` for that NA-only stage.
    """

    preset: str
    image_size: int
    stage: int
    length: int
    padded: int
    kernel_size: int
    dilations: tuple[int, ...]
    analytic: int
    center: int
    min_count: int
    max_count: int
    full_fraction: float
    layers_to_full: int | None
    na_center: int
    na_min_count: int


def preset_stage_rfs(preset: str = "mini", image_size: int | None = None) -> list[StageRF]:
    """Exact per-stage receptive fields of a DiNAT preset at ``image_size`` x ``image_size``.

    ``preset`` is a name from :data:`dinat_ref.config.PRESETS`; ``image_size`` defaults
    to the resolution the preset was trained at (224, or 384 for the ``-384`` ones).

    The 2-D field of a query is the product of its per-axis fields (square input: the
    same on both axes), so the 2-D count is ``center ** 2`` for the middle cell.
    """
    try:
        depths, k, dilations, resolution = _preset(preset)
    except ValueError as err:
        raise ValueError(f"preset_stage_rfs: {err}") from None
    image_size = resolution if image_size is None else int(image_size)
    rows = []
    for stage, (L, dils) in enumerate(zip(stage_lengths(image_size, len(depths)), dilations, strict=True)):
        rfs = receptive_fields_1d(L, k, dils)  # (layers, L, L)
        count = rfs[-1].sum(axis=1)  # (L,)
        full = [i + 1 for i in range(len(dils)) if rfs[i].all()]
        na_count = receptive_fields_1d(L, k, [1] * len(dils))[-1].sum(axis=1)  # (L,) NA-only stage
        rows.append(StageRF(
            preset=preset, image_size=image_size, stage=stage, length=L, padded=max(L, k * max(dils)),
            kernel_size=k,
            dilations=tuple(dils), analytic=analytic_extent(k, dils), center=int(count[L // 2]),
            min_count=int(count.min()), max_count=int(count.max()), full_fraction=float((count == L).mean()),
            layers_to_full=full[0] if full else None, na_center=int(na_count[L // 2]),
            na_min_count=int(na_count.min()),
        ))
    return rows


def preset_table(presets: Sequence[str] | None = None, image_size: int | None = None) -> str:
    """A Markdown table of :func:`preset_stage_rfs` for several presets (default: all)."""
    from dinat_ref.config import PRESETS

    presets = list(PRESETS) if presets is None else list(presets)
    lines = [
        "Per-stage receptive field, per axis, in the stage's tokens (exact)",
        "",
        "| preset | input | stage | tokens (padded to) | k | dilations | 1+(k-1)sum(d) | middle query | "
        "min..max over queries | whole axis after layer | NA-only: middle, min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in presets:
        for r in preset_stage_rfs(p, image_size):
            pad = f"{r.length} ({r.padded})" if r.padded > r.length else f"{r.length}"
            full = "never" if r.layers_to_full is None else f"{r.layers_to_full} of {len(r.dilations)}"
            lines.append(
                f"| {p} | {r.image_size} | {r.stage + 1} | {pad} | {r.kernel_size} | "
                f"{format_dilations(r.dilations)} | "
                f"{r.analytic} | {r.center} | "
                f"{r.min_count}..{r.max_count} | {full} | {r.na_center}, {r.na_min_count} |"
            )
    return "\n".join(lines)


def format_dilations(dils: Sequence[int]) -> str:
    """[1, 2, 1, 2, ...] written compactly: '[1, 2] x 9'."""
    d = list(dils)
    for p in (1, 2):
        if len(d) > 2 * p + 1 and len(d) % p == 0 and d == d[:p] * (len(d) // p):
            return f"{d[:p]} x {len(d) // p}"
    return str(d)
