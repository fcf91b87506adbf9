"""DiNAT in NumPy: the whole model as a few readable functions over a ``{name: array}`` dict.

Dilated Neighborhood Attention Transformer, Hassani & Shi 2022, https://arxiv.org/abs/2209.15001.
Semantics are Hugging Face ``transformers``' DiNAT exactly, and the parameters are read
by their Hugging Face names (see :mod:`dinat_ref.hf.weights`), so a ``transformers``
checkpoint directory loads as is and gives the same numbers as :mod:`dinat_ref.torch.model`.

The network, channels-last ``(B, H, W, C)`` throughout, read top-down in this file::

    pixels (B, 3, H, W)
      -> conv3x3/2 (C -> E/2) -> conv3x3/2 (E/2 -> E) -> LayerNorm      # embeddings, H/4 x W/4
      -> stage 0: depths[0] x layer(dim=E)    -> downsample (conv3x3/2 no bias, LayerNorm(2E))
      -> stage 1: depths[1] x layer(dim=2E)   -> downsample ...
      -> last stage (no downsample) -> LayerNorm -> mean over H, W        # the model
      -> classifier (linear)  |  backbone: normed maps of chosen stages  # the heads

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
when the input was smaller than ``kernel_size * dilation``. (``transformers`` returns
heads-first maps; this layout is the documented difference.)

Outputs are :mod:`dinat_ref.hf.outputs` dataclasses that behave like ``transformers``'
``ModelOutput`` (``out.logits``, ``out["loss"]``, ``out[0]``, ``out.to_tuple()``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dinat_ref.config import DinatConfig
from dinat_ref.hf.modeling_utils import (
    IGNORE_INDEX,
    BackboneInfo,
    EncoderResult,
    OutputFlags,
    backbone_output,
    check_class_labels,
    classifier_output,
    model_output,
    output_flags,
    plan_load,
    prepare_load,
    problem_type,
)
from dinat_ref.hf.outputs import DinatBackboneOutput, DinatImageClassifierOutput, DinatModelOutput
from dinat_ref.hf.weights import count_parameters, expected_shapes, save_pretrained
from dinat_ref.numpy.attention import na2d, na2d_av, na2d_qk
from dinat_ref.numpy.layers import conv2d, gelu, layer_norm, linear, softmax

__all__ = [
    "DinatModelOutput", "DinatImageClassifierOutput", "DinatBackboneOutput",
    "DinatModel", "DinatForImageClassification", "DinatBackbone",
]

TORCH_DEFAULT_EPS = 1e-5  # embeddings / downsampler / backbone norms use nn.LayerNorm's default


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


# ----------------------------------------------------------------------------------------
# Embeddings
# ----------------------------------------------------------------------------------------

def embeddings(p: _Params, pixel_values: np.ndarray) -> np.ndarray:
    """(B, C, H, W) pixels -> (B, ceil(H/4), ceil(W/4), E) tokens."""
    x = pixel_values.transpose(0, 2, 3, 1)  # (B, H, W, C) channels last
    proj = p.sub("patch_embeddings.projection")
    x = conv2d(x, proj["0.weight"], proj["0.bias"], stride=2, padding=1)  # (B, H/2, W/2, E/2)
    x = conv2d(x, proj["1.weight"], proj["1.bias"], stride=2, padding=1)  # (B, H/4, W/4, E)
    return layer_norm(x, p["norm.weight"], p["norm.bias"], TORCH_DEFAULT_EPS)


# ----------------------------------------------------------------------------------------
# One layer: neighborhood attention, then the MLP
# ----------------------------------------------------------------------------------------

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
    if b == 0:  # an empty batch: nothing to attend, shapes only
        probs = np.zeros((0, h, w, num_heads, kernel_size**2), x.dtype) if output_attentions else None
        return np.zeros_like(x), probs
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


# ----------------------------------------------------------------------------------------
# A stage: its layers, then the downsampler; the encoder: every stage
# ----------------------------------------------------------------------------------------

def downsample(p: _Params, x: np.ndarray) -> np.ndarray:
    """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C): conv 3x3 stride 2 (no bias), LayerNorm."""
    x = conv2d(x, p["reduction.weight"], None, stride=2, padding=1)
    return layer_norm(x, p["norm.weight"], p["norm.bias"], TORCH_DEFAULT_EPS)


def stage(p: _Params, x: np.ndarray, config: DinatConfig, i: int, output_attentions: bool
          ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Stage ``i``'s layers, then its downsampler (all but the last stage).

    Returns:
        (output after the downsampler, output before it, the layers' attention maps).
    """
    attentions = []
    for j, dilation in enumerate(config.dilations[i]):
        x, probs = dinat_layer(p.sub(f"layers.{j}"), x, config, config.num_heads[i], dilation,
                               output_attentions)
        if probs is not None:
            attentions.append(probs)
    before = x
    if i < config.num_layers - 1:
        x = downsample(p.sub("downsample"), x)
    return x, before, attentions


def encoder(p: _Params, x: np.ndarray, config: DinatConfig, output_attentions: bool) -> EncoderResult:
    """Every stage in turn, collecting each one's output before and after downsampling."""
    after, before, attentions = [x], [x], []
    for i in range(config.num_layers):
        x, pre, probs = stage(p.sub(f"levels.{i}"), x, config, i, output_attentions)
        after.append(x)
        before.append(pre)
        attentions.extend(probs)
    return EncoderResult(last=x, after_downsample=after, before_downsample=before, attentions=attentions)


# ----------------------------------------------------------------------------------------
# The model: embeddings, encoder, final LayerNorm, mean pooling
# ----------------------------------------------------------------------------------------

def model_forward(p: _Params, config: DinatConfig, pixel_values: np.ndarray, flags: OutputFlags
                  ) -> DinatModelOutput:
    """DinatModel's forward on the weights under ``p`` (pixels already checked and cast)."""
    x = embeddings(p.sub("embeddings"), pixel_values)  # (B, H/4, W/4, E)
    enc = encoder(p.sub("encoder"), x, config, flags.output_attentions)
    x = layer_norm(enc.last, p["layernorm.weight"], p["layernorm.bias"], config.layer_norm_eps)
    return model_output(x, x.mean(axis=(1, 2)), enc, flags._replace(return_dict=True))  # pooled (B, C)


def _check_pixels(pixel_values: Any, config: DinatConfig, dtype: np.dtype, where: str) -> np.ndarray:
    if hasattr(pixel_values, "detach") and hasattr(pixel_values, "numpy"):
        raise TypeError(f"{where}: pixel_values is a torch tensor; the NumPy model takes a NumPy array "
                        f"(pixel_values.numpy()), or use dinat_ref.torch's model.")
    x = np.asarray(pixel_values)
    if x.ndim != 4 or x.shape[1] != config.num_channels:
        raise ValueError(f"{where}: pixel_values has shape {x.shape}; expected (batch, "
                         f"{config.num_channels}, height, width) with num_channels={config.num_channels}.")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{where}: pixel_values has dtype {x.dtype}; expected real numbers.")
    return x.astype(dtype, copy=False)


# ----------------------------------------------------------------------------------------
# Models: weights + config, and the two heads
# ----------------------------------------------------------------------------------------

class _NumpyDinat:
    """Weights + config; subclasses say which parameter set (``kind``) they hold."""

    kind = "model"
    main_input_name = "pixel_values"
    device = "cpu"

    def __init__(self, config: DinatConfig, state_dict: dict[str, Any], dtype: Any = np.float32) -> None:
        if not isinstance(config, DinatConfig):
            raise TypeError(f"{type(self).__name__}: config must be a DinatConfig, got "
                            f"{type(config).__name__}.")
        try:
            config.validate()
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: cannot build this config: {e}") from None
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"{type(self).__name__}: dtype={self.dtype} must be a float dtype.")
        self.config = config
        plan = plan_load(state_dict, config, self.kind, where=type(self).__name__, new_head=False)
        self.params = {k: np.ascontiguousarray(np.asarray(v), dtype=self.dtype)
                       for k, v in plan.state_dict.items()}

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, dtype: Any = np.float32,
                        config: DinatConfig | None = None, state_dict: dict[str, Any] | None = None,
                        ignore_mismatched_sizes: bool = False, **config_overrides: Any):
        """Load a Hugging Face model directory (``config.json`` + safetensors or ``pytorch_model.bin``).

        Args:
            path: the model directory (not a file inside it). May be None when both
                ``config`` and ``state_dict`` are given.
            dtype: computation dtype (bfloat16 checkpoints are read as float32 first).
            config: use this config instead of the directory's ``config.json``.
            state_dict: use these weights instead of the directory's.
            ignore_mismatched_sizes: re-initialise (and report) keys whose shape differs.
            **config_overrides: config attributes to set first: ``num_labels=``, ``id2label=``,
                ``label2id=``, ``problem_type=``, ...

        A classifier head missing from the checkpoint is initialised (N(0, initializer_range),
        bias 0, seeded) and a warning names it; any other mismatch raises, loading nothing.
        """
        config, plan = prepare_load(cls.__name__, cls.kind, "numpy", path, config, state_dict,
                                    config_overrides, ignore_mismatched_sizes)
        rng = np.random.default_rng(0)
        for name in plan.initialised:
            plan.state_dict[name] = _initial_value(name, config, cls.kind, rng)
        return cls(config, plan.state_dict, dtype=dtype)

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def num_parameters(self) -> int:
        """Number of parameters (every array's size)."""
        return count_parameters(self.config, self.kind)

    def get_input_embeddings(self) -> dict[str, np.ndarray]:
        """The patch embedding's weights, ``{name: array}``."""
        return {k: v for k, v in self.params.items() if ".patch_embeddings." in f".{k}"}

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.params)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``model.safetensors`` then ``config.json``, all or nothing (:mod:`dinat_ref.hf.atomic`)."""
        save_pretrained(directory, self.config, self.params, architecture=type(self).__name__)

    def _pixels(self, pixel_values: Any) -> np.ndarray:
        return _check_pixels(pixel_values, self.config, self.dtype, type(self).__name__)


def _initial_value(name: str, config: DinatConfig, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Hugging Face's init of one parameter: weights N(0, initializer_range), biases 0, norms 1."""
    shape = expected_shapes(config, kind)[name]
    if name.endswith("bias") or name.endswith("rpb"):
        return np.zeros(shape, np.float32)
    if "norm" in name:
        return np.ones(shape, np.float32)
    if name.endswith("layer_scale_parameters"):
        return np.full(shape, config.layer_scale_init_value, np.float32)
    return rng.normal(0.0, config.initializer_range, shape).astype(np.float32)


class DinatModel(_NumpyDinat):
    """The DiNAT trunk: embeddings, stages, final LayerNorm, mean pooling.

    Args:
        config: the architecture.
        state_dict: ``{name: array}`` with Hugging Face ``DinatModel`` names (a classifier's
            ``dinat.``-prefixed weights are accepted too).
        dtype: computation dtype (float32 or float64).
    """

    kind = "model"

    def __call__(self, pixel_values: Any, output_attentions: bool | None = None,
                 output_hidden_states: bool | None = None, return_dict: bool | None = None):
        flags = output_flags(self.config, output_attentions, output_hidden_states, return_dict)
        out = model_forward(_Params(self.params), self.config, self._pixels(pixel_values), flags)
        return out if flags.return_dict else out.to_tuple()


class DinatForImageClassification(_NumpyDinat):
    """DiNAT with a linear classifier on the pooled features (Hugging Face names, ``dinat.`` prefix).

    The loss (with ``labels``) follows ``config.problem_type`` as in ``transformers``: see
    :func:`classification_loss`.
    """

    kind = "classification"

    def __call__(self, pixel_values: Any, labels: Any = None, output_attentions: bool | None = None,
                 output_hidden_states: bool | None = None, return_dict: bool | None = None):
        flags = output_flags(self.config, output_attentions, output_hidden_states, return_dict)
        x = self._pixels(pixel_values)
        labels = None if labels is None else _check_labels_array(labels, type(self).__name__)
        trunk = model_forward(_Params(self.params, "dinat."), self.config, x, flags)
        logits = trunk.pooler_output  # (B, C)
        if self.config.num_labels > 0:
            logits = linear(logits, self.params["classifier.weight"], self.params["classifier.bias"])
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        return classifier_output(loss, logits, trunk, flags)  # logits (B, num_labels)


def _check_labels_array(labels: Any, where: str) -> np.ndarray:
    if hasattr(labels, "detach") and hasattr(labels, "numpy"):
        raise TypeError(f"{where}: labels is a torch tensor; pass a NumPy array (labels.numpy()).")
    return np.asarray(labels)


def classification_loss(logits: np.ndarray, labels: np.ndarray, config: DinatConfig) -> np.ndarray:
    """``transformers``' loss for ``config.problem_type`` (inferred when None, see
    :func:`dinat_ref.hf.modeling_utils.problem_type`).

    * "regression": mean squared error (with one label, over the squeezed arrays);
    * "single_label_classification": cross-entropy averaged over the labels that are not
      -100 (ignored); any other label outside ``0..num_labels-1`` raises;
    * "multi_label_classification": binary cross-entropy with logits, labels as floats.
    """
    kind = problem_type(config, labels.dtype in (np.int64, np.int32))
    n = config.num_labels
    if kind == "regression":
        y = labels.astype(logits.dtype)
        diff = (logits.squeeze() - y.squeeze()) if n == 1 else (logits - y)
        return np.mean(diff**2)
    if kind == "single_label_classification":
        y = labels.reshape(-1)
        check_class_labels(y, n, "DinatForImageClassification", integer=np.issubdtype(y.dtype, np.integer))
        z = logits.reshape(-1, n)
        z = z - z.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (B, num_labels)
        keep = y != IGNORE_INDEX
        if not keep.any():
            return np.asarray(np.nan, logits.dtype)  # as torch: a mean over no labels
        return -np.mean(logp[np.flatnonzero(keep), y[keep]])
    y = labels.astype(logits.dtype)
    # BCE with logits, stable form: max(z, 0) - z * y + log(1 + exp(-|z|))
    return np.mean(np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))))


class DinatBackbone(BackboneInfo, _NumpyDinat):
    """DiNAT as a feature extractor: normed (B, C, H, W) maps of the stages in ``config.out_features``.

    Stage ``"stem"`` is the embeddings; ``"stageN"`` is stage N's output *before* its
    downsampler. Each map is normed by ``hidden_states_norms.<stage>``.
    """

    kind = "backbone"

    def __call__(self, pixel_values: Any, output_hidden_states: bool | None = None,
                 output_attentions: bool | None = None, return_dict: bool | None = None):
        flags = output_flags(self.config, output_attentions, output_hidden_states, return_dict)
        p = _Params(self.params)
        x = embeddings(p.sub("embeddings"), self._pixels(pixel_values))  # (B, H/4, W/4, E)
        enc = encoder(p.sub("encoder"), x, self.config, flags.output_attentions)
        maps = []
        for name, x in zip(self.config.stage_names, enc.before_downsample, strict=True):
            if name in self.config.out_features:
                norm = p.sub(f"hidden_states_norms.{name}")
                y = layer_norm(x, norm["weight"], norm["bias"], TORCH_DEFAULT_EPS)  # (B, H, W, C)
                maps.append(y.transpose(0, 3, 1, 2))  # (B, C, H, W)
        return backbone_output(tuple(maps), enc, flags)
