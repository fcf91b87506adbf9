"""``dinat-ref neighborhood``: print one query's neighborhood in the terminal.

Example::

    dinat-ref neighborhood --shape 9,12 --kernel-size 3 --dilation 2 --query 0,11
"""

from __future__ import annotations

import argparse
import sys

from dinat_ref.checks import check_window_args
from dinat_ref.viz.terminal import render_neighborhood

PROG = "dinat-ref neighborhood"


def int_tuple(text: str) -> tuple[int, ...]:
    """'9,12' -> (9, 12); '7' -> (7,)."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def bool_tuple(text: str) -> tuple[bool, ...]:
    """'true,false' / '1,0' -> (True, False)."""
    table = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    try:
        return tuple(table[x.strip().lower()] for x in text.split(","))
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"expected true/false values separated by commas, got {text!r}"
        ) from None


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    """--kernel-size/--stride/--dilation/--causal, shared by every subcommand that takes a window."""
    parser.add_argument(
        "--kernel-size", type=int_tuple, default=(3,), help="k, one or one per axis (default 3)"
    )
    parser.add_argument("--stride", type=int_tuple, default=(1,), help="s, 1 <= s <= k (default 1)")
    parser.add_argument("--dilation", type=int_tuple, default=(1,), help="d >= 1 (default 1)")
    parser.add_argument("--causal", type=bool_tuple, default=(False,), help="is_causal, e.g. true,false")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", type=int_tuple, default=(9, 12), help="grid shape, e.g. 9,12 (default)")
    parser.add_argument(
        "--query", type=int_tuple, default=None, help="query position, e.g. 0,11 (default: a corner)"
    )
    add_window_arguments(parser)
    parser.add_argument("--color", action="store_true", help="color the output with ANSI escapes")


def _broadcast(values: tuple, ndim: int):
    """One value given for an N-D grid applies to every axis: (3,) -> (3, 3)."""
    return values * ndim if len(values) == 1 else values


def run(args: argparse.Namespace) -> int:
    """Check every flag up front (exit code 2 and one clear line on stderr), then draw."""
    ndim = len(args.shape)
    try:
        if not 1 <= ndim <= 3:
            shape_text = ",".join(map(str, args.shape))
            raise ValueError(f"{PROG}: --shape {shape_text} has {ndim} axes; the terminal draws 1, 2 or 3.")
        shape, kernel_size, stride, dilation, is_causal = check_window_args(
            args.shape, _broadcast(args.kernel_size, ndim), _broadcast(args.stride, ndim),
            _broadcast(args.dilation, ndim), _broadcast(args.causal, ndim), where=PROG,
        )
        query = args.query if args.query is not None else (0,) * (ndim - 1) + (shape[-1] - 1,)
        if len(query) != ndim or not all(0 <= q < L for q, L in zip(query, shape, strict=True)):
            raise ValueError(
                f"{PROG}: --query {','.join(map(str, query))} is not a cell of the "
                f"{'x'.join(map(str, shape))} grid; give {ndim} comma-separated indices, "
                f"each in [0, length)."
            )
        text = render_neighborhood(shape, query, kernel_size, stride, dilation, is_causal, color=args.color)
    except (ValueError, TypeError) as err:
        print(err, file=sys.stderr)
        return 2
    print(text)
    return 0
