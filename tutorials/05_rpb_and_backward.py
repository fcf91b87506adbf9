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
# # 5. Relative positional bias and the backward pass, by hand
#
# DiNAT adds a learned *relative positional bias* (RPB) to every attention logit, and
# trains it, like everything else, by backpropagation. Both are easy to state and easy
# to get wrong in a kernel (NATTEN 0.20+ dropped RPB altogether). Here we compute them by
# hand, number by number, and check each against the library:
#
# 1. one biased logit, then one query's output, against `na1d(..., rpb=)`;
# 2. the 2-D table and which entries a corner query reads;
# 3. the backward pass: $dq$, $dk$, $dv$ and $d\text{rpb}$ as scatter-adds, against
#    `na1d_backward` and PyTorch's autograd;
# 4. growing a $7 \times 7$ model's bias table to $11 \times 11$ by interpolation.
#
# Runs in a few seconds.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import dinat_ref.torch as dt
from dinat_ref.neighborhood import neighbor_indices, neighbors_of, rpb_indices
from dinat_ref.numpy import na1d, na1d_backward, na1d_qk, na2d, na2d_backward
from dinat_ref.viz.windows import plot_rpb

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. One biased logit
#
# For query $i$ and a key $j$ in its window (one head, head dimension $D$, dilation $d$),
#
# $$s_{ij} = \frac{q_i \cdot k_j}{\sqrt{D}} + B\big[(k - 1) + (j - i)/d\big],$$
#
# where $B$ has $2k - 1$ entries per head: one per relative offset the windows can
# produce, from $-(k - 1)$ (key far left) to $k - 1$ (key far right). The index is
# $(k - 1) + (j - i)/d$, an integer because $i$ and $j$ are in the same dilation group.
#
# Take $L = 9$, $k = 3$, $d = 2$ and the corner query $i = 0$. Its group is
# $\{0, 2, 4, 6, 8\}$; the window shifts inward to keys $0, 2, 4$: offsets $0, 1, 2$
# (in units of $d$), bias entries $2, 3, 4$.

# %%
L, k, d, D = 9, 3, 2, 4
q, kk, v = (rng.standard_normal((1, L, 1, D)) for _ in range(3))  # (B, L, heads, D)
rpb = rng.standard_normal((1, 2 * k - 1))  # (heads, 2k-1)

i, j = 0, 4
print("keys of query 0:", [n[0] for n in neighbors_of(i, L, kernel_size=k, dilation=d)])
index = (k - 1) + (j - i) // d  # 2 + 2 = 4
s_hand = q[0, i, 0] @ kk[0, j, 0] / np.sqrt(D) + rpb[0, index]
s_lib = na1d_qk(q, kk, k, dilation=d, rpb=rpb)[0, i, 0]  # (k,) the logits of query 0, one per slot
print(f"by hand: s[0, 4] = q.k/sqrt(D) + B[{index}] = {s_hand:.6f}; library slot 2: {s_lib[2]:.6f}")
assert np.isclose(s_hand, s_lib[2])

# %% [markdown]
# And the whole query: three logits, softmax, weighted sum of the three value rows.

# %%
keys = [n[0] for n in neighbors_of(i, L, kernel_size=k, dilation=d)]
s_row = np.array([q[0, i, 0] @ kk[0, j_, 0] / np.sqrt(D) + rpb[0, (k - 1) + (j_ - i) // d] for j_ in keys])
p_row = np.exp(s_row - s_row.max())
p_row /= p_row.sum()
o_hand = sum(p_ * v[0, j_, 0] for p_, j_ in zip(p_row, keys, strict=True))
o_lib = na1d(q, kk, v, k, dilation=d, rpb=rpb)[0, i, 0]
print("output of query 0, by hand:", o_hand.round(6), "\n                  library:", o_lib.round(6))
assert np.allclose(o_hand, o_lib)

# %% [markdown]
# ## 2. The 2-D table
#
# In 2-D the bias is a table of shape $(\text{heads}, 2k - 1, 2k - 1)$, indexed per axis:
# $B[(k - 1) + \Delta_\text{row}/d,\ (k - 1) + \Delta_\text{col}/d]$. A query in the
# middle reads the centered $k \times k$ block of it. A corner query's window is shifted
# inward, so all its keys lie to one side: it reads an off-center block. That is why the
# table has $2k - 1$ entries per axis and not $k$. Below the top-right query of a 9x12
# grid ($k = 3$, $d = 2$); each neighbor is labelled with its (row, column) entry.

# %%
fig = plot_rpb((9, 12), (0, 11), kernel_size=3, dilation=2)
plt.show()  # a window with a GUI backend, inline in a notebook, nothing headless
idx2 = rpb_indices((9, 12), 3, dilation=2)  # (N, K, 2)
print("query (0, 11) reads entries", sorted({tuple(r) for r in idx2[11].tolist()}))
print("query (4, 5) reads entries ", sorted({tuple(r) for r in idx2[4 * 12 + 5].tolist()}))

# %% [markdown]
# ## 3. The backward pass
#
# Write $t$ for a query's slots, $j(i, t)$ the key in slot $t$, $r(i, t)$ its bias entry,
# $c = 1/\sqrt{D}$, and $\bar{x} = \partial \mathcal{L} / \partial x$ for the gradient of the
# loss with respect to $x$; $\bar{o}_i$ arrives from above. The forward pass was
# $s_{it} = c\, q_i \cdot k_{j(i,t)} + B[r(i,t)]$, $p_{it} = \mathrm{softmax}_t(s_{it})$,
# $o_i = \sum_t p_{it} v_{j(i,t)}$. Going back:
#
# $$\bar{p}_{it} = \bar{o}_i \cdot v_{j(i,t)}, \qquad
#   \bar{s}_{it} = p_{it}\,\big(\bar{p}_{it} - \bar{o}_i \cdot o_i\big),$$
#
# $$\bar{q}_i = c \sum_t \bar{s}_{it}\, k_{j(i,t)}, \qquad
#   \bar{k}_j = c \sum_{(i,t):\ j(i,t) = j} \bar{s}_{it}\, q_i, \qquad
#   \bar{v}_j = \sum_{(i,t):\ j(i,t) = j} p_{it}\, \bar{o}_i,$$
#
# $$\bar{B}[r] = \sum_{(i,t):\ r(i,t) = r} \bar{s}_{it} .$$
#
# (The softmax step uses $\sum_t p_{it} \bar{p}_{it} = \bar{o}_i \cdot o_i$.) The sums
# "over every $(i, t)$ that used key $j$" or "that used entry $r$" are **scatter-adds**:
# walk over all (query, slot) pairs and add each one's contribution into the bin it used.
# In NumPy that is `np.add.at`, which, unlike `x[idx] += y`, adds repeated indices once
# per occurrence. One head, a longer axis:

# %%
L, k, d, D = 20, 5, 2, 8
q, kk, v = (rng.standard_normal((1, L, 1, D)) for _ in range(3))  # (B, L, heads, D)
rpb = rng.standard_normal((1, 2 * k - 1))  # (heads, 2k-1)
g = rng.standard_normal((1, L, 1, D))  # dL/do, any upstream gradient

keys, _ = neighbor_indices(L, k, dilation=d)  # (L, k) j(i, t)
r = rpb_indices(L, k, dilation=d)[:, :, 0]  # (L, k) r(i, t)
c = D ** -0.5
Q, K, V, G = q[0, :, 0], kk[0, :, 0], v[0, :, 0], g[0, :, 0]  # (L, D) each

# forward, as in section 1, for every query
s = c * np.einsum("id,itd->it", Q, K[keys]) + rpb[0, r]  # (L, k)
p = np.exp(s - s.max(axis=1, keepdims=True))
p /= p.sum(axis=1, keepdims=True)  # (L, k)
o = np.einsum("it,itd->id", p, V[keys])  # (L, D)

# backward
dp = np.einsum("id,itd->it", G, V[keys])  # (L, k) dL/dp = g . v_j
ds = p * (dp - (G * o).sum(axis=1, keepdims=True))  # (L, k) softmax backward
dq = c * np.einsum("it,itd->id", ds, K[keys])  # (L, D) a plain sum over the query's slots
dk, dv, drpb = np.zeros_like(K), np.zeros_like(V), np.zeros(2 * k - 1)
np.add.at(dk, keys, c * ds[:, :, None] * Q[:, None, :])  # (L, D) scatter-add into the keys used
np.add.at(dv, keys, p[:, :, None] * G[:, None, :])  # (L, D)
np.add.at(drpb, r, ds)  # (2k-1,) scatter-add into the bias entries used

out, lse = na1d(q, kk, v, k, dilation=d, rpb=rpb, return_lse=True)
lib = na1d_backward(g, q, kk, v, out, lse, k, dilation=d, rpb=rpb)  # dq, dk, dv, drpb
for name, mine, theirs in zip(("dq", "dk", "dv", "drpb"), (dq, dk, dv, drpb),
                              (lib[0][0, :, 0], lib[1][0, :, 0], lib[2][0, :, 0], lib[3][0]), strict=True):
    print(f"{name:4s}: max |hand - na1d_backward| = {np.abs(mine - theirs).max():.1e}")
    assert np.allclose(mine, theirs)

# %% [markdown]
# A third, independent opinion: PyTorch's autograd through `dinat_ref.torch.na1d`.

# %%
tq, tk, tv, tb = (torch.tensor(a, requires_grad=True) for a in (q, kk, v, rpb))
(dt.na1d(tq, tk, tv, k, dilation=d, rpb=tb) * torch.tensor(g)).sum().backward()  # L = sum(g * o)
print("autograd drpb:", tb.grad.numpy()[0].round(4))
print("hand     drpb:", drpb.round(4))
assert np.allclose(tb.grad.numpy()[0], drpb) and np.allclose(tk.grad.numpy()[0, :, 0], dk)

# %% [markdown]
# Which entries get most gradient? Count how many (query, slot) pairs read each entry:
# the middle entries are read by every interior query, the extreme ones
# ($0$ and $2k - 2$) only by queries whose window was pushed all the way to one side.

# %%
print("uses per bias entry:", np.bincount(r.ravel(), minlength=2 * k - 1).tolist())

# %% [markdown]
# The same in 2-D, one head: `drpb` from a scatter-add over both axes' indices.

# %%
H, W, k2 = 7, 9, 3
q2, k2_, v2 = (rng.standard_normal((1, H, W, 1, D)) for _ in range(3))  # (B, H, W, heads, D)
b2 = rng.standard_normal((1, 2 * k2 - 1, 2 * k2 - 1))
g2 = rng.standard_normal((1, H, W, 1, D))
out2, lse2 = na2d(q2, k2_, v2, k2, dilation=2, rpb=b2, return_lse=True)
keys2, _ = neighbor_indices((H, W), k2, dilation=2)  # (N, K)
idx2 = rpb_indices((H, W), k2, dilation=2)  # (N, K, 2)
Q2, K2, V2, G2 = (a[0, :, :, 0].reshape(H * W, D) for a in (q2, k2_, v2, g2))
s2 = c * np.einsum("nd,ntd->nt", Q2, K2[keys2]) + b2[0, idx2[..., 0], idx2[..., 1]]  # (N, K)
p2 = np.exp(s2 - s2.max(axis=1, keepdims=True))
p2 /= p2.sum(axis=1, keepdims=True)
O2 = out2[0, :, :, 0].reshape(H * W, D)  # (N, D)
ds2 = p2 * (np.einsum("nd,ntd->nt", G2, V2[keys2]) - (G2 * O2).sum(1, keepdims=True))  # (N, K)
drpb2 = np.zeros((2 * k2 - 1, 2 * k2 - 1))
np.add.at(drpb2, (idx2[..., 0], idx2[..., 1]), ds2)  # (2k-1, 2k-1)
lib2 = na2d_backward(g2, q2, k2_, v2, out2, lse2, k2, dilation=2, rpb=b2)[3][0]
print(f"2-D drpb: max |hand - na2d_backward| = {np.abs(drpb2 - lib2).max():.1e}")
assert np.allclose(drpb2, lib2)

# %% [markdown]
# ## 4. From a 7x7 bias to an 11x11 one
#
# A $7 \times 7$ model has a $13 \times 13$ table per head; an $11 \times 11$ kernel needs
# $21 \times 21$. To start an 11x11 model from 7x7 weights, everything else transfers
# unchanged (no other weight depends on $k$) and the table is resized, the way Swin
# resizes its relative-position tables when the window grows: bicubic interpolation
# with the corners aligned, so the centre entry (offset 0) and the two extremes stay
# where they were and the offsets in between are stretched by $20/12$. (Whether a
# particular published 11x11 checkpoint was started this way is a detail of its
# training; this is the mechanics.) Below a made-up smooth table, so the stretch shows:
# plotted over the same relative extent, the two look alike.

# %%
off = torch.arange(-6, 7, dtype=torch.float64)  # offsets -6..6 of a 7x7 kernel
bump = -0.05 * (off[:, None] ** 2 + 0.5 * off[None, :] ** 2)  # (13, 13) a made-up smooth bias
table7 = torch.stack([bump, bump.T + 0.1 * off[None, :]])  # (heads, 13, 13)
table11 = torch.nn.functional.interpolate(table7[None], size=(21, 21), mode="bicubic",
                                          align_corners=True)[0]  # (heads, 21, 21)
print("shape", tuple(table7.shape), "->", tuple(table11.shape))
print("centre kept:", torch.allclose(table11[:, 10, 10], table7[:, 6, 6]),
      "| corners kept:", torch.allclose(table11[:, 0, 0], table7[:, 0, 0]))
x = torch.randn(1, 24, 24, 2, 8)  # (B, H, W, heads, D)
print("an 11x11 layer runs with it:", tuple(dt.na2d(x, x, x, 11, rpb=table11.float()).shape))
fig, axes = plt.subplots(1, 2, figsize=(7, 3.3), layout="constrained")
for ax, t, name in ((axes[0], table7, "7x7 model: 13x13 table"), (axes[1], table11, "interpolated: 21x21")):
    ax.imshow(t[0].numpy(), cmap="viridis", extent=(-0.5, 0.5, 0.5, -0.5))
    ax.set_title(f"{name}, head 0", fontsize=9)
    ax.set_xlabel("column offset / table width"), ax.set_ylabel("row offset / table height")
plt.show()

# %% [markdown]
# ## What to remember
#
# * $s_{ij} = q_i \cdot k_j / \sqrt{D} + B[(k - 1) + (j - i)/d]$ per axis; a table of
#   $2k - 1$ per axis because border windows are shifted to one side.
# * Backward: $dq$ is a sum over the query's own slots; $dk$, $dv$ and $d\text{rpb}$ are
#   scatter-adds over every (query, slot) pair that used that key or entry.
# * A bigger kernel's table can be started by interpolating a smaller one.
#
# ## Exercises
#
# The cell below computes the solutions with the library; the test suite checks them
# against independent computations.
#
# 1. $L = 9$, $k = 3$, $d = 2$: the bias entries read by query 8 (the last token).
# 2. $L = 20$, $k = 5$, $d = 2$: how many (query, slot) pairs read bias entry 0, and how
#    many read the middle entry 4?
# 3. How many bias parameters does one NA layer with 4 heads and a $7 \times 7$ kernel
#    have? And one with $11 \times 11$?
# 4. If every slot of every query had $\partial \mathcal{L}/\partial s = 1$, what would
#    $d\text{rpb}$ be for the 1-D example of section 3 ($L = 20$, $k = 5$, $d = 2$)?
# 5. For $L = 12$, $k = 4$ (even), $d = 1$: the smallest and largest bias entries any
#    query reads.

# %%
import json  # noqa: E402

r20 = rpb_indices(20, 5, dilation=2)[:, :, 0]  # (20, 5)
r12 = rpb_indices(12, 4)[:, :, 0]
solutions = {
    "1_entries_q8": rpb_indices(9, 3, dilation=2)[8, :, 0].tolist(),
    "2_pairs_entry0": int((r20 == 0).sum()),
    "2_pairs_entry4": int((r20 == 4).sum()),
    "3_params_7x7": 4 * 13 * 13,
    "3_params_11x11": 4 * 21 * 21,
    "4_drpb_all_ones": np.bincount(r20.ravel(), minlength=9).tolist(),
    "5_min_entry": int(r12.min()),
    "5_max_entry": int(r12.max()),
}
print("SOLUTIONS", json.dumps(solutions))
