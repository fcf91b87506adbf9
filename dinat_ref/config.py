"""DiNAT configuration: one dataclass shared by the NumPy and the PyTorch model.

Dilated Neighborhood Attention Transformer (DiNAT), Hassani & Shi, 2022,
https://arxiv.org/abs/2209.15001. Field names and defaults are Hugging Face
``transformers``' ``DinatConfig``, so a ``config.json`` written by either loads in the other.
Any other keyword or ``config.json`` key (``image_size``, ``patch_norm``, ``architectures``,
``torch_dtype``, ...) is kept in :attr:`DinatConfig.extra`, readable as an attribute
(``config.image_size``) and written back, never an error.

Only ``patch_size=4`` exists: the patch embedding is two 3x3 stride-2 convolutions
(4x downsampling), as in the paper and in Hugging Face.

Presets are one table, :data:`PRESET_TABLE` (the SHI-Labs model zoo, ImageNet-1K top-1,
params and FLOPs as reported by the DiNAT paper; FLOPs are multiply-accumulates, "2.7G" =
2.7 GMACs). Dilations are not listed: every preset uses the paper's rule, the largest
dilation whose window fits the stage's grid at the preset's resolution, on every other
layer (``1, d, 1, d, ...`` with ``d = max(1, (resolution / 4 / 2**stage) // kernel_size)``),
e.g. ``[[1, 8, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1, 2], [1] * 5]`` for mini at 224. Example::

    cfg = DinatConfig.from_preset("mini")
    cfg = DinatConfig(embed_dim=32, depths=[2, 2], num_heads=[2, 4], dilations=[[1, 2], [1, 1]])
    cfg.to_json_file("config.json"); DinatConfig.from_json_file("config.json") == cfg

The presets (generated from :data:`PRESET_TABLE`)::

"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import logging
import math
import operator
import os
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

__all__ = ["DinatConfig", "PRESETS", "PRESET_RESULTS", "PRESET_TABLE", "Preset", "preset_names",
           "paper_dilations"]

logger = logging.getLogger("dinat_ref")

_SUPPORTED_ACTIVATIONS = ("gelu",)
_PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
# Keys Hugging Face writes that we derive ourselves: read and ignored, written fresh.
_DERIVED_KEYS = ("num_layers", "hidden_size", "stage_names", "model_type")


# ----------------------------------------------------------------------------------------
# Presets: one table
# ----------------------------------------------------------------------------------------

def paper_dilations(depths: list[int], kernel_size: int, resolution: int) -> list[list[int]]:
    """The DiNAT paper's dilations: ``1, d, 1, d, ...`` per stage, ``d`` the largest that fits.

    Stage ``i`` has ``resolution / 4 / 2**i`` tokens per axis; a window of ``kernel_size``
    keys dilated by ``d`` spans ``kernel_size * d`` of them, so ``d = tokens // kernel_size``.
    """
    dilations = []
    for i, depth in enumerate(depths):
        d = max(1, (resolution // 4 // 2**i) // kernel_size)
        dilations.append([1 if j % 2 == 0 else d for j in range(depth)])
    return dilations


class Preset(NamedTuple):
    """One row of :data:`PRESET_TABLE`: the architecture and what the paper reports for it."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratio: float
    drop_path_rate: float
    kernel_size: int
    layer_scale_init_value: float
    resolution: int
    top1: float
    params_m: int
    gmacs: float
    pretraining: str | None


_D4 = (3, 4, 18, 5)
# name: embed, depths, heads, mlp, drop path, kernel, layer scale,
#       resolution, top-1, params (M), GMACs, pre-training
PRESET_TABLE: dict[str, Preset] = {
    "mini": Preset(64, (3, 4, 6, 5), (2, 4, 8, 16), 3.0, 0.2, 7, 0.0, 224, 81.8, 20, 2.7, None),
    "tiny": Preset(64, _D4, (2, 4, 8, 16), 3.0, 0.2, 7, 0.0, 224, 82.7, 28, 4.3, None),
    "small": Preset(96, _D4, (3, 6, 12, 24), 2.0, 0.3, 7, 0.0, 224, 83.8, 51, 7.8, None),
    "base": Preset(128, _D4, (4, 8, 16, 32), 2.0, 0.5, 7, 1e-5, 224, 84.4, 90, 13.7, None),
    "large": Preset(192, _D4, (6, 12, 24, 48), 2.0, 0.35, 7, 0.0, 224, 86.5, 200, 30.6, "ImageNet-22K"),
    "large-384": Preset(192, _D4, (6, 12, 24, 48), 2.0, 0.35, 7, 0.0, 384, 87.2, 200, 89.7, "ImageNet-22K"),
    "large-11x11-384": Preset(192, _D4, (6, 12, 24, 48), 2.0, 0.35, 11, 0.0, 384, 87.3, 200, 92.4,
                              "ImageNet-22K"),
}


def _preset_kwargs(p: Preset) -> dict[str, Any]:
    kwargs = dict(embed_dim=p.embed_dim, depths=list(p.depths), num_heads=list(p.num_heads),
                  mlp_ratio=p.mlp_ratio, drop_path_rate=p.drop_path_rate, kernel_size=p.kernel_size,
                  dilations=paper_dilations(list(p.depths), p.kernel_size, p.resolution),
                  num_labels=1000)  # ImageNet-1K heads
    if p.layer_scale_init_value:
        kwargs["layer_scale_init_value"] = p.layer_scale_init_value
    return kwargs


# Name -> DinatConfig keyword arguments; name -> reported results (both from PRESET_TABLE).
PRESETS: dict[str, dict[str, Any]] = {name: _preset_kwargs(p) for name, p in PRESET_TABLE.items()}
PRESET_RESULTS: dict[str, dict[str, Any]] = {
    name: dict(resolution=p.resolution, top1=p.top1, params_m=p.params_m, gmacs=p.gmacs,
               pretraining=p.pretraining) for name, p in PRESET_TABLE.items()}


def _preset_doc_table() -> str:
    rows = [("name", "resolution", "kernel", "top-1", "params", "FLOPs", "pre-training")]
    for name, p in PRESET_TABLE.items():
        notes = [p.pretraining] if p.pretraining else []
        if p.layer_scale_init_value:
            notes.append(f"layer scale {p.layer_scale_init_value:g}")
        note = ", ".join(notes) or "-"
        rows.append((name, str(p.resolution), f"{p.kernel_size}x{p.kernel_size}", f"{p.top1}%",
                     f"{p.params_m}M", f"{p.gmacs}G", note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows) + "\n"


__doc__ += _preset_doc_table()


def preset_names() -> list[str]:
    """Names accepted by :meth:`DinatConfig.from_preset`."""
    return list(PRESET_TABLE)


# ----------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------

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


def _number(value: Any, name: str, rule: str, ok) -> float:
    """A finite real number (not a bool) for which ``ok(value)`` holds, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not ok(value):
        raise ValueError(f"DinatConfig: {name}={value!r} must be a finite number {rule}.")
    return float(value)


@dataclass(init=False)
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
        out_features: backbone outputs by stage name ("stem", "stage1", ...); None = last stage.
        out_indices: the same by index into :attr:`stage_names`; give either, or both agreeing.
            Setting one on an existing config realigns the other, as in Hugging Face.
        num_labels: classifier outputs (Hugging Face default 2; presets 1000); 0 = no classifier.
            Setting it on an existing config resets the labels to ``LABEL_i``.
        id2label: label names, ``{index: name}``; default ``{i: "LABEL_i"}``. When given it
            decides ``num_labels`` (as in Hugging Face).
        label2id: ``{name: index}``; default the inverse of ``id2label``.
        problem_type: the classifier's loss: "regression" (MSE), "single_label_classification"
            (cross-entropy) or "multi_label_classification" (BCE with logits); None = inferred
            at the first loss, as Hugging Face does.
        output_hidden_states: models' default for ``output_hidden_states=None``.
        output_attentions: models' default for ``output_attentions=None``.
        return_dict: models' default for ``return_dict=None`` (False: return tuples).
        extra: every other key (``image_size``, ``architectures``, ...), kept and written back.
        **kwargs: unknown keywords, stored in ``extra``.
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
    label2id: dict[str, int] | None = None
    problem_type: str | None = None
    output_hidden_states: bool = False
    output_attentions: bool = False
    return_dict: bool = True
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = [f.name for f in fields(self)]
        if len(args) > len(names) - 1:
            raise TypeError(f"DinatConfig takes at most {len(names) - 1} positional arguments.")
        given = dict(zip(names, args, strict=False))
        for k in list(kwargs):
            if k in given:
                raise TypeError(f"DinatConfig got multiple values for argument {k!r}.")
        given.update(kwargs)
        extra = dict(given.pop("extra", None) or {})
        for k in list(given):
            if k not in names:
                extra[k] = given.pop(k)
        for k in _DERIVED_KEYS:
            extra.pop(k, None)
        if given.get("num_labels") is None:  # transformers writes no num_labels: id2label decides
            given.pop("num_labels", None)
            if isinstance(given.get("id2label"), dict):
                given["num_labels"] = len(given["id2label"])
        object.__setattr__(self, "_ready", False)
        for f in fields(self):
            if f.name in given:
                value = given[f.name]
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = f.default
            object.__setattr__(self, f.name, value)
        object.__setattr__(self, "extra", extra)
        self.__post_init__()
        object.__setattr__(self, "_ready", True)

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        # Types and ranges, checked at construction (as transformers' own checks are).
        self._check_types()
        self._check_numbers()
        self._check_flags()
        self._check_labels()
        self._align_out_features()

    def validate(self) -> None:
        """Check that a model can be built from this config (models call this when built).

        Construction checks each value's type and range; whether the values fit together
        (``num_heads`` dividing each stage's channels, one dilation per layer, ...) is checked
        here, as ``transformers`` accepts such a config and fails only when the model is built.
        Fields set one by one after construction are checked again too.

        Raises:
            ValueError: naming the field, its value and the rule.
        """
        object.__setattr__(self, "_ready", False)
        try:
            self.__post_init__()
            self._check_architecture()
        finally:
            object.__setattr__(self, "_ready", True)

    def _check_types(self) -> None:
        ps = self.patch_size
        if isinstance(ps, (list, tuple)) and len(ps) == 2 and ps[0] == ps[1]:
            self.patch_size = ps = ps[0]
        if not _is_int(ps):
            raise ValueError(f"DinatConfig: patch_size={ps!r} must be an integer (DiNAT supports 4).")
        for name in ("patch_size", "num_channels", "embed_dim", "kernel_size"):
            v = getattr(self, name)
            if not _is_int(v) or int(v) < 1:
                raise ValueError(f"DinatConfig: {name}={v!r} must be a positive integer.")
            setattr(self, name, int(v))
        self.depths = _int_list(self.depths, "depths")
        self.num_heads = _int_list(self.num_heads, "num_heads")
        if self.dilations is None:
            self.dilations = paper_dilations([3, 4, 6, 5], 7, 224)  # Hugging Face's default
        if isinstance(self.dilations, (str, bytes)) or not hasattr(self.dilations, "__iter__"):
            raise ValueError(f"DinatConfig: dilations={self.dilations!r} must be a list of lists of "
                             f"integers.")
        self.dilations = [_int_list(d, f"dilations[{i}]") for i, d in enumerate(self.dilations)]
        if not isinstance(self.hidden_act, str):
            raise ValueError(f"DinatConfig: hidden_act={self.hidden_act!r} must be a string (\"gelu\").")

    def _check_architecture(self) -> None:
        """Do the values fit together into a network? (See :meth:`validate`.)"""
        if self.patch_size != 4:
            raise ValueError(f"DinatConfig: patch_size={self.patch_size!r} is not supported; DiNAT's patch "
                             f"embedding is two 3x3 stride-2 convolutions, so patch_size must be 4.")
        if self.kernel_size < 2:
            raise ValueError(f"DinatConfig: kernel_size={self.kernel_size} must be >= 2.")
        if self.embed_dim < 2:
            raise ValueError(f"DinatConfig: embed_dim={self.embed_dim} must be >= 2 (the first "
                             f"convolution has embed_dim // 2 channels).")
        if int(self.mlp_ratio * self.embed_dim) < 1:
            raise ValueError(f"DinatConfig: mlp_ratio={self.mlp_ratio} gives an MLP of "
                             f"int(mlp_ratio * embed_dim) = 0 channels; it needs at least 1.")
        if self.hidden_act not in _SUPPORTED_ACTIVATIONS:
            raise ValueError(f"DinatConfig: hidden_act={self.hidden_act!r} is not supported; use one of "
                             f"{list(_SUPPORTED_ACTIVATIONS)} (exact erf GELU, as DiNAT).")
        self._check_stages()
        self._check_dilations()

    def _check_stages(self) -> None:
        if not self.depths or any(d < 1 for d in self.depths):
            raise ValueError(f"DinatConfig: depths={self.depths} must be a non-empty list of positive "
                             f"integers.")
        if len(self.num_heads) != len(self.depths):
            raise ValueError(f"DinatConfig: num_heads={self.num_heads} needs one entry per stage "
                             f"(len(depths)={len(self.depths)}).")
        for i, h in enumerate(self.num_heads):
            dim = self.embed_dim * 2**i
            if h < 1 or dim % h:
                raise ValueError(f"DinatConfig: num_heads[{i}]={h} must be positive and divide stage {i}'s "
                                 f"{dim} channels (embed_dim * 2**{i}).")

    def _check_dilations(self) -> None:
        dil = self.dilations
        if len(dil) != len(self.depths):
            raise ValueError(f"DinatConfig: dilations has {len(dil)} stages but depths={self.depths} has "
                             f"{len(self.depths)}; give one list per stage.")
        for i, (d, depth) in enumerate(zip(dil, self.depths, strict=True)):
            if len(d) != depth:
                raise ValueError(f"DinatConfig: dilations[{i}]={d} has {len(d)} entries but stage {i} has "
                                 f"depths[{i}]={depth} layers; give one dilation per layer.")
            if any(x < 1 for x in d):
                raise ValueError(f"DinatConfig: dilations[{i}]={d} must be >= 1 (1 = no dilation).")

    def _check_numbers(self) -> None:
        self.mlp_ratio = _number(self.mlp_ratio, "mlp_ratio", "> 0", lambda v: v > 0)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            setattr(self, name, _number(getattr(self, name), name, "in [0, 1) (a probability)",
                                        lambda v: 0.0 <= v < 1.0))
        self.layer_norm_eps = _number(self.layer_norm_eps, "layer_norm_eps", "> 0", lambda v: v > 0)
        self.layer_scale_init_value = _number(self.layer_scale_init_value, "layer_scale_init_value",
                                              ">= 0 (0 = no layer scale)", lambda v: v >= 0)
        self.initializer_range = _number(self.initializer_range, "initializer_range", ">= 0",
                                         lambda v: v >= 0)

    def _check_flags(self) -> None:
        for name in ("qkv_bias", "output_hidden_states", "output_attentions", "return_dict"):
            v = getattr(self, name)
            if not isinstance(v, bool):
                raise ValueError(f"DinatConfig: {name}={v!r} must be a bool (True or False).")

    def _check_labels(self) -> None:
        """Hugging Face's rule: ``id2label`` decides ``num_labels``; else ``LABEL_i`` names.

        Default names (``LABEL_i``) follow ``num_labels`` instead, so that
        ``dataclasses.replace(config, num_labels=n)`` does what it says.
        """
        if not _is_int(self.num_labels) or self.num_labels < 0:
            raise ValueError(f"DinatConfig: num_labels={self.num_labels!r} must be an integer >= 0.")
        self.num_labels = int(self.num_labels)
        if self.id2label is not None:
            self.id2label = _label_map(self.id2label)
            if self.id2label == _default_labels(len(self.id2label)):
                self.id2label = None
        if self.id2label is None:
            self.id2label = _default_labels(self.num_labels)
        if len(self.id2label) != self.num_labels:
            if self.num_labels != 2:  # 2 is the default: id2label silently decides
                logger.warning("DinatConfig: num_labels=%s does not match id2label's %d entries; "
                               "id2label wins, as in transformers.", self.num_labels, len(self.id2label))
            self.num_labels = len(self.id2label)
        if self.label2id is not None and isinstance(self.label2id, dict) \
                and self.label2id == {v: k for k, v in _default_labels(len(self.label2id)).items()}:
            self.label2id = None  # default names: derived from id2label
        if sorted(self.id2label) != list(range(self.num_labels)):
            raise ValueError(f"DinatConfig: id2label has keys {sorted(self.id2label)[:8]}; it needs exactly "
                             f"the keys 0..num_labels-1 (num_labels={self.num_labels}).")
        if self.label2id is None:
            self.label2id = {name: i for i, name in sorted(self.id2label.items())}
        if not isinstance(self.label2id, dict) or not all(
                isinstance(k, str) and _is_int(v) for k, v in self.label2id.items()):
            raise ValueError(f"DinatConfig: label2id={self.label2id!r} must map label names (str) to "
                             f"integer indices.")
        self.label2id = {k: int(v) for k, v in self.label2id.items()}
        if self.problem_type is not None and self.problem_type not in _PROBLEM_TYPES:
            raise ValueError(f"DinatConfig: problem_type={self.problem_type!r} must be None or one of "
                             f"{list(_PROBLEM_TYPES)}.")
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            raise ValueError("DinatConfig: problem_type='single_label_classification' needs num_labels > 1; "
                             "for binary classification use num_labels=2, or problem_type='regression' "
                             "for one output.")

    def _align_out_features(self) -> None:
        """Hugging Face's rule: out_features and out_indices name the same stages, in order."""
        names = self.stage_names
        feats, idx = self.out_features, self.out_indices
        if feats is not None:
            if isinstance(feats, str) or not hasattr(feats, "__iter__"):
                raise ValueError(f"DinatConfig: out_features={feats!r} must be a list of stage names "
                                 f"from {names}.")
            feats = list(feats)
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
        object.__setattr__(self, "out_features", feats)
        object.__setattr__(self, "out_indices", idx)

    # ------------------------------------------------------------------ attributes
    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: the extras read as attributes (config.image_size).
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"'DinatConfig' object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if not self.__dict__.get("_ready") or name.startswith("_"):
            object.__setattr__(self, name, value)
        elif name in ("out_features", "out_indices"):  # realign the other one, as Hugging Face
            other = "out_indices" if name == "out_features" else "out_features"
            old = (self.out_features, self.out_indices)
            object.__setattr__(self, name, value)
            object.__setattr__(self, other, None)
            try:
                self._align_out_features()
            except ValueError:
                object.__setattr__(self, "out_features", old[0])
                object.__setattr__(self, "out_indices", old[1])
                raise
        elif name == "num_labels":
            if value != self.num_labels or len(self.id2label) != value:
                if not _is_int(value) or value < 0:
                    raise ValueError(f"DinatConfig: num_labels={value!r} must be an integer >= 0.")
                object.__setattr__(self, "num_labels", int(value))
                object.__setattr__(self, "id2label", {i: f"LABEL_{i}" for i in range(int(value))})
                object.__setattr__(self, "label2id", {f"LABEL_{i}": i for i in range(int(value))})
        elif name == "id2label":
            labels = _label_map(value)
            object.__setattr__(self, "id2label", labels)
            object.__setattr__(self, "num_labels", len(labels))
            object.__setattr__(self, "label2id", {v: k for k, v in sorted(labels.items())})
        elif name in {f.name for f in fields(self)} or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:  # an unknown attribute is an extra, written back (as transformers keeps it)
            self.extra[name] = value

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
        """``["stem", "stage1", ...]``: the names backbone outputs are chosen by."""
        return ["stem"] + [f"stage{i}" for i in range(1, self.num_layers + 1)]

    @property
    def use_return_dict(self) -> bool:
        """Hugging Face's name for the default of ``return_dict``."""
        return self.return_dict

    @property
    def model_type(self) -> str:
        return "dinat"

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
        config = cls(**kwargs)
        config.validate()
        return config

    # ------------------------------------------------------------------ dict / json
    def to_dict(self) -> dict[str, Any]:
        """A Hugging Face ``config.json`` dictionary (derived keys included, extras kept)."""
        out: dict[str, Any] = copy.deepcopy(self.extra)
        for f in fields(self):
            if f.name != "extra":
                out[f.name] = copy.deepcopy(getattr(self, f.name))
        out["id2label"] = {str(k): v for k, v in sorted(self.id2label.items())}
        out["model_type"] = "dinat"
        out["num_layers"] = self.num_layers
        out["hidden_size"] = self.hidden_size
        out["stage_names"] = self.stage_names
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], **kwargs: Any) -> DinatConfig:
        """Build from a ``config.json`` dictionary; unknown keys go to :attr:`extra`.

        Args:
            d: the dictionary.
            **kwargs: attributes to set after construction (as ``transformers``' ``from_dict``:
                ``num_labels=`` there resets the labels).
        """
        if not isinstance(d, dict):
            raise ValueError(f"DinatConfig.from_dict: a config must be a JSON object (a dict), got "
                             f"{type(d).__name__}.")
        d = dict(d)
        model_type = d.pop("model_type", "dinat")
        if model_type not in ("dinat", "nat"):
            raise ValueError(f"DinatConfig.from_dict: model_type={model_type!r} is not a DiNAT config.")
        config = cls(**d)
        for k, v in kwargs.items():
            setattr(config, k, v)
        return config

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
        if not isinstance(d, dict):
            raise ValueError(f"DinatConfig.from_json_file: {os.fspath(path)!r} holds a JSON "
                             f"{type(d).__name__}, but a config must be a JSON object {{...}}.")
        return cls.from_dict(d)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> DinatConfig:
        """Read ``config.json`` from a model directory (or the file itself).

        Args:
            path: the directory, or the ``config.json`` file.
            **kwargs: attributes to set afterwards (``num_labels=``, ``id2label=``, ...).
        """
        p = os.fspath(path)
        if os.path.isdir(p):
            p = os.path.join(p, "config.json")
        if not os.path.isfile(p):
            raise FileNotFoundError(f"DinatConfig.from_pretrained: no config.json at {os.fspath(path)!r}.")
        config = cls.from_json_file(p)
        for k, v in kwargs.items():
            setattr(config, k, v)
        return config

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` into ``directory`` (atomically: a temporary file, then a rename)."""
        from dinat_ref.hf.atomic import atomic_write_text

        os.makedirs(directory, exist_ok=True)
        atomic_write_text(os.path.join(directory, "config.json"), self.to_json_string())


def _signature() -> inspect.Signature:
    """``DinatConfig(patch_size=4, ..., **kwargs)``: the fields, for help() and the docs."""
    params = []
    for f in fields(DinatConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                        annotation=f.type))
    return inspect.Signature([*params, inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])


DinatConfig.__signature__ = _signature()


def _default_labels(n: int) -> dict[int, str]:
    return {i: f"LABEL_{i}" for i in range(n)}


def _label_map(id2label: Any) -> dict[int, str]:
    """``{index: name}`` with integer keys (JSON writes them as strings)."""
    if not isinstance(id2label, dict):
        raise ValueError(f"DinatConfig: id2label={id2label!r} must be a dict {{index: name}}.")
    out = {}
    for k, v in id2label.items():
        try:
            key = int(k) if isinstance(k, str) else operator.index(k)
        except (TypeError, ValueError):
            raise ValueError(f"DinatConfig: id2label key {k!r} is not an integer; id2label maps "
                             f"class indices 0..num_labels-1 to names.") from None
        if isinstance(k, bool):
            raise ValueError(f"DinatConfig: id2label key {k!r} is not an integer.")
        out[key] = str(v)
    return out
