"""Model outputs: dataclasses that behave like Hugging Face ``transformers``' ``ModelOutput``.

Shared by :mod:`dinat_ref.numpy.model` and :mod:`dinat_ref.torch.model` (the arrays are
``np.ndarray`` or ``torch.Tensor``); this module needs neither torch nor transformers.

An output is at the same time a dataclass and an ordered dict of its fields that are not
None, in declaration order, exactly as ``transformers.utils.ModelOutput``::

    out = model(pixels, labels=labels)
    out.loss is out["loss"] is out[0]          # None fields are left out of the indexing
    list(out.keys())                           # ['loss', 'logits']
    loss, logits = out.to_tuple()              # what return_dict=False returns
    for name in out: ...                       # iterates over the keys, like a dict

``transformers.Trainer`` reads ``outputs["loss"]`` and the remaining values as predictions, so
field order and the "None is absent" rule matter. Field orders are ``transformers``' own.

One documented difference: ``attentions`` hold one array per layer in neighborhood layout,
heads last, ``(B, h, w, heads, kernel_size**2)`` (``transformers`` returns heads first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["ModelOutput", "DinatModelOutput", "DinatImageClassifierOutput", "DinatBackboneOutput",
           "register_pytree_nodes"]


class ModelOutput(OrderedDict):
    """Base of every output: attribute access, key access and integer access agree.

    Subclasses are ``@dataclass`` es; after construction the non-None fields are the dict's
    items. Setting a field (``out.loss = x`` or ``out["loss"] = x``) updates both views; a
    field that was None joins the dict at the end, as in ``transformers``.
    """

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                super().__setitem__(f.name, value)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return dict(self.items())[key]
        return self.to_tuple()[key]

    def __setattr__(self, name: str, value: Any) -> None:
        if value is not None and name in {f.name for f in fields(self)}:
            super().__setitem__(name, value)  # a field set later joins the dict (at the end)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __delitem__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__} does not support deleting items.")

    def pop(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not support pop.")

    def setdefault(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} does not support setdefault.")

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__} does not support update.")

    def __reduce__(self):
        return type(self), tuple(getattr(self, f.name) for f in fields(self))

    def to_tuple(self) -> tuple:
        """The non-None fields, in order (what ``return_dict=False`` returns)."""
        return tuple(self[k] for k in self.keys())


@dataclass(eq=False)
class DinatModelOutput(ModelOutput):
    """Output of ``DinatModel``.

    Args:
        last_hidden_state: (B, h, w, C) after the final LayerNorm.
        pooler_output: (B, C), the mean of ``last_hidden_state`` over h and w.
        hidden_states: the embeddings, then every stage's output after its downsampler,
            channels-last (with ``output_hidden_states``).
        attentions: one (B, h, w, heads, k*k) array per layer (with ``output_attentions``).
        reshaped_hidden_states: ``hidden_states`` as (B, C, H, W).
    """

    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    reshaped_hidden_states: tuple | None = None


@dataclass(eq=False)
class DinatImageClassifierOutput(ModelOutput):
    """Output of ``DinatForImageClassification``.

    Args:
        loss: a scalar, when ``labels`` are given (see ``config.problem_type``).
        logits: (B, num_labels) (the pooled features when ``num_labels == 0``).
        hidden_states: as :class:`DinatModelOutput`.
        attentions: as :class:`DinatModelOutput`.
        reshaped_hidden_states: as :class:`DinatModelOutput`.
    """

    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    reshaped_hidden_states: tuple | None = None


@dataclass(eq=False)
class DinatBackboneOutput(ModelOutput):
    """Output of ``DinatBackbone``.

    Args:
        feature_maps: one (B, C, H, W) map per ``config.out_features``, taken before the
            stage's downsampler and normed by ``hidden_states_norms.<stage>``.
        hidden_states: the embeddings then every stage's output before its downsampler,
            channels-last (with ``output_hidden_states``).
        attentions: as :class:`DinatModelOutput`.
    """

    feature_maps: tuple | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


def register_pytree_nodes() -> None:
    """Make torch's pytree see inside the outputs (as ``transformers`` does for its own).

    ``DistributedDataParallel(find_unused_parameters=True)``, ``torch.compile`` and
    ``torch.export`` flatten a module's output with ``torch.utils._pytree``; unregistered, a
    dict subclass is one opaque leaf. Called by :mod:`dinat_ref.torch.model`; idempotent.
    """
    from torch.utils import _pytree

    for cls in (DinatModelOutput, DinatImageClassifierOutput, DinatBackboneOutput):
        if cls in _pytree.SUPPORTED_NODES:
            continue
        _pytree.register_pytree_node(
            cls,
            lambda out: (list(out.values()), list(out.keys())),
            lambda values, keys, cls=cls: cls(**dict(zip(keys, values, strict=True))),
            serialized_type_name=f"{cls.__module__}.{cls.__name__}",
        )
