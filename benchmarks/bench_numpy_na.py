"""NumPy neighborhood attention against dense PyTorch attention, timed in the same run.

The setting is DiNAT-mini's first stage: B=1, a 56x56 grid (3136 tokens), 2 heads,
head dim 32, kernel 7, dilation 1 (NA) and 8 (DiNA). The NumPy reference (``na2d``,
float32 and float64) is timed against ``torch.nn.functional.scaled_dot_product_attention``
over all 3136 tokens in float32, twice: dense (every token sees every token, no
mask) and with an additive NA mask (``0`` where :func:`dense_mask` allows a pair,
``-inf`` elsewhere), which computes the same output as NA the O(N^2) way.

Each entry is the median of ``--repeats`` runs after one warm-up. The entries are timed
round-robin (one run of each, then the next round), so a busy machine slows all of them
alike; ratios are against dense SDPA measured in this run, so they travel between
machines better than the times.

Run::

    python benchmarks/bench_numpy_na.py            # needs numpy and torch
    python benchmarks/bench_numpy_na.py --repeats 11 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from dinat_ref.neighborhood import dense_mask
from dinat_ref.numpy import na2d


def median_times(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each ``fn()`` in seconds: one untimed warm-up each, then round-robin."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def main(argv: list[str] | None = None) -> None:
    import torch
    import torch.nn.functional as F

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per entry (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    H = W = 56
    heads, dim, kernel = 2, 32, 7
    N = H * W
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, H, W, heads, dim)).astype(np.float32) for _ in range(3))
    # torch SDPA layout: (B, heads, N, dim), from the heads-last (B, H, W, heads, dim).
    tq, tk, tv = (
        torch.from_numpy(x.reshape(1, N, heads, dim)).transpose(1, 2).contiguous() for x in (q, k, v)
    )  # (1, heads, N, dim) each
    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))

    # (name, dilation, function to time)
    entries = [("torch SDPA, dense (no mask)", "-", lambda: F.scaled_dot_product_attention(tq, tk, tv))]
    for dilation in (1, 8):
        allowed = torch.from_numpy(dense_mask((H, W), kernel, dilation=dilation))  # (N, N) bool
        bias = torch.zeros(N, N).masked_fill(~allowed, float("-inf"))  # (N, N) additive mask
        entries += [
            ("torch SDPA, additive NA mask", str(dilation),
             lambda b=bias: F.scaled_dot_product_attention(tq, tk, tv, attn_mask=b)),
            ("numpy na2d float32", str(dilation), lambda d=dilation: na2d(q, k, v, kernel, dilation=d)),
            ("numpy na2d float64", str(dilation), lambda d=dilation: na2d(q64, k64, v64, kernel, dilation=d)),
        ]
    times = median_times([fn for _, _, fn in entries], args.repeats)
    dense = times[0]
    rows = [(name, dil, t) for (name, dil, _), t in zip(entries, times, strict=True)]

    print(f"B=1, {H}x{W} ({N} tokens), heads={heads}, dim={dim}, kernel={kernel}; "
          f"median of {args.repeats}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"numpy {np.__version__}")
    print()
    print(f"| {'implementation':<30} | dilation | time (ms) | time / dense SDPA |")
    print(f"|{'-' * 32}|---------:|----------:|------------------:|")
    for name, dil, t in rows:
        print(f"| {name:<30} | {dil:>8} | {t * 1e3:9.2f} | {t / dense:17.2f} |")


if __name__ == "__main__":
    main()
