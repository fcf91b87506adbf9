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
# # 8. Verify your own neighborhood-attention kernel
#
# Sooner or later everyone who uses neighborhood attention writes their own kernel: in
# Triton, CUDA, Metal, JAX, or as a mask for `flex_attention`. The index logic is easy
# to get *almost* right: borders, dilation groups, even kernels, strides and causal
# windows each have a trap. `dinat_ref.testing` makes the float64 NumPy reference the
# judge: it runs your kernel on curated edge cases and a seeded random sweep, prints a
# table, and for the first failure **probes your kernel** to say how it is wrong.
#
# In this tutorial we
#
# 1. write a small NA kernel in NumPy, with the most common bug there is;
# 2. run the verifier and read its diagnosis;
# 3. fix the kernel and watch it pass;
# 4. see a second kind of bug (a missing scale) diagnosed;
# 5. wire the check into pytest and the command line;
# 6. verify a JAX kernel, gradients included.
#
# Everything runs on a CPU in a few seconds.

# %%
import importlib.util
import tempfile
from pathlib import Path

import numpy as np

from dinat_ref.testing import verify

# %% [markdown]
# ## 1. A kernel with a classic bug
#
# A query ``i`` on an axis of length ``L`` attends to ``k`` keys spaced ``d`` apart. The
# tempting way to write the window is "center it on ``i``, then clamp it into the axis":
#
#     start = clamp(i - (k // 2) * d, 0, L - 1 - (k - 1) * d)
#
# This is right for ``d = 1``. With dilation it is wrong at the borders: clamping on the
# *full* axis can move the window into a different dilation group, so a query ends up
# attending to keys that are not ``d``-spaced from it at all. The rule
# (`dinat_ref.neighborhood`) clamps *inside the query's dilation group* instead.
#
# Our kernel supports 1D and 2D, no stride, no causal masking, no relative positional
# bias; we will declare those limits to the verifier so it skips such cases instead of
# failing them.


# %%
def axis_window(L: int, k: int, d: int, group_aware: bool) -> np.ndarray:
    """Key index of each slot of each query on one axis: (L, k)."""
    i = np.arange(L)
    if not group_aware:  # the bug: clamp on the full axis
        start = np.clip(i - (k // 2) * d, 0, L - 1 - (k - 1) * d)  # (L,)
        return start[:, None] + d * np.arange(k)  # (L, k)
    g, ig = i % d, i // d  # dilation group of i, and i's position inside it
    group_len = -(-(L - g) // d)  # ceil((L - g) / d) tokens in the group
    start = np.clip(ig - k // 2, 0, group_len - k)  # clamp inside the group
    return (start[:, None] + np.arange(k)) * d + g[:, None]  # (L, k) back to full-axis indices


def make_na(group_aware: bool, apply_scale: bool = True):
    """A fused NA kernel for 1D/2D NumPy arrays, heads last: (B, *spatial, heads, dim)."""

    def my_na(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None):
        ndim = q.ndim - 3
        shape = q.shape[1 : 1 + ndim]
        ks = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,) * ndim
        ds = dilation if isinstance(dilation, tuple) else (dilation,) * ndim
        # Flat key index of every (query, slot): product of the per-axis windows, row-major.
        keys = np.zeros((1, 1), dtype=np.int64)
        for L, kk, d in zip(shape, ks, ds, strict=True):
            w = axis_window(L, kk, d, group_aware)  # (L, kk)
            keys = (keys[:, None, :, None] * L + w[None, :, None, :]).reshape(keys.shape[0] * L, -1)
        B, H, D = q.shape[0], q.shape[-2], q.shape[-1]
        qf, kf, vf = (x.reshape(B, -1, H, D) for x in (q, k, v))  # (B, N, H, D)
        s = 1.0 if not apply_scale else (D**-0.5 if scale is None else scale)
        logits = np.einsum("bnhd,bnkhd->bnhk", qf * s, kf[:, keys])  # (B, N, H, K)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)  # softmax over the K neighbors
        return np.einsum("bnhk,bnkhd->bnhd", p, vf[:, keys]).reshape(v.shape)

    return my_na


buggy_na = make_na(group_aware=False)

# %% [markdown]
# ## 2. Run the verifier
#
# `verify` takes the kernel and its limits. It finds out by itself that the kernel takes
# NumPy arrays: it calls it once on a small case with torch, JAX and NumPy inputs and
# keeps what runs and returns the same kind of array (`array="numpy"` would skip that
# step). `dims=(1, 2)`, `rpb=False`, `causal=False` and `stride=False` say what it
# implements. We test float64 and float32: each dtype is
# compared with the float64 reference on the same (rounded) inputs, with tolerance
# 1e-10 and 1e-4.

# %%
report = verify(buggy_na, dims=(1, 2), dtypes=("float64", "float32"),
                rpb=False, causal=False, stride=False, progress=False, name="buggy_na")
print(report.table(show_passed=False, show_skipped=False))
print()
print(report.notes[0])  # what was detected, and what the other array libraries raised
print(report.summary())
assert not report.passed

# %% [markdown]
# The cases without dilation pass (the naive clamp is right there), every dilated case
# fails, and the cases with a stride, causal masking or an RPB were skipped, as declared.
# Now the diagnosis. The verifier took the first failing case and called the kernel
# again with ``q = k = 0``: all logits are then equal, so a correct kernel spreads its
# attention uniformly over the query's neighbors. With one-hot values (``v_j = e_j``)
# the output of each query *is* its row of attention weights, so the verifier can read
# off which keys the kernel really attended to, and compare with the rule:

# %%
print(report.diagnosis)
assert report.diagnosis.kind == "wrong_window"

# %% [markdown]
# The diagnosis names the first query with a wrong neighborhood, lists the extra and
# missing keys, and notices that the extra keys lie in another dilation group (the
# letters in the grid are the dilation groups). That points straight at the clamp.
#
# The same picture can be saved as a figure: the error of every query on the grid, and
# the expected vs observed neighborhood of the first wrong query.

# %%
figure_path = Path(tempfile.mkdtemp()) / "buggy_na_errors.png"
report.save_figure(str(figure_path))
print("saved", figure_path, figure_path.stat().st_size, "bytes")

# %% [markdown]
# ## 3. Fix it
#
# Clamp inside the dilation group (``group_aware=True`` above): the query's position in
# its group is ``i // d``, the group has ``ceil((L - g) / d)`` tokens, and the window is
# shifted inward there, then mapped back with ``j = j' * d + g``.

# %%
fixed_na = make_na(group_aware=True)
report = verify(fixed_na, array="numpy", dims=(1, 2), dtypes=("float64", "float32"),
                rpb=False, causal=False, stride=False, progress=False, name="fixed_na")
print(report.summary())
assert report.passed, report

# %% [markdown]
# ## 4. A different bug, a different diagnosis
#
# Forgetting the ``1 / sqrt(head_dim)`` scale leaves every neighborhood right. The
# verifier then runs a second probe: queries and keys chosen so that the expected
# logits are known numbers ``c_j``; the slope of the observed ``log p`` against ``c_j``
# is the scale the kernel really applied.

# %%
unscaled_na = make_na(group_aware=True, apply_scale=False)
report = verify(unscaled_na, array="numpy", dims=(1, 2), dtypes=("float64",),
                rpb=False, causal=False, stride=False, progress=False, name="unscaled_na")
print(report.summary())
print(report.diagnosis.message)
assert report.diagnosis.kind == "wrong_scale"

# %% [markdown]
# ## 5. In your test suite and on the command line
#
# One line in a test file turns the suite into one parametrized pytest test per case
# (failures carry the diagnosis in their message; skipped cases carry the reason):
#
# ```python
# # tests/test_my_kernel.py
# from dinat_ref.testing import pytest_suite
# from my_package import my_na
#
# test_my_na = pytest_suite(my_na, dims=(1, 2), rpb=False, causal=False, stride=False)
# ```
#
# And from a shell, for any importable function (`my_kernels:my_na` finds `my_kernels.py`
# in the current folder, as `python -m` would; or `path/to/file.py:function`), with exit
# status 1 on failure. There every case runs in a worker process that is stopped after
# `--timeout` seconds, so a kernel that hangs on one case cannot hang the run:
#
# ```
# dinat-ref verify my_kernels:my_na --dims 1,2 --no-rpb --no-causal --no-stride
# dinat-ref verify natten:na2d --dims 2 --head-dims 8,16,32,64 --no-rpb --backward no
# ```
#
# For torch kernels the verifier also checks gradients (dq, dk, dv, and drpb) against
# the reference's hand-derived backward pass whenever the output carries autograd; an
# explicit backward kernel (`bwd=`, NATTEN style `bwd(d_out, q, k, v, out, lse, ...)`) is
# checked the same way.
#
# ## 6. A JAX kernel
#
# The same call verifies a kernel written with `jax.numpy`: the verifier detects JAX
# arrays, compares the forward pass in float32 (float64 needs `jax_enable_x64`) and gets
# the gradients through `jax.vjp`. Here the kernel is dense attention with the rule's
# mask from `dinat_ref.neighborhood.dense_mask` (fine for small grids), and a copy that
# cuts the gradient to the keys, which only the backward check can catch. (Skipped when
# JAX is not installed: `pip install "dinat-ref[jax]"`.)

# %%
if importlib.util.find_spec("jax") is None:
    print("JAX is not installed; skipping the JAX section.")
else:
    import jax
    import jax.numpy as jnp

    from dinat_ref.neighborhood import dense_mask

    def jax_na(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None):
        mask = jnp.asarray(dense_mask(q.shape[1:-2], kernel_size, stride, dilation, is_causal))  # (N, N)
        B, heads, D = q.shape[0], q.shape[-2], q.shape[-1]
        qf, kf, vf = (x.reshape(B, -1, heads, D) for x in (q, k, v))  # (B, N, heads, D)
        logits = jnp.einsum("bnhd,bmhd->bhnm", qf * (D ** -0.5 if scale is None else scale), kf)
        p = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)  # (B, heads, N, N)
        return jnp.einsum("bhnm,bmhd->bnhd", p, vf).reshape(v.shape)

    def jax_na_keys_detached(q, k, v, **kw):
        return jax_na(q, jax.lax.stop_gradient(k), v, **kw)

    report = verify(jax_na, dims=(1,), rpb=False, n_random=0, progress=False, name="jax_na")
    print(report.notes[0].split(";")[0] + ")")
    print(report.summary())
    assert report.passed, report
    report = verify(jax_na_keys_detached, dims=(1,), rpb=False, n_random=0, progress=False,
                    name="jax_na_keys_detached")
    print(report.summary())
    print(report.diagnosis.message)
    assert report.diagnosis.kind == "wrong_backward"

# %% [markdown]
# ## Exercises
#
# The cell below computes the solutions with this tutorial's code and the shared rule;
# the test suite checks them against an independent brute force.
#
# 1. With the buggy clamp, on $L = 16$, $k = 3$, $d = 3$: which queries get a wrong
#    window?
# 2. On $L = 16$ and $k = 3$, how many queries does the buggy clamp get wrong for
#    $d = 1, 2, 3, 4$?
# 3. The unscaled kernel multiplies the logits by 1; by how much should it, for a head
#    dimension of 32?

# %%
import json  # noqa: E402

from dinat_ref.neighborhood import neighbor_indices  # noqa: E402


def wrong_queries(L, k, d):
    right = np.sort(neighbor_indices(L, k, dilation=d)[0], axis=1)  # (L, k) from the rule
    mine = np.sort(axis_window(L, k, d, group_aware=False), axis=1)  # (L, k) the buggy clamp
    return np.flatnonzero((right != mine).any(axis=1)).tolist()


solutions = {
    "1_wrong_queries": wrong_queries(16, 3, 3),
    "2_wrong_counts": [len(wrong_queries(16, 3, d)) for d in (1, 2, 3, 4)],
    "3_scale": 32 ** -0.5,
}
print("SOLUTIONS", json.dumps(solutions))
