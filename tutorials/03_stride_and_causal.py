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
# # 3. Stride and causal windows
#
# Tutorials 1 and 2 used two of NA's four knobs, kernel size $k$ and dilation $d$. The
# other two change *which* window a query gets:
#
# * **causal** (`is_causal=True`): a query sees only itself and keys before it. Used on
#   axes that are *time*: a language or audio sequence, the frame axis of a video (causal
#   in time, ordinary NA in space), anything generated or streamed one step at a time.
# * **stride** $s$: $s$ consecutive queries share one window. Every query still scores $k$
#   keys, but tiles of queries need fewer distinct keys, and with $s = k$ NA becomes
#   ordinary blocked (window) attention. Stride is a speed knob (NATTEN's *Generalized
#   Neighborhood Attention*), not a downsampler: the output keeps every query.
#
# DiNAT itself uses neither ($s = 1$, non-causal); both are part of NATTEN's API, and
# kernels you write or verify (tutorial 8) must get them right. As before, every window
# comes from the one shared rule, `dinat_ref.neighborhood`; where we write one by hand,
# we check it against the rule. Runs in a few seconds.

# %%
import matplotlib.pyplot as plt
import numpy as np

from dinat_ref.neighborhood import axis_windows, dense_mask, neighbor_indices, neighbors_of
from dinat_ref.numpy import na1d, na3d
from dinat_ref.viz.windows import plot_mask, plot_neighborhood_panel

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Causal: the window ends at the query
#
# Per axis, with the query at position $i$ (dilation 1), a causal window of size $k$ is
#
# $$\{\, j : \max(i - k + 1,\ 0) \le j \le i \,\}.$$
#
# Early queries have fewer than $k$ keys (query 0 sees only itself): unlike the
# non-causal window, a causal one cannot shift inward, since shifting would look into the
# future. The neighbor table keeps $k$ slots and marks the missing ones invalid.

# %%
L, k = 14, 4
causal = dense_mask(L, k, is_causal=True)  # (L, L)
i = np.arange(L)[:, None]  # (L, 1) queries
j = np.arange(L)[None, :]  # (1, L) keys
by_hand = (j <= i) & (j >= np.maximum(i - k + 1, 0))  # (L, L)
assert (causal == by_hand).all()
keys, valid = neighbor_indices(L, k, is_causal=True)  # (L, k) each
print("keys per query:", causal.sum(axis=1))
print("query 2: slots", keys[2], "valid", valid[2])
fig = plot_neighborhood_panel(L, [0, 2, 7, 13], kernel_size=k, is_causal=True)
plt.show()  # a window with a GUI backend, inline in a notebook, nothing headless

# %% [markdown]
# Causal means *no information from the future*. Check it the way a model would feel
# it: perturb token 9's key and value and see which outputs move. Exactly the queries
# that have 9 in their window, $9 \le i \le 9 + k - 1$, and none before it.

# %%
q, kk, v = (rng.standard_normal((1, L, 1, 8)) for _ in range(3))  # (B, L, heads, dim)
out = na1d(q, kk, v, kernel_size=k, is_causal=True)
kk2, v2 = kk.copy(), v.copy()
kk2[0, 9] += 1.0
v2[0, 9] += 1.0
moved = np.flatnonzero(np.abs(na1d(q, kk2, v2, kernel_size=k, is_causal=True) - out).max(axis=(0, 2, 3)) > 0)
print("outputs that change when token 9 changes:", moved.tolist())
assert moved.tolist() == list(range(9, 9 + k))

# %% [markdown]
# ### Causal in time, NA in space: video
#
# In N-D, causality is per axis. A video clip of shape (frames, H, W) is typically
# causal along frames only: a pixel sees a $k \times k$ spatial window in the current and
# previous frames, never in later ones. Changing frame 5 changes no output in frames 0-4:

# %%
T, H, W = 8, 6, 6
q3, k3, v3 = (rng.standard_normal((1, T, H, W, 1, 8)) for _ in range(3))  # (B, T, H, W, heads, dim)
causal_t = (True, False, False)
o3 = na3d(q3, k3, v3, kernel_size=3, is_causal=causal_t)
v3b = v3.copy()
v3b[0, 5] += 1.0  # (H, W, heads, dim) change every pixel of frame 5
changed = np.abs(na3d(q3, k3, v3b, kernel_size=3, is_causal=causal_t) - o3).max(axis=(0, 2, 3, 4, 5)) > 0
print("frames whose output changes:", np.flatnonzero(changed).tolist())
assert np.flatnonzero(changed).tolist() == [5, 6, 7]

# %% [markdown]
# ## 2. Stride: queries share a window
#
# With stride $s$, the queries of a group $\lfloor i / s \rfloor$ all take the window of
# the group's *leader*, its middle query $\ell = \lfloor i / s \rfloor s + \lfloor s/2
# \rfloor$ (clamped to the axis), and then the usual inward shift applies:
#
# $$\text{start}(i) = \operatorname{clamp}\big(\ell - \lfloor k/2 \rfloor,\ 0,\ L - k\big),
#   \qquad \text{keys} = \text{start}, \dots, \text{start} + k - 1 .$$
#
# By hand, checked against the rule, for $L = 13$, $k = 5$, $s = 3$:

# %%
L, k, s = 13, 5, 3
leader = np.minimum((np.arange(L) // s) * s + s // 2, L - 1)  # (L,)
start = np.clip(leader - k // 2, 0, L - k)  # (L,)
assert (start == axis_windows(L, k, stride=s).start).all()
for i_q in range(L):
    print(f"query {i_q:2d}: stride group {i_q // s}, leader {leader[i_q]:2d}, keys "
          f"{[n[0] for n in neighbors_of(i_q, L, kernel_size=k, stride=s)]}")

# %% [markdown]
# Note the last group: query 12 alone, its leader clamped to the last token, and its
# window shifted inward onto group 3's. The first group's window is shifted inward like
# any NA window. In 2-D each axis has its own
# stride; below, $k = (3, 5)$ and $s = (2, 3)$ on 10x13, and the dots mark the queries
# that share the drawn window (at the borders that can be more than one stride group,
# since inward shifts can make two groups' windows coincide):

# %%
fig = plot_neighborhood_panel((10, 13), [(0, 0), (4, 5), (5, 3), (9, 12)], kernel_size=(3, 5), stride=(2, 3))
plt.show()

# %% [markdown]
# ### What stride buys
#
# Stride leaves the work per query unchanged ($k$ logits each). What changes is the
# *union* of the windows of a tile of consecutive queries, the keys a fused kernel must
# load for that tile. For a tile of $t$ queries away from the borders, the windows slide
# one token per query and the union is $k + t - 1$ keys; with stride $s$ (dividing $t$,
# tiles aligned with the stride groups) they slide $s$ tokens per group and the union is
# $k + t - s$: exactly $k$ when $s = t$. Below $t = 6$, $k = 6$. The masks show it:
# stride turns the band into blocks.

# %%
L, k = 24, 6
for s in (1, 2, 3, 6):
    keys_s, _ = neighbor_indices(L, k, stride=s)  # (L, k)
    unions = [len(set(keys_s[t:t + 6].ravel().tolist())) for t in range(0, L, 6)]  # tiles of 6 queries
    print(f"stride {s}: distinct windows {len({tuple(r) for r in keys_s.tolist()}):2d}, "
          f"keys per 6-query tile {unions}")
fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), layout="constrained")
for ax, s in zip(axes, (1, 3, 6), strict=True):
    plot_mask(L, kernel_size=k, stride=s, ax=ax, title=f"k={k}, stride {s}")
plt.show()

# %% [markdown]
# ### Stride = kernel size: blocked attention
#
# With $s = k$ and $L$ a multiple of $k$, the leader of group $b$ is $bk + \lfloor k/2
# \rfloor$ and its window starts at $bk$: every query attends exactly to its own block of
# $k$ tokens. That is *window attention* (Swin's windows without the shift; tutorial 4
# compares the two). Stride interpolates between NA ($s = 1$) and blocked attention.

# %%
L, k = 24, 6
blocked = (np.arange(L)[:, None] // k) == (np.arange(L)[None, :] // k)  # (L, L) same block
assert (dense_mask(L, k, stride=k) == blocked).all()
print(f"L={L}, k=s={k}: NA with stride k is exactly block-diagonal attention over {L // k} blocks")

# %% [markdown]
# ## 3. Stride and causal together, and the full rule
#
# Causal windows with stride take the window of the *last* query of the stride group
# (the leader), so that no query of the group is cut short, and then stop at each query:
#
# $$\ell = \min\big(\lfloor i / s \rfloor s + s - 1,\ L - 1\big), \qquad
#   \text{keys}(i) = \max(\ell - k + 1, 0), \dots, i .$$
#
# With dilation all of this happens inside the query's dilation group, with $i$ replaced
# by its position $i' = \lfloor i / d \rfloor$ there and $L$ by the group's length (the
# full rule is in the README and in `dinat_ref/neighborhood.py`).

# %%
L, k, s = 12, 4, 3
for i_q in (0, 1, 2, 3, 5, 11):
    seen = [n[0] for n in neighbors_of(i_q, L, k, stride=s, is_causal=True)]
    print(f"causal, k={k}, s={s}: query {i_q:2d} sees {seen}")

# %% [markdown]
# ## What to remember
#
# * Causal: keys $\max(i - k + 1, 0) \dots i$; early queries see fewer keys; per axis, so
#   a video can be causal in time and not in space. No information flows from the future.
# * Stride $s$: groups of $s$ queries share their leader's window. Same FLOPs per query,
#   fewer distinct keys per tile; $s = k$ is blocked window attention.
# * Both live inside the dilation group when $d > 1$.
#
# ## Exercises
#
# The cell below computes the solutions with the library; the test suite checks them
# against independent computations.
#
# 1. Causal, $k = 4$, $L = 14$: the keys of query 2 and of query 9.
# 2. How many (query, key) pairs does the causal mask of exercise 1 hold?
# 3. Stride $s = 3$, $k = 5$, $L = 12$: which queries share query 4's window, and what
#    is that window? And query 10's?
# 4. $L = 56$, $k = s = 7$: how many distinct windows are there?
# 5. Causal with stride, $L = 12$, $k = 4$, $s = 3$: the keys of query 3.

# %%
import json  # noqa: E402


def sharing(i_q, length, kernel_size, stride):
    keys_, _ = neighbor_indices(length, kernel_size, stride=stride)
    return np.flatnonzero((keys_ == keys_[i_q]).all(axis=1)).tolist()


keys56, _ = neighbor_indices(56, 7, stride=7)
solutions = {
    "1_causal_q2": [n[0] for n in neighbors_of(2, 14, 4, is_causal=True)],
    "1_causal_q9": [n[0] for n in neighbors_of(9, 14, 4, is_causal=True)],
    "2_causal_pairs": int(dense_mask(14, 4, is_causal=True).sum()),
    "3_share_q4": sharing(4, 12, 5, 3),
    "3_window_q4": [n[0] for n in neighbors_of(4, 12, 5, stride=3)],
    "3_share_q10": sharing(10, 12, 5, 3),
    "3_window_q10": [n[0] for n in neighbors_of(10, 12, 5, stride=3)],
    "4_distinct_windows": len({tuple(r) for r in keys56.tolist()}),
    "5_causal_stride_q3": [n[0] for n in neighbors_of(3, 12, 4, stride=3, is_causal=True)],
}
print("SOLUTIONS", json.dumps(solutions))
