"""``dinat-ref tour`` (also plain ``dinat-ref``): the main job on a built-in default.

1. Draws a DiNA neighborhood in the terminal.
2. Cross-checks, on DiNAT-mini with seeded random weights (non-zero RPB and layer scale):
   the NumPy reference model vs the torch model (float64 and float32), and NATTEN, which
   has no RPB, against both on the attention op and on the model with RPB set to zero.
3. Times the NA op (NumPy, torch, dense SDPA, NATTEN) and the whole model (NumPy, torch).
4. Writes every figure (``dinat-ref figures``) to ``--out`` (default ``figures/``).

Needs no arguments and no downloads. A part whose optional dependency (torch, NATTEN,
matplotlib) is missing says so and is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dinat_ref.viz.terminal import render_neighborhood


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights and inputs (default 0)")
    parser.add_argument("--preset", default="mini", help="DiNAT preset for the model checks (default mini)")
    parser.add_argument("--image-size", type=int, default=224, help="input resolution (default 224)")
    parser.add_argument("--out", default="figures", help="where to write the figures (default figures/)")
    parser.add_argument("--no-figures", action="store_true", help="skip writing the figures")
    parser.add_argument("--no-natten", action="store_true", help="skip NATTEN even if it is installed")


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)))


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _median_ms(fn: Callable[[], Any], repeats: int = 3) -> float:
    fn()  # warm-up: caches, lazy compilation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _max_abs(a: Any, b: Any) -> float:
    a = a.detach().double().numpy() if hasattr(a, "detach") else np.asarray(a, dtype=np.float64)
    b = b.detach().double().numpy() if hasattr(b, "detach") else np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max())


def _row(what: str, a: str, b: str, err: float, tol: float) -> None:
    status = "ok" if err <= tol else "MISMATCH"
    print(f"  {what:<34} {a:<16} {b:<18} {err:10.2e}  (tol {tol:.0e})  {status}")


def run(args: argparse.Namespace) -> int:
    _section("1. Who attends to whom: DiNA on a 9x12 grid, kernel 3, dilation 2, a corner query")
    print(render_neighborhood((9, 12), (0, 11), kernel_size=3, dilation=2))
    print("Dilation splits the grid into 4 groups (letters); the query only sees its own group,\n"
          "and its window is shifted inward at the corner instead of being zero-padded.")

    if not _have("torch"):
        print("\n(torch is not installed: skipping the cross-checks and timings; "
              "`pip install torch==2.13.0` then `pip install dinat-ref[torch]`)")
        ok = True
    else:
        ok = _cross_checks(args)
        _timings(args)

    if not args.no_figures:
        _section(f"4. Figures -> {args.out}/")
        if _have("matplotlib"):
            from dinat_ref.commands.figures import generate

            paths = generate(args.out)
            print(f"wrote {len(paths)} figures, e.g. {paths[0] if paths else '-'}")
        else:
            print("(matplotlib is not installed: `pip install dinat-ref[viz]` to draw the figures)")
    print("\nDone." if ok else "\nDone, with MISMATCHES above.")
    return 0 if ok else 1


def _cross_checks(args: argparse.Namespace) -> bool:
    import torch

    import dinat_ref.numpy as dn
    import dinat_ref.torch as dt
    from dinat_ref import DinatConfig
    from dinat_ref.hf.weights import random_state_dict

    use_natten = _have("natten") and not args.no_natten
    config = DinatConfig.from_preset(args.preset)
    size = args.image_size
    _section(f"2. Cross-checks: DiNAT-{args.preset} at {size}x{size}, random weights (seed {args.seed})")
    print(f"  {'what':<34} {'A':<16} {'B':<18} {'max |A-B|':>10}")
    ok = True

    weights = random_state_dict(config, seed=args.seed, dtype=np.float64)  # name -> array, HF layout
    pixels = np.random.default_rng(args.seed).standard_normal((1, config.num_channels, size, size))
    ref = dn.DinatForImageClassification(config, weights, dtype=np.float64)(pixels)

    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-3)):
        model = dt.DinatForImageClassification(config).to(dtype).eval()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        with torch.no_grad():
            out = model(torch.from_numpy(pixels).to(dtype))
        err = _max_abs(out.logits, ref.logits)
        _row("model logits", "NumPy float64", f"torch {str(dtype)[6:]}", err, tol)
        ok &= err <= tol

    if use_natten:
        # NATTEN has no RPB (since 0.20): the same model with every RPB set to zero.
        no_rpb = {k: (np.zeros_like(v) if k.endswith(".rpb") else v) for k, v in weights.items()}
        ref0 = dn.DinatForImageClassification(config, no_rpb, dtype=np.float64)(pixels)
        model = dt.DinatForImageClassification(config, backend="natten").eval()
        model.load_state_dict({k: torch.from_numpy(v).float() for k, v in no_rpb.items()})
        for module in model.modules():  # zero RPB == no RPB, which is what NATTEN can run
            if isinstance(getattr(module, "rpb", None), torch.nn.Parameter):
                module.rpb = None
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = model(torch.from_numpy(pixels).float())
        err = _max_abs(out.logits, ref0.logits)
        _row("model logits, RPB = 0", "NumPy float64", "NATTEN fp32", err, 1e-3)
        ok &= err <= 1e-3

    # The NA op itself, on DiNAT-mini's first-stage shape.
    rng = np.random.default_rng(args.seed)
    q, k, v = (rng.standard_normal((1, 56, 56, 2, 32)) for _ in range(3))  # (B, H, W, heads, dim)
    rpb = rng.standard_normal((2, 13, 13))  # (heads, 2k-1, 2k-1)
    for dilation in (1, 8):
        want = dn.na2d(q, k, v, kernel_size=7, dilation=dilation, rpb=rpb)
        got = dt.na2d(*(torch.from_numpy(x) for x in (q, k, v)), kernel_size=7, dilation=dilation,
                      rpb=torch.from_numpy(rpb), backend="torch")
        err = _max_abs(got, want)
        _row(f"na2d 56x56 k=7 d={dilation} + RPB", "NumPy float64", "torch float64", err, 1e-10)
        ok &= err <= 1e-10
        if use_natten:
            import natten

            want = dn.na2d(q, k, v, kernel_size=7, dilation=dilation)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = natten.na2d(*(torch.from_numpy(x).float() for x in (q, k, v)), kernel_size=7,
                                  dilation=dilation)
            err = _max_abs(got, want)
            _row(f"na2d 56x56 k=7 d={dilation}, no RPB", "NumPy float64", "NATTEN 0.21 fp32", err, 1e-4)
            ok &= err <= 1e-4
    if not use_natten:
        print("  (NATTEN is not installed: `pip install --no-build-isolation natten==0.21.7` after torch)")
    return bool(ok)


def _timings(args: argparse.Namespace) -> None:
    import torch

    import dinat_ref.numpy as dn
    import dinat_ref.torch as dt
    from dinat_ref import DinatConfig
    from dinat_ref.hf.weights import random_state_dict
    from dinat_ref.neighborhood import dense_mask

    _section("3. Timings on this machine (median ms; ratios are what carries over to other machines)")
    rng = np.random.default_rng(args.seed)
    q, k, v = (rng.standard_normal((1, 56, 56, 2, 32)).astype(np.float32) for _ in range(3))
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    # Dense SDPA over all 3136 tokens with an additive NA mask: what one writes without NA kernels.
    bias = torch.from_numpy(np.where(dense_mask((56, 56), 7), 0.0, -np.inf).astype(np.float32))
    flat = [x.reshape(1, 3136, 2, 32).transpose(1, 2) for x in (tq, tk, tv)]  # (B, heads, N, dim)
    with torch.no_grad():
        base = _median_ms(lambda: torch.nn.functional.scaled_dot_product_attention(*flat, attn_mask=bias))
        rows = [("dense SDPA + NA mask (baseline)", base),
                ("NumPy na2d (reference)", _median_ms(lambda: dn.na2d(q, k, v, 7))),
                (f"torch na2d ({dt.explain_backend(tq, tk, tv, 7).chosen})",
                 _median_ms(lambda: dt.na2d(tq, tk, tv, 7), repeats=10))]
        if _have("natten") and not args.no_natten:
            import natten

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows.append(("NATTEN 0.21 na2d (CPU)", _median_ms(lambda: natten.na2d(tq, tk, tv, 7), 1)))
    print("  na2d forward, 56x56 tokens, 2 heads, dim 32, kernel 7, float32:")
    for name, ms in rows:
        print(f"    {name:<36} {ms:9.1f} ms   {base / ms:6.2f}x the baseline's speed")

    config = DinatConfig.from_preset(args.preset)
    weights = random_state_dict(config, seed=args.seed)
    size = args.image_size
    pixels = rng.standard_normal((1, config.num_channels, size, size)).astype(np.float32)
    np_model = dn.DinatForImageClassification(config, weights)
    th_model = dt.DinatForImageClassification(config).eval()
    th_model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    with torch.no_grad():
        t_torch = _median_ms(lambda: th_model(torch.from_numpy(pixels)), repeats=5)
    t_numpy = _median_ms(lambda: np_model(pixels), repeats=1)
    print(f"  DiNAT-{args.preset} forward, 1x3x{args.image_size}x{args.image_size}, float32:")
    print(f"    {'NumPy model':<36} {t_numpy:9.1f} ms")
    print(f"    {'torch model':<36} {t_torch:9.1f} ms   {t_numpy / t_torch:6.2f}x faster than NumPy")
