"""``dinat-ref verify``: check your own NA kernel against the float64 reference.

Examples::

    dinat-ref verify my_package.kernels:na2d --dims 2
    dinat-ref verify mykernels:na                 # mykernels.py in the current folder
    dinat-ref verify path/to/kernel.py:my_na --dtypes float64,float32
    dinat-ref verify natten:na2d --dims 2 --head-dims 8,16,32 --no-rpb --backward no
    dinat-ref verify --qk mod:na2d_qk --av mod:na2d_av --dims 2 --layout heads_first
    dinat-ref verify mod:na1d --bwd mod:na1d_backward --dims 1

The array library (NumPy, torch, JAX) is detected by calling the kernel on one small
case (``--array`` forces one). Each case runs in a worker process and is stopped after
``--timeout`` seconds (``--timeout 0``: in this process, no limit).

Exit status: 0 when every case that ran passed (and at least one ran), 1 on any
failure, 2 when the target cannot be loaded or the options are invalid (checked before
any case runs).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from dinat_ref.commands.neighborhood import int_tuple
from dinat_ref.testing.targets import TargetError, load_target

__all__ = ["add_arguments", "run"]


def _str_tuple(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _tolerance(text: str) -> tuple[str, float]:
    """'float32=1e-3' -> ("float32", 1e-3); the dtype name is checked before any case runs."""
    dtype, sep, value = text.partition("=")
    try:
        return dtype.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DTYPE=TOL such as float32=1e-3, got {text!r}") from None


def check_figure_path(path: str) -> None:
    """``--figure``: the folder must exist and the extension be a format matplotlib writes.

    Raises:
        ValueError: naming the path and the rule.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise ValueError(f"--figure {path}: the folder {str(target.parent)!r} does not exist.")
    if importlib.util.find_spec("matplotlib") is None:
        raise ValueError(f"--figure {path}: saving a figure needs matplotlib (pip install 'dinat-ref[viz]').")
    if target.suffix:
        from matplotlib.figure import Figure

        formats = Figure().canvas.get_supported_filetypes()
        if target.suffix[1:].lower() not in formats:
            raise ValueError(f"--figure {path}: matplotlib cannot write {target.suffix!r} files; "
                             f"use one of {', '.join('.' + f for f in sorted(formats))}.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?",
                        help="the fused kernel, MODULE:FUNCTION or path/file.py:FUNCTION")
    parser.add_argument("--qk", help="unfused pair: the q.k kernel (MODULE:FUNCTION); needs --av")
    parser.add_argument("--av", help="unfused pair: the attention.v kernel (MODULE:FUNCTION)")
    parser.add_argument("--bwd", help="an explicit backward kernel, MODULE:FUNCTION, NATTEN-style "
                        "bwd(d_out, q, k, v, out, lse, kernel_size=, ...) -> dq, dk, dv[, drpb]")
    parser.add_argument("--layout", choices=("heads_last", "heads_first"), default="heads_last",
                        help="heads_last (B, *spatial, heads, dim), NATTEN 0.21 (default); "
                             "heads_first (B, heads, *spatial, dim)")
    parser.add_argument("--array", choices=("auto", "numpy", "torch", "jax"), default="auto",
                        help="what the kernel takes and returns (default auto: try it on one small case "
                             "with torch, JAX and NumPy inputs and keep what works)")
    parser.add_argument("--device", default="cpu", help="torch device for the inputs (default cpu)")
    parser.add_argument("--dims", type=int_tuple, default=(1, 2, 3), help="spatial dims it supports, e.g. 2")
    parser.add_argument("--dtypes", type=_str_tuple, default=("float32",),
                        help="dtypes to test, e.g. float32,float16 (default float32)")
    parser.add_argument("--head-dims", type=int_tuple, default=None, help="allowed head dims, e.g. 8,16,32")
    parser.add_argument("--no-rpb", action="store_true", help="the kernel takes no rpb=")
    parser.add_argument("--no-causal", action="store_true", help="the kernel does not support is_causal")
    parser.add_argument("--no-stride", action="store_true", help="the kernel does not support stride > 1")
    parser.add_argument("--no-dilation", action="store_true", help="the kernel does not support dilation > 1")
    parser.add_argument("--no-even-kernel", action="store_true",
                        help="the kernel does not support even kernel sizes")
    parser.add_argument("--backward", choices=("auto", "yes", "no"), default="auto",
                        help="check gradients: auto = when the output carries autograd (default)")
    parser.add_argument("--random", type=int, default=16, help="random cases besides the curated ones")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    parser.add_argument("--tol", type=_tolerance, action="append", default=[],
                        help="forward tolerance override, DTYPE=TOL, repeatable")
    parser.add_argument("--bwd-tol", type=_tolerance, action="append", default=[],
                        help="backward tolerance override, DTYPE=TOL, repeatable")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds per case, enforced by running the kernel in a worker process "
                             "(default 300; 0: run in this process with no limit)")
    parser.add_argument("--figure", help="save an error heatmap of the first failure here (PNG unless "
                        "another extension is given)")
    parser.add_argument("--failures-only", action="store_true", help="list only failing rows in the table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dinat_ref.testing.runner import check_options, verify

    try:
        if args.target and (args.qk or args.av):
            raise TargetError("give either a fused TARGET or --qk and --av, not both.")
        if not args.target and not (args.qk and args.av):
            raise TargetError("give a fused TARGET (MODULE:FUNCTION), or both --qk and --av.")
        if args.timeout < 0:
            raise ValueError(f"--timeout {args.timeout:g} must be >= 0 (0: no limit).")
        timeout = args.timeout or None
        check_options(args.dtypes, dict(args.tol), dict(args.bwd_tol), args.random, args.device,
                      args.array, timeout, args.dims)
        if args.figure:
            check_figure_path(args.figure)
        for spec in (args.target, args.qk, args.av, args.bwd):
            if spec:
                load_target(spec)  # fails here, with exit 2, before any case runs
        report = verify(
            args.target, qk=args.qk, av=args.av, bwd=args.bwd, layout=args.layout, array=args.array,
            device=args.device, dims=args.dims, dtypes=args.dtypes, head_dims=args.head_dims,
            rpb=not args.no_rpb, causal=not args.no_causal, stride=not args.no_stride,
            dilation=not args.no_dilation, even_kernel=not args.no_even_kernel,
            backward={"auto": None, "yes": True, "no": False}[args.backward],
            n_random=args.random, seed=args.seed, tolerances=dict(args.tol),
            backward_tolerances=dict(args.bwd_tol), progress=not args.no_progress, timeout=timeout,
            name=args.target or f"{args.qk} + {args.av}",
        )
    except (TargetError, ValueError, TypeError) as err:
        print(f"dinat-ref verify: {err}", file=sys.stderr)
        return 2
    print(report.table(show_passed=not args.failures_only))
    print()
    for note in report.notes:
        print(note)
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
