"""The 1D / 2D / 3D names every path exposes, made from one N-D implementation.

``na2d = with_na_dim(na_forward, 2, "na2d")`` fixes ``na_dim`` and keeps the docstring, so
:mod:`dinat_ref.numpy` and :mod:`dinat_ref.torch` name their operators the same way NATTEN does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps


def with_na_dim(fn: Callable, na_dim: int, name: str) -> Callable:
    """``fn`` with its keyword ``na_dim`` fixed, renamed ``name``."""

    @wraps(fn)
    def specialized(*args, **kwargs):
        return fn(*args, na_dim=na_dim, **kwargs)

    specialized.__name__ = specialized.__qualname__ = name
    return specialized
