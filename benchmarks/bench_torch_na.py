"""Benchmark: the torch CPU path of 2-D neighborhood attention against what else a user has.

For B=1, heads=2, dim=32, kernel 7x7, dilation 1 and 8, on 28x28, 56x56 and 112x112 tokens:

* ``torch``      dinat_ref.torch.na2d(backend="torch"), the tiled path (forward, forward+backward)
* ``torch+rpb``  the same with a relative positional bias (DiNAT's layers)
* ``unguarded``  the tiled backend called directly, without the public function's checks and
                 its non-finite guard (what keeping NaN/inf local costs: torch / unguarded)
* ``qk/av``      the unfused path: na2d_qk -> softmax -> na2d_av (what attention-map output uses)
* ``dense``      F.scaled_dot_product_attention over all tokens with an additive -inf mask
                 from the rule (what one writes without NA kernels; O(N^2) memory)
* ``natten``     NATTEN 0.21 on CPU (its flex-fna path: forward only), where installed
* ``numpy``      the NumPy reference (float32 inputs)

Times are medians of several runs (CPU process time when ``--threads 1``, else wall time),
ratios are "other / torch" from the same run. Peak memory is the peak resident-set growth of a
fresh subprocess that builds the inputs and runs one call (Linux /proc). Extra, larger sizes
(``--extra-sides``) run the torch path alone, to show its linear scaling where dense attention
no longer fits. Writes a log-log scaling plot (time vs tokens).

Run:  python benchmarks/bench_torch_na.py            (about 3-4 minutes on 2 cores)
      python benchmarks/bench_torch_na.py --quick    (28x28 and 56x56 only, no memory)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import dinat_ref.numpy as rn
import dinat_ref.torch as nat
from dinat_ref.checks import Window
from dinat_ref.neighborhood import dense_mask

HEADS, DIM, KERNEL = 2, 32, 7
NATTEN_MAX_SIDE = 56  # NATTEN on CPU takes seconds per call above this; skipped there


def _inputs(side: int, grad: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, side, side, HEADS, DIM, generator=g, requires_grad=grad) for _ in range(3))
    rpb = torch.randn(HEADS, 2 * KERNEL - 1, 2 * KERNEL - 1, generator=g, requires_grad=grad)
    return q, k, v, rpb


_masks: dict = {}


def _dense_mask(side: int, dilation: int) -> torch.Tensor:
    key = (side, dilation)
    if key not in _masks:
        _masks.clear()  # keep at most one O(N^2) mask alive
        m = torch.as_tensor(dense_mask((side, side), KERNEL, 1, dilation))  # (N, N) bool
        _masks[key] = torch.zeros(m.shape).masked_fill_(~m, float("-inf"))  # (N, N) additive
    return _masks[key]


def make_call(method: str, side: int, dilation: int, backward: bool):
    """A zero-argument function running one forward (+ backward) of ``method``, or None."""
    q, k, v, rpb = _inputs(side, grad=backward)
    if method in ("torch", "torch+rpb"):
        bias = rpb if method == "torch+rpb" else None

        def call():
            out = nat.na2d(q, k, v, KERNEL, dilation=dilation, rpb=bias, backend="torch")
            if backward:
                out.sum().backward()
    elif method == "unguarded":
        window = Window((KERNEL, KERNEL), (1, 1), (dilation, dilation), (False, False))

        def call():
            out, _ = nat.BACKENDS["torch"].forward(q, k, v, window, DIM**-0.5, None, False)
            if backward:
                out.sum().backward()
    elif method == "qk/av":
        def call():
            p = torch.softmax(nat.na2d_qk(q, k, KERNEL, dilation=dilation), dim=-1)
            out = nat.na2d_av(p, v, KERNEL, dilation=dilation)
            if backward:
                out.sum().backward()
    elif method == "dense":
        mask = _dense_mask(side, dilation)

        def call():
            qd, kd, vd = (x.reshape(1, side * side, HEADS, DIM).transpose(1, 2) for x in (q, k, v))
            out = F.scaled_dot_product_attention(qd, kd, vd, attn_mask=mask)  # (1, heads, N, dim)
            if backward:
                out.sum().backward()
    elif method == "natten":
        try:
            import natten
        except ImportError:
            return None
        if backward or side > NATTEN_MAX_SIDE:
            return None

        def call():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                natten.na2d(q, k, v, KERNEL, dilation=dilation)
    elif method == "numpy":
        if backward:
            return None
        qn, kn, vn = (x.detach().numpy() for x in (q, k, v))

        def call():
            rn.na2d(qn, kn, vn, KERNEL, dilation=dilation)
    else:
        raise ValueError(method)
    return call


def median_time(call, clock, budget_s: float = 1.5, max_reps: int = 15) -> float:
    """Median seconds of ``call`` after one warm-up, repeated within ``budget_s``."""
    call()  # warm-up: caches, NATTEN's compile, the first allocation
    t0 = clock()
    call()
    first = clock() - t0
    reps = max(2, min(max_reps, int(budget_s / max(first, 1e-6))))
    times = [first]
    for _ in range(reps):
        t0 = clock()
        call()
        times.append(clock() - t0)
    return statistics.median(times)


def peak_memory_mb(method: str, side: int, dilation: int, backward: bool) -> float | None:
    """Peak resident-memory growth (MiB) of a fresh Python building the inputs and running one call.

    Everything the call needs counts: index tables, the dense mask, scores, autograd buffers.
    Linux only (reads VmRSS / VmHWM from /proc and resets the peak via clear_refs).
    """
    code = (
        f"import sys, torch; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import bench_torch_na as b\n"
        "torch.set_num_threads(1)\n"
        "def status(key):\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))\n"
        "open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to now\n"
        "before = status('VmRSS')\n"
        f"call = b.make_call({method!r}, {side}, {dilation}, {backward!r})\n"
        "call()\n"
        "print((status('VmHWM') - before) / 1024)\n"
    )
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None
    out = res.stdout.strip().splitlines()
    return json.loads(out[-1]) if res.returncode == 0 and out else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="28x28 and 56x56 only, no memory")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch intra-op threads (default: torch's default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--extra-sides", type=int, nargs="*", default=[168, 224],
                        help="larger grids run with the torch path only (dense would need O(N^2) memory)")
    parser.add_argument("--figure", default="figures/bench_na_scaling.png")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    parser.add_argument("--plot-only", default=None, metavar="JSON",
                        help="redraw the figure from a --json file and exit")
    args = parser.parse_args(argv)
    if args.plot_only:
        _plot(json.loads(Path(args.plot_only).read_text()), args.figure)
        return 0
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    sides = (28, 56) if args.quick else (28, 56, 112)
    methods = ["torch", "unguarded", "torch+rpb", "qk/av", "dense", "natten", "numpy"]
    print(f"torch {torch.__version__}, {args.threads} thread(s); B=1 heads={HEADS} dim={DIM} "
          f"k={KERNEL}; median {'CPU' if args.threads == 1 else 'wall'} time")

    extra = () if args.quick else tuple(args.extra_sides)
    print(f"  (NATTEN on CPU is skipped above {NATTEN_MAX_SIDE}x{NATTEN_MAX_SIDE}: seconds per call; "
          f"sides {extra} run the torch path only)")
    results = []  # dicts: side, dilation, pass, method, ms
    for side in sides + extra:
        for dilation in (1, 8):
            if KERNEL * dilation > side:
                print(f"  {side}x{side} d={dilation}: skipped, kernel 7 x dilation {dilation} needs "
                      f">= {KERNEL * dilation} tokens per side")
                continue
            for backward in (False, True):
                for method in methods if side in sides else ["torch", "torch+rpb"]:
                    call = make_call(method, side, dilation, backward)
                    if call is None:
                        continue
                    budget = 3.0 if method in ("natten", "numpy", "dense") else 1.5
                    ms = 1e3 * median_time(call, clock, budget_s=budget)
                    results.append(dict(side=side, dilation=dilation, backward=backward,
                                        method=method, ms=ms))
                    print(f"  {side}x{side} d={dilation} {'fwd+bwd' if backward else 'fwd':<7} "
                          f"{method:<9} {ms:9.2f} ms", flush=True)
    _masks.clear()

    memory = {}
    if not (args.quick or args.no_memory):
        for side in sides + extra:
            for method in ("torch", "dense") if side in sides else ("torch",):
                for backward in (False, True):
                    memory[(side, method, backward)] = peak_memory_mb(method, side, 1, backward)

    _print_table(results, memory, sides + extra, methods)
    _check_targets(results)
    _plot(results, args.figure)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def _get(results, side, dilation, backward, method):
    for r in results:
        if (r["side"], r["dilation"], r["backward"], r["method"]) == (side, dilation, backward, method):
            return r["ms"]
    return None


def _print_table(results, memory, sides, methods):
    print("\n| tokens | d | pass | " + " | ".join(f"{m} ms" for m in methods)
          + " | dense/torch | natten/torch | numpy/torch |")
    print("|" + "---|" * (3 + len(methods) + 3))
    for side in sides:
        for dilation in (1, 8):
            for backward in (False, True):
                row = dict(zip(methods, (_get(results, side, dilation, backward, m) for m in methods),
                               strict=True))
                if row["torch"] is None:
                    continue
                cells = [f"{x:.2f}" if x is not None else "-" for x in row.values()]
                ratios = [f"{row[m] / row['torch']:.1f}x" if row[m] else "-"
                          for m in ("dense", "natten", "numpy")]
                print(f"| {side}x{side} | {dilation} | {'fwd+bwd' if backward else 'fwd'} | "
                      + " | ".join(cells + ratios) + " |")
    if any(v is not None for v in memory.values()):
        print("\nPeak memory (peak RSS growth of a fresh process running one call, MiB, dilation 1):\n")
        print("| tokens | torch fwd | torch fwd+bwd | dense fwd | dense fwd+bwd |\n|---|---|---|---|---|")
        for side in sides:
            mb = [memory.get((side, m, b)) for m in ("torch", "dense") for b in (False, True)]
            print(f"| {side}x{side} | " + " | ".join("-" if x is None else f"{x:.1f}" for x in mb) + " |")


def _check_targets(results):
    """Print the targets (ratios from this run) and the torch path's scaling exponent."""
    print("\nTargets (same run):")
    for side, other, want in ((56, "dense", 4), (56, "natten", 100), (112, "dense", 15)):
        for dilation in (1, 8):
            t, o = _get(results, side, dilation, False, "torch"), _get(results, side, dilation, False, other)
            if t is None or o is None:
                print(f"  {side}x{side} d={dilation}: torch fwd vs {other}: not measured")
                continue
            print(f"  {side}x{side} d={dilation}: torch fwd is {o / t:6.1f}x faster than {other} "
                  f"(target >= {want}x): {'met' if o / t >= want else 'MISSED'}")
    for side in sorted({r["side"] for r in results}):
        for backward in (False, True):
            t, u = (_get(results, side, 1, backward, m) for m in ("torch", "unguarded"))
            if t is not None and u is not None:
                print(f"  {side}x{side} d=1 {'fwd+bwd' if backward else 'fwd'}: checks + non-finite guard "
                      f"cost {100 * (t / u - 1):+.1f}% (torch {t:.2f} ms vs unguarded {u:.2f} ms)")
    for dilation in (1, 8):
        for backward in (False, True):
            pts = sorted((r["side"] ** 2, r["ms"]) for r in results if r["method"] == "torch"
                         and r["dilation"] == dilation and r["backward"] == backward)
            if len(pts) >= 2:
                fit = lambda p: np.polyfit(np.log([a for a, _ in p]), np.log([b for _, b in p]), 1)[0]
                large = [p for p in pts if p[0] >= 112**2]
                tail = f", from 112x112 up: ^{fit(large):.2f}" if len(large) >= 2 else ""
                name = "fwd+bwd" if backward else "fwd"
                print(f"  torch {name} d={dilation}: time ~ tokens^{fit(pts):.2f} over all sizes{tail} "
                      f"(1.0 = linear)")


def _plot(results, path):
    """2 x 2 log-log panels (rows: forward, forward+backward; columns: dilation 1, 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {  # method -> (color, marker, line width)
        "torch": ("C0", "o", 2.5), "torch+rpb": ("C9", "o", 1.5), "qk/av": ("C4", "v", 1.2),
        "dense": ("C3", "s", 2.0), "natten": ("C1", "D", 1.5),
        "numpy": ("C7", "x", 1.2),
    }
    sides = sorted({r["side"] for r in results})
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), sharex=True, sharey=True)
    for row, backward in enumerate((False, True)):
        for col, dilation in enumerate((1, 8)):
            ax = axes[row, col]
            def pick(m, dilation=dilation, backward=backward):
                return sorted((r["side"] ** 2, r["ms"]) for r in results if r["method"] == m
                              and r["dilation"] == dilation and r["backward"] == backward)

            for method, (color, marker, lw) in styles.items():
                pts = pick(method)
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker=marker, color=color, lw=lw, ms=5, label=method)
            base = pick("torch")
            if len(base) >= 2:  # guides through the torch path's first point
                n = np.array([base[0][0], base[-1][0]], dtype=float)
                ax.plot(n, base[0][1] * n / n[0], ":", color="k", lw=1, label="~ tokens (linear)")
                ax.plot(n, base[0][1] * (n / n[0]) ** 2, "--", color="gray", lw=0.8, label="~ tokens$^2$")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{'forward + backward' if backward else 'forward'}, dilation {dilation}")
            ax.grid(True, which="major", alpha=0.3)
            ax.set_xticks([s * s for s in sides], [f"{s}x{s}" for s in sides])
            ax.minorticks_off()
            if row == 1:
                ax.set_xlabel("tokens (H x W), log scale")
            if col == 0:
                ax.set_ylabel("median time per call (ms), log scale")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9, frameon=False)
    fig.suptitle("2-D neighborhood attention on CPU: B=1, heads 2, dim 32, kernel 7x7", fontsize=13)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
