"""One cache for the backends' index tables, safe whatever mode first builds a table.

The tiled and flex backends build their index tables (from the shared rule) once per
configuration and reuse them on every later call. A cached table must therefore be an
ordinary tensor:

- one built under ``torch.inference_mode()`` would be an *inference tensor*, which autograd
  refuses to save for a later backward ("Inference tensors cannot be saved for backward");
- one built while ``torch.export`` or ``torch.compile`` traces the call would be a *fake*
  tensor, useless outside that trace.

So tables are built as real tensors with inference mode switched off, also when the first
call that needs one is a ``torch.export`` trace; inside a ``torch.compile`` trace a missing
table is built into that graph only and not cached.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["table_cache", "tracing"]

F = TypeVar("F", bound=Callable)


def _compiling() -> bool:
    """Whether ``torch.compile`` is tracing this call (its graph then holds the tables it builds)."""
    return torch.compiler.is_compiling()


def tracing() -> bool:
    """Whether a ``torch.compile`` or ``torch.export`` trace (any fake-tensor mode) is running.

    Inside a trace no value is known, so code that branches on data (the non-finite guard of
    :mod:`dinat_ref.torch.backends.local`) takes its common branch.
    """
    if _compiling():
        return True
    try:
        from torch._guards import detect_fake_mode
    except ImportError:  # pragma: no cover - very old torch
        return False
    return detect_fake_mode() is not None


def _outside_fake_mode():
    """A context that builds real tensors even while ``torch.export`` runs on fake tensors."""
    try:
        from torch._subclasses.fake_tensor import unset_fake_temporarily
    except ImportError:  # pragma: no cover - very old torch
        return contextlib.nullcontext()
    return unset_fake_temporarily()


def table_cache(maxsize: int = 64) -> Callable[[F], F]:
    """Like ``functools.lru_cache(maxsize)``, for functions that build index tensors.

    Args:
        maxsize: how many configurations to keep (least recently used ones go first).
    """

    def decorate(build: F) -> F:
        tables: OrderedDict = OrderedDict()

        @functools.wraps(build)
        def get(*args):
            if args in tables:
                tables.move_to_end(args)
                return tables[args]
            if _compiling():
                return build(*args)  # traced into this graph only
            with _outside_fake_mode(), torch.inference_mode(False):
                value = build(*args)
            tables[args] = value
            if len(tables) > maxsize:
                tables.popitem(last=False)
            return value

        get.cache_clear = tables.clear  # type: ignore[attr-defined]
        return get  # type: ignore[return-value]

    return decorate
