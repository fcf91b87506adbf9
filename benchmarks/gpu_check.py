"""GPU check: every backend of dinat_ref.torch against the NumPy float64 reference, and timings.

On a CUDA machine this runs, for ``natten``, ``flex`` and ``torch`` in float32 / float16 /
bfloat16, forward (and backward where the backend has one) on a few 1-D / 2-D / 3-D
configurations (stride, dilation, causal, rpb), compares with :mod:`dinat_ref.numpy` in
float64 on the same (rounded) inputs, and times a DiNAT-sized 2-D layer. Each backend is
wrapped in try/except, so one failure never hides the others. It stops starting new work
after ``--budget`` seconds (default 240) so the whole run stays under 5 minutes.

On a machine without CUDA it prints that it skips and exits 0.

Run:  python benchmarks/gpu_check.py            (exit status 1 if any check mismatched)
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings

import numpy as np

TOL = {"float32": (1e-4, 1e-3), "float16": (1e-2, 2e-2), "bfloat16": (5e-2, 1e-1)}
CONFIGS = [  # (name, shape, kernel, stride, dilation, causal, rpb)
    ("1d-causal-s2-d3", (67,), (7,), (2,), (3,), (True,), False),
    ("2d-d2-rpb", (30, 33), (7, 7), (1, 1), (2, 3), (False, False), True),
    ("2d-s2-causal", (24, 24), (5, 4), (2, 1), (1, 2), (False, True), False),
    ("3d-rpb", (9, 10, 11), (3, 3, 3), (1, 2, 1), (2, 1, 3), (False, False, True), True),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=200.0,
                        help="seconds of cross-checks before skipping the rest (timings: until 1.35x this)")
    parser.add_argument("--device", default="cuda",
                        help="'cpu' runs the cross-checks on CPU (to try the script; no timings)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu_check: torch is not installed; skipping.")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; skipping (nothing to check on a CPU-only machine).")
        return 0
    warnings.filterwarnings("ignore")
    import dinat_ref.numpy as rn
    import dinat_ref.torch as nat

    start = time.time()
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}")
    try:
        import natten

        print(f"natten {natten.__version__}")
    except Exception as e:  # noqa: BLE001
        print(f"natten unavailable: {e}")

    rows, failures = [], 0
    for name, shape, ks, st, dil, causal, has_rpb in CONFIGS:
        na_dim = len(shape)
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal((2, *shape, 4, 32)) for _ in range(3))
        rpb = rng.standard_normal((4, *(2 * x - 1 for x in ks))) if has_rpb else None
        d_out = rng.standard_normal(q.shape)
        for dtype_name in ("float32", "float16", "bfloat16"):
            dtype = getattr(torch, dtype_name)
            # Round the inputs to the dtype once, so every side sees the same numbers.
            tq, tk, tv, tdo = (torch.tensor(x, dtype=dtype) for x in (q, k, v, d_out))
            trpb = None if rpb is None else torch.tensor(rpb, dtype=dtype)
            f64 = lambda t: None if t is None else t.double().numpy()
            rq, rk, rv, rdo, rr = map(f64, (tq, tk, tv, tdo, trpb))
            out, lse = getattr(rn, f"na{na_dim}d")(rq, rk, rv, ks, st, dil, causal, None, rr, True)
            grads = getattr(rn, f"na{na_dim}d_backward")(rdo, rq, rk, rv, out, lse, ks, st, dil, causal,
                                                         None, rr)
            for backend in ("natten", "flex", "torch"):
                if time.time() - start > args.budget:
                    rows.append((name, dtype_name, backend, "skipped (time budget)", "", ""))
                    continue
                if has_rpb and backend == "natten":
                    rows.append((name, dtype_name, backend, "n/a (no rpb in NATTEN)", "", ""))
                    continue
                try:
                    fwd_err, bwd_err, ok = _check(nat, na_dim, backend, dev, tq, tk, tv, trpb, tdo,
                                                  (ks, st, dil, causal), out, grads, TOL[dtype_name])
                    failures += not ok
                    rows.append((name, dtype_name, backend, "ok" if ok else "MISMATCH",
                                 f"{fwd_err:.1e}", bwd_err))
                except Exception as e:  # noqa: BLE001 - report and go on
                    failures += 1
                    msg = str(e).strip().splitlines()[0][:70] if str(e).strip() else type(e).__name__
                    rows.append((name, dtype_name, backend, f"ERROR {type(e).__name__}: {msg}", "", ""))
                    if "--verbose" in sys.argv:
                        traceback.print_exc()
    print("\n| config | dtype | backend | result | max fwd err | max bwd err |\n|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")

    if dev.type == "cuda":
        _timings(torch, nat, dev, deadline=start + 1.35 * args.budget)
    print(f"\ngpu_check: {failures} failure(s), {time.time() - start:.0f} s")
    return 1 if failures else 0


def _check(nat, na_dim, backend, dev, tq, tk, tv, trpb, tdo, window, out, grads, tol):
    """Forward and (if the backend can) backward vs the reference; returns errors and ok."""
    import torch

    ks, st, dil, causal = window
    fn = getattr(nat, f"na{na_dim}d")
    with torch.no_grad():  # forward alone first: some backends (on CPU) have no backward
        got = fn(*(x.to(dev) for x in (tq, tk, tv)), ks, st, dil, causal, None,
                 None if trpb is None else trpb.to(dev), backend=backend)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    fwd_err = float(np.abs(got.double().cpu().numpy() - out).max())
    ok = fwd_err <= tol[0] * (1 + np.abs(out).max())

    q, k, v = (x.to(dev).requires_grad_(True) for x in (tq, tk, tv))
    rpb = None if trpb is None else trpb.to(dev).requires_grad_(True)
    try:
        got = fn(q, k, v, ks, st, dil, causal, None, rpb, backend=backend)
    except ValueError as e:
        if "forward-only" in str(e):
            return fwd_err, "n/a (forward-only here)", ok
        raise
    (got * tdo.to(dev)).sum().backward()
    errs = []
    for name, t, want in zip(("dq", "dk", "dv", "drpb"), (q, k, v, rpb), grads, strict=True):
        if t is None or want is None:
            continue
        e = float(np.abs(t.grad.double().cpu().numpy() - want).max())
        ok = ok and e <= tol[1] * (1 + np.abs(want).max())
        errs.append(f"{name} {e:.1e}")
    return fwd_err, ", ".join(errs), ok


def _timings(torch, nat, dev, deadline: float):
    """Median forward / forward+backward ms of a DiNAT-sized layer, per backend and dtype."""
    print("\nTimings: B=8, 56x56, heads 4, dim 32, k=7 (median of 20, CUDA events)")
    print("| dtype | dilation | backend | rpb | fwd ms | fwd+bwd ms |\n|---|---|---|---|---|---|")
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for dilation in (1, 4):
            for backend in ("natten", "flex", "torch"):
                for use_rpb in (False, True):
                    if backend == "natten" and use_rpb:
                        continue
                    if time.time() > deadline:
                        print(f"| {str(dtype)[6:]} | {dilation} | {backend} | {use_rpb} | skipped (time) | |")
                        continue
                    try:
                        q, k, v = (torch.randn(8, 56, 56, 4, 32, device=dev, dtype=dtype,
                                               requires_grad=True) for _ in range(3))
                        rpb = (torch.randn(4, 13, 13, device=dev, dtype=dtype, requires_grad=True)
                               if use_rpb else None)
                        def f(q=q, k=k, v=v, dilation=dilation, rpb=rpb, backend=backend):
                            return nat.na2d(q, k, v, 7, dilation=dilation, rpb=rpb, backend=backend)

                        fwd = _cuda_ms(torch, f)
                        fb = _cuda_ms(torch, lambda f=f: f().sum().backward())
                        print(f"| {str(dtype)[6:]} | {dilation} | {backend} | {use_rpb} | "
                              f"{fwd:.3f} | {fb:.3f} |")
                    except Exception as e:  # noqa: BLE001
                        print(f"| {str(dtype)[6:]} | {dilation} | {backend} | {use_rpb} | "
                              f"ERROR {type(e).__name__}: {str(e)[:60]} | |")


def _cuda_ms(torch, call, reps: int = 20) -> float:
    for _ in range(3):
        call()  # warm-up (compilation, caches)
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        call()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


if __name__ == "__main__":
    raise SystemExit(main())
