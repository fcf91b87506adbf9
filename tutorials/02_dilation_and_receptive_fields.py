# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Dilation and receptive fields: why DiNAT alternates NA and DiNA
#
# A token's *receptive field* is the set of input tokens that can change it. With
# dense attention it is everything after one layer. With neighborhood attention it grows
# layer by layer, and how fast decides what a model can relate. DiNAT
# ([Hassani & Shi 2022](https://arxiv.org/abs/2209.15001)) alternates plain NA layers with
# dilated ones (DiNA); this tutorial computes **exactly** why.
#
# `dinat_ref.receptive_field` composes neighborhoods: one layer (attention + residual +
# a per-token MLP) makes output ``q`` depend on its neighbors and itself, a boolean
# ``(L, L)`` matrix ``M``; a stack is the boolean product ``M_n ... M_1``. No estimate,
# no sampling. The same functions draw the figures in `figures/`.

# %%
import matplotlib.pyplot as plt
import numpy as np

from dinat_ref.neighborhood import dense_mask
from dinat_ref.receptive_field import (
    analytic_extent,
    layer_dependency,
    preset_stage_rfs,
    preset_table,
    receptive_fields_1d,
    rf_stats,
)
from dinat_ref.viz.rf import plot_preset_rf, plot_rf_2d, plot_rf_growth, plot_rf_per_query

L, k = 56, 7  # DiNAT's first stage at 224x224: 56 tokens per axis, 7x7 windows

# %% [markdown]
# ## 1. NA alone grows slowly
#
# Each NA layer adds $(k - 1) / 2$ tokens on each side, so $l$ layers see
# $l (k - 1) + 1$. Exactly, for the middle query and for the worst-placed one (at a
# border the window shifts inward, so the field grows on one side only):

# %%
rfs = receptive_fields_1d(L, k, [1] * 20)  # (20, L, L) after each of 20 NA layers
for layers in (1, 2, 3, 5, 10, 15, 20):
    count = rf_stats(rfs[layers - 1]).count  # (L,)
    print(f"{layers:2d} NA layers: middle query sees {count[L // 2]:2d}, worst query {count.min():2d}, "
          f"formula l(k-1)+1 = {layers * (k - 1) + 1}")
middle_full = 1 + int(np.argmax(rfs[:, L // 2].all(axis=1)))
all_full = 1 + int(np.argmax(rfs.all(axis=(1, 2))))
print(f"the middle query sees all {L} tokens after {middle_full} layers, every query after {all_full}")

# %% [markdown]
# The corner tokens are the slow ones: their windows are stuck against the border, so
# their field only grows on one side, ``(k - 1) / 2`` per layer. DiNAT's first stage has
# three layers.
#
# ## 2. DiNA alone never leaves its group
#
# A layer with dilation $d$ reaches $\frac{k - 1}{2} d$ to each side, but only inside
# its dilation group $i \bmod d$. Stack DiNA layers alone and the field keeps growing,
# $k - 1$ group members per layer, but a token never hears from the other $d - 1$
# groups, however deep the stack. On a 200-token axis (on 56 tokens, $k d = L$: one layer
# already covers the whole group, and the growth is invisible):

# %%
L_long = 200
for dils in ([8], [8, 8], [8, 8, 8]):
    rf = receptive_fields_1d(L_long, k, dils)[-1]  # (L_long, L_long)
    s = rf_stats(rf)
    groups = sorted(set((np.flatnonzero(rf[L_long // 2]) % 8).tolist()))
    print(f"dilations {dils}: middle query sees {s.count[L_long // 2]:2d} tokens spread over "
          f"{s.extent[L_long // 2]:3d}, all in dilation group(s) {groups}")

# %% [markdown]
# ## 3. Alternating: NA, DiNA, NA
#
# NA fills the gaps between the dilated keys; DiNA jumps far. Three layers with dilations
# $[1, 8, 1]$ (NA, DiNA, NA) reach $1 + (k - 1)(1 + 8 + 1) = 61 \ge 56$: the whole
# axis. The figure shows the middle query's field after each layer (rows), for three NA
# layers and for DiNAT's NA-DiNA-NA pattern.

# %%
stacks = {"NA-NA-NA [1, 1, 1]": [1, 1, 1], "NA-DiNA(8)-NA [1, 8, 1]": [1, 8, 1]}
fig = plot_rf_growth(L, k, stacks=stacks)
plt.show()
na = receptive_fields_1d(L, k, [1, 1, 1])[-1]
dina = receptive_fields_1d(L, k, [1, 8, 1])[-1]
print("NA-NA-NA: middle query sees", na[L // 2].sum(), "| NA-DiNA-NA: every query sees all:", dina.all())

# %% [markdown]
# ## 4. The formula, and where it fails
#
# For layers with dilations $d_1, \dots, d_l$ the field's extent is
#
# $$E = 1 + (k - 1) \sum_{i=1}^{l} d_i \qquad (\text{NA alone: } l (k - 1) + 1).$$
#
# Each layer widens the field by $\frac{k-1}{2} d_i$ on each side. This is exact for
# queries far enough from both ends that no window in the chain is shifted inward (and
# while it fits in $L$). It counts the *extent*; the field has no holes when, taking the
# smallest dilations first, each $d_i$ is at most the extent so far: $[1, 8, 1]$ sorted is
# $[1, 1, 8]$, extents 1, 7, 13, and $8 \le 13$, fine; $[8]$ alone: 7 tokens over 49;
# $[2, 2]$: half the tokens of its extent, one dilation group. Near the borders the exact
# field is smaller: the windows shift inward instead of reaching out.

# %%
for dils in ([1, 1, 1], [1, 4, 1], [1, 8, 1], [2, 2]):
    s = rf_stats(receptive_fields_1d(L, k, dils)[-1])
    f = analytic_extent(k, dils)
    reach = (k // 2) * sum(dils)  # how far the field reaches on each side of an interior query
    interior = np.arange(reach, L - reach)
    holds = str(bool((s.extent[interior] == f).all())) if len(interior) else "n/a (formula > L)"
    print(f"{str(dils):10s} formula {f:3d} | extent == formula for interior queries: {holds} | "
          f"count: query 0 {s.count[0]:2d}, middle {s.count[L // 2]:2d}, extent middle {s.extent[L // 2]:2d}")

fig = plot_rf_per_query(L, k, stacks=stacks)
plt.show()

# %% [markdown]
# So $[1, d, 1]$ covers $1 + (k - 1)(d + 2)$ tokens *with no holes* only when
# $d \le 2k - 1$ (the extent 13 of two NA layers, for $k = 7$) and away from the borders.
# On a long axis, $d = 13$ is still solid, $d = 14$ leaves gaps:

# %%
for d_mid in (13, 14):
    s = rf_stats(receptive_fields_1d(400, k, [1, d_mid, 1])[-1])
    print(f"[1, {d_mid}, 1] on 400 tokens, middle query: extent {s.extent[200]}, sees {s.count[200]} "
          f"(holes: {s.extent[200] - s.count[200]})")

# %% [markdown]
# ### Exponential growth: $d_i = k^{i-1}$
#
# The DiNAT paper notes that dilations growing as $d_i = k^{i-1}$ make the receptive field
# grow *exponentially* with depth. It follows from the formula: the sum is geometric,
#
# $$1 + (k - 1) \sum_{i=1}^{l} k^{i-1} = 1 + (k - 1) \frac{k^l - 1}{k - 1} = k^l ,$$
#
# and there are no holes, since $d_i = k^{i-1}$ equals the extent after $i - 1$ layers.
# Exactly, with $k = 3$ on 81 tokens ($3^4$; the last layer needs $k d = 81 \le L$):

# %%
k3, dils3 = 3, [1, 3, 9, 27]
rfs3 = receptive_fields_1d(81, k3, dils3)  # (4, 81, 81)
for layer in range(4):
    s = rf_stats(rfs3[layer])
    print(f"{layer + 1} layers, dilations {dils3[:layer + 1]}: middle query sees {s.count[40]:2d} "
          f"= 3^{layer + 1} = {3 ** (layer + 1)}")

# %% [markdown]
# ## 5. In 2-D it is the product
#
# A 2-D key is a neighbor iff it is one on both axes, so the 2-D dependency matrix is the
# Kronecker product of the per-axis ones, and so is the receptive field: a rectangle of
# (rows seen) x (columns seen). On DiNAT's 56x56 first-stage grid, after NA then DiNA
# with $d = 8$ ($k d = 56$ fits exactly), the field of the middle query is a 7x7 array of
# 7x7 blocks with one-token gaps; one more NA layer fills it.

# %%
fig = plot_rf_2d((56, 56), k, stacks=stacks)
plt.show()

# %% [markdown]
# ## 6. Every DiNAT stage, every preset
#
# At 224x224 the four stages have 56, 28, 14 and 7 tokens per axis, and the dilations
# are chosen so that ``k * d`` just fits: ``7 * 8 = 56``, ``7 * 4 = 28``, ``7 * 2 = 14``.
# The table (per axis, in each stage's own tokens; the 2-D field is the square) compares
# each stage with an NA-only model of the same depth:

# %%
print(preset_table(["mini", "tiny", "large-384"]))
fig = plot_preset_rf()
plt.show()

# %% [markdown]
# Every 224 preset sees its whole stage in every stage (NA-only would see 19 of 56
# tokens in stage 1). Both 384 models' first stages are exceptions, with 96 tokens:
# `large-384` ($k = 7$, $d = 13$) reaches $1 + 6 \cdot 15 = 91 < 96$, so no query sees
# the whole axis; `large-11x11-384` ($k = 11$, $d = 8$) reaches $1 + 10 \cdot 10 = 101$,
# so the middle queries see all 96, but most queries see 93 to 95: the windows of the
# layers shift inward near the borders and the reach is lost there. Only a few percent of
# the queries cover the axis:

# %%
for r in preset_stage_rfs("large-11x11-384")[:1]:
    print(f"large-11x11-384 stage 1: {r.length} tokens; fraction of queries that see the whole axis: "
          f"{r.full_fraction:.2f}")
#
# ## 7. Short axes: DiNAT pads, and the padding is real
#
# At other resolutions an axis can be shorter than ``k * d`` (at 128x128 stage 1 has 32
# tokens but dilation 8 needs 56). DiNAT then pads the tokens with zeros **at the end**
# up to ``k * d``, runs attention on the padded axis, and crops. The padded tokens exist:
# real queries attend to them, they take softmax weight, and the windows of real
# queries are those of the padded axis. But they are zero vectors made fresh in every
# layer, so they carry nothing from any real token. We therefore compute the field on
# real tokens from the padded mask restricted to real tokens:
# ``dense_mask(k * d)[:L, :L]`` (what `layer_dependency` does; the tests check it against
# a real padded stack, perturbing one input token at a time).

# %%
L_small, d = 32, 8
padded = dense_mask(k * d, k, dilation=d)  # (56, 56) the axis attention really runs on
on_padding = padded[:L_small, L_small:].sum(axis=1)  # (32,) keys of each real query that are zeros
print(f"{L_small} tokens, k={k}, d={d}: padded to {k * d}; each real query has {k} keys, of which "
      f"{on_padding.min()}..{on_padding.max()} are padding")
m = layer_dependency(L_small, k, dilation=d)  # (32, 32) real-token dependencies of one layer
print("query 0 depends on real tokens", np.nonzero(m[0])[0].tolist(), "(its whole dilation group)")
for r in preset_stage_rfs("mini", image_size=128):
    print(f"stage {r.stage + 1}: {r.length} tokens padded to {r.padded}; every query sees the whole axis: "
          f"{r.full_fraction == 1.0}")

# %% [markdown]
# ## What to remember
#
# * NA alone: ``l (k - 1) + 1``, linear in depth; DiNA alone: stuck in its dilation group.
# * Alternating $[1, d, 1]$ reaches $1 + (k - 1)(d + 2)$ tokens, with no holes while
#   $d \le 2k - 1$; DiNAT picks $d = L / k$ so each stage sees its whole axis after a few
#   layers. Dilations $d_i = k^{i-1}$ grow the field as $k^l$.
# * The formula is the extent for interior queries; near borders the exact field is smaller.
# * In 2-D the field is the product of the per-axis fields.
# * Short axes are padded to ``k * d``; padded tokens take attention weight, never information.

# %% [markdown]
# ## Exercises
#
# Work them out with the formula first, then check with `receptive_fields_1d`. The cell
# below computes the solutions with the library; the test suite checks them against an
# independent brute force.
#
# 1. DiNAT-mini's stage 3 has six layers with dilations $[1, 2, 1, 2, 1, 2]$, $k = 7$.
#    What extent does the formula give?
# 2. With $k = 7$, what is the largest $d$ for which $[1, d, 1]$ leaves no holes around
#    an interior query?
# 3. How many NA layers ($k = 7$, $d = 1$) until the middle query of a 56-token axis sees
#    all 56 tokens?
# 4. With $k = 7$ and dilations $d_i = 7^{i-1}$, how many layers until an interior
#    query's field spans 2401 tokens?
# 5. A 32-token axis with $k = 7$, $d = 8$ is padded to 56. How many of query 0's 7 keys
#    are real tokens?

# %%
import json  # noqa: E402


def first_full_layer(rfs_: np.ndarray, query: int) -> int:
    """1-based index of the first layer after which ``query`` sees every token."""
    return 1 + int(np.argmax(rfs_[:, query].all(axis=1)))


def has_holes(dils: list[int], length: int = 400) -> bool:
    s = rf_stats(receptive_fields_1d(length, 7, dils)[-1])
    return bool(s.extent[length // 2] != s.count[length // 2])


solutions = {
    "1_extent_mini_stage3": analytic_extent(7, [1, 2] * 3),
    "2_max_hole_free_d": max(d for d in range(1, 30) if not has_holes([1, d, 1])),
    "3_na_layers_middle_full": first_full_layer(receptive_fields_1d(56, 7, [1] * 12), 28),
    "4_layers_for_2401": next(n for n in range(1, 10)
                              if analytic_extent(7, [7 ** i for i in range(n)]) >= 2401),
    "5_real_keys_q0": int(layer_dependency(32, 7, dilation=8)[0].sum()),
}
print("SOLUTIONS", json.dumps(solutions))
