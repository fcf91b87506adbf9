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
# # 11. Attention plots for a paper
#
# Every plot in `dinat_ref.viz` behaves like a matplotlib function: it draws into the
# `ax=` you give it (multi-panel plots: a `fig=` that may be a `SubplotSpec`), returns its
# figure, takes `figsize=`, `fontsize=`, and, where colours carry numbers, `cmap=`,
# `norm=`, `vmin=`/`vmax=`; everything else follows `rcParams`. Defaults are sized for a
# printed page: 3.5 in (one column) for one panel, 7 in (the full width) for several.
#
# This tutorial builds the kind of figure a paper needs, in a few lines each: a
# neighborhood next to its receptive field, learned attention heads, the statistics ViT
# papers report per head (mean attention distance, entropy, rollout), and a learned
# relative positional bias. The model is the tiny DiNAT trained on handwritten digits
# that ships with the package (tutorial 9 trains it).
#
# Stages, layers and heads are numbered from 0 everywhere: in the API, in every label,
# and in the state-dict names (`encoder.levels.{stage}.layers.{layer}`).

# %%
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dinat_ref.analysis import (
    attention_distance,
    attention_entropy,
    model_attention_rollout,
    model_attention_statistics,
)
from dinat_ref.torch import digits as train_digits
from dinat_ref.viz.attention_maps import (
    digits_processor,
    image_to_pixels,
    model_attention,
    plot_attention_maps,
)
from dinat_ref.viz.html import model_attention_html, write_html
from dinat_ref.viz.rf import plot_rf_growth
from dinat_ref.viz.rpb import plot_rpb_values
from dinat_ref.viz.statistics import plot_head_statistic, plot_rollout
from dinat_ref.viz.windows import plot_neighborhood

PAPER = {"font.size": 7, "image.cmap": "cividis"}  # a journal's 7 pt type, one colour map for all
out = Path("paper_figures")  # the working directory: nothing is written next to the tutorial
out.mkdir(exist_ok=True)

# %% [markdown]
# ## 1. Two of our plots in one full-width figure
#
# A `GridSpec` slot is all a multi-panel plot needs: `plot_rf_growth(fig=gs[0, 1])` draws
# its panels into a subfigure there. Small grids are drawn as vector cells, so in the PDF
# each token is a rectangle you can recolour in a vector editor.

# %%
with plt.rc_context(PAPER):
    fig = plt.figure(figsize=(7.0, 2.4), layout="constrained")
    gs = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.9])
    plot_neighborhood((9, 12), (0, 11), kernel_size=3, dilation=2, ax=fig.add_subplot(gs[0, 0]),
                      legend=False)
    plot_rf_growth(28, 7, {"NA [1, 1]": (1, 1), "NA-DiNA [1, 4]": (1, 4)}, fig=gs[0, 1])
    fig.savefig(out / "neighborhood_and_field.pdf")
print(sorted(p.name for p in out.iterdir()))

# %% [markdown]
# ## 2. Learned heads, on one shared colour scale
#
# `image_to_pixels` turns the picture you draw into the model's `pixel_values` through the
# model's own image processor (here the digits checkpoint's standardisation), so the plot
# and the model see the same image. `heads=` picks heads and keeps their numbers in the
# labels; `vmax=` puts every row on one scale, so rows can be compared.

# %%
model = train_digits.load_pretrained()
_, _, x_test, y_test = train_digits.load_digits_split()
image = train_digits.to_unit_range(x_test[1, 0].numpy())  # (48, 48) in [0, 1]: a zero
pixels = image_to_pixels(image, digits_processor())  # (1, 1, 48, 48), what the model takes
print("same pixels as the test split:", np.allclose(pixels.numpy(), x_test[1:2].numpy(), atol=1e-5))

layers = model_attention(model, pixels, query_pixel=(21, 21), layers=[(0, 1), (1, 1)])
with plt.rc_context(PAPER):
    fig = plot_attention_maps(image, layers, heads=[0, 1], vmin=0.0, vmax=0.5, figsize=(3.5, 2.4))
    fig.savefig(out / "heads.pdf")

# %% [markdown]
# ## 3. Per-head statistics, checked by hand first
#
# The mean attention distance of a query is `sum_t p_t * ||x(key_t) - x(query)||`; its
# entropy `-sum_t p_t log p_t`. Two answers we know without the code: uniform attention
# over a 3x3 window has entropy `log 9`, and a middle query of a 3x3 window with dilation 2
# has 4 keys at distance 2 and 4 at `2 sqrt(2)`:

# %%
uniform = np.full((1, 6, 6, 1, 9), 1 / 9)  # (B, H, W, heads, K) in neighborhood layout
print(f"entropy {attention_entropy(uniform, 3)[0, 2, 2, 0]:.4f} = log 9 = {math.log(9):.4f}")
by_hand = (4 * 2 + 4 * 2 * math.sqrt(2)) / 9
computed = attention_distance(uniform, 3, dilation=2)[0, 2, 2, 0]  # (B, H, W, heads) -> one query
print(f"distance of query (2, 2), d=2: {computed:.4f}; by hand {by_hand:.4f}")
assert math.isclose(computed, by_hand)

# %% [markdown]
# The same numbers for every head of the trained model, averaged over 64 test digits (in
# input pixels: a stage-`s` cell is `4 * 2**s` pixels). The dilated layers reach farther;
# a normalised entropy of 1 would be uniform attention.

# %%
stats = model_attention_statistics(model, x_test[:64])
for s in stats:
    print(f"stage {s.stage}, layer {s.layer} (d={s.dilation}): distance {np.round(s.distance, 1)} px, "
          f"entropy / log 9 {np.round(s.normalized_entropy, 2)}")
with plt.rc_context(PAPER):
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(7.0, 2.2), layout="constrained")
    plot_head_statistic(stats, "distance", ax=a)
    plot_head_statistic(stats, "normalized_entropy", ax=b)
    rollout = model_attention_rollout(model, pixels, stage=0, query_cell=(5, 5))  # (12, 12)
    plot_rollout(image, rollout, cell_px=4, query_pixel=(21, 21), ax=c)
    fig.savefig(out / "statistics.pdf")
print(f"rollout sums to {rollout.sum():.6f}; largest at the query's own cell: "
      f"{np.unravel_index(rollout.argmax(), rollout.shape) == (5, 5)}")

# %% [markdown]
# ## 4. A learned relative positional bias
#
# `plot_rpb_values(model, stage, layer, head)` finds the layer's `rpb` parameter and draws
# the `(2k-1) x (2k-1)` table; the outlined cells are the entries one query reads (here a
# corner query, whose window shifted inward, so it reads an off-centre block).

# %%
with plt.rc_context(PAPER):
    fig = plot_rpb_values(model, stage=0, layer=1, head=0, figsize=(3.5, 3.0))
    fig.savefig(out / "rpb.pdf")
print(sorted(p.name for p in out.iterdir()))

# %% [markdown]
# ## 5. For the reader: a page to hover
#
# `model_attention_html` writes one self-contained HTML file (image, attention and key
# tables inside): hover a pixel and every layer's and head's map follows it. It loads nothing
# from elsewhere, so it can go in a paper's supplementary material.

# %%
page = write_html(model_attention_html(model, image, digits_processor(), layers="all"), out / "hover.html")
print(f"{page.name}: {page.stat().st_size // 1024} KiB")

# %% [markdown]
# ## Exercises
#
# 1. Draw figure 1 at 3.5 in wide with `font.size` 6. Which plot needs `fontsize=` to stay
#    readable? (Answer: none; every label scales with `font.size`.)
# 2. What is the entropy of one-hot attention, and of uniform attention over the 2 keys a
#    causal query at position 1 has? Check with `attention_entropy(..., is_causal=True)`.
#    (Answer: 0 and `log 2`.)

# %%
one_hot = np.zeros((1, 5, 1, 3))
one_hot[0, :, 0, 0] = 1.0
causal = np.zeros((1, 5, 1, 3))
causal[0, 0, 0, 0] = 1.0
causal[0, 1, 0, :2] = 0.5
causal[0, 2:, 0, :] = 1 / 3
assert attention_entropy(one_hot, 3).max() == 0.0
assert math.isclose(attention_entropy(causal, 3, is_causal=True)[0, 1, 0], math.log(2))
print("exercise 2 checked")
