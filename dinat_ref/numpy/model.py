"""DiNAT in NumPy: the whole model as a few readable functions over a ``{name: array}`` dict.

Dilated Neighborhood Attention Transformer, Hassani & Shi 2022, https://arxiv.org/abs/2209.15001.
Semantics are Hugging Face ``transformers``' DiNAT exactly, and the parameters are read
by their Hugging Face names (see :mod:`dinat_ref.weights`), so a ``transformers``
checkpoint directory loads as is and gives the same numbers as :mod:`dinat_ref.torch.model`.

The network, channels-last ``(B, H, W, C)`` throughout::

    pixels (B, 3, H, W)
      -> conv3x3/2 (C -> E/2) -> conv3x3/2 (E/2 -> E) -> LayerNorm      # embeddings, H/4 x W/4
      -> stage 0: depths[0] x layer(dim=E)    -> downsample (conv3x3/2 no bias, LayerNorm(2E))
      -> stage 1: depths[1] x layer(dim=2E)   -> downsample ...
      -> last stage (no downsample) -> LayerNorm -> mean over H, W -> classifier

    layer(x):  y = LN_before(x); pad y right/bottom with zeros to kernel_size*dilation if smaller;
               y = dense(NA(q(y), k(y), v(y), rpb, kernel_size, dilation)); crop the padding
               x = x + ls0 * y                                      # ls = layer scale (if any)
               x = x + ls1 * fc2(gelu(fc1(LN_after(x))))

Padded tokens are ordinary tokens (they are LayerNorm'ed zeros, so query/key/value are the
projection biases) and are cropped after the output projection, as Hugging Face does.

Inference only: dropout and drop path are identities here.

Attention maps (``output_attentions=True``): one array per layer, all stages in order, in
neighborhood layout ``(B, h, w, heads, kernel_size**2)``: entry ``[b, i, j, n, t]`` is the
probability query ``(i, j)`` gives its ``t``-th neighbor (row-major over the window, see
:mod:`dinat_ref.neighborhood`), over the grid the layer attended, i.e. the *padded* grid
when the input was smaller than ``kernel_size * dilation``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from dinat_ref.config import DinatConfig
from dinat_ref.numpy.attention import na2d, na2d_av, na2d_qk
from dinat_ref.numpy.layers import conv2d, gelu, layer_norm, linear, softmax
from dinat_ref.weights import (
    adapt_state_dict,
    backbone_channels,
    check_state_dict,
    expected_shapes,
    load_state_dict,
    save_state_dict,
)

__all__ = [
    "DinatModelOutput", "DinatImageClassifierOutput", "DinatBackboneOutput",
    "DinatModel", "DinatForImageClassification", "DinatBackbone",
]

TORCH_DEFAULT_EPS = 1e-5  # embeddings / downsampler / backbone norms use nn.LayerNorm's default


# ----------------------------------------------------------------------------------------
# Outputs (shared by the NumPy and the torch models; arrays are np.ndarray or torch.Tensor)
# ----------------------------------------------------------------------------------------

@dataclass
class DinatModelOutput:
    """``last_hidden_state`` (B, h, w, C) after the final LayerNorm; ``pooler_output`` (B, C).

    ``hidden_states``: the embeddings, then every stage's output after its downsampler,
    channels-last; ``reshaped_hidden_states``: the same as (B, C, H, W). ``attentions``: one
    (B, h, w, heads, k*k) per layer.
    """

    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: tuple | None = None
    reshaped_hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass
class DinatImageClassifierOutput(DinatModelOutput):
    """The trunk's outputs plus ``logits`` (B, num_labels) and ``loss`` when labels are given."""

    loss: Any = None
    logits: Any = None


@dataclass
class DinatBackboneOutput:
    """``feature_maps``: (B, C, H, W) per ``out_features``, taken before downsampling and normed.

    ``hidden_states`` (with ``output_hidden_states``): the embeddings then every stage's output
    *before* its downsampler, channels-last.
    """

    feature_maps: tuple = ()
    hidden_states: tuple | None = None
    attentions: tuple | None = None


# ----------------------------------------------------------------------------------------
# The network as functions of (params, input)
# ----------------------------------------------------------------------------------------

class _Params:
    """A view of a flat ``{name: array}`` dict under a name prefix: ``p["norm.weight"]``."""

    def __init__(self, params: dict[str, np.ndarray], prefix: str = "") -> None:
        self._params, self._prefix = params, prefix

    def __getitem__(self, name: str) -> np.ndarray:
        return self._params[self._prefix + name]

    def get(self, name: str) -> np.ndarray | None:
        return self._params.get(self._prefix + name)

    def sub(self, name: str) -> _Params:
        return _Params(self._params, f"{self._prefix}{name}.")


def embeddings(p: _Params, pixel_values: np.ndarray) -> np.ndarray:
    """(B, C, H, W) pixels -> (B, ceil(H/4), ceil(W/4), E) tokens."""
    x = pixel_values.transpose(0, 2, 3, 1)  # (B, H, W, C) channels last
    proj = p.sub("patch_embeddings.projection")
    x = conv2d(x, proj["0.weight"], proj["0.bias"], stride=2, padding=1)  # (B, H/2, W/2, E/2)
    x = conv2d(x, proj["1.weight"], proj["1.bias"], stride=2, padding=1)  # (B, H/4, W/4, E)
    return layer_norm(x, p["norm.weight"], p["norm.bias"], TORCH_DEFAULT_EPS)


def neighborhood_attention(p: _Params, x: np.ndarray, num_heads: int, kernel_size: int, dilation: int,
                           output_attentions: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Multi-head dilated NA of ``x`` (B, H, W, C) with itself; returns (context, probs or None)."""
    b, h, w, c = x.shape
    head_dim = c // num_heads
    # Separate projections, split into heads (heads-last layout of dinat_ref.numpy.na2d).
    q = linear(x, p["query.weight"], p.get("query.bias")).reshape(b, h, w, num_heads, head_dim)
    k = linear(x, p["key.weight"], p.get("key.bias")).reshape(b, h, w, num_heads, head_dim)
    v = linear(x, p["value.weight"], p.get("value.bias")).reshape(b, h, w, num_heads, head_dim)
    rpb = p["rpb"]  # (heads, 2k-1, 2k-1)
    # softmax_t( (q / sqrt(head_dim)) . k_t + rpb_t ) . v_t over the k*k neighbors t
    if output_attentions:
        logits = na2d_qk(q, k, kernel_size, dilation=dilation, rpb=rpb)  # (B, H, W, heads, k*k)
        probs = softmax(logits)  # (B, H, W, heads, k*k)
        out = na2d_av(probs, v, kernel_size, dilation=dilation)  # (B, H, W, heads, head_dim)
    else:
        probs = None
        out = na2d(q, k, v, kernel_size, dilation=dilation, rpb=rpb)  # (B, H, W, heads, head_dim)
    return out.reshape(b, h, w, c), probs  # (B, H, W, C)


def dinat_layer(p: _Params, x: np.ndarray, config: DinatConfig, num_heads: int, dilation: int,
                output_attentions: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """One pre-norm DiNAT layer (attention + MLP, both residual) on (B, H, W, C)."""
    b, h, w, c = x.shape
    eps = config.layer_norm_eps
    y = layer_norm(x, p["layernorm_before.weight"], p["layernorm_before.bias"], eps)  # (B, H, W, C)
    # NA needs kernel_size * dilation tokens per axis: zero-pad right/bottom *after* the norm.
    window = config.kernel_size * dilation
    pad_h, pad_w = max(0, window - h), max(0, window - w)
    if pad_h or pad_w:
        y = np.pad(y, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))  # (B, H+pad_h, W+pad_w, C)
    attn = p.sub("attention")
    y, probs = neighborhood_attention(attn.sub("self"), y, num_heads, config.kernel_size, dilation,
                                      output_attentions)
    y = linear(y, attn["output.dense.weight"], attn["output.dense.bias"])  # (B, Hp, Wp, C)
    y = y[:, :h, :w, :]  # crop the padding away
    scale = p.get("layer_scale_parameters")  # (2, C) or None
    x = x + (y if scale is None else scale[0] * y)
    # MLP branch: fc2(gelu(fc1(LN(x))))
    y = layer_norm(x, p["layernorm_after.weight"], p["layernorm_after.bias"], eps)
    y = gelu(linear(y, p["intermediate.dense.weight"], p["intermediate.dense.bias"]))  # (B, H, W, r*C)
    y = linear(y, p["output.dense.weight"], p["output.dense.bias"])  # (B, H, W, C)
    x = x + (y if scale is None else scale[1] * y)
    return x, probs


def downsample(p: _Params, x: np.ndarray) -> np.ndarray:
    """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C): conv 3x3 stride 2 (no bias), LayerNorm."""
    x = conv2d(x, p["reduction.weight"], None, stride=2, padding=1)
    return layer_norm(x, p["norm.weight"], p["norm.bias"], TORCH_DEFAULT_EPS)


def encoder(p: _Params, x: np.ndarray, config: DinatConfig, output_attentions: bool
            ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """All stages. Returns (last, after_downsample list, before_downsample list, attentions)."""
    after, before, attentions = [x], [x], []
    for i, (depth, heads) in enumerate(zip(config.depths, config.num_heads, strict=True)):
        stage = p.sub(f"levels.{i}")
        for j in range(depth):
            x, probs = dinat_layer(stage.sub(f"layers.{j}"), x, config, heads, config.dilations[i][j],
                                   output_attentions)
            if probs is not None:
                attentions.append(probs)
        before.append(x)
        if i < config.num_layers - 1:
            x = downsample(stage.sub("downsample"), x)
        after.append(x)
    return x, after, before, attentions


def _nchw(xs: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    return tuple(x.transpose(0, 3, 1, 2) for x in xs)


def _check_pixels(pixel_values: Any, config: DinatConfig, dtype: np.dtype, where: str) -> np.ndarray:
    x = np.asarray(pixel_values)
    if x.ndim != 4 or x.shape[1] != config.num_channels:
        raise ValueError(f"{where}: pixel_values has shape {x.shape}; expected (batch, "
                         f"{config.num_channels}, height, width) with num_channels={config.num_channels}.")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{where}: pixel_values has dtype {x.dtype}; expected real numbers.")
    return x.astype(dtype, copy=False)


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------

class _NumpyDinat:
    """Weights + config; subclasses say which parameter set (``kind``) they hold."""

    kind = "model"

    def __init__(self, config: DinatConfig, state_dict: dict[str, Any], dtype: Any = np.float32) -> None:
        sd = adapt_state_dict(state_dict, config, self.kind)
        check_state_dict(sd, expected_shapes(config, self.kind), where=type(self).__name__)
        self.config = config
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"{type(self).__name__}: dtype={self.dtype} must be a float dtype.")
        self.params = {k: np.ascontiguousarray(np.asarray(v), dtype=self.dtype) for k, v in sd.items()}

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dtype: Any = np.float32,
                        config: DinatConfig | None = None):
        """Load a Hugging Face model directory (``config.json`` + safetensors or ``pytorch_model.bin``)."""
        config = DinatConfig.from_pretrained(path) if config is None else config
        return cls(config, load_state_dict(path, "numpy"), dtype=dtype)

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.params)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        os.makedirs(directory, exist_ok=True)
        self.config.extra["architectures"] = [type(self).__name__]
        self.config.save_pretrained(directory)
        save_state_dict(self.params, os.path.join(directory, "model.safetensors"))

    def _pixels(self, pixel_values: Any) -> np.ndarray:
        return _check_pixels(pixel_values, self.config, self.dtype, type(self).__name__)


class DinatModel(_NumpyDinat):
    """The DiNAT trunk: embeddings, stages, final LayerNorm, mean pooling.

    Args:
        config: the architecture.
        state_dict: ``{name: array}`` with Hugging Face ``DinatModel`` names (a classifier's
            ``dinat.``-prefixed weights are accepted too).
        dtype: computation dtype (float32 or float64).
    """

    kind = "model"

    def __call__(self, pixel_values: Any, output_attentions: bool = False,
                 output_hidden_states: bool = False) -> DinatModelOutput:
        return model_forward(_Params(self.params), self.config, self._pixels(pixel_values),
                             output_attentions, output_hidden_states)


def model_forward(p: _Params, config: DinatConfig, pixel_values: np.ndarray, output_attentions: bool,
                  output_hidden_states: bool) -> DinatModelOutput:
    """DinatModel's forward on the weights under ``p`` (pixels already checked and cast)."""
    x = embeddings(p.sub("embeddings"), pixel_values)  # (B, H/4, W/4, E)
    x, after, _, attentions = encoder(p.sub("encoder"), x, config, output_attentions)
    x = layer_norm(x, p["layernorm.weight"], p["layernorm.bias"], config.layer_norm_eps)
    return DinatModelOutput(
        last_hidden_state=x,  # (B, h, w, C)
        pooler_output=x.mean(axis=(1, 2)),  # (B, C)
        hidden_states=tuple(after) if output_hidden_states else None,
        reshaped_hidden_states=_nchw(after) if output_hidden_states else None,
        attentions=tuple(attentions) if output_attentions else None,
    )


class DinatForImageClassification(_NumpyDinat):
    """DiNAT with a linear classifier on the pooled features (Hugging Face names, ``dinat.`` prefix)."""

    kind = "classification"

    def __call__(self, pixel_values: Any, labels: Any = None, output_attentions: bool = False,
                 output_hidden_states: bool = False) -> DinatImageClassifierOutput:
        trunk = model_forward(_Params(self.params, "dinat."), self.config, self._pixels(pixel_values),
                              output_attentions, output_hidden_states)
        pooled = trunk.pooler_output  # (B, C)
        if self.config.num_labels > 0:
            logits = linear(pooled, self.params["classifier.weight"], self.params["classifier.bias"])
        else:
            logits = pooled
        return DinatImageClassifierOutput(
            loss=None if labels is None else _loss(logits, np.asarray(labels), self.config.num_labels),
            logits=logits,  # (B, num_labels)
            last_hidden_state=trunk.last_hidden_state, pooler_output=pooled,
            hidden_states=trunk.hidden_states, reshaped_hidden_states=trunk.reshaped_hidden_states,
            attentions=trunk.attentions,
        )


def _loss(logits: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Hugging Face's choice: MSE for one label, cross-entropy for integer labels, else BCE."""
    if num_labels == 1:
        return np.mean((logits.reshape(-1) - labels.reshape(-1)) ** 2)
    if np.issubdtype(labels.dtype, np.integer):
        z = logits - logits.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (B, num_labels)
        return -np.mean(logp[np.arange(len(labels)), labels])
    y = labels.astype(logits.dtype)
    return np.mean(np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))))


class DinatBackbone(_NumpyDinat):
    """DiNAT as a feature extractor: normed (B, C, H, W) maps of the stages in ``config.out_features``.

    Stage ``"stem"`` is the embeddings; ``"stageN"`` is stage N's output *before* its
    downsampler. Each map is normed by ``hidden_states_norms.<stage>``.
    """

    kind = "backbone"

    def __call__(self, pixel_values: Any, output_attentions: bool = False,
                 output_hidden_states: bool = False) -> DinatBackboneOutput:
        p = _Params(self.params)
        x = embeddings(p.sub("embeddings"), self._pixels(pixel_values))  # (B, H/4, W/4, E)
        _, _, before, attentions = encoder(p.sub("encoder"), x, self.config, output_attentions)
        maps = []
        for name, x in zip(self.config.stage_names, before, strict=True):
            if name in self.config.out_features:
                norm = _Params(self.params, f"hidden_states_norms.{name}.")
                y = layer_norm(x, norm["weight"], norm["bias"], TORCH_DEFAULT_EPS)  # (B, H, W, C)
                maps.append(y.transpose(0, 3, 1, 2))  # (B, C, H, W)
        return DinatBackboneOutput(
            feature_maps=tuple(maps),
            hidden_states=tuple(before) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )

    @property
    def channels(self) -> list[int]:
        ch = backbone_channels(self.config)
        return [ch[name] for name in self.config.out_features]
