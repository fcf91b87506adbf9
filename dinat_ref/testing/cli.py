"""``dinat-ref verify``: check your own NA kernel against the float64 reference.

Examples::

    dinat-ref verify my_package.kernels:na2d --dims 2
    dinat-ref verify path/to/kernel.py:my_na --array numpy --dtypes float64,float32
    dinat-ref verify natten:na2d --dims 2 --head-dims 8,16,32 --no-rpb --backward no
    dinat-ref verify --qk mod:na2d_qk --av mod:na2d_av --dims 2 --layout heads_first

Exit status: 0 when every case that ran passed, 1 on any failure, 2 when the target
cannot be loaded or the options are invalid.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from dinat_ref.neighborhood_cli import int_tuple

__all__ = ["add_arguments", "run", "load_target"]


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
            module = importlib.import_module(module_part)
    except TargetError:
        raise
    except Exception as err:  # ImportError, or anything the module raises while importing
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


def _str_tuple(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _tolerance(text: str) -> tuple[str, float]:
    """'float32=1e-3' -> ("float32", 1e-3)."""
    dtype, sep, value = text.partition("=")
    try:
        return dtype.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DTYPE=TOL such as float32=1e-3, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?",
                        help="the fused kernel, MODULE:FUNCTION or path/file.py:FUNCTION")
    parser.add_argument("--qk", help="unfused pair: the q.k kernel (MODULE:FUNCTION); needs --av")
    parser.add_argument("--av", help="unfused pair: the attention.v kernel (MODULE:FUNCTION)")
    parser.add_argument("--layout", choices=("heads_last", "heads_first"), default="heads_last",
                        help="heads_last (B, *spatial, heads, dim), NATTEN 0.21 (default); "
                             "heads_first (B, heads, *spatial, dim)")
    parser.add_argument("--array", choices=("torch", "numpy"), default="torch",
                        help="what the kernel takes and returns (default torch)")
    parser.add_argument("--device", default="cpu", help="torch device for the inputs (default cpu)")
    parser.add_argument("--dims", type=int_tuple, default=(1, 2, 3), help="spatial dims it supports, e.g. 2")
    parser.add_argument("--dtypes", type=_str_tuple, default=("float32",),
                        help="dtypes to test, e.g. float32,float16 (default float32)")
    parser.add_argument("--head-dims", type=int_tuple, default=None, help="allowed head dims, e.g. 8,16,32")
    parser.add_argument("--no-rpb", action="store_true", help="the kernel takes no rpb=")
    parser.add_argument("--no-causal", action="store_true", help="the kernel does not support is_causal")
    parser.add_argument("--no-stride", action="store_true", help="the kernel does not support stride > 1")
    parser.add_argument("--backward", choices=("auto", "yes", "no"), default="auto",
                        help="check gradients: auto = when the output carries autograd (default)")
    parser.add_argument("--random", type=int, default=16, help="random cases besides the curated ones")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    parser.add_argument("--tol", type=_tolerance, action="append", default=[],
                        help="forward tolerance override, DTYPE=TOL, repeatable")
    parser.add_argument("--bwd-tol", type=_tolerance, action="append", default=[],
                        help="backward tolerance override, DTYPE=TOL, repeatable")
    parser.add_argument("--figure", help="save an error heatmap of the first failure here (PNG)")
    parser.add_argument("--failures-only", action="store_true", help="list only failing rows in the table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dinat_ref.testing.runner import verify

    try:
        if args.target and (args.qk or args.av):
            raise TargetError("give either a fused TARGET or --qk and --av, not both.")
        if not args.target and not (args.qk and args.av):
            raise TargetError("give a fused TARGET (MODULE:FUNCTION), or both --qk and --av.")
        fn = load_target(args.target) if args.target else None
        qk = load_target(args.qk) if args.qk else None
        av = load_target(args.av) if args.av else None
        report = verify(
            fn, qk=qk, av=av, layout=args.layout, array=args.array, device=args.device, dims=args.dims,
            dtypes=args.dtypes, head_dims=args.head_dims, rpb=not args.no_rpb, causal=not args.no_causal,
            stride=not args.no_stride, backward={"auto": None, "yes": True, "no": False}[args.backward],
            n_random=args.random, seed=args.seed, tolerances=dict(args.tol),
            backward_tolerances=dict(args.bwd_tol), progress=not args.no_progress,
            name=args.target or f"{args.qk} + {args.av}",
        )
    except (TargetError, ValueError, TypeError) as err:
        print(f"dinat-ref verify: {err}", file=sys.stderr)
        return 2
    print(report.table(show_passed=not args.failures_only))
    print()
    print(report.summary())
    if report.diagnosis is not None:
        print()
        print(report.diagnosis)
    if args.figure and report.failures:
        try:
            print(f"\nerror heatmap saved to {report.save_figure(args.figure)}")
        except ValueError as err:
            print(f"\nno figure: {err}")
    return 0 if report.passed else 1
