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
# # 9. Train a tiny DiNAT on a CPU, then look inside its heads
#
# The first eight tutorials took neighborhood attention apart. Here we use it: we train a
# small DiNAT (https://arxiv.org/abs/2209.15001) on real data, on a laptop CPU, and then
# look at what its attention heads learned to look at.
#
# * **Data**: scikit-learn's handwritten digits, 1797 grayscale 8x8 images of 0-9 that
#   ship with the package (nothing to download). We hold out a quarter of them (450) as a
#   test set.
# * **Model**: two stages of DiNAT, 4 attention layers, about 110k parameters.
# * **Result**: the default recipe (12 epochs, seed 0) reaches **over 95% test accuracy**
#   in under a minute on one CPU thread. The cell that trains asserts only that threshold.
#   The exact figure is machine-specific: the machine that made the committed checkpoint
#   got 97.6% for seed 0 (96.4% and 97.1% for seeds 1 and 2), another machine 96.7% for
#   seed 0. Float32 sums are rounded in an order that depends on the CPU and the math
#   library, and twelve epochs of training amplify those last-bit differences.
#
# The training code lives in one place, `dinat_ref/torch/digits.py`; this tutorial calls
# it, and so does the command that regenerated the checkpoint committed in
# `dinat_ref/assets/digits-dinat/`:
#
#     dinat-ref train-digits --out dinat_ref/assets/digits-dinat
#
# Set `DINAT_REF_FAST=1` to run this notebook in seconds: it then trains for one epoch
# only, to show the loop works, and checks the 95% claim on the committed checkpoint
# instead.

# %%
import os
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from dinat_ref.neighborhood import neighbor_indices
from dinat_ref.torch import DinatForImageClassification
from dinat_ref.torch import digits as train_digits
from dinat_ref.viz.attention_maps import model_attention, plot_attention_maps

FAST = os.environ.get("DINAT_REF_FAST", "") == "1"
torch.manual_seed(0)
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fast mode: {FAST}")

# %% [markdown]
# ## The data
#
# An 8x8 digit is too small for DiNAT: the patch embedding (two stride-2 convolutions)
# downsamples 4x, which would leave a 2x2 grid. DiNAT would still run (it zero-pads every
# axis shorter than `kernel_size * dilation`, tutorial 2), but almost every key of every
# window would be a padding token. So `load_digits_split` upsamples every digit
# (bilinear) to 48x48. Stage 1 then works on a
# 12x12 grid of tokens and stage 2, after a 2x downsampler, on 6x6. Pixels are
# standardized to zero mean and unit variance (constants measured on the training split).

# %%
x_train, y_train, x_test, y_test = train_digits.load_digits_split()
print("train", tuple(x_train.shape), "test", tuple(x_test.shape))  # (N, 1, 48, 48)

fig, axes = plt.subplots(1, 8, figsize=(8, 1.3))
for ax, img, label in zip(axes, x_test[:8, 0], y_test[:8], strict=True):
    ax.imshow(train_digits.to_unit_range(img.numpy()), cmap="gray")
    ax.set_title(f"label {int(label)}", fontsize=8)
    ax.axis("off")
fig.suptitle("test digits, upsampled to 48x48", fontsize=9)
plt.show()  # a window with a GUI backend, inline in a notebook, nothing headless

# %% [markdown]
# ## The model
#
# A DiNAT stage alternates **NA** layers (dilation 1: a 3x3 window of adjacent tokens)
# with **DiNA** layers (dilation d: the same 9 keys, spread out every d-th token). With
# kernel 3, stage 1's NA layer sees a 3x3 patch of the 12x12 grid; its DiNA layer, with
# dilation 3, sees keys spread over a 7x7 area, so two layers already cover most of the
# digit. The rule `kernel_size * dilation <= grid side` holds (3 * 3 <= 12, 3 * 2 <= 6),
# so no layer needs padding.

# %%
config = train_digits.digits_model_config()
print("stages:", config.depths, "heads:", config.num_heads, "dilations:", config.dilations,
      "kernel:", config.kernel_size, "channels:", config.stage_dims())
model = DinatForImageClassification(config)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# ## Training
#
# `train` runs AdamW (batch 16, peak learning rate 2e-3) with a one-cycle schedule
# (short warm-up, cosine decay) and random shifts of up to 2 pixels as the only
# augmentation, all seeded, with a tqdm progress bar. It returns the model and its
# accuracy on the 450 test digits. It trains on one CPU thread (`TrainConfig.num_threads`):
# the matrices are tiny, so a second thread gains little, and on a busy machine two
# threads that wait for each other can be many times slower. With one thread, the same
# seed and the same software, a machine repeats its own result; a different CPU or math
# library rounds differently and lands on a (slightly) different model.

# %%
recipe = train_digits.TrainConfig(epochs=1) if FAST else train_digits.TrainConfig()
print(recipe)
start = time.perf_counter()
model, accuracy = train_digits.train(recipe)
print(f"test accuracy {accuracy:.1%} after {recipe.epochs} epochs, {time.perf_counter() - start:.0f} s")
if FAST:
    assert accuracy > 0.2, accuracy  # one epoch: well above chance (10%), nowhere near done
    model = train_digits.load_pretrained()  # the committed result of the full recipe
    accuracy = train_digits.evaluate(model, x_test, y_test)
    print(f"committed checkpoint: test accuracy {accuracy:.1%}")
assert accuracy > 0.95, f"expected over 95% test accuracy, got {accuracy:.1%}"

# %% [markdown]
# ## Saving and loading: a Hugging Face-layout directory
#
# `save_pretrained` writes `config.json` and `model.safetensors` (no pickle), the same
# layout `transformers` uses; `from_pretrained` reads it back. The committed checkpoint
# is such a directory.

# %%
with tempfile.TemporaryDirectory() as tmp:
    model.save_pretrained(tmp)
    print(sorted(os.listdir(tmp)))
    reloaded = DinatForImageClassification.from_pretrained(tmp).eval()
with torch.no_grad():
    same = torch.equal(model(x_test[:16]).logits, reloaded(x_test[:16]).logits)
print("reloaded model gives identical logits:", same)
assert same

# %% [markdown]
# ## What did the heads learn?
#
# With `output_attentions=True` every layer returns its attention in *neighborhood
# layout*, `(B, h, w, heads, 9)`: for each query token, one weight per neighbor slot.
# `model_attention` picks one query pixel, asks the neighborhood rule which key each
# slot holds, and scatters the 9 weights back onto the layer's grid; `plot_attention_maps`
# paints that grid over the digit (each stage-1 token covers a 4x4 pixel square, each
# stage-2 token 8x8). Cells the query cannot see stay transparent.
#
# Read a row left to right: one layer, one panel per head. The NA rows show a compact
# 3x3 patch around the query; the DiNA rows show the same 9 keys spread out with gaps of
# 3 (stage 1) or 2 (stage 2) tokens. Within that fixed pattern, the colors are what
# training changed: a head that puts most of its weight on the stroke, or on one side,
# has learned something; a uniform head has not.

# %%
digit = 15  # a test image: an 8
query = (21, 21)  # (row, col) on the 48x48 image: the 8's waist
image = train_digits.to_unit_range(x_test[digit, 0].numpy())  # (48, 48) for display
layers = model_attention(model, x_test[digit : digit + 1], query, layers="all")
fig = plot_attention_maps(image, layers, title=f"trained tiny DiNAT, test image #{digit} "
                          f"(label {int(y_test[digit])}): one query, every layer")
plt.show()

# %% [markdown]
# The same DiNA layer (stage 1, dilation 3) for three query pixels: the 8's waist, the
# hole of its lower loop, and the top-left corner. The corner query is not at the center
# of its window: NA shifts windows *inward* at the border instead of padding, so it still
# gets 9 real keys.

# %%
queries = [(21, 21), (32, 22), (2, 2)]
rows = [lay for q in queries for lay in model_attention(model, x_test[digit : digit + 1], q,
                                                         layers=[(0, 1)])]
fig = plot_attention_maps(image, rows, title="stage 1 DiNA layer, three query pixels")
plt.show()

# %% [markdown]
# ## Sharp heads and flat heads, in numbers
#
# One picture is one query. To summarize every query of every test digit, measure how
# *peaked* each head's attention is: the entropy of its 9 weights, divided by `log 9`
# (1.0 = uniform over the window, 0.0 = all weight on one key). We compare the trained
# model with the same architecture at its random initialization.


# %%
def normalized_entropy(m, x):
    """Mean normalized entropy per (layer, head) over all queries of images x."""
    with torch.no_grad():
        attentions = m(x, output_attentions=True).attentions  # per layer: (B, h, w, heads, 9)
    out = []
    for a in attentions:
        p = a.clamp_min(1e-12)
        ent = -(p * p.log()).sum(-1) / np.log(p.shape[-1])  # (B, h, w, heads)
        out.append(ent.mean(dim=(0, 1, 2)).numpy())  # (heads,)
    return out


torch.manual_seed(0)
untrained = DinatForImageClassification(config).eval()
trained_ent, random_ent = normalized_entropy(model, x_test), normalized_entropy(untrained, x_test)
flat = [(s, i) for s, depth in enumerate(config.depths) for i in range(depth)]
print("layer            dilation  heads: normalized entropy, trained (random init)")
for (s, i), t, r in zip(flat, trained_ent, random_ent, strict=True):
    cells = "  ".join(f"{a:.2f} ({b:.2f})" for a, b in zip(t, r, strict=True))
    print(f"stage {s + 1} layer {i + 1}   {config.dilations[s][i]:>5}     {cells}")

# %% [markdown]
# At random initialization every head is uniform (entropy 1.00): the queries and keys
# are small random projections, so all 9 logits are about equal. After training, most
# heads are clearly sharper: they learned *where* in their window to look. Each number
# is a *mean* over every query of every test digit, so it describes the typical query,
# not each one. In the committed checkpoint the stage-1 DiNA layer is the flattest
# (0.95 and 0.96 for its two heads, against 0.50 to 0.84 for every other head): it
# averages a wide, sparse 7x7-token area, a cheap way to mix information from across the
# digit. A model trained on another machine differs in the details; the cell below says
# which layer is the flattest for the model trained here. The neighborhood rule fixes
# the window; learning only redistributes weight inside it.

# %%
layer_means = [float(t.mean()) for t in trained_ent]
flattest = flat[int(np.argmax(layer_means))]
print("mean normalized entropy per layer:", [round(m, 2) for m in layer_means])
print(f"flattest trained layer: stage {flattest[0] + 1} layer {flattest[1] + 1} "
      f"(dilation {config.dilations[flattest[0]][flattest[1]]})")
#
# One last check that the picture is honest: the map we drew must put weight exactly on
# the query's 9 neighbors and sum to 1 per head.

# %%
lay = rows[-1]  # stage 1's DiNA layer, the corner query
h, w = lay.maps.shape[1:]
keys, _ = neighbor_indices((h, w), lay.kernel_size, dilation=lay.dilation)
n = lay.query_cell[0] * w + lay.query_cell[1]
support = np.flatnonzero(lay.maps[0].ravel())
print("query cell", lay.query_cell, "neighbors", sorted(keys[n].tolist()), "support", support.tolist())
assert set(support) == set(keys[n].tolist())
assert np.allclose(lay.maps.sum(axis=(1, 2)), 1.0)

# %% [markdown]
# ## Where next
#
# * `dinat-ref figures` draws this map for a fixed digit (`figures/attention_digits.png`)
#   and the same map for a random-weight DiNAT-mini on a photo
#   (`figures/attention_photo.png`), where, with no trained weights, only the
#   neighborhood pattern is meaningful.
# * Train an NA-only twin and compare the accuracy and the entropy table:
#   `cfg = train_digits.digits_model_config(); cfg.dilations = [[1, 1], [1, 1]]`, then
#   `train_digits.train(model_config=cfg)`. Its layers see only adjacent tokens, so
#   information crosses the digit more slowly, but on digits that does not cost accuracy:
#   we measured 95.8% and 96.4% (seeds 0 and 1) against DiNAT's 96.4% to 97.6%, the
#   same within seed-to-seed noise on 450 test images (one image is 0.22%). Dilation's
#   gains show mostly downstream, in detection and segmentation, where objects span
#   much more than a window; even on ImageNet classification the authors' own zoo lists
#   DiNAT-Tiny (82.7%) below NAT-Tiny (83.2%).

# %% [markdown]
# ## Exercises
#
# The cell below computes the solutions from the model and the data; the test suite
# checks them against independent computations.
#
# 1. The input is 48x48. How many tokens per side do stage 1 and stage 2 have?
# 2. Stage 1's DiNA layer has $k = 3$, $d = 3$. How many tokens does its window span per
#    axis, and how many pixels is that?
# 3. How many test digits are there (a quarter of 1797, rounded up), and how many test
#    digits is one percentage point of accuracy?
# 4. How many parameters does the model have? (Count them from the config: two stem
#    convolutions, a LayerNorm, per layer two LayerNorms, q/k/v/output projections, an
#    RPB table of $(2k - 1)^2$ per head, a 2-layer MLP, layer scale if enabled; the
#    downsampler; the final norm and the classifier.)
# 5. In the NA-only twin, how many stage-1 tokens per axis does the middle query see
#    after both stage-1 layers?

# %%
import json  # noqa: E402

from dinat_ref.receptive_field import receptive_fields_1d, rf_stats  # noqa: E402

with torch.no_grad():
    maps = model(x_test[:1], output_attentions=True).attentions  # per layer: (1, h, w, heads, 9)
first_layer_of_stage = np.cumsum([0] + list(config.depths[:-1]))  # [0, 2]
stage_sides = [int(maps[i].shape[1]) for i in first_layer_of_stage]
twin_rf = rf_stats(receptive_fields_1d(stage_sides[0], config.kernel_size, [1, 1])[-1])
solutions = {
    "1_stage_sides": stage_sides,
    "2_dina_span_tokens": int(lay.kernel_size + (lay.kernel_size - 1) * (lay.dilation - 1)),
    "2_dina_span_pixels": int((lay.kernel_size + (lay.kernel_size - 1) * (lay.dilation - 1)) * 4),
    "3_test_digits": len(y_test),
    "3_digits_per_point": len(y_test) / 100,
    "4_parameters": sum(p.numel() for p in model.parameters()),
    "5_twin_middle_rf": int(twin_rf.count[stage_sides[0] // 2]),
}
print("SOLUTIONS", json.dumps(solutions))
