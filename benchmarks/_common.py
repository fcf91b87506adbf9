"""What the model benchmarks share: thread settings, a timer, the matmul probe and the FLOP count.

The probe is a 2048x2048 float32 matmul (``torch.mm``; 2 * 2048^3 FLOP), the machine's
practical peak for dense work. A model's time is reported as achieved GFLOP/s and as a
fraction of the probe's GFLOP/s measured in the same run, which travels between machines
better than times. The benchmarks import this module as ``_common`` (their own folder is on
``sys.path`` when run as ``python benchmarks/bench_*.py``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

PROBE_SIZE = 2048
PROBE_GFLOP = 2 * PROBE_SIZE**3 / 1e9  # one probe matmul: a multiply and an add per (i, j, k)


def set_blas_threads(threads: int | None) -> None:
    """Ask BLAS and OpenMP for ``threads`` threads (None: the libraries' own).

    Call it before NumPy or torch is first imported: BLAS reads its thread count then.
    """
    if threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn()`` in seconds, after one untimed warm-up call.

    Args:
        fn: the work to time.
        repeats: timed calls.
        sync: waits for queued device work (``torch.cuda.synchronize`` on a GPU), so that a
            call is timed to its end.
    """
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def probe_time(repeats: int, device="cpu", sync: Callable[[], None] = lambda: None) -> float:
    """Median seconds of one probe matmul on ``device`` (:data:`PROBE_GFLOP` of work)."""
    import torch

    a = torch.randn(PROBE_SIZE, PROBE_SIZE, device=device)
    return median_time(lambda: torch.mm(a, a), repeats, sync)


def forward_macs(config, image_size: int) -> int:
    """Multiply-accumulates of one forward pass of ``DinatForImageClassification`` on one image.

    Counted from the config, layer by layer: patch-embedding convolutions, q/k/v/output
    projections, ``q.k`` and ``attn.v`` over the ``k*k`` neighbors, MLP, downsamplers,
    classifier; element-wise work (norms, softmax, GELU) is not counted. DiNAT-Mini at
    224x224 gives 2.7 GMACs, the paper's number.
    """
    E, k = config.embed_dim, config.kernel_size
    h = w = image_size
    macs = (h // 2) * (w // 2) * (E // 2) * 9 * config.num_channels  # conv 3x3 s2: C_in -> E/2
    h, w = h // 4, w // 4
    macs += h * w * E * 9 * (E // 2)  # conv 3x3 s2: E/2 -> E
    for i, depth in enumerate(config.depths):
        C = E * 2**i
        n = h * w  # tokens of this stage
        hidden = int(config.mlp_ratio * C)
        per_layer = (3 * n * C * C  # q, k, v projections
                     + 2 * n * k * k * C  # q.k logits and attn.v over k*k neighbors, all heads
                     + n * C * C  # output projection
                     + 2 * n * C * hidden)  # MLP
        macs += depth * per_layer
        if i < len(config.depths) - 1:
            h, w = (h + 1) // 2, (w + 1) // 2
            macs += h * w * (2 * C) * 9 * C  # downsampler: conv 3x3 s2, C -> 2C
    macs += config.hidden_size * config.num_labels  # classifier
    return macs
