"""What the NumPy and the PyTorch DiNAT models share, written once.

* the output switches (``output_attentions`` / ``output_hidden_states`` / ``return_dict``:
  the argument, else the config's default), and the outputs assembled from the encoder's
  result (:func:`model_output`, :func:`backbone_output`);
* the classifier's loss rule (:func:`problem_type`, Hugging Face's exactly) and the label
  checks (``-100`` is ignored, anything else outside ``0..num_labels-1`` is an error);
* backbone channel bookkeeping (``stage_names``, ``num_features``, ``channels``);
* checkpoint loading rules (:func:`plan_load`): which keys load, which are newly
  initialised (a missing classifier head, a mismatched one with ``ignore_mismatched_sizes``),
  and the one error naming everything else; and ``from_pretrained``'s path checks.

This module needs neither torch nor transformers; arrays are ``np.ndarray`` or ``torch.Tensor``.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from dinat_ref.config import DinatConfig
from dinat_ref.hf.outputs import DinatBackboneOutput, DinatImageClassifierOutput, DinatModelOutput
from dinat_ref.hf.weights import (
    adapt_state_dict,
    backbone_channels,
    expected_shapes,
    find_weights_file,
    load_state_dict,
    mismatch_error,
)

__all__ = [
    "IGNORE_INDEX", "EncoderResult", "OutputFlags", "output_flags", "model_output", "classifier_output",
    "backbone_output", "problem_type", "check_class_labels", "BackboneInfo", "LoadPlan", "plan_load",
    "check_model_directory", "apply_config_overrides", "prepare_load",
]

logger = logging.getLogger("dinat_ref")

IGNORE_INDEX = -100  # Hugging Face's (and torch's cross_entropy's) label to ignore


# ----------------------------------------------------------------------------------------
# Output switches and output assembly
# ----------------------------------------------------------------------------------------

class OutputFlags(NamedTuple):
    output_attentions: bool
    output_hidden_states: bool
    return_dict: bool


def output_flags(config: DinatConfig, output_attentions: bool | None, output_hidden_states: bool | None,
                 return_dict: bool | None) -> OutputFlags:
    """Each switch is the argument when given, else the config's default (Hugging Face's rule)."""
    return OutputFlags(
        config.output_attentions if output_attentions is None else bool(output_attentions),
        config.output_hidden_states if output_hidden_states is None else bool(output_hidden_states),
        config.use_return_dict if return_dict is None else bool(return_dict),
    )


class EncoderResult(NamedTuple):
    """What the encoder gives: the last stage's output and what was collected on the way.

    Args:
        last: (B, h, w, C), the last stage's output.
        after_downsample: the embeddings, then every stage's output after its downsampler.
        before_downsample: the embeddings, then every stage's output before its downsampler.
        attentions: one (B, h, w, heads, k*k) per layer (empty unless asked for).
    """

    last: Any
    after_downsample: list
    before_downsample: list
    attentions: list


def _nchw(x: Any) -> Any:
    """(B, H, W, C) -> (B, C, H, W) for a NumPy array or a torch tensor."""
    return x.permute(0, 3, 1, 2) if hasattr(x, "permute") else x.transpose(0, 3, 1, 2)


def _finish(out: Any, return_dict: bool) -> Any:
    return out if return_dict else out.to_tuple()


def model_output(last_hidden_state: Any, pooled: Any, enc: EncoderResult, flags: OutputFlags) -> Any:
    """``DinatModel``'s output (or its tuple when ``return_dict`` is off)."""
    hidden = tuple(enc.after_downsample) if flags.output_hidden_states else None
    out = DinatModelOutput(
        last_hidden_state=last_hidden_state, pooler_output=pooled, hidden_states=hidden,
        attentions=tuple(enc.attentions) if flags.output_attentions else None,
        reshaped_hidden_states=None if hidden is None else tuple(_nchw(x) for x in hidden))
    return _finish(out, flags.return_dict)


def classifier_output(loss: Any, logits: Any, trunk: DinatModelOutput, flags: OutputFlags) -> Any:
    """``DinatForImageClassification``'s output from the trunk's (always a dict here)."""
    out = DinatImageClassifierOutput(
        loss=loss, logits=logits, hidden_states=trunk.hidden_states, attentions=trunk.attentions,
        reshaped_hidden_states=trunk.reshaped_hidden_states)
    return _finish(out, flags.return_dict)


def backbone_output(feature_maps: tuple, enc: EncoderResult, flags: OutputFlags) -> Any:
    """``DinatBackbone``'s output: ``hidden_states`` are taken *before* downsampling."""
    out = DinatBackboneOutput(
        feature_maps=tuple(feature_maps),
        hidden_states=tuple(enc.before_downsample) if flags.output_hidden_states else None,
        attentions=tuple(enc.attentions) if flags.output_attentions else None)
    return _finish(out, flags.return_dict)


# ----------------------------------------------------------------------------------------
# Loss rule and labels
# ----------------------------------------------------------------------------------------

def problem_type(config: DinatConfig, labels_are_long_or_int: bool) -> str:
    """The loss ``config.problem_type`` names, inferred (and stored) when it is None.

    Hugging Face's rule: one label is "regression"; more labels with integer labels
    (int64 or int32) "single_label_classification"; otherwise "multi_label_classification".
    Like ``transformers``, the inferred value is written to the config (and so saved).
    """
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif config.num_labels > 1 and labels_are_long_or_int:
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    return config.problem_type


def check_class_labels(labels: np.ndarray, num_labels: int, where: str, integer: bool = True) -> None:
    """Class indices must be integers in ``0..num_labels-1`` or :data:`IGNORE_INDEX` (-100, skipped)."""
    if not integer:
        raise TypeError(f"{where}: problem_type='single_label_classification' needs integer class indices "
                        f"as labels, got {labels.dtype} labels (floats are for regression or "
                        f"multi_label_classification).")
    bad = labels[(labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_labels))]
    if bad.size:
        raise ValueError(f"{where}: labels contain {int(bad.reshape(-1)[0])}, outside 0..{num_labels - 1} "
                         f"(num_labels={num_labels}); class labels must be in that range, or "
                         f"{IGNORE_INDEX} to ignore a sample.")


# ----------------------------------------------------------------------------------------
# Backbone bookkeeping
# ----------------------------------------------------------------------------------------

class BackboneInfo:
    """Hugging Face's backbone attributes, read off ``self.config`` (mixed into both backbones)."""

    config: DinatConfig

    @property
    def stage_names(self) -> list[str]:
        return self.config.stage_names

    @property
    def out_features(self) -> list[str]:
        return self.config.out_features

    @property
    def out_indices(self) -> list[int]:
        return self.config.out_indices

    @property
    def num_features(self) -> list[int]:
        """Channels of every stage name, in order (the stem's, then each stage's)."""
        ch = backbone_channels(self.config)
        return [ch[name] for name in self.config.stage_names]

    @property
    def out_feature_channels(self) -> dict[str, int]:
        """``{stage name: channels}`` for every stage."""
        return backbone_channels(self.config)

    @property
    def channels(self) -> list[int]:
        """Channels of each returned feature map (one per ``out_features``)."""
        ch = backbone_channels(self.config)
        return [ch[name] for name in self.config.out_features]


# ----------------------------------------------------------------------------------------
# Loading checkpoints
# ----------------------------------------------------------------------------------------

def _shape(a: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


@dataclass
class LoadPlan:
    """What :func:`plan_load` decided: load ``state_dict``; initialise ``new_keys`` freshly.

    Args:
        state_dict: the checkpoint's entries to load (adapted to the model's names).
        new_keys: parameters absent from the checkpoint (the classifier head) to initialise.
        mismatched: ``(name, checkpoint shape, model shape)`` re-initialised because of
            ``ignore_mismatched_sizes=True``.
        dropped: checkpoint keys the model has no place for (a head the model does not have).
    """

    state_dict: dict[str, Any]
    new_keys: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def initialised(self) -> list[str]:
        """Every parameter that does not come from the checkpoint."""
        return self.new_keys + [m[0] for m in self.mismatched]

    def log(self, model_name: str, source: str) -> None:
        """Say what was newly initialised or dropped, as ``transformers`` does (a warning)."""
        if self.dropped:
            logger.warning("Some weights of the checkpoint at %s were not used when initializing %s: %s",
                           source, model_name, self.dropped)
        if self.new_keys:
            logger.warning("Some weights of %s were not initialized from the checkpoint at %s and are "
                           "newly initialized: %s. You should probably train this model on a down-stream "
                           "task to be able to use it for predictions and inference.",
                           model_name, source, self.new_keys)
        if self.mismatched:
            lines = "; ".join(f"{k}: checkpoint {a} vs model {b}" for k, a, b in self.mismatched)
            logger.warning("Some weights of %s were not initialized from the checkpoint at %s and are newly "
                           "initialized because the shapes did not match (ignore_mismatched_sizes=True): %s",
                           model_name, source, lines)


def _is_head(name: str) -> bool:
    return name.startswith("classifier.")


def plan_load(state_dict: Mapping[str, Any], config: DinatConfig, kind: str, where: str,
              ignore_mismatched_sizes: bool = False, new_head: bool = True) -> LoadPlan:
    """Decide how a checkpoint loads into a model, or raise one error naming every problem.

    Allowed, as ``transformers`` allows (and says so, see :meth:`LoadPlan.log`): a classifier
    head missing from the checkpoint (a trunk-only checkpoint into a classifier) is newly
    initialised; a head in the checkpoint that the model lacks (``num_labels=0``) is dropped;
    with ``ignore_mismatched_sizes=True`` a key of another shape is re-initialised. Anything
    else (a missing or unexpected trunk key, a mis-shaped key) raises
    :class:`dinat_ref.hf.weights.StateDictError` before anything is loaded: nothing is ever
    half-loaded silently.

    Args:
        state_dict: the checkpoint, with Hugging Face names.
        config: the model's config.
        kind: "classification", "model" or "backbone".
        where: the name errors start with.
        ignore_mismatched_sizes: re-initialise keys of another shape instead of raising.
        new_head: allow a missing classifier head (False: every key must be there).
    """
    sd = adapt_state_dict(state_dict, config, kind)
    expected = expected_shapes(config, kind)
    plan = LoadPlan(state_dict={})
    missing, unexpected, misshaped = [], [], []
    for k, shape in expected.items():
        if k not in sd:
            (plan.new_keys if _is_head(k) and new_head else missing).append(k)
        elif _shape(sd[k]) != tuple(shape):
            if ignore_mismatched_sizes:
                plan.mismatched.append((k, _shape(sd[k]), tuple(shape)))
            else:
                misshaped.append(f"{k}: checkpoint {_shape(sd[k])} vs model {tuple(shape)}")
        else:
            plan.state_dict[k] = sd[k]
    for k in sd:
        if k not in expected:
            (plan.dropped if _is_head(k) else unexpected).append(k)
    if missing or unexpected or misshaped:
        hint = (" (pass ignore_mismatched_sizes=True to re-initialise them)"
                if misshaped and all(m.startswith("classifier.") for m in misshaped) else "")
        # nothing loads, so the missing head is named too
        raise mismatch_error(where, missing + plan.new_keys, unexpected, misshaped, hint)
    return plan


def prepare_load(where: str, kind: str, framework: str, path: str | os.PathLike | None,
                 config: DinatConfig | None, state_dict: Mapping[str, Any] | None,
                 overrides: Mapping[str, Any], ignore_mismatched_sizes: bool) -> tuple[DinatConfig, LoadPlan]:
    """The part of ``from_pretrained`` both models share: paths, config, weights, the plan.

    Checks the directory, reads ``config.json`` (unless ``config`` is given) and applies the
    overrides to a copy, reads the weights (unless ``state_dict`` is given) for ``framework``
    ("numpy" or "torch"), decides what loads (:func:`plan_load`) and logs what is initialised.

    Returns:
        (the config to build the model from, the loading plan).
    """
    if path is not None:
        check_model_directory(path, where, need_weights=state_dict is None, need_config=config is None)
    elif config is None or state_dict is None:
        raise ValueError(f"{where}.from_pretrained: give a model directory, or both config= and "
                         f"state_dict=.")
    config = DinatConfig.from_pretrained(path) if config is None else config
    config = apply_config_overrides(config, overrides, where)
    sd = load_state_dict(path, framework) if state_dict is None else state_dict
    plan = plan_load(sd, config, kind, where, ignore_mismatched_sizes)
    plan.log(where, os.fspath(path) if path is not None else "state_dict")
    return config, plan


def check_model_directory(path: str | os.PathLike, where: str, need_weights: bool, need_config: bool) -> str:
    """``from_pretrained``'s path: a directory holding what is needed, else a clear error."""
    p = os.fspath(path)
    if os.path.isfile(p):
        raise ValueError(f"{where}.from_pretrained: {p!r} is a file; pass the model directory that holds "
                         f"config.json and the weights (model.safetensors, a sharded index or "
                         f"pytorch_model.bin), e.g. {os.path.dirname(p) or '.'!r}.")
    if not os.path.isdir(p):
        raise FileNotFoundError(f"{where}.from_pretrained: no directory {p!r}.")
    if need_config and not os.path.isfile(os.path.join(p, "config.json")):
        raise FileNotFoundError(f"{where}.from_pretrained: {p!r} has no config.json; pass config= "
                                f"(a DinatConfig) to load weights without one.")
    if need_weights:
        find_weights_file(p)
    return p


def apply_config_overrides(config: DinatConfig, overrides: Mapping[str, Any], where: str) -> DinatConfig:
    """``from_pretrained(..., num_labels=, id2label=, label2id=, **config_attributes)``.

    ``num_labels`` goes first (it resets the labels), then ``id2label`` and ``label2id``, then
    any other config attribute; the result is checked as a whole. A copy is changed, never the
    caller's config.
    """
    if any(v is not None for v in overrides.values()):
        config = copy.deepcopy(config)
    order = ["num_labels", "id2label", "label2id"]
    known = {f.name for f in fields(DinatConfig)} - {"extra"}
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise TypeError(f"{where}.from_pretrained: unexpected keyword argument(s) {unknown}; keywords "
                        f"beyond the loader's own set attributes of DinatConfig ({sorted(known)}).")
    for k in sorted(overrides, key=lambda k: order.index(k) if k in order else len(order)):
        v = overrides[k]
        if v is None and k in order:
            continue
        setattr(config, k, v)
    try:
        config.validate()
    except ValueError as e:
        raise ValueError(f"{where}.from_pretrained: {e}") from None
    return config
