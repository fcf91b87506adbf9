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

from _common import PROBE_GFLOP, forward_macs, median_time, probe_time, set_blas_threads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="images per training step (default 8)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median; default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args(argv)
    set_blas_threads(args.threads)
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

    probe = PROBE_GFLOP / probe_time(10)  # GFLOP/s
    t_step = median_time(step, args.steps)
    probe_after = PROBE_GFLOP / probe_time(10)  # the machine is shared: did it change?

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
