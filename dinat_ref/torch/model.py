"""DiNAT in PyTorch, with Hugging Face ``transformers``' module tree and parameter names.

Dilated Neighborhood Attention Transformer, Hassani & Shi 2022, https://arxiv.org/abs/2209.15001.
``state_dict()`` keys and shapes are exactly Hugging Face's (``dinat.encoder.levels.0.layers.1
.attention.self.rpb``, ...), so a ``transformers`` DiNAT checkpoint directory loads with
:meth:`DinatPreTrainedModel.from_pretrained` and the same weights give the same numbers as
:mod:`dinat_ref.numpy.model` (read that file for the math, step by step; this one is the
same network as ``nn.Module`` s). Neighborhood attention itself is
:func:`dinat_ref.torch.na2d`, whose ``backend`` ("auto", "torch", "flex", "natten") every
model takes; outputs are the :mod:`dinat_ref.hf.outputs` dataclasses, which behave like
``transformers``' ``ModelOutput`` (``out.loss``, ``out["loss"]``, ``out[0]``, ``to_tuple()``).

Training: dropout and drop path (stochastic depth, ``linspace(0, drop_path_rate,
sum(depths))``) are active only in ``model.train()`` mode. Attention-probability dropout
needs the probabilities, so in training with ``attention_probs_dropout_prob > 0`` the layer
computes ``na2d_qk -> softmax -> dropout -> na2d_av`` instead of the fused call.

The API is ``transformers``': ``config.problem_type`` decides the loss, the config's
``output_attentions`` / ``output_hidden_states`` / ``return_dict`` are the defaults of the
forward arguments, ``from_pretrained(path, num_labels=, id2label=, label2id=,
ignore_mismatched_sizes=, dtype=)`` initialises (and names) a missing classifier head,
``gradient_checkpointing_enable()`` trades compute for memory in training, and
``transformers.Trainer`` trains these models as they are. Float pixels are cast to the
parameters' dtype; integer pixels and NumPy arrays are refused with a message.

Attention maps (``output_attentions=True``): one tensor per layer, all stages in order,
``(B, h, w, heads, kernel_size**2)`` in neighborhood layout over the (possibly padded) grid
the layer attended (see :mod:`dinat_ref.numpy.model`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from dinat_ref.config import DinatConfig
from dinat_ref.hf.modeling_utils import (
    IGNORE_INDEX,
    BackboneInfo,
    EncoderResult,
    backbone_output,
    check_class_labels,
    classifier_output,
    model_output,
    output_flags,
    plan_load,
    prepare_load,
    problem_type,
)
from dinat_ref.hf.outputs import (
    DinatBackboneOutput,
    DinatImageClassifierOutput,
    DinatModelOutput,
    register_pytree_nodes,
)
from dinat_ref.hf.weights import backbone_channels, save_pretrained
from dinat_ref.torch.functional import BACKENDS, na2d, na2d_av, na2d_qk

register_pytree_nodes()  # DDP(find_unused_parameters=True), torch.compile and export see inside outputs

__all__ = [
    "DinatPreTrainedModel", "DinatModel", "DinatForImageClassification", "DinatBackbone",
    "DinatModelOutput", "DinatImageClassifierOutput", "DinatBackboneOutput",
]


# ----------------------------------------------------------------------------------------
# Building blocks (Hugging Face class structure and attribute names)
# ----------------------------------------------------------------------------------------

class DinatPatchEmbeddings(nn.Module):
    """(B, C, H, W) -> (B, H/4, W/4, E): conv 3x3/2 (C -> E/2), conv 3x3/2 (E/2 -> E), no activation."""

    def __init__(self, config: DinatConfig) -> None:
        super().__init__()
        self.num_channels = config.num_channels
        e = config.embed_dim
        self.projection = nn.Sequential(
            nn.Conv2d(config.num_channels, e // 2, kernel_size=3, stride=2, padding=1),
            nn.Conv2d(e // 2, e, kernel_size=3, stride=2, padding=1),
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(pixel_values).permute(0, 2, 3, 1)  # (B, H/4, W/4, E)


class DinatEmbeddings(nn.Module):
    def __init__(self, config: DinatConfig) -> None:
        super().__init__()
        self.patch_embeddings = DinatPatchEmbeddings(config)
        self.norm = nn.LayerNorm(config.embed_dim)  # default eps, as Hugging Face
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(self.patch_embeddings(pixel_values)))


class NeighborhoodAttention(nn.Module):
    """Query/key/value projections + RPB + dilated NA; ``forward`` returns (context, probs or None)."""

    def __init__(self, config: DinatConfig, dim: int, num_heads: int, dilation: int) -> None:
        super().__init__()
        self.num_attention_heads = num_heads
        self.attention_head_size = dim // num_heads
        self.kernel_size = config.kernel_size
        self.dilation = dilation
        self.backend = "auto"
        k2 = 2 * config.kernel_size - 1
        self.rpb = nn.Parameter(torch.zeros(num_heads, k2, k2))  # relative positional bias
        self.query = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.key = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.value = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor, output_attentions: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, h, w, c = x.shape
        heads, hd = self.num_attention_heads, self.attention_head_size
        if b == 0:  # an empty batch: nothing to attend, shapes only
            probs = x.new_zeros(0, h, w, heads, self.kernel_size**2) if output_attentions else None
            return self.value(x) * 0, probs
        q = self.query(x).view(b, h, w, heads, hd)  # (B, H, W, heads, hd), heads-last
        k = self.key(x).view(b, h, w, heads, hd)
        v = self.value(x).view(b, h, w, heads, hd)
        explicit = output_attentions or (self.training and self.dropout.p > 0)
        if explicit:  # softmax((q / sqrt(hd)) . k + rpb) materialized, then . v
            logits = na2d_qk(q, k, self.kernel_size, dilation=self.dilation, rpb=self.rpb,
                             backend="torch")  # (B, H, W, heads, k*k)
            probs = logits.softmax(dim=-1)
            out = na2d_av(self.dropout(probs), v, self.kernel_size, dilation=self.dilation,
                          backend="torch")  # (B, H, W, heads, hd)
        else:
            probs = None
            out = na2d(q, k, v, self.kernel_size, dilation=self.dilation, rpb=self.rpb,
                       backend=self.backend)  # (B, H, W, heads, hd)
        return out.reshape(b, h, w, c), (probs if output_attentions else None)


class NeighborhoodAttentionOutput(nn.Module):
    def __init__(self, config: DinatConfig, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


class NeighborhoodAttentionModule(nn.Module):
    def __init__(self, config: DinatConfig, dim: int, num_heads: int, dilation: int) -> None:
        super().__init__()
        self.self = NeighborhoodAttention(config, dim, num_heads, dilation)
        self.output = NeighborhoodAttentionOutput(config, dim)

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        context, probs = self.self(x, output_attentions)
        return self.output(context), probs


class DinatIntermediate(nn.Module):
    def __init__(self, config: DinatConfig, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, int(config.mlp_ratio * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # exact erf GELU


class DinatOutput(nn.Module):
    def __init__(self, config: DinatConfig, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(int(config.mlp_ratio * dim), dim)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


class DropPath(nn.Module):
    """Stochastic depth: zero a sample's residual branch with probability p (training only)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, 1, 1)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DinatLayer(nn.Module):
    """Pre-norm layer: x + ls0 * crop(attn(pad(LN(x)))), then x + ls1 * mlp(LN(x))."""

    def __init__(self, config: DinatConfig, dim: int, num_heads: int, dilation: int,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.kernel_size = config.kernel_size
        self.dilation = dilation
        self.window_size = self.kernel_size * self.dilation
        self.layernorm_before = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attention = NeighborhoodAttentionModule(config, dim, num_heads, dilation)
        self.drop_path = DropPath(drop_path_rate)
        self.layernorm_after = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.intermediate = DinatIntermediate(config, dim)
        self.output = DinatOutput(config, dim)
        ls = config.layer_scale_init_value
        self.layer_scale_parameters = nn.Parameter(ls * torch.ones(2, dim)) if ls > 0 else None

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        _, h, w, _ = x.shape
        shortcut = x
        y = self.layernorm_before(x)
        # Zero-pad right/bottom after the norm when the grid is smaller than the window.
        pad_h, pad_w = max(0, self.window_size - h), max(0, self.window_size - w)
        if pad_h or pad_w:
            y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h))  # (B, H+pad_h, W+pad_w, C)
        y, probs = self.attention(y, output_attentions)
        y = y[:, :h, :w, :]  # crop the padding away
        if self.layer_scale_parameters is not None:
            y = self.layer_scale_parameters[0] * y
        x = shortcut + self.drop_path(y)
        y = self.output(self.intermediate(self.layernorm_after(x)))
        if self.layer_scale_parameters is not None:
            y = self.layer_scale_parameters[1] * y
        return x + self.drop_path(y), probs


class DinatDownsampler(nn.Module):
    """(B, H, W, C) -> (B, H/2, W/2, 2C): conv 3x3 stride 2 without bias, then LayerNorm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Conv2d(dim, 2 * dim, kernel_size=3, stride=2, padding=1, bias=False)
        self.norm = nn.LayerNorm(2 * dim)  # default eps, as Hugging Face

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.reduction(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class DinatStage(nn.Module):
    def __init__(self, config: DinatConfig, dim: int, depth: int, num_heads: int, dilations: list[int],
                 drop_path_rates: list[float], downsample: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DinatLayer(config, dim, num_heads, dilations[j], drop_path_rates[j]) for j in range(depth))
        self.downsample = DinatDownsampler(dim) if downsample else None
        self.gradient_checkpointing = False
        self.checkpoint_kwargs: dict[str, Any] = {}

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        """Returns (output after the downsampler, output before it, the layers' attention maps)."""
        attentions = []
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                # Keep only the layer's input; recompute its activations in the backward pass.
                x, probs = torch.utils.checkpoint.checkpoint(layer, x, output_attentions,
                                                             **self.checkpoint_kwargs)
            else:
                x, probs = layer(x, output_attentions)
            if probs is not None:
                attentions.append(probs)
        before = x
        if self.downsample is not None:
            x = self.downsample(x)
        return x, before, attentions


class DinatEncoder(nn.Module):
    def __init__(self, config: DinatConfig) -> None:
        super().__init__()
        rates = config.drop_path_rates()
        self.levels = nn.ModuleList(
            DinatStage(config, dim, config.depths[i], config.num_heads[i], config.dilations[i], rates[i],
                       downsample=i < config.num_layers - 1)
            for i, dim in enumerate(config.stage_dims()))

    def forward(self, x: torch.Tensor, output_attentions: bool = False) -> EncoderResult:
        after, before, attentions = [x], [x], []
        for stage in self.levels:
            x, pre, probs = stage(x, output_attentions)
            after.append(x)
            before.append(pre)
            attentions.extend(probs)
        return EncoderResult(last=x, after_downsample=after, before_downsample=before, attentions=attentions)


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------

def _torch_dtype(dtype: Any, where: str) -> torch.dtype | str | None:
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise ValueError(f"{where}.from_pretrained: dtype={dtype!r} must be a torch.dtype, its name "
                     f"(\"float32\", \"bfloat16\", ...) or \"auto\" (the checkpoint's).")


class DinatPreTrainedModel(nn.Module):
    """Weight init, attention backend, ``from_pretrained`` / ``save_pretrained``, and the
    ``transformers`` model attributes (``main_input_name``, ``device``, ``dtype``, ...)."""

    kind = "model"
    main_input_name = "pixel_values"
    base_model_prefix = "dinat"
    supports_gradient_checkpointing = True

    def __init__(self, config: DinatConfig) -> None:
        super().__init__()
        if not isinstance(config, DinatConfig):
            raise TypeError(f"{type(self).__name__}: config must be a DinatConfig, "
                            f"got {type(config).__name__}.")
        try:
            config.validate()
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: cannot build this config: {e}") from None
        self.config = config

    def _init_weights(self) -> None:
        """Hugging Face's init: Linear/Conv ~ N(0, initializer_range), biases 0, LayerNorm (1, 0)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.normal_(m.weight, mean=0.0, std=self.config.initializer_range)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ attributes
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of parameters (optionally only those with ``requires_grad``, or without the
        patch embedding)."""
        skip = {id(p) for p in self.get_input_embeddings().parameters()} if exclude_embeddings else set()
        return sum(p.numel() for p in self.parameters()
                   if (p.requires_grad or not only_trainable) and id(p) not in skip)

    def get_input_embeddings(self) -> nn.Module:
        """The patch embedding (two strided convolutions)."""
        trunk = getattr(self, "dinat", self)
        return trunk.embeddings.patch_embeddings

    def get_output_embeddings(self) -> None:
        return None  # no tied output embedding

    def set_attention_backend(self, backend: str) -> None:
        """Neighborhood-attention backend of every layer: "auto", "torch", "flex" or "natten"."""
        if backend != "auto" and backend not in BACKENDS:
            raise ValueError(f"{type(self).__name__}: backend={backend!r} is not one of 'auto', "
                             f"{', '.join(repr(b) for b in BACKENDS)}.")
        for m in self.modules():
            if isinstance(m, NeighborhoodAttention):
                m.backend = backend

    # ------------------------------------------------------------------ gradient checkpointing
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None
                                      ) -> None:
        """Recompute each layer's activations in the backward pass instead of keeping them.

        Args:
            gradient_checkpointing_kwargs: passed to ``torch.utils.checkpoint.checkpoint``
                (default ``{"use_reentrant": False}``).
        """
        kwargs = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
        for m in self.modules():
            if isinstance(m, DinatStage):
                m.gradient_checkpointing, m.checkpoint_kwargs = True, kwargs

    def gradient_checkpointing_disable(self) -> None:
        for m in self.modules():
            if isinstance(m, DinatStage):
                m.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(getattr(m, "gradient_checkpointing", False) for m in self.modules())

    # ------------------------------------------------------------------ inputs
    def _pixels(self, pixel_values: Any) -> torch.Tensor:
        """Check the pixels and cast float ones to the parameters' dtype (and device)."""
        where = type(self).__name__
        if not isinstance(pixel_values, torch.Tensor):
            hint = " (torch.from_numpy(x).float())" if isinstance(pixel_values, np.ndarray) else ""
            raise TypeError(f"{where}: pixel_values is a {type(pixel_values).__name__}; pass a float torch "
                            f"tensor (batch, {self.config.num_channels}, height, width){hint}, or "
                            f"preprocess images with the image processor.")
        if not pixel_values.is_floating_point():
            raise TypeError(f"{where}: pixel_values has dtype {pixel_values.dtype}; pass floats (e.g. "
                            f"pixels / 255, normalized), or preprocess images with the image processor.")
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(f"{where}: pixel_values has shape {tuple(pixel_values.shape)}; expected a "
                             f"tensor (batch, {self.config.num_channels}, height, width) with num_channels="
                             f"{self.config.num_channels}.")
        param = next(self.parameters())
        return pixel_values.to(device=param.device, dtype=self.dtype)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *args: Any,
                        config: DinatConfig | None = None, state_dict: dict[str, Any] | None = None,
                        dtype: Any = None, torch_dtype: Any = None, backend: str = "auto",
                        ignore_mismatched_sizes: bool = False, output_loading_info: bool = False,
                        **config_overrides: Any):
        """Load a Hugging Face model directory: ``config.json`` + ``model.safetensors`` (or a
        sharded index, or ``pytorch_model.bin`` read with ``weights_only=True``).

        Args:
            path: the model directory (not a file inside it); None when ``config`` and
                ``state_dict`` are both given.
            config: use this config instead of the directory's ``config.json``.
            state_dict: use these weights instead of the directory's.
            dtype: parameter dtype; None or "auto" keeps the checkpoint's. ``torch_dtype`` is
                the older name of the same argument.
            backend: neighborhood-attention backend ("auto", "torch", "flex", "natten").
            ignore_mismatched_sizes: re-initialise (and report) keys whose shape differs, e.g.
                a 1000-class head loaded into a 10-class model.
            output_loading_info: also return ``transformers``' loading report, a dict with
                ``missing_keys`` (newly initialised), ``unexpected_keys`` (dropped),
                ``mismatched_keys`` and ``error_msgs``.
            **config_overrides: config attributes to set first: ``num_labels=``, ``id2label=``,
                ``label2id=``, ``problem_type=``, ...

        Every key is checked first. A classifier head missing from the checkpoint (a trunk-only
        checkpoint) is initialised and named in a warning, as ``transformers`` does; any other
        mismatch raises one error naming all missing, unexpected and mis-shaped keys, and
        nothing is loaded.
        """
        where = cls.__name__
        if args:
            raise TypeError(f"{where}.from_pretrained takes the path positionally, everything else by "
                            f"keyword (got {len(args)} more positional argument(s)).")
        dtype = _torch_dtype(dtype if dtype is not None else torch_dtype, where)
        config, plan = prepare_load(where, cls.kind, "torch", path, config, state_dict, config_overrides,
                                    ignore_mismatched_sizes)
        tensors = {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)))
                   for k, v in plan.state_dict.items()}
        if plan.initialised:  # build for real (HF's init), then overwrite what the checkpoint has
            model = cls(config, backend=backend)
            model.load_state_dict(tensors, strict=False)
            like = next(iter(tensors.values()), None)
            if dtype in (None, "auto") and like is not None and like.is_floating_point():
                model = model.to(like.dtype)
        else:
            with torch.device("meta"):  # no allocation: the checkpoint provides every value
                model = cls(config, backend=backend)
            model.load_state_dict(tensors, strict=True, assign=True)
        if dtype not in (None, "auto"):
            model = model.to(dtype)
        if output_loading_info:
            return model.eval(), {"missing_keys": plan.new_keys, "unexpected_keys": plan.dropped,
                                  "mismatched_keys": plan.mismatched, "error_msgs": []}
        return model.eval()

    def load_checkpoint(self, state_dict: dict[str, Any], assign: bool = False) -> None:
        """Load Hugging Face-named weights after checking all of them (all or nothing)."""
        plan = plan_load(state_dict, self.config, self.kind, where=type(self).__name__, new_head=False)
        sd = {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(v))
              for k, v in plan.state_dict.items()}
        self.load_state_dict(sd, strict=True, assign=assign)

    def save_pretrained(self, directory: str | os.PathLike, state_dict: dict[str, Any] | None = None,
                        is_main_process: bool = True, safe_serialization: bool = True, **_: Any) -> None:
        """Write ``model.safetensors`` then ``config.json``, all or nothing (Hugging Face layout).

        Args:
            directory: the model directory (created if missing).
            state_dict: weights to write instead of ``self.state_dict()``.
            is_main_process: only the main process writes (``transformers``' argument).
            safe_serialization: must be True (only safetensors is written).
        """
        if not safe_serialization:
            raise ValueError("save_pretrained: only safetensors is written (safe_serialization=True).")
        if is_main_process:
            save_pretrained(directory, self.config, self.state_dict() if state_dict is None else state_dict,
                            architecture=type(self).__name__)


class DinatModel(DinatPreTrainedModel):
    """The DiNAT trunk: embeddings, stages, final LayerNorm, mean pooling."""

    kind = "model"

    def __init__(self, config: DinatConfig, backend: str = "auto") -> None:
        super().__init__(config)
        self.embeddings = DinatEmbeddings(config)
        self.encoder = DinatEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self._init_weights()
        self.set_attention_backend(backend)

    def forward(self, pixel_values: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None):
        flags = output_flags(self.config, output_attentions, output_hidden_states, return_dict)
        x = self.embeddings(self._pixels(pixel_values))  # (B, H/4, W/4, E)
        enc = self.encoder(x, flags.output_attentions)
        x = self.layernorm(enc.last)  # (B, h, w, C)
        return model_output(x, x.mean(dim=(1, 2)), enc, flags)  # pooled (B, C)


class DinatForImageClassification(DinatPreTrainedModel):
    """DiNAT + linear classifier on the mean-pooled final features.

    The loss (with ``labels``) follows ``config.problem_type`` as in ``transformers``: see
    :func:`classification_loss`.
    """

    kind = "classification"

    def __init__(self, config: DinatConfig, backend: str = "auto") -> None:
        super().__init__(config)
        self.dinat = DinatModel(config, backend=backend)
        self.classifier = (nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0
                           else nn.Identity())
        self._init_weights()
        self.set_attention_backend(backend)

    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None):
        flags = output_flags(self.config, output_attentions, output_hidden_states, return_dict)
        trunk = self.dinat(pixel_values, flags.output_attentions, flags.output_hidden_states,
                           return_dict=True)
        logits = self.classifier(trunk.pooler_output)  # (B, num_labels)
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        return classifier_output(loss, logits, trunk, flags)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config: DinatConfig) -> torch.Tensor:
    """``transformers``' loss for ``config.problem_type`` (inferred when None, see
    :func:`dinat_ref.hf.modeling_utils.problem_type`).

    * "regression": mean squared error (with one label, over the squeezed tensors);
    * "single_label_classification": cross-entropy averaged over the labels that are not
      -100 (ignored); any other label outside ``0..num_labels-1`` raises;
    * "multi_label_classification": binary cross-entropy with logits.
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"DinatForImageClassification: labels is a {type(labels).__name__}; pass a torch "
                        f"tensor (int64 class indices, or floats for regression / multi-label).")
    labels = labels.to(logits.device)
    kind = problem_type(config, labels.dtype in (torch.long, torch.int))
    n = config.num_labels
    if kind == "regression":
        y = labels.to(logits.dtype)
        return F.mse_loss(logits.squeeze(), y.squeeze()) if n == 1 else F.mse_loss(logits, y)
    if kind == "single_label_classification":
        y = labels.reshape(-1)
        check_class_labels(y.detach().cpu().numpy(), n, "DinatForImageClassification",
                           integer=not y.is_floating_point())
        return F.cross_entropy(logits.reshape(-1, n), y.long(), ignore_index=IGNORE_INDEX)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class DinatBackbone(BackboneInfo, DinatPreTrainedModel):
    """Feature maps (B, C, H, W) of ``config.out_features``, each before downsampling and normed.

    ``stage_names``, ``out_features``, ``out_indices``, ``num_features``,
    ``out_feature_channels`` and ``channels`` are ``transformers``' backbone attributes.
    """

    kind = "backbone"

    def __init__(self, config: DinatConfig, backend: str = "auto") -> None:
        super().__init__(config)
        self.embeddings = DinatEmbeddings(config)
        self.encoder = DinatEncoder(config)
        ch = backbone_channels(config)
        self.hidden_states_norms = nn.ModuleDict(
            {stage: nn.LayerNorm(ch[stage]) for stage in config.out_features})
        self._init_weights()
        self.set_attention_backend(backend)

    @property
    def backbone_type(self):
        """``transformers.utils.BackboneType.TRANSFORMERS`` when transformers is installed."""
        for module in ("transformers.backbone_utils", "transformers.utils.backbone_utils"):
            try:
                return __import__(module, fromlist=["BackboneType"]).BackboneType.TRANSFORMERS
            except Exception:  # noqa: BLE001 - missing, moved, or failing to import
                continue
        return "transformers"

    def forward(self, pixel_values: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, return_dict: bool | None = None):
        flags = output_flags(self.config, output_attentions, output_hidden_states, return_dict)
        x = self.embeddings(self._pixels(pixel_values))
        enc = self.encoder(x, flags.output_attentions)
        maps = tuple(self.hidden_states_norms[name](x).permute(0, 3, 1, 2)  # (B, C, H, W)
                     for name, x in zip(self.config.stage_names, enc.before_downsample, strict=True)
                     if name in self.config.out_features)
        return backbone_output(maps, enc, flags)
