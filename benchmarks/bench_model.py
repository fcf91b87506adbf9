"""DiNAT-Mini forward at 224x224: the torch model, the NumPy model and a matmul probe, in one run.

DiNAT-Mini costs 2.7 GMACs = 5.4 GFLOP per 224x224 image (the paper's count, which
``_common.forward_macs`` reproduces from the config). The probe is a 2048x2048 float32 matmul
(``torch.mm``; 2 * 2048^3 FLOP), the machine's practical peak for dense work; every model
time is reported as achieved GFLOP/s and as a fraction of the probe's GFLOP/s measured in
this same run, which travels between machines better than times.

Rows (float32, eval mode, random weights):

* torch, batch 1 (``--backend``, default "auto"), and batch ``--batch`` throughput (images/s);
* NumPy, batch 1;
* with ``--device cuda`` (a GPU machine), bf16 throughput with the ``natten`` backend (the
  no-RPB variant: natten's fused kernels take no RPB, so the model's RPB is dropped) and
  the ``flex`` backend (with RPB).

Targets: torch batch 1 >= 30% of the probe end to end; NumPy < 1 s.

Run::

    python benchmarks/bench_model.py                 # CPU
    python benchmarks/bench_model.py --repeats 7 --batch 32
    python benchmarks/bench_model.py --device cuda   # adds the bf16 rows
"""

from __future__ import annotations

import argparse

from _common import PROBE_GFLOP, forward_macs, median_time, probe_time, set_blas_threads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (median)")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput row")
    parser.add_argument("--backend", default="auto", help="torch attention backend")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and BLAS threads (default: the libraries' own)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu or cuda)")
    parser.add_argument("--skip-numpy", action="store_true", help="leave out the NumPy row")
    args = parser.parse_args(argv)
    set_blas_threads(args.threads)  # before NumPy and torch are imported
    import numpy as np
    import torch

    import dinat_ref.numpy as dn
    import dinat_ref.torch as dt
    from dinat_ref import DinatConfig
    from dinat_ref.hf.weights import random_state_dict

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    config = DinatConfig.from_preset("mini")
    weights = random_state_dict(config, seed=0)
    model = dt.DinatForImageClassification(config, backend=args.backend)
    model.load_checkpoint(weights)
    model = model.to(dev).eval()
    x1 = torch.randn(1, 3, 224, 224, device=dev)
    xb = torch.randn(args.batch, 3, 224, 224, device=dev)

    t_probe = probe_time(args.repeats, dev, sync)
    probe = PROBE_GFLOP / t_probe  # GFLOP/s
    gflop = 2 * forward_macs(config, 224) / 1e9  # per image
    rows: list[tuple[str, float, float]] = []  # (name, seconds per call, images per call)
    with torch.inference_mode():
        t1 = median_time(lambda: model(x1), args.repeats, sync)
        rows.append((f"torch fp32 batch 1 ({args.backend})", t1, 1))
        tb = median_time(lambda: model(xb), max(1, args.repeats // 2), sync)
        rows.append((f"torch fp32 batch {args.batch}", tb, args.batch))
        if dev.type == "cuda":
            bf = model.to(torch.bfloat16)
            xbf = xb.to(torch.bfloat16)
            for backend in ("flex", "natten"):
                bf.set_attention_backend(backend)
                if backend == "natten":  # natten's fused kernels take no RPB: the no-RPB variant
                    for m in bf.modules():
                        if hasattr(m, "rpb") and isinstance(m.rpb, torch.nn.Parameter):
                            m.rpb = None
                rows.append((f"torch bf16 batch {args.batch} ({backend})",
                             median_time(lambda: bf(xbf), args.repeats, sync), args.batch))
    if not args.skip_numpy:
        np_model = dn.DinatForImageClassification(config, weights, dtype=np.float32)
        x_np = x1.float().cpu().numpy()
        rows.append(("NumPy fp32 batch 1", median_time(lambda: np_model(x_np), max(1, args.repeats // 2)), 1))

    print(f"DiNAT-Mini 224x224 forward on {args.device} ({torch.get_num_threads()} torch threads); "
          f"{gflop:.1f} GFLOP per image")
    print(f"probe: 2048x2048 fp32 matmul {1e3 * t_probe:.1f} ms = {probe:.1f} GFLOP/s\n")
    print(f"| {'run':34s} | {'ms / call':>10s} | {'images/s':>9s} | {'GFLOP/s':>8s} | {'of probe':>8s} |")
    print(f"|{'-' * 36}|{'-' * 12}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    for name, t, n in rows:
        gflops = gflop * n / t
        print(f"| {name:34s} | {1e3 * t:10.1f} | {n / t:9.1f} | {gflops:8.1f} | {gflops / probe:7.1%} |")


if __name__ == "__main__":
    main()
