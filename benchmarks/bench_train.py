"""DiNAT-Mini training throughput at 224x224 on CPU, against a matmul probe in the same run.

One training step is forward + cross-entropy + backward + AdamW step on a batch of random
images (float32, train mode, the fine-tuning loop's own calls). Its cost is counted as
3x the forward FLOPs (the backward costs about twice the forward: a product for the input's
gradient and one for the weights'). The forward FLOPs are counted from the config, layer by
layer (:func:`forward_macs`: patch-embedding convolutions, q/k/v/output projections,
``q.k`` and ``attn.v`` over the ``k*k`` neighbors, MLP, downsamplers, classifier); for
DiNAT-Mini this gives 2.7 GMACs, the paper's number. Element-wise work (norms, softmax, GELU)
is not counted.

The probe is a 2048x2048 float32 matmul (2 * 2048^3 FLOP), the machine's practical dense peak;
the result is reported as images/s and as achieved GFLOP/s in % of the probe's, which
travels between machines better than times. Target: >= 25%.

Run::

    python benchmarks/bench_train.py                  # batch 8, default threads
    python benchmarks/bench_train.py --batch 16 --steps 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def forward_macs(config, image_size: int) -> int:
    """Multiply-accumulates of one forward pass of ``DinatForImageClassification`` on one image."""
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


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="images per training step (default 8)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median; default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args(argv)
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import torch

    import dinat_ref.torch as dt
    from dinat_ref import DinatConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = DinatConfig.from_preset("mini")
    model = dt.DinatForImageClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=True)  # as finetune
    x = torch.randn(args.batch, 3, args.image_size, args.image_size)  # (B, 3, S, S)
    y = torch.randint(0, config.num_labels, (args.batch,))  # (B,)

    def step() -> None:
        loss = model(x, labels=y).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    a = torch.randn(2048, 2048)
    t_probe = median_time(lambda: torch.mm(a, a), 10)
    probe = 2 * 2048**3 / t_probe / 1e9
    t_step = median_time(step, args.steps)
    t_probe_after = median_time(lambda: torch.mm(a, a), 10)  # the machine is shared: did it change?
    probe_after = 2 * 2048**3 / t_probe_after / 1e9

    macs = forward_macs(config, args.image_size)
    train_gflop = 3 * 2 * macs / 1e9  # per image: forward + backward = 3x forward
    gflops = train_gflop * args.batch / t_step
    print(f"DiNAT-Mini training step at {args.image_size}x{args.image_size}, batch {args.batch}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"forward {macs / 1e9:.2f} GMACs per image (paper: 2.7); training 3x forward = "
          f"{train_gflop:.1f} GFLOP per image")
    print(f"probe: 2048x2048 fp32 matmul {probe:.1f} GFLOP/s (after the steps: {probe_after:.1f})")
    print(f"training: {1e3 * t_step:.0f} ms per step = {args.batch / t_step:.2f} images/s = "
          f"{gflops:.1f} GFLOP/s = {gflops / probe:.1%} of the probe (target >= 25%)")


if __name__ == "__main__":
    main()
