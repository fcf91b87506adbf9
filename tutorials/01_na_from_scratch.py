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
# # 1. Neighborhood attention from scratch, in NumPy
#
# Neighborhood attention (NA, [Hassani et al. 2022](https://arxiv.org/abs/2204.07143)) is
# self-attention in which every query looks only at the ``k`` keys nearest to it. In this
# tutorial we build it up from plain dense attention:
#
# 1. dense attention, and dense attention with a mask;
# 2. the naive sliding-window mask, and why NA *shifts* windows at the borders instead;
# 3. dilation (DiNA): the same window, every ``d``-th token;
# 4. the *gather* form: never build the ``L x L`` matrix, gather ``k`` neighbors per query;
# 5. even kernel sizes, the relative positional bias, 2-D grids.
#
# Every window below comes from one place, `dinat_ref.neighborhood` (the shared rule);
# where we write a window by hand, we check it against that rule.
# Runs on a CPU in a few seconds; run it as a script or open it as a notebook (jupytext).

# %%
import time

import numpy as np

from dinat_ref.neighborhood import dense_mask, neighbor_indices, neighbors_of, rpb_indices
from dinat_ref.numpy import na1d, na2d
from dinat_ref.viz.terminal import render_neighborhood

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Dense attention, with a mask
#
# For queries, keys and values $q, k, v$ of shape $(L, d_{head})$:
#
# $$s_{ij} = \frac{q_i \cdot k_j}{\sqrt{d_{head}}}, \qquad
#   p_{ij} = \frac{e^{s_{ij}}}{\sum_{j'} e^{s_{ij'}}}, \qquad
#   o_i = \sum_j p_{ij}\, v_j .$$
#
# $s$ are the logits, $(L, L)$; each row of $p$ sums to 1. A boolean mask $(L, L)$
# removes pairs: $s_{ij} = -\infty$ where the mask is False, so $e^{s_{ij}} = 0$ gives
# exactly zero weight there. Every local-attention scheme can be written this way; only
# the mask changes.


# %%
def dense_attention(q, k, v, mask=None):
    """Softmax attention over all keys. q, k, v: (L, dim); mask: (L, L) bool or None."""
    s = q @ k.T / np.sqrt(q.shape[-1])  # (L, L) logits
    if mask is not None:
        s = np.where(mask, s, -np.inf)  # (L, L) masked pairs get zero weight
    s = s - s.max(axis=-1, keepdims=True)  # (L, L) stable: exp never overflows
    p = np.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)  # (L, L) rows sum to 1
    return p @ v  # (L, dim)


L, dim = 16, 8
q, k, v = (rng.standard_normal((L, dim)) for _ in range(3))  # (L, dim) each
print("dense attention output:", dense_attention(q, k, v).shape)

# %% [markdown]
# ### One query, step by step
#
# The three formulas for a single query, drawn: its logits against every key, the softmax
# that turns them into weights, and the weighted sum of the value rows. Below, query 5
# under NA with $k = 5$ (the mask of the next section): the masked logits are $-\infty$,
# their weights exactly 0, and the output is a mix of 5 value rows only.

# %%
import matplotlib.pyplot as plt  # noqa: E402

i_q, kernel = 5, 5
allowed = dense_mask(L, kernel)[i_q]  # (L,) NA's keys for query 5, from the shared rule
s_row = q[i_q] @ k.T / np.sqrt(dim)  # (L,) step 1: s_j = q . k_j / sqrt(dim)
s_row = np.where(allowed, s_row, -np.inf)  # (L,) masked keys: -inf
p_row = np.exp(s_row - s_row.max())
p_row /= p_row.sum()  # (L,) step 2: softmax
o_row = p_row @ v  # (dim,) step 3: o = sum_j p_j v_j
assert np.allclose(o_row, dense_attention(q, k, v, dense_mask(L, kernel))[i_q])

fig, axes = plt.subplots(1, 4, figsize=(13, 2.8), width_ratios=[3, 3, 3, 1.2], layout="constrained")
shown = np.where(allowed, s_row, np.nan)
axes[0].bar(np.arange(L), np.nan_to_num(shown), color="C0")
axes[0].scatter(np.flatnonzero(~allowed), np.zeros((~allowed).sum()), marker="x", color="gray")
axes[0].set_title(r"1. logits $q_5 \cdot k_j / \sqrt{d}$ (x: masked, $-\infty$)", fontsize=9)
axes[1].bar(np.arange(L), p_row, color="C1")
axes[1].set_title(r"2. softmax: weights $p_{5j}$, sum 1", fontsize=9)
axes[2].imshow(p_row[:, None] * v, aspect="auto", cmap="RdBu", vmin=-2, vmax=2)
axes[2].set_title(r"3. weighted rows $p_{5j} v_j$ (rows = keys $j$)", fontsize=9)
axes[3].imshow(o_row[:, None], aspect="auto", cmap="RdBu", vmin=-2, vmax=2)
axes[3].set_title("4. output $o_5$", fontsize=9)
for ax in axes[:2]:
    ax.set_xlabel("key j")
axes[2].set_xlabel("dim"), axes[2].set_ylabel("key j"), axes[3].set_xticks([]), axes[3].set_ylabel("dim")
plt.show()  # a window with a GUI backend, inline in a notebook, nothing headless

# %% [markdown]
# ## 2. A sliding window, and NA's fix at the borders
#
# The obvious local mask keeps keys within ``k // 2`` of the query: ``|i - j| <= k // 2``.
# In the middle of the sequence each query gets ``k`` keys. At the ends it does not:
# the window hangs over the edge and the query loses keys.

# %%
i = np.arange(L)[:, None]  # (L, 1) queries
j = np.arange(L)[None, :]  # (1, L) keys
sliding = np.abs(i - j) <= kernel // 2  # (L, L)
print("keys per query, sliding window:", sliding.sum(axis=1))

# %% [markdown]
# NA keeps every window ``k`` keys long by **shifting it inward** at the borders: the
# window starts at ``i - k // 2`` but is clamped into ``[0, L - k]``. A query near the
# start sees the first ``k`` tokens, a query near the end the last ``k``. (Written with
# ``np.clip``, one line; the shared rule `dense_mask` agrees.)

# %%
start = np.clip(np.arange(L) - kernel // 2, 0, L - kernel)  # (L,) first key of each window
na_mask = (j >= start[:, None]) & (j < start[:, None] + kernel)  # (L, L)
print("keys per query, NA:            ", na_mask.sum(axis=1))
assert (na_mask == dense_mask(L, kernel)).all()
print(render_neighborhood(L, 0, kernel_size=kernel))
print(render_neighborhood(L, L // 2, kernel_size=kernel, legend=False))

# %% [markdown]
# The two masks side by side: the naive sliding window loses keys in the corners (the
# band is cut), NA's band keeps its width $k$ and bends inward at both ends.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 4), layout="constrained")
for ax, m, name in ((axes[0], sliding, "naive sliding window: |i - j| <= k // 2"),
                    (axes[1], na_mask, "NA: window shifted inward at the borders")):
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1.4)
    ax.set_title(f"{name}\nkeys per query: {m.sum(axis=1).min()}..{m.sum(axis=1).max()}", fontsize=9)
    ax.set_xlabel("key j"), ax.set_ylabel("query i")
plt.show()

# %% [markdown]
# The corner query is no longer in the middle of its window: that is the price of always
# having ``k`` keys (and it is what makes NA's receptive field lopsided near borders; see
# tutorial 2).
#
# ## 3. Dilation: DiNA
#
# Dilated NA ([Hassani & Shi 2022](https://arxiv.org/abs/2209.15001)) spreads the same
# ``k`` keys ``d`` tokens apart. Split the axis into ``d`` *dilation groups*
# (``i % d``); inside its group a query does plain NA (with the same inward shift), so in
# the full axis it sees every ``d``-th token. Here by hand, then checked against the rule:

# %%
d = 3
group = np.arange(L) % d  # (L,) which group each token is in
pos = np.arange(L) // d  # (L,) position inside the group
group_len = -(-(L - group) // d)  # (L,) tokens in that group, ceil((L - g) / d)
start_in_group = np.clip(pos - kernel // 2, 0, group_len - kernel)  # (L,) NA inside the group
start_full = start_in_group * d + group  # (L,) back to axis coordinates
dina_mask = (
    (j % d == group[:, None])  # same group only
    & (j >= start_full[:, None])
    & (j < start_full[:, None] + kernel * d)
)  # (L, L)
assert (dina_mask == dense_mask(L, kernel, dilation=d)).all()
print(render_neighborhood(L, L - 1, kernel_size=kernel, dilation=d))

# %% [markdown]
# Note $L = 16$ is not a multiple of $d = 3$: the groups hold 6, 5 and 5 tokens. Each
# group must hold at least $k$ tokens, which is why NA requires $k \cdot d \le L$. (The
# DiNAT *model* relaxes this by zero-padding short axes to $k \cdot d$; tutorial 2,
# section 7.)
#
# ## 4. The gather form
#
# Dense-with-a-mask builds ``L x L`` logits and throws most away. NA only ever needs
# ``k`` per query, so we build the table ``keys[i, t]`` (the ``t``-th neighbor of query
# ``i``) once and gather:
#
#     k_nb = k[keys]            (L, k, dim)   the neighbors' keys, side by side
#     s    = q . k_nb           (L, k)        logits, only the ones we need
#     out  = softmax(s) . v_nb  (L, dim)
#
# Memory is ``O(L k)`` instead of ``O(L^2)``. The table comes from the shared rule.

# %%
def gather_attention(q, k, v, kernel_size, dilation=1):
    keys, valid = neighbor_indices(q.shape[0], kernel_size, dilation=dilation)  # (L, k) x2
    k_nb, v_nb = k[keys], v[keys]  # (L, k, dim) each
    s = np.einsum("id,ikd->ik", q, k_nb) / np.sqrt(q.shape[-1])  # (L, k)
    s = np.where(valid, s, -np.inf)  # (L, k) only causal windows have invalid slots
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)  # (L, k)
    return np.einsum("ik,ikd->id", p, v_nb)  # (L, dim)


out_dense = dense_attention(q, k, v, dina_mask)
out_gather = gather_attention(q, k, v, kernel, dilation=d)
# The library version: layout (batch, L, heads, dim).
out_lib = na1d(q[None, :, None], k[None, :, None], v[None, :, None], kernel_size=kernel, dilation=d)[0, :, 0]
print("max |dense - gather| =", np.abs(out_dense - out_gather).max())
print("max |gather - na1d|  =", np.abs(out_gather - out_lib).max())
assert np.allclose(out_dense, out_gather) and np.allclose(out_gather, out_lib)

# %% [markdown]
# How much does skipping the ``L x L`` matrix save? A longer sequence (timings from this
# machine, as a ratio; both in NumPy):

# %%
L_big = 2048
qb, kb, vb = (rng.standard_normal((L_big, 32)) for _ in range(3))
mask_big = dense_mask(L_big, 7)
t0 = time.perf_counter()
a = dense_attention(qb, kb, vb, mask_big)
t_dense = time.perf_counter() - t0
t0 = time.perf_counter()
b = gather_attention(qb, kb, vb, 7)
t_gather = time.perf_counter() - t0
assert np.allclose(a, b)
print(f"L={L_big}, k=7: dense+mask {t_dense * 1e3:.0f} ms, gather {t_gather * 1e3:.0f} ms "
      f"({t_dense / t_gather:.1f}x); logits kept: {L_big * 7:,} instead of {L_big * L_big:,}")

# %% [markdown]
# ## 5. Even kernels, the positional bias, 2-D
#
# **Even ``k``** has no middle: NATTEN puts ``k / 2`` keys on the left and ``k / 2 - 1`` on
# the right. With ``k = 4`` a query in the middle sees ``i-2 .. i+1``:

# %%
print("k=4, query 8:", [n[0] for n in neighbors_of(8, 16, kernel_size=4)])
print("k=4, query 0:", [n[0] for n in neighbors_of(0, 16, kernel_size=4)], "(shifted inward)")
print("k=4, query 15:", [n[0] for n in neighbors_of(15, 16, kernel_size=4)])

# %% [markdown]
# **Relative positional bias (RPB).** NA adds a learned bias to each logit that depends
# only on the relative position: $s_{it} \mathrel{+}= B[(k - 1) + (j - i) / d]$, with $j$
# the key in slot $t$ (tutorial 5 works one out by hand). A table of $2k - 1$ entries
# covers every offset the shifted windows can produce: a corner query uses one end of the
# table, the middle query the middle.

# %%
idx = rpb_indices(L, kernel, dilation=d)[:, :, 0]  # (L, k) RPB entry per slot
keys, _ = neighbor_indices(L, kernel, dilation=d)  # (L, k) key per slot
for query in (0, 7, L - 1):
    print(f"query {query:2d}: keys {keys[query]}, rpb entries {idx[query]}")

# %% [markdown]
# **2-D.** On a grid, a key is a neighbor iff it is one on *every* axis: the 2-D window is
# the product of the per-axis windows, and the 2-D mask is the Kronecker product of the
# 1-D masks (cells numbered row-major). `na2d` is the gather form over that product.

# %%
H, W = 7, 9
mask_2d = dense_mask((H, W), 3, dilation=2)  # (63, 63)
assert (mask_2d == np.kron(dense_mask(H, 3, dilation=2), dense_mask(W, 3, dilation=2))).all()
q2, k2, v2 = (rng.standard_normal((1, H, W, 1, dim)) for _ in range(3))  # (B, H, W, heads, dim)
out2 = na2d(q2, k2, v2, kernel_size=3, dilation=2)[0, :, :, 0].reshape(H * W, dim)
flat = lambda x: x[0, :, :, 0].reshape(H * W, dim)  # (H*W, dim)
assert np.allclose(out2, dense_attention(flat(q2), flat(k2), flat(v2), mask_2d))
print(render_neighborhood((H, W), (0, 8), kernel_size=3, dilation=2))

# %% [markdown]
# The same neighborhood as a picture, next to its flattened ``Q x K`` mask (the view
# `flex_attention` users know): row 8 of the mask holds exactly the 9 neighbors of
# query (0, 8). In a notebook the figure shows below; `dinat-ref figures` writes it as
# `figures/grid_and_mask.png`.

# %%
import matplotlib.pyplot as plt  # noqa: E402

from dinat_ref.viz.windows import plot_grid_and_mask  # noqa: E402

fig = plot_grid_and_mask((H, W), (0, 8), kernel_size=3, dilation=2)
plt.show()  # a window in a script with a GUI backend; inline in a notebook; nothing headless

# %% [markdown]
# ## What to remember
#
# * NA = dense attention with a mask where each query keeps the ``k`` nearest keys,
#   windows **shifted inward** at borders (never cut, never zero-padded).
# * DiNA = NA inside each dilation group ``i % d``; needs ``k * d <= L``.
# * Compute it in gather form: ``O(L k)`` memory, same numbers as the masked dense form.
# * Even ``k``: ``k/2`` left, ``k/2 - 1`` right. RPB index: ``(k - 1) + (j - i) / d``.
# * N-D: the product of per-axis windows.
#
# Next: tutorial 2 stacks these layers and computes exactly what each token can see.

# %% [markdown]
# ## Exercises
#
# Try each by hand first, then check with the functions above. The cell below holds the
# solutions, computed with the library; the test suite checks them against independent
# computations (brute force and closed forms), so they stay right.
#
# 1. On $L = 16$ with $k = 5$, $d = 3$: which keys does query 15 attend to? Which does
#    query 1 attend to?
# 2. Even kernel, $k = 4$, $d = 2$, $L = 12$: the keys of query 6, and of query 11.
# 3. The RPB entries (indices into the table of $2k - 1$) read by query 0 for
#    $L = 16$, $k = 5$, $d = 3$. Why is no entry below $k - 1$ used?
# 4. How many entries of the $63 \times 63$ mask of the $7 \times 9$ grid ($k = 3$,
#    $d = 2$) are True? (Hint: every query keeps exactly $k^2$ keys.)
# 5. The gather form keeps $L k$ logits per head, the dense form $L^2$. For which $L$ does
#    dense attention keep 1000 times as many logits as NA with $k = 7$?

# %%
import json  # noqa: E402

solutions = {
    "1_keys_q15": [int(n[0]) for n in neighbors_of(15, 16, kernel_size=5, dilation=3)],
    "1_keys_q1": [int(n[0]) for n in neighbors_of(1, 16, kernel_size=5, dilation=3)],
    "2_keys_q6": [int(n[0]) for n in neighbors_of(6, 12, kernel_size=4, dilation=2)],
    "2_keys_q11": [int(n[0]) for n in neighbors_of(11, 12, kernel_size=4, dilation=2)],
    "3_rpb_q0": rpb_indices(16, 5, dilation=3)[0, :, 0].tolist(),
    "4_mask_true": int(dense_mask((7, 9), 3, dilation=2).sum()),
    "5_L_for_1000x": 7 * 1000,  # L^2 / (L k) = L / k = 1000
}
print("SOLUTIONS", json.dumps(solutions))
