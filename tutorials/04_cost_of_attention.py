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
# # 4. What attention costs: NA vs global attention vs Swin windows
#
# Why bother with neighborhoods at all? Because global self-attention costs grow with the
# *square* of the number of tokens, and images have many. This tutorial counts FLOPs and
# memory for three choices, then measures them on this machine (as ratios: absolute times
# on a shared CPU are noise), and ends with why NA rather than Swin's windows.
#
# * **global** attention: every token attends to all $N$ tokens;
# * **NA / DiNA**: every token attends to $k^2$ neighbors (2-D, $k \times k$ window);
# * **Swin windows**: the grid is cut into non-overlapping $w \times w$ windows, each token
#   attends to its window's $w^2$ tokens.
#
# Runs in well under a minute on 2 CPU cores (PyTorch).

# %%
import time

import numpy as np
import torch
import torch.nn.functional as F

from dinat_ref.neighborhood import neighbor_indices
from dinat_ref.torch import explain_backend, na2d, na2d_av, na2d_qk

torch.manual_seed(0)
torch.set_num_threads(1)  # one thread: steadier ratios on a shared machine


def best_time(fn, repeat=7):
    """Minimum wall time of ``repeat`` calls after one warm-up (the least noisy estimate)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


# %% [markdown]
# ## 1. Counting FLOPs
#
# For one head with $C$ channels over $N$ tokens, the two products of attention each cost
# one multiply and one add per (query, key, channel):
#
# $$\underbrace{s = q k^\top}_{\text{logits}} \quad\text{and}\quad
#   \underbrace{o = p\, v}_{\text{weighted sum}}
#   : \qquad 2 N C \cdot (\text{keys per query}) \text{ FLOPs each.}$$
#
# | | keys per query | $q \cdot k$ and $a \cdot v$, each | attention weights stored |
# |---|---|---|---|
# | global | $N$ | $2 N^2 C$ | $N^2$ |
# | NA, DiNA ($k \times k$) | $k^2$ | $2 N C k^2$ | $N k^2$ |
# | Swin ($w \times w$ windows) | $w^2$ | $2 N C w^2$ | $N w^2$ |
#
# Global attention is quadratic in $N$, NA linear; the ratio is $N / k^2$. Dilation does
# not appear: a DiNA query still has $k^2$ keys, just spread out, so **dilation costs
# nothing extra**. With $w = k$ Swin's windows cost the same FLOPs as NA.
#
# We count the pairs the rule actually makes (every valid (query, key) slot) rather than
# trusting the formula, for DiNAT-Mini's first stage at 224x224: a 56x56 grid, $C = 64$
# channels (2 heads of 32: the FLOPs over all heads are those of $C$ channels).

# %%
H = W = 56
N, C, k = H * W, 64, 7
for d in (1, 8):
    _, valid = neighbor_indices((H, W), k, dilation=d)  # (N, k*k)
    pairs = int(valid.sum())
    print(f"NA d={d}: {pairs:,} (query, key) pairs = N k^2 = {N * k * k:,}; "
          f"q.k FLOPs 2*pairs*C = {2 * pairs * C / 1e6:.1f} M")
print(f"global:  {N * N:,} pairs; q.k FLOPs 2 N^2 C = {2 * N * N * C / 1e6:.0f} M, "
      f"{N * N / (N * k * k):.0f}x NA (N / k^2 = {N / k**2:.0f})")

# %% [markdown]
# The rest of a transformer layer is per token: the $q, k, v$ and output projections cost
# $4 \cdot 2 N C^2$ and the MLP (ratio $r$) $2 \cdot 2 N r C^2$. With NA, attention is a
# small part of a layer; with global attention at this resolution it dominates:

# %%
proj, mlp = 8 * N * C**2, 4 * N * 3 * C**2  # DiNAT-Mini's MLP ratio is 3
for name, keys_per_query in (("NA k=7", k * k), ("global", N)):
    att = 2 * 2 * N * C * keys_per_query  # q.k and a.v
    print(f"{name:7s}: attention {att / 1e6:7.1f} MFLOPs = {att / (att + proj + mlp):5.1%} of the layer "
          f"(projections {proj / 1e6:.0f} M, MLP {mlp / 1e6:.0f} M)")

# %% [markdown]
# ## 2. Memory
#
# An implementation that materializes the attention weights stores $N^2$ numbers per head
# and image for global attention and $N k^2$ for NA. At float32, per head and image:

# %%
for side in (56, 112, 224):
    n = side * side
    print(f"{side:3d}x{side:<3d} ({n:6,} tokens): global {4 * n * n / 2**20:9.1f} MiB, "
          f"NA k=7 {4 * n * 49 / 2**20:6.2f} MiB")

# %% [markdown]
# At 224x224 tokens (a 896-pixel image after the 4x stem) global attention would need
# almost 10 GiB per head per image for its weights alone.
#
# ## 3. Measured: NA vs global vs Swin windows
#
# Now the clocks. Three implementations of one attention layer on the 56x56 grid, 2 heads
# of 32 channels, all in PyTorch on this CPU:
#
# * **global**: `F.scaled_dot_product_attention` over all 3136 tokens;
# * **Swin windows**: cut the grid into 8x8 windows of 7x7, attend inside each (a reshape
#   and one batched `scaled_dot_product_attention`);
# * **NA** with $k = 7$ and $d = 1$ or $d = 8$: `dinat_ref.torch.na2d` (its tiled backend,
#   section 4).

# %%
B, heads, hd = 1, 2, 32
q, kk, v = (torch.randn(B, H, W, heads, hd) for _ in range(3))  # (B, H, W, heads, dim), heads last


def global_attention(q, k, v):
    flat = [t.reshape(B, H * W, heads, hd).transpose(1, 2) for t in (q, k, v)]  # (B, heads, N, hd)
    return F.scaled_dot_product_attention(*flat)  # (B, heads, N, hd)


def swin_windows(q, k, v, w=7):
    def part(t):  # (B, H, W, heads, hd) -> (B * windows, heads, w*w, hd)
        t = t.reshape(B, H // w, w, W // w, w, heads, hd).permute(0, 1, 3, 5, 2, 4, 6)
        return t.reshape(-1, heads, w * w, hd)
    return F.scaled_dot_product_attention(part(q), part(k), part(v))


with torch.inference_mode():
    t_global = best_time(lambda: global_attention(q, kk, v))
    t_swin = best_time(lambda: swin_windows(q, kk, v))
    t_na1 = best_time(lambda: na2d(q, kk, v, 7))
    t_na8 = best_time(lambda: na2d(q, kk, v, 7, dilation=8))
print(f"56x56, k=7: time relative to NA (d=1):  global {t_global / t_na1:5.1f}x   Swin windows "
      f"{t_swin / t_na1:5.2f}x   NA d=8 {t_na8 / t_na1:5.2f}x")
print(f"FLOP ratio global / NA: {N / 49:.0f}x")

# %% [markdown]
# The exact ratios depend on the machine (run it again and they move), but the order is
# stable. Global attention is many times slower, though usually by less than the 64x of
# the FLOP count: its dense matmuls run close to the CPU's peak, NA's overlapping windows
# less so (the tiled path computes each tile against the *union* of its windows, a few
# times NA's FLOPs, to use dense matmuls). Swin windows are the fastest: disjoint
# windows are plain dense matmuls with no mask and no overlap. NA with $d = 8$ is not
# slower than $d = 1$: the tiled backend regroups the tokens by dilation, and each group
# is an ordinary NA problem. Here it is even faster, because $56 = 7 \cdot 8$ makes each
# dilation group 7x7, exactly one window: dense attention with no mask.
#
# **Scaling.** Double the side, four times the tokens: global attention's time should
# grow about 16x, NA's about 4x.

# %%
ratios = {}
with torch.inference_mode():
    for side in (28, 56):
        x = [torch.randn(1, side, side, heads, hd) for _ in range(3)]
        flat = [t.reshape(1, side * side, heads, hd).transpose(1, 2) for t in x]
        ratios[side] = (best_time(lambda: F.scaled_dot_product_attention(*flat)),  # noqa: B023
                        best_time(lambda: na2d(*x, 7)))  # noqa: B023
print(f"28x28 -> 56x56 (4x tokens): global {ratios[56][0] / ratios[28][0]:.1f}x slower, "
      f"NA {ratios[56][1] / ratios[28][1]:.1f}x slower")

# %% [markdown]
# (Small problems are dominated by fixed overheads, so the measured growth is usually
# below the FLOP growth; the trend is what matters. `benchmarks/bench_torch_na.py`
# measures up to 224x224.)
#
# ## 4. Why fused kernels matter, and what the tiled and flex paths do
#
# The textbook way to compute NA is *unfused*: compute the logits $(N, k^2)$, store them,
# softmax them, store the weights, then gather the values. Each step reads and writes the
# whole $(N, k^2)$ tensor in memory, and moving numbers is slower than multiplying them.
# A **fused** kernel does all three steps on a tile of queries in fast on-chip memory
# (the FlashAttention recipe: online softmax, logits never written out). On a GPU this is
# what NATTEN's kernels do (since 0.20 NATTEN ships only fused kernels).
#
# This package has two pure-PyTorch paths:
#
# * `backend="torch"` (tiled): regroups tokens by dilation, cuts the queries into tiles,
#   gives each tile the union of its windows as one contiguous key block, and runs
#   `scaled_dot_product_attention` on (tile, block) with the rule as an additive mask.
#   The same math as NA; fused by SDPA; memory $O(N \cdot \text{block})$, never $O(N^2)$.
# * `backend="flex"`: PyTorch's `flex_attention` with a `BlockMask` built from the rule:
#   blocks of (query tile, key tile) that hold no neighbor are skipped entirely, and a
#   `score_mod` adds the RPB. Compiled on CUDA; on CPU forward only (for cross-checks).
#
# The unfused pair `na2d_qk` + softmax + `na2d_av` against the fused `na2d`, same numbers:

# %%
with torch.inference_mode():
    def unfused():
        return na2d_av(na2d_qk(q, kk, 7).softmax(dim=-1), v, 7)  # logits (B, H, W, heads, 49) stored
    t_unfused = best_time(unfused)
    assert torch.allclose(unfused(), na2d(q, kk, v, 7), atol=1e-5)
print(f"unfused qk -> softmax -> av: {t_unfused / t_na1:.1f}x the time of fused na2d; "
      f"stores {B * N * heads * 49 * 4 / 2**20:.2f} MiB of logits and again of weights")
print(explain_backend(q, kk, v, 7, dilation=8))

# %% [markdown]
# ## 5. Why NA and not Swin's windows?
#
# Swin's windows are cheaper to compute (above), so why neighborhoods? Two reasons:
#
# 1. **Translation equivariance.** Shift the input by one token and NA's output shifts by
#    one token (away from the borders): every query sees the same relative neighborhood
#    wherever it is, like a convolution. Swin's windows are fixed to the grid: a token at
#    a window's edge sees only one side, its neighbor across the edge sees a different
#    window entirely, and shifting the input changes which tokens share a window.
# 2. **No shifted or cyclic windows.** Disjoint windows never talk to each other, so Swin
#    alternates with *shifted* windows, implemented by a cyclic shift of the grid and a
#    mask for the tokens that wrapped around. NA's windows overlap, so information flows
#    across the grid layer by layer without any of that, and its receptive field grows
#    like a convolution's (tutorial 2).
#
# Check 1 on a 1-D sequence: shift the input right by 3 tokens, shift the output back, and
# compare with the unshifted output at the interior tokens:

# %%
L1, k1 = 64, 7
x1 = torch.randn(1, L1 + 3, 1, 16)  # (B, L + 3, heads, dim): a longer signal to cut two views from
a, b = x1[:, :L1], x1[:, 3:]  # b is a shifted left by 3: b[i] = a[i + 3]


def na_1d(x):
    from dinat_ref.torch import na1d
    return na1d(x, x, x, k1)


def window_1d(x, w=8):
    t = x.reshape(1, L1 // w, w, 16)  # (B, windows, w, dim): disjoint windows of 8 tokens
    return F.scaled_dot_product_attention(t, t, t).reshape(1, L1, 1, 16)


with torch.inference_mode():
    interior = slice(8, L1 - 11)
    na_err = (na_1d(a)[:, 3:][:, interior] - na_1d(b)[:, interior]).abs().max().item()
    win_err = (window_1d(a)[:, 3:][:, interior] - window_1d(b)[:, interior]).abs().max().item()
print(f"shift by 3, interior tokens: NA output moves with the input (max diff {na_err:.1e}); "
      f"window attention does not (max diff {win_err:.2f})")
assert na_err < 1e-5 and win_err > 0.1

# %% [markdown]
# ## What to remember
#
# * $q \cdot k$ and $a \cdot v$ cost $2 N C \times$ (keys per query) each: $2 N^2 C$ global,
#   $2 N C k^2$ for NA and DiNA (dilation is free), $2 N C w^2$ for Swin windows.
# * Memory of the weights: $N^2$ vs $N k^2$ per head.
# * Fused kernels never write the logits out; the tiled torch path gets there with SDPA on
#   tiles, the flex path with a block-sparse mask.
# * NA is translation-equivariant and needs no shifted or cyclic windows.
#
# ## Exercises
#
# The cell below computes the solutions; the test suite checks them against closed forms.
#
# 1. FLOPs of $q \cdot k$ (all heads together, $C = 128$ channels) for DiNAT-Mini's
#    stage 2: a 28x28 grid, $k = 7$, dilation 4.
# 2. For a 112x112 grid and $k = 7$: how many times more logits does global attention
#    compute than NA?
# 3. Bytes of float32 attention weights, one head, one image, for NA on a 112x112 grid
#    with $k = 7$; and for global attention.
# 4. For which number of tokens $N$ does global attention's $q \cdot k$ cost as much as the
#    four $C \times C$ projections, with $C = 64$?
# 5. A Swin window of $w = 7$ and NA with $k = 7$ on a 56x56 grid: the ratio of their
#    $q \cdot k$ FLOPs.

# %%
import json  # noqa: E402


def qk_flops(shape, channels, kernel_size=None, dilation=1):
    """2 * C * (number of valid (query, key) pairs), counted from the rule (None: global)."""
    n = int(np.prod(shape))
    if kernel_size is None:
        return 2 * channels * n * n
    _, valid_ = neighbor_indices(shape, kernel_size, dilation=dilation)
    return 2 * channels * int(valid_.sum())


solutions = {
    "1_stage2_qk_flops": qk_flops((28, 28), 128, 7, dilation=4),
    "2_global_over_na_112": qk_flops((112, 112), 1) // qk_flops((112, 112), 1, 7),
    "3_bytes_na_112": 4 * int(neighbor_indices((112, 112), 7)[1].sum()),
    "3_bytes_global_112": 4 * (112 * 112) ** 2,
    "4_tokens_qk_equals_projections": next(n for n in range(1, 10**4) if 2 * n * n * 64 >= 8 * n * 64 * 64),
    "5_swin_over_na": (2 * 64 * 56 * 56 * 7 * 7) / qk_flops((56, 56), 64, 7),
}
print("SOLUTIONS", json.dumps(solutions))
