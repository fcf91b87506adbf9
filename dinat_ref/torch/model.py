"""DiNAT in PyTorch, with Hugging Face ``transformers``' module tree and parameter names.

Dilated Neighborhood Attention Transformer, Hassani & Shi 2022, https://arxiv.org/abs/2209.15001.
``state_dict()`` keys and shapes are exactly Hugging Face's (``dinat.encoder.levels.0.layers.1
.attention.self.rpb``, ...), so a ``transformers`` DiNAT checkpoint directory loads with
:meth:`DinatPreTrainedModel.from_pretrained` and the same weights give the same numbers as
:mod:`dinat_ref.numpy.model` (read that file for the math, step by step; this one is the
same network as ``nn.Module`` s). Neighborhood attention itself is
:func:`dinat_ref.torch.na2d`, whose ``backend`` ("auto", "torch", "flex", "natten") every
model takes; outputs are the dataclasses of :mod:`dinat_ref.numpy.model`.

Training: dropout and drop path (stochastic depth, ``linspace(0, drop_path_rate,
sum(depths))``) are active only in ``model.train()`` mode. Attention-probability dropout
needs the probabilities, so in training with ``attention_probs_dropout_prob > 0`` the layer
computes ``na2d_qk -> softmax -> dropout -> na2d_av`` instead of the fused call.

Attention maps (``output_attentions=True``): one tensor per layer, all stages in order,
``(B, h, w, heads, kernel_size**2)`` in neighborhood layout over the (possibly padded) grid
the layer attended (see :mod:`dinat_ref.numpy.model`).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dinat_ref.config import DinatConfig
from dinat_ref.numpy.model import DinatBackboneOutput, DinatImageClassifierOutput, DinatModelOutput
from dinat_ref.torch.functional import na2d, na2d_av, na2d_qk
from dinat_ref.weights import (
    adapt_state_dict,
    backbone_channels,
    check_state_dict,
    expected_shapes,
    load_state_dict,
    save_state_dict,
)

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

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        attentions = []
        for layer in self.layers:
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

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        """Returns (last, after-downsample list, before-downsample list, attentions)."""
        after, before, attentions = [x], [x], []
        for stage in self.levels:
            x, pre, probs = stage(x, output_attentions)
            after.append(x)
            before.append(pre)
            attentions.extend(probs)
        return x, after, before, attentions


def _nchw(xs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(x.permute(0, 3, 1, 2) for x in xs)


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------

class DinatPreTrainedModel(nn.Module):
    """Weight init, attention backend, and ``from_pretrained`` / ``save_pretrained``."""

    kind = "model"

    def __init__(self, config: DinatConfig) -> None:
        super().__init__()
        if not isinstance(config, DinatConfig):
            raise TypeError(f"{type(self).__name__}: config must be a DinatConfig, "
                            f"got {type(config).__name__}.")
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

    def set_attention_backend(self, backend: str) -> None:
        """Neighborhood-attention backend of every layer: "auto", "torch", "flex" or "natten"."""
        for m in self.modules():
            if isinstance(m, NeighborhoodAttention):
                m.backend = backend

    def _check_pixels(self, pixel_values: torch.Tensor) -> None:
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4 \
                or pixel_values.shape[1] != self.config.num_channels:
            shape = (tuple(pixel_values.shape) if hasattr(pixel_values, "shape")
                     else type(pixel_values).__name__)
            raise ValueError(f"{type(self).__name__}: pixel_values has shape {shape}; expected a tensor "
                             f"(batch, {self.config.num_channels}, height, width) with num_channels="
                             f"{self.config.num_channels}.")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dtype: torch.dtype | None = None,
                        backend: str = "auto", config: DinatConfig | None = None):
        """Load a Hugging Face directory: ``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``.

        Every key is checked first; a mismatch raises one error naming all missing, unexpected
        and mis-shaped keys, and nothing is loaded.
        """
        config = DinatConfig.from_pretrained(path) if config is None else config
        state_dict = load_state_dict(path, "torch")
        with torch.device("meta"):  # no allocation: the checkpoint provides every value
            model = cls(config, backend=backend)
        model.load_checkpoint(state_dict, assign=True)
        if dtype is not None:
            model = model.to(dtype)
        return model.eval()

    def load_checkpoint(self, state_dict: dict[str, Any], assign: bool = False) -> None:
        """Load Hugging Face-named weights after checking all of them (all or nothing)."""
        sd = adapt_state_dict(state_dict, self.config, self.kind)
        check_state_dict(sd, expected_shapes(self.config, self.kind), where=type(self).__name__)
        sd = {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(v)) for k, v in sd.items()}
        self.load_state_dict(sd, strict=True, assign=assign)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` (Hugging Face layout)."""
        os.makedirs(directory, exist_ok=True)
        self.config.extra["architectures"] = [type(self).__name__]
        self.config.save_pretrained(directory)
        save_state_dict(self.state_dict(), os.path.join(directory, "model.safetensors"))


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

    def forward(self, pixel_values: torch.Tensor, output_attentions: bool = False,
                output_hidden_states: bool = False) -> DinatModelOutput:
        self._check_pixels(pixel_values)
        x = self.embeddings(pixel_values)  # (B, H/4, W/4, E)
        x, after, _, attentions = self.encoder(x, output_attentions)
        x = self.layernorm(x)  # (B, h, w, C)
        return DinatModelOutput(
            last_hidden_state=x,
            pooler_output=x.mean(dim=(1, 2)),  # (B, C)
            hidden_states=tuple(after) if output_hidden_states else None,
            reshaped_hidden_states=_nchw(after) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class DinatForImageClassification(DinatPreTrainedModel):
    """DiNAT + linear classifier on the mean-pooled final features."""

    kind = "classification"

    def __init__(self, config: DinatConfig, backend: str = "auto") -> None:
        super().__init__(config)
        self.dinat = DinatModel(config, backend=backend)
        self.classifier = (nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0
                           else nn.Identity())
        self._init_weights()
        self.set_attention_backend(backend)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_attentions: bool = False, output_hidden_states: bool = False
                ) -> DinatImageClassifierOutput:
        out = self.dinat(pixel_values, output_attentions, output_hidden_states)
        logits = self.classifier(out.pooler_output)  # (B, num_labels)
        return DinatImageClassifierOutput(
            loss=None if labels is None else _loss(logits, labels, self.config.num_labels),
            logits=logits, last_hidden_state=out.last_hidden_state, pooler_output=out.pooler_output,
            hidden_states=out.hidden_states, reshaped_hidden_states=out.reshaped_hidden_states,
            attentions=out.attentions,
        )


def _loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Hugging Face's choice: MSE for one label, cross-entropy for integer labels, else BCE."""
    if num_labels == 1:
        return F.mse_loss(logits.reshape(-1), labels.reshape(-1).to(logits.dtype))
    if not labels.is_floating_point():
        return F.cross_entropy(logits.reshape(-1, num_labels), labels.reshape(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class DinatBackbone(DinatPreTrainedModel):
    """Feature maps (B, C, H, W) of ``config.out_features``, each before downsampling and normed."""

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
    def channels(self) -> list[int]:
        ch = backbone_channels(self.config)
        return [ch[name] for name in self.config.out_features]

    def forward(self, pixel_values: torch.Tensor, output_attentions: bool = False,
                output_hidden_states: bool = False) -> DinatBackboneOutput:
        self._check_pixels(pixel_values)
        x = self.embeddings(pixel_values)
        _, _, before, attentions = self.encoder(x, output_attentions)
        maps = tuple(self.hidden_states_norms[name](x).permute(0, 3, 1, 2)  # (B, C, H, W)
                     for name, x in zip(self.config.stage_names, before, strict=True)
                     if name in self.config.out_features)
        return DinatBackboneOutput(
            feature_maps=maps,
            hidden_states=tuple(before) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )
