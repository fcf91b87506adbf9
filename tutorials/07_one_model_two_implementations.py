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
# # 7. One model, two implementations: DiNAT in NumPy and in PyTorch
#
# DiNAT (https://arxiv.org/abs/2209.15001) is a hierarchical vision transformer whose
# layers alternate neighborhood attention (NA) and dilated neighborhood attention (DiNA).
# This package has it twice:
#
# * `dinat_ref.numpy`: a handful of plain functions over a `{name: array}` dictionary,
#   written to be read (`dinat_ref/numpy/model.py`);
# * `dinat_ref.torch`: `nn.Module`s with exactly Hugging Face `transformers`' parameter
#   names, fast, trainable.
#
# Both read the *same* checkpoint directory (`config.json` + `model.safetensors`, the
# Hugging Face layout) and must give the same numbers. This tutorial shows the pieces:
# the config and the paper's presets, the weights, one forward pass on both paths and
# how close they are, the attention maps, the backbone, and converting an original
# SHI-Labs checkpoint. It runs in well under a minute on 2 CPU cores.

# %%
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import dinat_ref.numpy as dn
import dinat_ref.torch as dt
from dinat_ref import DinatConfig
from dinat_ref.config import PRESET_RESULTS
from dinat_ref.hf.weights import convert_shi_labs, count_parameters, random_state_dict, save_state_dict
from dinat_ref.neighborhood import neighbor_indices

torch.manual_seed(0)
work = Path(tempfile.mkdtemp(prefix="dinat-tutorial-"))

# %% [markdown]
# ## The config and the paper's presets
#
# `DinatConfig` has Hugging Face's field names and defaults. The presets are the models
# of the paper; their parameter counts follow from the config alone (no model is built):

# %%
print(f"{'preset':16s} {'params':>9s}  paper   top-1  GMACs")
for name, res in PRESET_RESULTS.items():
    n = count_parameters(DinatConfig.from_preset(name))
    print(f"{name:16s} {n / 1e6:8.2f}M  {res['params_m']:4d}M  {res['top1']:.1f}%  {res['gmacs']}")

config = DinatConfig.from_preset("mini")
print("\nDiNAT-Mini:", config.depths, "layers per stage,", config.num_heads, "heads")
print("dilations:", config.dilations)

# %% [markdown]
# Every other layer is dilated. In stage 1 (a 56x56 grid at 224x224 input), dilation 8
# splits each axis into 8 dilation groups of 56 / 8 = 7 tokens, and a 7x7 kernel then
# takes a query's *whole* dilation group: its 7 keys per axis are every 8th token, from
# one end of the axis to the other, spanning $1 + 6 \cdot 8 = 49$ tokens (not 56: the
# keys are points, 8 apart). The undilated layers around it look at a dense 7x7 window
# and fill the gaps (tutorial 2).
#
# ## The weights: one dictionary, Hugging Face names
#
# We draw random weights with every part switched on (non-zero relative positional
# biases and layer scale, so nothing hides behind a zero) and save them as a Hugging Face
# directory. A real `transformers` checkpoint directory would load the same way.

# %%
config = DinatConfig.from_preset("mini", layer_scale_init_value=0.1)
weights = random_state_dict(config, seed=0)
ckpt = work / "dinat-mini-random"
ckpt.mkdir()
config.save_pretrained(ckpt)
save_state_dict(weights, ckpt / "model.safetensors")
print(sorted(p.name for p in ckpt.iterdir()))
for name in list(weights)[6:12]:
    print(f"  {name:70s} {weights[name].shape}")

# %% [markdown]
# ## One forward pass, two implementations
#
# Both paths load the directory on their own, in float64, and run the same 224x224 image.
# (The NumPy call also keeps its attention maps, used further down.)

# %%
np_model = dn.DinatForImageClassification.from_pretrained(ckpt, dtype=np.float64)
th_model = dt.DinatForImageClassification.from_pretrained(ckpt, dtype=torch.float64)

yy, xx = np.mgrid[0:224, 0:224] / 224.0
image = np.stack([np.sin(6 * xx), np.cos(4 * yy), xx * yy])[None]  # (1, 3, 224, 224), a smooth pattern

t0 = time.perf_counter()
a = np_model(image, output_hidden_states=True, output_attentions=True)
t1 = time.perf_counter()
with torch.no_grad():
    b = th_model(torch.from_numpy(image), output_hidden_states=True)
t2 = time.perf_counter()
print(f"NumPy {t1 - t0:.2f} s, torch {t2 - t1:.2f} s (float64)")
print("logits", a.logits.shape, "max |numpy - torch| =", np.abs(a.logits - b.logits.numpy()).max())
for i, (h1, h2) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
    print(f"  hidden_states[{i}] {str(h1.shape):18s} max diff {np.abs(h1 - h2.numpy()).max():.2e}")
assert np.allclose(a.logits, b.logits.numpy(), rtol=1e-9, atol=1e-9)

# %% [markdown]
# The differences are rounding noise (around 1e-14): same architecture, same weights,
# two independent implementations. `hidden_states` are the embeddings and each stage's
# output (after its downsampler), channels-last `(B, H, W, C)`; `reshaped_hidden_states`
# has them as `(B, C, H, W)`.
#
# ## One layer by hand
#
# The NumPy model is a few functions. Here is the first layer of stage 1 computed step by
# step with the NumPy building blocks, checked against the torch module.

# %%
from dinat_ref.numpy.layers import gelu, layer_norm, linear  # noqa: E402

p = {k[len("dinat.encoder.levels.0.layers.0."):]: v.astype(np.float64) for k, v in weights.items()
     if k.startswith("dinat.encoder.levels.0.layers.0.")}
x = a.hidden_states[0]  # (1, 56, 56, 64): the embeddings
heads, c = config.num_heads[0], x.shape[-1]
y = layer_norm(x, p["layernorm_before.weight"], p["layernorm_before.bias"])
q, k, v = (linear(y, p[f"attention.self.{n}.weight"], p[f"attention.self.{n}.bias"])
           .reshape(1, 56, 56, heads, -1) for n in ("query", "key", "value"))  # (1, 56, 56, heads, 32)
att = dn.na2d(q, k, v, kernel_size=7, dilation=config.dilations[0][0], rpb=p["attention.self.rpb"])
att = linear(att.reshape(1, 56, 56, c), p["attention.output.dense.weight"], p["attention.output.dense.bias"])
x1 = x + p["layer_scale_parameters"][0] * att
y = gelu(linear(layer_norm(x1, p["layernorm_after.weight"], p["layernorm_after.bias"]),
                p["intermediate.dense.weight"], p["intermediate.dense.bias"]))
x2 = x1 + p["layer_scale_parameters"][1] * linear(y, p["output.dense.weight"], p["output.dense.bias"])

with torch.no_grad():
    ref, _ = th_model.dinat.encoder.levels[0].layers[0](torch.from_numpy(x))
print("layer 0 by hand vs torch module: max diff", np.abs(x2 - ref.numpy()).max())

# %% [markdown]
# ## Attention maps, in neighborhood layout
#
# `output_attentions=True` returns one array per layer, `(B, h, w, heads, k*k)`: the
# probability each query gives each of its k*k neighbors (slots row-major over the
# window). Which key is in which slot comes from the one shared rule,
# `dinat_ref.neighborhood`. Below: the dilated layer (dilation 8) of stage 1, query (20, 30).

# %%
att_np = a.attentions  # from the forward pass above
print(len(att_np), "layers; stage-1 shapes:", [t.shape for t in att_np[:3]])
probs = att_np[1][0, 20, 30, 0]  # (49,) layer 1 (dilation 8), query (20, 30), head 0
keys, _ = neighbor_indices((56, 56), 7, dilation=8)
rows, cols = np.divmod(keys[20 * 56 + 30], 56)
print("neighbor rows:", sorted(set(rows.tolist())), "cols:", sorted(set(cols.tolist())))
print("probabilities sum to", probs.sum().round(12), "; strongest neighbor at",
      (int(rows[probs.argmax()]), int(cols[probs.argmax()])))

# %% [markdown]
# When a stage's grid is smaller than `kernel_size * dilation` (small images, late
# stages), the layer zero-pads the normalized tokens right/bottom to that size, attends
# over the padded grid, and crops after the output projection, as Hugging Face does.
# The attention maps then have the padded grid's shape.
#
# ## The backbone
#
# `DinatBackbone` returns normalized `(B, C, H, W)` feature maps of the stages named in
# `out_features`, taken *before* each downsampler, for detection/segmentation heads.

# %%
bb_config = DinatConfig.from_preset("mini", out_features=["stage1", "stage2", "stage3", "stage4"])
backbone = dt.DinatBackbone(bb_config).eval()
with torch.no_grad():
    maps = backbone(torch.randn(1, 3, 224, 224)).feature_maps
print([tuple(m.shape) for m in maps], backbone.channels)

# %% [markdown]
# ## Converting an original SHI-Labs checkpoint
#
# The original repository stores the query, key and value projections as one fused
# `attn.qkv` linear, names layers `levels.i.blocks.j`, and keeps layer scale as
# `gamma1`/`gamma2`. `convert_shi_labs` renames and splits. To show it we fuse our
# weights into that layout and convert them back; on a real file use the command line:
#
#     dinat-ref convert dinat_mini_in1k_224.pth out/dinat-mini --preset mini

# %%
shi = {}
for name, value in weights.items():
    if ".attention.self.query." in name:
        stem, leaf = name.split(".attention.self.query.")
        fused = np.concatenate([value, weights[name.replace("query", "key")],
                                weights[name.replace("query", "value")]])
        shi[stem.replace("dinat.encoder.", "").replace("layers", "blocks") + ".attn.qkv." + leaf] = fused
print(len(shi), "fused qkv tensors, e.g.", next(iter(shi)), next(iter(shi.values())).shape)
first = "dinat.encoder.levels.0.layers.0.attention.self.key.weight"
back = convert_shi_labs({k: v for k, v in shi.items() if k.startswith("levels.0.blocks.0.")})
print("the key projection comes back exactly:", np.array_equal(back[first], weights[first]))

# %% [markdown]
# ## Speed, briefly
#
# The NumPy model favours clarity; the torch model is the one to use. On this machine
# (float32, batch 1, 224x224; see `benchmarks/bench_model.py` for the full table):

# %%
np32 = dn.DinatForImageClassification.from_pretrained(ckpt)  # float32
th32 = dt.DinatForImageClassification.from_pretrained(ckpt)
img32 = image.astype(np.float32)
with torch.inference_mode():
    th32(torch.from_numpy(img32))  # warm-up
    t0 = time.perf_counter()
    th32(torch.from_numpy(img32))
    t1 = time.perf_counter()
np32(img32)
t2 = time.perf_counter()
print(f"torch {1e3 * (t1 - t0):.0f} ms, NumPy {1e3 * (t2 - t1):.0f} ms per image")

# %% [markdown]
# ## Exercises
#
# The cell below computes the solutions from the configs and the checkpoint; the test
# suite checks them against closed forms.
#
# 1. How many tokens per axis does a stage-1 DiNA query's window span (first to last key)
#    at 224x224, and how many of the 56 rows does it touch?
# 2. How many arrays does the DiNAT-Mini checkpoint hold for one layer? (Two LayerNorms,
#    three projections and the output projection with biases, the RPB, two MLP linears
#    with biases, and the layer scale.)
# 3. How many numbers does the `model.safetensors` written above (DiNAT-Mini with layer
#    scale) hold, in millions (two decimals)?
# 4. The fused `qkv` weight of the original SHI-Labs layout for a stage-2 layer of Mini:
#    its shape.

# %%
import json  # noqa: E402

layer0 = [n for n in weights if n.startswith("dinat.encoder.levels.0.layers.0.")]
rows_touched = sorted(set(rows.tolist()))
solutions = {
    "1_span_tokens": int(max(rows_touched) - min(rows_touched) + 1),
    "1_rows_touched": len(rows_touched),
    "2_arrays_per_layer": len(layer0),
    "3_numbers_m": round(sum(w.size for w in weights.values()) / 1e6, 2),
    "4_qkv_shape": list(shi["levels.1.blocks.0.attn.qkv.weight"].shape),
}
print("SOLUTIONS", json.dumps(solutions))
