"""Verifier targets: ``"module:function"`` or ``"path/to/file.py:function"`` -> the callable."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

__all__ = ["TargetError", "load_target", "resolve"]


class TargetError(ValueError):
    """MODULE:FUNCTION could not be loaded."""


def load_target(spec: str):
    """``"pkg.module:function"`` or ``"path/to/file.py:function"`` -> the callable.

    The function part may be dotted (``module:Class.method``).
    """
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise TargetError(f"target {spec!r} must look like MODULE:FUNCTION (e.g. my_pkg.kernels:na2d) "
                          f"or path/to/file.py:FUNCTION.")
    try:
        if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
            path = Path(module_part)
            if not path.is_file():
                raise TargetError(f"target {spec!r}: no file {path}.")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.path.insert(0, str(path.resolve().parent))  # let the file import its neighbors
            try:
                mod_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
        else:
            # Like `python -m`: a module in the current folder is found (mymodule.py:fn or mymodule:fn).
            cwd = str(Path.cwd())
            added = cwd not in sys.path
            if added:
                sys.path.insert(0, cwd)
            try:
                module = importlib.import_module(module_part)
            finally:
                if added:
                    sys.path.remove(cwd)
    except TargetError:
        raise
    except BaseException as err:  # noqa: B036 - ImportError, or anything the module raises (SystemExit too)
        raise TargetError(f"cannot import {module_part!r} for target {spec!r}: "
                          f"{type(err).__name__}: {err}") from err
    obj = module
    for name in attr.split("."):
        if not hasattr(obj, name):
            raise TargetError(f"target {spec!r}: {module_part!r} has no attribute {attr!r}.")
        obj = getattr(obj, name)
    if not callable(obj):
        raise TargetError(f"target {spec!r} is a {type(obj).__name__}, not a function.")
    return obj


def resolve(target):
    """A ``"module:function"`` string -> the callable (see :func:`load_target`); anything else as is."""
    return load_target(target) if isinstance(target, str) else target
