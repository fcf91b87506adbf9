"""``dinat-ref neighborhood``: print one query's neighborhood in the terminal.

Example::

    dinat-ref neighborhood --shape 9,12 --kernel-size 3 --dilation 2 --query 0,11
"""

from __future__ import annotations

import argparse
import sys

from dinat_ref.viz.terminal import render_neighborhood


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
        raise argparse.ArgumentTypeError(f"expected true/false values separated by commas, got {text!r}") from None


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    """--kernel-size/--stride/--dilation/--causal, shared by every subcommand that takes a window."""
    parser.add_argument("--kernel-size", type=int_tuple, default=(3,), help="k, one or one per axis (default 3)")
    parser.add_argument("--stride", type=int_tuple, default=(1,), help="s, 1 <= s <= k (default 1)")
    parser.add_argument("--dilation", type=int_tuple, default=(1,), help="d >= 1 (default 1)")
    parser.add_argument("--causal", type=bool_tuple, default=(False,), help="is_causal, e.g. true,false")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", type=int_tuple, default=(9, 12), help="grid shape, e.g. 9,12 (default)")
    parser.add_argument("--query", type=int_tuple, default=None, help="query position, e.g. 0,11 (default: a corner)")
    add_window_arguments(parser)
    parser.add_argument("--color", action="store_true", help="color the output with ANSI escapes")


def _broadcast(values: tuple, ndim: int):
    return values * ndim if len(values) == 1 else values


def run(args: argparse.Namespace) -> int:
    ndim = len(args.shape)
    query = args.query if args.query is not None else (0,) * (ndim - 1) + (args.shape[-1] - 1,)
    try:
        text = render_neighborhood(
            args.shape, query,
            kernel_size=_broadcast(args.kernel_size, ndim), stride=_broadcast(args.stride, ndim),
            dilation=_broadcast(args.dilation, ndim), is_causal=_broadcast(args.causal, ndim),
            color=args.color,
        )
    except (ValueError, TypeError) as err:
        print(f"dinat-ref neighborhood: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0
