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
# # 6. The DiNAT architecture, end to end
#
# Tutorials 1 to 5 took the attention layer apart. DiNAT
# ([Hassani & Shi 2022](https://arxiv.org/abs/2209.15001)) wraps it in a hierarchical
# vision transformer with the same skeleton as its predecessor NAT
# ([Hassani et al. 2022](https://arxiv.org/abs/2204.07143)): a convolutional stem, four
# stages of transformer layers at decreasing resolution joined by convolutional
# downsamplers, and a classifier on the pooled features. The only change from NAT is that
# every other layer is dilated.
#
# In the manner of the *Annotated Transformer*, each part below pairs what the papers say
# (paraphrased) with the code that does it, on DiNAT-Mini with random weights, and we
# rebuild one layer by hand from its weights and check it against the model's own layer.
# Runs in under a minute on a CPU (PyTorch).

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import dinat_ref.torch as dt
from dinat_ref import DinatConfig
from dinat_ref.hf.weights import count_parameters, random_state_dict
from dinat_ref.neighborhood import neighbor_indices, rpb_indices
from dinat_ref.viz.architecture import plot_dinat_architecture

torch.manual_seed(0)
torch.set_num_threads(1)  # small tensors; one thread is steadiest on a shared machine

# %% [markdown]
# ## The picture
#
# Drawn from the config by `dinat_ref.viz.architecture.plot_dinat_architecture`: every
# shape below is computed, so other presets and image sizes draw correctly too.

# %%
config = DinatConfig.from_preset("mini", layer_scale_init_value=0.1)  # layer scale on, to see it
fig = plot_dinat_architecture(config, image_size=224)
plt.show()  # a window with a GUI backend, inline in a notebook, nothing headless

# %% [markdown]
# We build the model and fill it with random weights that switch every part on
# (non-zero biases and RPB, layer scale 0.1), so that nothing hides behind a zero.

# %%
weights = random_state_dict(config, seed=0)
model = dt.DinatForImageClassification(config).eval()
model.load_state_dict({name: torch.from_numpy(w) for name, w in weights.items()})
image = torch.randn(1, 3, 224, 224)
with torch.no_grad():
    out = model(image, output_hidden_states=True)
print("hidden states:", [tuple(h.shape) for h in out.hidden_states], "logits", tuple(out.logits.shape))

# %% [markdown]
# ## 1. The stem: two 3x3 convolutions with stride 2
#
# *NAT replaces ViT's single large patch-embedding convolution with two overlapping
# $3 \times 3$ convolutions of stride 2, which embed the image into $4 \times 4$ patches.*
# Overlapping small kernels help, at almost no cost. The first halves the channels
# ($C/2$), the second reaches $C$; a LayerNorm follows. No activation in between.

# %%
p = {name: w for name, w in model.state_dict().items()}
conv = "dinat.embeddings.patch_embeddings.projection."
with torch.no_grad():
    x = F.conv2d(image, p[conv + "0.weight"], p[conv + "0.bias"], stride=2, padding=1)
    print("after conv 1:", tuple(x.shape))  # (1, C/2, 112, 112)
    x = F.conv2d(x, p[conv + "1.weight"], p[conv + "1.bias"], stride=2, padding=1)
    x = x.permute(0, 2, 3, 1)  # (1, 56, 56, C): channels last from here on
    x = F.layer_norm(x, (config.embed_dim,), p["dinat.embeddings.norm.weight"],
                     p["dinat.embeddings.norm.bias"])
print("after conv 2 + LayerNorm:", tuple(x.shape), "| matches the model's embeddings:",
      torch.allclose(x, out.hidden_states[0], atol=1e-5))

# %% [markdown]
# ## 2. One layer by hand
#
# *Each layer is a pre-norm transformer block: LayerNorm, neighborhood attention,
# residual; LayerNorm, MLP, residual. Layer scale multiplies each branch by a learned
# per-channel vector before it is added.* In formulas, with $\gamma_1, \gamma_2$ the layer
# scales:
#
# $$x' = x + \gamma_1 \odot W_o\, \mathrm{NA}_{k,d}\big(\mathrm{LN}_1(x)\big), \qquad
#   y = x' + \gamma_2 \odot \mathrm{MLP}\big(\mathrm{LN}_2(x')\big),$$
#
# $$\mathrm{MLP}(z) = W_2\, \mathrm{GELU}(W_1 z + b_1) + b_2, \qquad W_1: C \to rC,\ W_2: rC \to C,$$
#
# with $r$ the MLP ratio (3 for Mini). Inside $\mathrm{NA}_{k,d}$ each head computes
# $\mathrm{softmax}(q k^\top / \sqrt{D} + B)\,v$ over its $k^2$ neighbors (tutorial 5).
# Here is stage 1's second layer (the dilated one, $d = 8$) built from its weights with
# plain torch operations and the neighbor table of the shared rule, no NA kernel:

# %%
def layer_by_hand(x, p, prefix, heads, kernel_size, dilation):
    """One DiNAT layer from its state-dict entries. x: (1, H, W, C) -> (1, H, W, C)."""
    w = lambda name: p[prefix + name]  # noqa: E731
    _, H, W, C = x.shape
    D = C // heads
    y = F.layer_norm(x, (C,), w("layernorm_before.weight"), w("layernorm_before.bias"), config.layer_norm_eps)
    q, k, v = (F.linear(y, w(f"attention.self.{n}.weight"), w(f"attention.self.{n}.bias"))
               .reshape(H * W, heads, D) for n in ("query", "key", "value"))  # (N, heads, D) each
    keys, _ = neighbor_indices((H, W), kernel_size, dilation=dilation)  # (N, k*k) from the rule
    ridx = torch.from_numpy(rpb_indices((H, W), kernel_size, dilation=dilation))  # (N, k*k, 2)
    keys = torch.from_numpy(keys)
    s = torch.einsum("nhd,nthd->nht", q / D ** 0.5, k[keys])  # (N, heads, k*k) logits
    s = s + w("attention.self.rpb")[:, ridx[..., 0], ridx[..., 1]].permute(1, 0, 2)  # + B, (N, heads, k*k)
    a = torch.einsum("nht,nthd->nhd", s.softmax(dim=-1), v[keys]).reshape(1, H, W, C)  # weighted sum
    a = F.linear(a, w("attention.output.dense.weight"), w("attention.output.dense.bias"))  # W_o
    gamma = w("layer_scale_parameters")  # (2, C)
    x = x + gamma[0] * a  # residual 1
    y = F.layer_norm(x, (C,), w("layernorm_after.weight"), w("layernorm_after.bias"), config.layer_norm_eps)
    y = F.linear(F.gelu(F.linear(y, w("intermediate.dense.weight"), w("intermediate.dense.bias"))),
                 w("output.dense.weight"), w("output.dense.bias"))  # MLP
    return x + gamma[1] * y  # residual 2


prefix = "dinat.encoder.levels.0.layers.1."
with torch.no_grad():
    x0 = model.dinat.encoder.levels[0].layers[0](out.hidden_states[0])[0]  # input of layer 1: (1, 56, 56, 64)
    mine = layer_by_hand(x0, p, prefix, config.num_heads[0], config.kernel_size, config.dilations[0][1])
    theirs = model.dinat.encoder.levels[0].layers[1](x0)[0]
print(f"stage 1 layer 2 (dilation {config.dilations[0][1]}): max |by hand - model| = "
      f"{(mine - theirs).abs().max():.1e}")
assert torch.allclose(mine, theirs, atol=1e-4)

# %% [markdown]
# **Layer scale.** $\gamma$ starts small (here 0.1; of the presets only DiNAT-Base uses
# layer scale, starting at $10^{-5}$), so a fresh deep model starts close to the identity
# and each layer's contribution grows as training needs it. Without layer scale the
# parameters are absent and $\gamma = 1$.
#
# **MLP ratio.** The hidden width of the MLP is $rC$: 3 for Mini and Tiny, 2 for the
# larger presets. It holds most of a layer's parameters:

# %%
C = config.embed_dim
layer_params = {name[len(prefix):]: t.numel() for name, t in p.items() if name.startswith(prefix)}
attn = sum(n for name, n in layer_params.items() if name.startswith("attention"))
mlp = sum(n for name, n in layer_params.items() if name.startswith(("intermediate", "output.")))
print(f"stage 1 layer: {sum(layer_params.values()):,} parameters; attention {attn:,} "
      f"(of which RPB {layer_params['attention.self.rpb']}), MLP {mlp:,}")

# %% [markdown]
# ## 3. The downsampler
#
# *Between stages, a $3 \times 3$ convolution with stride 2 halves the resolution and
# doubles the channels, followed by a LayerNorm* (overlapping again, where Swin merges
# $2 \times 2$ patches). Four stages at 224x224: 56, 28, 14 and 7 tokens per side,
# $C, 2C, 4C, 8C$ channels.

# %%
with torch.no_grad():
    stage1_out = x0
    for layer in model.dinat.encoder.levels[0].layers[1:]:
        stage1_out = layer(stage1_out)[0]
    z = F.conv2d(stage1_out.permute(0, 3, 1, 2), p["dinat.encoder.levels.0.downsample.reduction.weight"],
                 stride=2, padding=1).permute(0, 2, 3, 1)  # (1, 28, 28, 2C), no bias
    z = F.layer_norm(z, (2 * C,), p["dinat.encoder.levels.0.downsample.norm.weight"],
                     p["dinat.encoder.levels.0.downsample.norm.bias"])
print("downsampled:", tuple(z.shape), "| matches hidden_states[1]:",
      torch.allclose(z, out.hidden_states[1], atol=1e-4))

# %% [markdown]
# ## 4. Per-stage dilations
#
# *DiNAT keeps NAT's layers and dilates every other one, with the dilation chosen so that
# $k \cdot d$ reaches the stage's resolution:* $d = \lfloor n / k \rfloor$ for an $n \times
# n$ stage (tutorial 2 shows what that buys in receptive field). At 224x224 with $k = 7$:

# %%
side = 56
for s, dils in enumerate(config.dilations):
    print(f"stage {s + 1}: {side:2d}x{side:<2d} tokens, {config.depths[s]} layers, dilations {dils}; "
          f"n // k = {side // config.kernel_size}")
    side //= 2

# %% [markdown]
# ## 5. The classifier head
#
# *A final LayerNorm, global average pooling over the tokens, and a linear layer.*

# %%
with torch.no_grad():
    last = out.hidden_states[-1]  # (1, 7, 7, 8C): stage 4's output (no downsampler after it)
    pooled = F.layer_norm(last, (8 * C,), p["dinat.layernorm.weight"], p["dinat.layernorm.bias"],
                          config.layer_norm_eps).mean(dim=(1, 2))  # (1, 8C)
    logits = F.linear(pooled, p["classifier.weight"], p["classifier.bias"])  # (1, 1000)
print("logits by hand vs model: max diff", f"{(logits - out.logits).abs().max():.1e}")
assert torch.allclose(logits, out.logits, atol=1e-4)

# %% [markdown]
# ## 6. Where the parameters are
#
# Counted from the model, grouped by part, and checked against the count computed from
# the config alone (`dinat_ref.hf.weights.count_parameters`, tested against the paper's 20M):

# %%
groups = {"stem": "dinat.embeddings.", "stages": "dinat.encoder.", "final norm": "dinat.layernorm.",
          "classifier": "classifier."}
counts = {g: sum(t.numel() for n, t in p.items() if n.startswith(pre)) for g, pre in groups.items()}
down = sum(t.numel() for n, t in p.items() if ".downsample." in n)
print({g: f"{n / 1e6:.3f}M" for g, n in counts.items()}, f"(downsamplers {down / 1e6:.3f}M of the stages)")
print(f"total {sum(counts.values()):,} = count_parameters(config) {count_parameters(config):,}")
assert sum(counts.values()) == count_parameters(config)

# %% [markdown]
# ## What to remember
#
# * Stem: two overlapping $3 \times 3$ stride-2 convolutions ($C/2$, then $C$) and a
#   LayerNorm: $4\times$ downsampling.
# * Layer: pre-norm; $x + \gamma_1 W_o \mathrm{NA}(\mathrm{LN}(x))$, then
#   $x + \gamma_2 \mathrm{MLP}(\mathrm{LN}(x))$; MLP width $rC$.
# * Downsampler: $3 \times 3$ stride-2 convolution (no bias), $2\times$ channels, LayerNorm.
# * Dilations alternate $1$ and $\lfloor n/k \rfloor$ per stage; head: LayerNorm, mean, linear.
#
# Next, tutorial 7 runs this model twice, in NumPy and in PyTorch, on the same checkpoint.
#
# ## Exercises
#
# The cell below computes the solutions from the configs; the test suite checks them
# against closed forms.
#
# 1. Tokens per side in each of the four stages for a 384x384 input.
# 2. Channels per stage of DiNAT-Small (`embed_dim` 96).
# 3. Parameters of one stage-1 layer of DiNAT-Mini *without* layer scale
#    ($C = 64$, 2 heads, $k = 7$, $r = 3$).
# 4. Parameters of DiNAT-Mini's stem (both convolutions with bias, and the LayerNorm).
# 5. The dilation of stage 3's DiNA layers for a 224 input with $k = 7$.

# %%
import json  # noqa: E402

from dinat_ref.viz.architecture import architecture_boxes  # noqa: E402

plain = DinatConfig.from_preset("mini")
plain_model = dt.DinatForImageClassification(plain)
sides384 = [int(b.detail.split(";")[0].split(" x ")[-1])  # "C x H x W; dilations ..." -> W
            for b in architecture_boxes(plain, 384) if b.kind == "stage"]
solutions = {
    "1_sides_384": sides384,
    "2_small_channels": DinatConfig.from_preset("small").stage_dims(),
    "3_layer_params": sum(t.numel() for t in plain_model.dinat.encoder.levels[0].layers[0].parameters()),
    "4_stem_params": sum(t.numel() for t in plain_model.dinat.embeddings.parameters()),
    "5_stage3_dilation": max(plain.dilations[2]),
}
print("SOLUTIONS", json.dumps(solutions))
