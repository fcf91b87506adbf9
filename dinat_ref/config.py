"""DiNAT configuration: one dataclass shared by the NumPy and the PyTorch model.

Dilated Neighborhood Attention Transformer (DiNAT), Hassani & Shi, 2022,
https://arxiv.org/abs/2209.15001. Field names and defaults are Hugging Face
``transformers``' ``DinatConfig``, so a ``config.json`` written by either loads in the other.
Unknown ``config.json`` keys (``architectures``, ``torch_dtype``, ...) are kept in
:attr:`DinatConfig.extra` and written back, never an error.

Only ``patch_size=4`` exists: the patch embedding is two 3x3 stride-2 convolutions
(4x downsampling), as in the paper and in Hugging Face.

Presets (ImageNet-1K top-1 / params / FLOPs as reported by the DiNAT paper and the
SHI-Labs model zoo; FLOPs are multiply-accumulates, "2.7G" = 2.7 GMACs)::

    name             resolution  kernel  top-1   params  FLOPs   pre-training
    mini             224         7x7     81.8%   20M     2.7G    -
    tiny             224         7x7     82.7%   28M     4.3G    -
    small            224         7x7     83.8%   51M     7.8G    -
    base             224         7x7     84.4%   90M     13.7G   -
    large            224         7x7     86.5%   200M    30.6G   ImageNet-22K
    large-384        384         7x7     87.2%   200M    89.7G   ImageNet-22K
    large-11x11-384  384         11x11   87.3%   200M    92.4G   ImageNet-22K

``base`` uses layer scale 1e-5; ``large-384`` spreads its dilations for the 96x96 grid
(``[[1,13,1],[1,6,1,6],[1,3]*9,[1]*5]``); ``large-11x11-384`` keeps the 224 dilations
with an 11x11 kernel. Example::

    cfg = DinatConfig.from_preset("mini")
    cfg = DinatConfig(embed_dim=32, depths=[2, 2], num_heads=[2, 4], dilations=[[1, 2], [1, 1]])
    cfg.to_json_file("config.json"); DinatConfig.from_json_file("config.json") == cfg
"""

from __future__ import annotations

import copy
import json
import operator
import os
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["DinatConfig", "PRESETS", "PRESET_RESULTS", "preset_names"]

_DEFAULT_DILATIONS = [[1, 8, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1, 2], [1, 1, 1, 1, 1]]
_SUPPORTED_ACTIVATIONS = ("gelu",)
# Keys Hugging Face writes that we derive ourselves; read and ignored, written fresh.
_DERIVED_KEYS = ("num_layers", "hidden_size", "stage_names", "model_type", "id2label", "label2id",
                 "num_labels")


def _stage4_dilations(depth: int, every_other: int) -> list[int]:
    return [1 if i % 2 == 0 else every_other for i in range(depth)]


# Name -> DinatConfig keyword arguments (SHI-Labs classification/dinat.py).
PRESETS: dict[str, dict[str, Any]] = {
    "mini": dict(embed_dim=64, depths=[3, 4, 6, 5], num_heads=[2, 4, 8, 16], mlp_ratio=3.0,
                 drop_path_rate=0.2, kernel_size=7,
                 dilations=[[1, 8, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1, 2], [1] * 5]),
    "tiny": dict(embed_dim=64, depths=[3, 4, 18, 5], num_heads=[2, 4, 8, 16], mlp_ratio=3.0,
                 drop_path_rate=0.2, kernel_size=7,
                 dilations=[[1, 8, 1], [1, 4, 1, 4], _stage4_dilations(18, 2), [1] * 5]),
    "small": dict(embed_dim=96, depths=[3, 4, 18, 5], num_heads=[3, 6, 12, 24], mlp_ratio=2.0,
                  drop_path_rate=0.3, kernel_size=7,
                  dilations=[[1, 8, 1], [1, 4, 1, 4], _stage4_dilations(18, 2), [1] * 5]),
    "base": dict(embed_dim=128, depths=[3, 4, 18, 5], num_heads=[4, 8, 16, 32], mlp_ratio=2.0,
                 drop_path_rate=0.5, kernel_size=7, layer_scale_init_value=1e-5,
                 dilations=[[1, 8, 1], [1, 4, 1, 4], _stage4_dilations(18, 2), [1] * 5]),
    "large": dict(embed_dim=192, depths=[3, 4, 18, 5], num_heads=[6, 12, 24, 48], mlp_ratio=2.0,
                  drop_path_rate=0.35, kernel_size=7,
                  dilations=[[1, 8, 1], [1, 4, 1, 4], _stage4_dilations(18, 2), [1] * 5]),
    "large-384": dict(embed_dim=192, depths=[3, 4, 18, 5], num_heads=[6, 12, 24, 48], mlp_ratio=2.0,
                      drop_path_rate=0.35, kernel_size=7,
                      dilations=[[1, 13, 1], [1, 6, 1, 6], _stage4_dilations(18, 3), [1] * 5]),
    "large-11x11-384": dict(embed_dim=192, depths=[3, 4, 18, 5], num_heads=[6, 12, 24, 48],
                            mlp_ratio=2.0, drop_path_rate=0.35, kernel_size=11,
                            dilations=[[1, 8, 1], [1, 4, 1, 4], _stage4_dilations(18, 2), [1] * 5]),
}
for _kwargs in PRESETS.values():
    _kwargs["num_labels"] = 1000  # ImageNet-1K heads

# Name -> reported results: resolution, ImageNet-1K top-1 (%), params (M), GMACs, pre-training.
PRESET_RESULTS: dict[str, dict[str, Any]] = {
    "mini": dict(resolution=224, top1=81.8, params_m=20, gmacs=2.7, pretraining=None),
    "tiny": dict(resolution=224, top1=82.7, params_m=28, gmacs=4.3, pretraining=None),
    "small": dict(resolution=224, top1=83.8, params_m=51, gmacs=7.8, pretraining=None),
    "base": dict(resolution=224, top1=84.4, params_m=90, gmacs=13.7, pretraining=None),
    "large": dict(resolution=224, top1=86.5, params_m=200, gmacs=30.6, pretraining="ImageNet-22K"),
    "large-384": dict(resolution=384, top1=87.2, params_m=200, gmacs=89.7, pretraining="ImageNet-22K"),
    "large-11x11-384": dict(resolution=384, top1=87.3, params_m=200, gmacs=92.4,
                            pretraining="ImageNet-22K"),
}


def preset_names() -> list[str]:
    """Names accepted by :meth:`DinatConfig.from_preset`."""
    return list(PRESETS)


def _is_int(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def _int_list(value: Any, name: str) -> list[int]:
    if _is_int(value) or isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"DinatConfig: {name}={value!r} must be a list of integers.")
    out = list(value)
    if not all(_is_int(v) for v in out):
        raise ValueError(f"DinatConfig: {name}={value!r} must be a list of integers.")
    return [int(v) for v in out]


@dataclass
class DinatConfig:
    """Hyper-parameters of a DiNAT model (Hugging Face ``DinatConfig`` fields and defaults).

    Args:
        patch_size: patch size of the embedding; only 4 (two 3x3 stride-2 convolutions).
        num_channels: input image channels.
        embed_dim: channels of stage 1; stage i has ``embed_dim * 2**i``.
        depths: layers per stage.
        num_heads: attention heads per stage.
        kernel_size: neighborhood size per axis (``k x k`` keys per query).
        dilations: dilation of every layer, one list per stage with one entry per layer.
        mlp_ratio: MLP hidden width / channels.
        qkv_bias: bias in the query/key/value projections.
        hidden_dropout_prob: dropout after the embeddings and the MLP (training only).
        attention_probs_dropout_prob: dropout on attention probabilities and output (training only).
        drop_path_rate: stochastic depth, ``linspace(0, drop_path_rate, sum(depths))`` per layer.
        hidden_act: MLP activation; only "gelu" (exact, erf-based).
        initializer_range: std of the normal init of Linear / Conv weights.
        layer_norm_eps: epsilon of ``layernorm_before/after`` and the final LayerNorm (the
            embedding, downsampler and backbone norms use PyTorch's default 1e-5, as Hugging Face).
        layer_scale_init_value: initial layer scale; 0 means no layer scale parameters.
        out_features: backbone outputs by stage name ("stem", "stage1", ...).
        out_indices: the same by index into :attr:`stage_names`; give either, or both agreeing.
        num_labels: classifier outputs (Hugging Face default 2; presets 1000); 0 = no classifier.
        id2label: optional label names, ``{index: name}``.
        extra: unknown ``config.json`` keys, kept and written back.
    """

    patch_size: int = 4
    num_channels: int = 3
    embed_dim: int = 64
    depths: list[int] = field(default_factory=lambda: [3, 4, 6, 5])
    num_heads: list[int] = field(default_factory=lambda: [2, 4, 8, 16])
    kernel_size: int = 7
    dilations: list[list[int]] | None = None
    mlp_ratio: float = 3.0
    qkv_bias: bool = True
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    drop_path_rate: float = 0.1
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    layer_scale_init_value: float = 0.0
    out_features: list[str] | None = None
    out_indices: list[int] | None = None
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        where = "DinatConfig"
        ps = self.patch_size
        if isinstance(ps, (list, tuple)) and len(ps) == 2 and ps[0] == ps[1]:
            ps = ps[0]
        if not _is_int(ps) or int(ps) != 4:
            raise ValueError(f"{where}: patch_size={self.patch_size!r} is not supported; DiNAT's patch "
                             f"embedding is two 3x3 stride-2 convolutions, so patch_size must be 4.")
        self.patch_size = 4
        for name in ("num_channels", "embed_dim", "kernel_size"):
            v = getattr(self, name)
            if not _is_int(v) or int(v) < 1:
                raise ValueError(f"{where}: {name}={v!r} must be a positive integer.")
            setattr(self, name, int(v))
        if self.kernel_size < 2:
            raise ValueError(f"{where}: kernel_size={self.kernel_size} must be >= 2.")
        if self.embed_dim < 2:
            raise ValueError(f"{where}: embed_dim={self.embed_dim} must be >= 2 (the first "
                             f"convolution has embed_dim // 2 channels).")
        self.depths = _int_list(self.depths, "depths")
        self.num_heads = _int_list(self.num_heads, "num_heads")
        if not self.depths or any(d < 1 for d in self.depths):
            raise ValueError(f"{where}: depths={self.depths} must be a non-empty list of positive integers.")
        if len(self.num_heads) != len(self.depths):
            raise ValueError(f"{where}: num_heads={self.num_heads} needs one entry per stage "
                             f"(len(depths)={len(self.depths)}).")
        for i, h in enumerate(self.num_heads):
            dim = self.embed_dim * 2**i
            if h < 1 or dim % h:
                raise ValueError(f"{where}: num_heads[{i}]={h} must be positive and divide stage {i}'s "
                                 f"{dim} channels (embed_dim * 2**{i}).")
        if self.dilations is None:
            self.dilations = copy.deepcopy(_DEFAULT_DILATIONS)
        if isinstance(self.dilations, (str, bytes)) or not hasattr(self.dilations, "__iter__"):
            raise ValueError(f"{where}: dilations={self.dilations!r} must be a list of lists of integers.")
        dil = [_int_list(d, f"dilations[{i}]") for i, d in enumerate(self.dilations)]
        if len(dil) != len(self.depths):
            raise ValueError(f"{where}: dilations has {len(dil)} stages but depths={self.depths} has "
                             f"{len(self.depths)}; give one list per stage.")
        for i, (d, depth) in enumerate(zip(dil, self.depths, strict=True)):
            if len(d) != depth:
                raise ValueError(f"{where}: dilations[{i}]={d} has {len(d)} entries but stage {i} has "
                                 f"depths[{i}]={depth} layers; give one dilation per layer.")
            if any(x < 1 for x in d):
                raise ValueError(f"{where}: dilations[{i}]={d} must be >= 1 (1 = no dilation).")
        self.dilations = dil
        if not isinstance(self.mlp_ratio, (int, float)) or isinstance(self.mlp_ratio, bool) \
                or int(self.mlp_ratio * self.embed_dim) < 1:
            raise ValueError(f"{where}: mlp_ratio={self.mlp_ratio!r} must be a positive number.")
        self.mlp_ratio = float(self.mlp_ratio)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v < 1.0:
                raise ValueError(f"{where}: {name}={v!r} must be a probability in [0, 1).")
            setattr(self, name, float(v))
        if self.hidden_act not in _SUPPORTED_ACTIVATIONS:
            raise ValueError(f"{where}: hidden_act={self.hidden_act!r} is not supported; use one of "
                             f"{list(_SUPPORTED_ACTIVATIONS)} (exact erf GELU, as DiNAT).")
        if not isinstance(self.layer_norm_eps, (int, float)) or not self.layer_norm_eps > 0:
            raise ValueError(f"{where}: layer_norm_eps={self.layer_norm_eps!r} must be > 0.")
        if not isinstance(self.layer_scale_init_value, (int, float)) or self.layer_scale_init_value < 0:
            raise ValueError(f"{where}: layer_scale_init_value={self.layer_scale_init_value!r} must be "
                             f">= 0 (0 = no layer scale).")
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in dict(self.id2label).items()}
            if self.num_labels == 2 and len(self.id2label) != 2:  # 2 is the default: follow id2label
                self.num_labels = len(self.id2label)
        if not _is_int(self.num_labels) or self.num_labels < 0:
            raise ValueError(f"{where}: num_labels={self.num_labels!r} must be an integer >= 0.")
        self.num_labels = int(self.num_labels)
        if self.id2label is not None and sorted(self.id2label) != list(range(self.num_labels)):
            raise ValueError(f"{where}: id2label has keys {sorted(self.id2label)[:5]}... but num_labels="
                             f"{self.num_labels}; it needs exactly the keys 0..num_labels-1.")
        self._align_out_features()

    def _align_out_features(self) -> None:
        """Hugging Face's rule: out_features and out_indices name the same stages, in order."""
        names = self.stage_names
        feats, idx = self.out_features, self.out_indices
        if feats is not None:
            feats = [str(f) for f in feats]
            bad = [f for f in feats if f not in names]
            if bad:
                raise ValueError(f"DinatConfig: out_features={feats} has {bad}, not a stage; "
                                 f"stages are {names}.")
        if idx is not None:
            idx = _int_list(idx, "out_indices")
            idx = [i % len(names) if -len(names) <= i < 0 else i for i in idx]
            bad = [i for i in idx if not 0 <= i < len(names)]
            if bad:
                raise ValueError(f"DinatConfig: out_indices={idx} has {bad}, outside 0..{len(names) - 1}.")
        if feats is None and idx is None:
            feats, idx = [names[-1]], [len(names) - 1]
        elif feats is None:
            feats = [names[i] for i in idx]
        elif idx is None:
            idx = [names.index(f) for f in feats]
        elif feats != [names[i] for i in idx]:
            raise ValueError(f"DinatConfig: out_features={feats} and out_indices={idx} disagree; "
                             f"stage_names={names}.")
        order = [names.index(f) for f in feats]
        if len(set(feats)) != len(feats) or order != sorted(order):
            raise ValueError(f"DinatConfig: out_features={feats} must be distinct and in stage order "
                             f"{names}.")
        self.out_features, self.out_indices = feats, idx

    # ------------------------------------------------------------------ derived
    @property
    def num_layers(self) -> int:
        """Number of stages (Hugging Face's name)."""
        return len(self.depths)

    @property
    def hidden_size(self) -> int:
        """Channels after the last stage: ``embed_dim * 2**(num_layers - 1)``."""
        return self.embed_dim * 2 ** (self.num_layers - 1)

    @property
    def stage_names(self) -> list[str]:
        return ["stem"] + [f"stage{i}" for i in range(1, self.num_layers + 1)]

    def stage_dims(self) -> list[int]:
        """Channels of every stage: ``embed_dim * 2**i``."""
        return [self.embed_dim * 2**i for i in range(self.num_layers)]

    def drop_path_rates(self) -> list[list[float]]:
        """Stochastic depth per layer, ``linspace(0, drop_path_rate, sum(depths))``, split by stage."""
        n = sum(self.depths)
        flat = [self.drop_path_rate * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
        out, start = [], 0
        for d in self.depths:
            out.append(flat[start:start + d])
            start += d
        return out

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> DinatConfig:
        """A paper configuration by name (:func:`preset_names`), with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"DinatConfig.from_preset: unknown preset {name!r}; "
                             f"choose from {preset_names()}.")
        kwargs = copy.deepcopy(PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------------ dict / json
    def to_dict(self) -> dict[str, Any]:
        """A Hugging Face ``config.json`` dictionary (derived keys included, extras kept)."""
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name in ("extra", "num_labels", "id2label"):
                continue
            out[f.name] = copy.deepcopy(getattr(self, f.name))
        id2label = self.id2label or {i: f"LABEL_{i}" for i in range(self.num_labels)}
        out["id2label"] = {str(k): v for k, v in sorted(id2label.items())}
        out["label2id"] = {v: k for k, v in sorted(id2label.items())}
        out["num_labels"] = self.num_labels
        out["model_type"] = "dinat"
        out["num_layers"] = self.num_layers
        out["hidden_size"] = self.hidden_size
        out["stage_names"] = self.stage_names
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DinatConfig:
        """Build from a ``config.json`` dictionary; unknown keys go to :attr:`extra`."""
        d = dict(d)
        model_type = d.get("model_type", "dinat")
        if model_type not in ("dinat", "nat"):
            raise ValueError(f"DinatConfig.from_dict: model_type={model_type!r} is not a DiNAT config.")
        names = {f.name for f in fields(cls)} - {"extra", "id2label", "num_labels"}
        kwargs = {k: d.pop(k) for k in list(d) if k in names}
        id2label = d.get("id2label")
        if "num_labels" in d:
            kwargs["num_labels"] = d["num_labels"]
        elif id2label is not None:
            kwargs["num_labels"] = len(id2label)
        if id2label is not None:
            default = {int(k): v for k, v in id2label.items()} == {
                i: f"LABEL_{i}" for i in range(len(id2label))}
            kwargs["id2label"] = None if default else id2label
            if "num_labels" in d and len(id2label) != d["num_labels"]:
                kwargs["id2label"] = None  # num_labels wins, as in Hugging Face
        extra = {k: v for k, v in d.items() if k not in _DERIVED_KEYS}
        return cls(**kwargs, extra=extra)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json_string())

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> DinatConfig:
        with open(path, encoding="utf-8") as fh:
            try:
                d = json.load(fh)
            except json.JSONDecodeError as e:
                raise ValueError(f"DinatConfig.from_json_file: {os.fspath(path)!r} is not valid "
                                 f"JSON: {e}") from e
        return cls.from_dict(d)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> DinatConfig:
        """Read ``config.json`` from a model directory (or the file itself)."""
        p = os.fspath(path)
        if os.path.isdir(p):
            p = os.path.join(p, "config.json")
        if not os.path.isfile(p):
            raise FileNotFoundError(f"DinatConfig.from_pretrained: no config.json at {os.fspath(path)!r}.")
        return cls.from_json_file(p)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        os.makedirs(directory, exist_ok=True)
        self.to_json_file(os.path.join(directory, "config.json"))
