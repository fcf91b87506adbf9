"""Run a kernel through the case suite and compare it with the float64 NumPy reference.

For every case and dtype:

1. draw the case's float64 inputs and round them to the dtype the kernel runs in, so
   the reference sees exactly the numbers the kernel sees;
2. the judge: :func:`dinat_ref.numpy.na_forward` (and :func:`~dinat_ref.numpy.na_backward`
   for gradients) in float64 on those rounded inputs;
3. call the kernel through its :class:`~dinat_ref.testing.adapters.KernelAdapter`;
   anything it raises, or a wrong shape/dtype, becomes an ``ERROR`` row with its own
   message, and the run goes on;
4. compare: pass iff ``|out - ref| <= tol * (1 + |ref|)`` everywhere.

Default tolerances (forward as in NATTEN's tests; backward looser, since gradients sum
over many more terms)::

    dtype      forward   backward
    float64    1e-10     1e-8
    float32    1e-4      1e-3
    float16    1e-2      5e-2
    bfloat16   5e-2      1e-1

Override them per dtype with ``tolerances={"float32": 1e-3}`` /
``backward_tolerances=...``, or per case with ``Case(..., tolerance=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from dinat_ref.numpy import na_backward, na_forward
from dinat_ref.testing.adapters import KernelAdapter, KernelLimits
from dinat_ref.testing.cases import Case, default_cases
from dinat_ref.testing.report import CaseResult, Report

__all__ = ["DEFAULT_TOLERANCES", "DEFAULT_BACKWARD_TOLERANCES", "run_case", "run_suite", "verify",
           "make_adapter"]

DEFAULT_TOLERANCES = {"float64": 1e-10, "float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
DEFAULT_BACKWARD_TOLERANCES = {"float64": 1e-8, "float32": 1e-3, "float16": 5e-2, "bfloat16": 1e-1}


def compare(out: np.ndarray, ref: np.ndarray, tol: float) -> tuple[float, float, np.ndarray]:
    """Largest absolute and relative error, and the error in units of tolerance.

    Returns:
        ``(max_abs, max_rel, excess)``; ``excess = |out - ref| / (tol * (1 + |ref|))`` has
        ``out``'s shape, is ``inf`` where ``out`` is NaN/inf, and the case fails where it is > 1.
    """
    err = np.abs(out - ref)  # same shape as out
    err = np.where(np.isfinite(out), err, np.inf)
    excess = err / (tol * (1.0 + np.abs(ref)))
    return float(err.max()), float((err / np.maximum(np.abs(ref), tol)).max()), excess


def run_case(adapter: KernelAdapter, case: Case, dtype: str,
             tolerances: dict[str, float] | None = None,
             backward_tolerances: dict[str, float] | None = None) -> CaseResult:
    """Run one case in one dtype; never raises for the kernel's faults."""
    skip = adapter.skip_reason(case, dtype)
    if skip:
        return CaseResult(case, dtype, "SKIP", skip)
    tol = case.tolerance or {**DEFAULT_TOLERANCES, **(tolerances or {})}[dtype]
    bwd_tol = {**DEFAULT_BACKWARD_TOLERANCES, **(backward_tolerances or {})}[dtype]
    raw = case.inputs()
    try:
        # The kernel sees its inputs rounded to `dtype`; so does the reference.
        inputs = type(raw)(**{n: None if x is None else adapter.quantize(x, dtype)
                              for n, x in vars(raw).items()})
    except Exception as err:  # e.g. the device does not exist or lacks the dtype
        return CaseResult(case, dtype, "ERROR", f"could not build inputs: {type(err).__name__}: {err}")
    window = dict(kernel_size=case.kernel_size, stride=case.stride, dilation=case.dilation,
                  is_causal=case.is_causal, scale=case.scale, rpb=inputs.rpb, na_dim=case.ndim)
    ref, lse = na_forward(inputs.q, inputs.k, inputs.v, **window, return_lse=True)  # float64 judge

    try:
        out, grads = adapter.run_with_grad(case, inputs, dtype)
    except Exception as err:  # the kernel's own message, verbatim
        return CaseResult(case, dtype, "ERROR", f"{type(err).__name__}: {err}", tolerance=tol)

    fwd_abs, fwd_rel, excess = compare(out, ref, tol)
    error_map = excess.max(axis=(0, -2, -1))  # (*spatial,) worst over batch, heads, dim
    result = CaseResult(case, dtype, "PASS", fwd_abs=fwd_abs, fwd_rel=fwd_rel, tolerance=tol,
                        error_map=error_map)
    problems = []
    if not np.isfinite(out).all():
        problems.append(f"output has {int((~np.isfinite(out)).sum())} NaN/inf values")
    elif (excess > 1).any():
        problems.append(f"forward off by up to {fwd_abs:.3g} (tolerance {tol:g})")
    if (excess > 1).any():
        first = int(np.argmax(error_map.ravel() > 1))
        result.first_wrong_query = tuple(int(c) for c in np.unravel_index(first, case.shape))
        problems[-1] += f", first at query {result.first_wrong_query}"

    if grads is not None:
        names = ("dq", "dk", "dv", "drpb")
        expected = dict(zip(names, na_backward(inputs.d_out, inputs.q, inputs.k, inputs.v, ref, lse,
                                               **window), strict=True))
        result.bwd_tolerance = bwd_tol
        worst_abs, worst_rel, wrong = 0.0, 0.0, []
        for name, g in grads.items():
            g_abs, g_rel, g_excess = compare(g, expected[name], bwd_tol)
            worst_abs, worst_rel = max(worst_abs, g_abs), max(worst_rel, g_rel)
            if (g_excess > 1).any():
                wrong.append(f"{name} (up to {g_abs:.3g})")
        result.bwd_abs, result.bwd_rel = worst_abs, worst_rel
        if wrong:
            problems.append(f"backward wrong: {', '.join(wrong)} (tolerance {bwd_tol:g})")
    if problems:
        result.status, result.message = "FAIL", "; ".join(problems)
    return result


def run_suite(adapter: KernelAdapter, cases: Sequence[Case], dtypes: Iterable[str] | None = None,
              tolerances: dict[str, float] | None = None,
              backward_tolerances: dict[str, float] | None = None,
              diagnose: bool = True, progress: bool = True) -> Report:
    """Run every case in every dtype; diagnose the first failure. Shows a tqdm bar if asked."""
    dtypes = tuple(dtypes or adapter.limits.dtypes)
    jobs = [(c, d) for c in cases for d in dtypes]
    it: Iterable = jobs
    if progress:
        try:
            from tqdm.auto import tqdm

            it = tqdm(jobs, desc=f"verify {adapter.name}", unit="case", leave=False, disable=None)
        except ImportError:  # tqdm is optional; run without a bar
            pass
    results = [run_case(adapter, c, d, tolerances, backward_tolerances) for c, d in it]
    report = Report(adapter.name, results)
    if diagnose and report.failures:
        from dinat_ref.testing.probes import diagnose_result

        report.diagnosis = diagnose_result(adapter, _pick(report))
    return report


def _pick(report: Report) -> CaseResult:
    """The failure to probe: the first numeric failure, else the first error."""
    fails = [r for r in report.failures if r.status == "FAIL"]
    return fails[0] if fails else report.failures[0]


def make_adapter(fn: Callable | None = None, *, qk: Callable | None = None, av: Callable | None = None,
                 layout: str = "heads_last", array: str = "torch", device: str = "cpu",
                 dims: tuple[int, ...] = (1, 2, 3), dtypes: tuple[str, ...] = ("float32",),
                 head_dims: tuple[int, ...] | None = None, rpb: bool = True, causal: bool = True,
                 stride: bool = True, backward: bool | None = None, name: str | None = None) -> KernelAdapter:
    """A :class:`KernelAdapter` from the flat options :func:`verify` and the pytest helpers take."""
    limits = KernelLimits(dims=tuple(dims), dtypes=tuple(dtypes),
                          head_dims=None if head_dims is None else tuple(head_dims), rpb=rpb,
                          causal=causal, stride=stride, backward=backward)
    return KernelAdapter(fn, qk=qk, av=av, layout=layout, array=array, device=device, limits=limits,
                         name=name)


def verify(fn: Callable | None = None, *, qk: Callable | None = None, av: Callable | None = None,
           layout: str = "heads_last", array: str = "torch", device: str = "cpu",
           dims: tuple[int, ...] = (1, 2, 3), dtypes: tuple[str, ...] = ("float32",),
           head_dims: tuple[int, ...] | None = None, rpb: bool = True, causal: bool = True,
           stride: bool = True, backward: bool | None = None, cases: Sequence[Case] | None = None,
           n_random: int = 16, seed: int = 0, tolerances: dict[str, float] | None = None,
           backward_tolerances: dict[str, float] | None = None, diagnose: bool = True,
           progress: bool = True, name: str | None = None) -> Report:
    """Verify a neighborhood-attention kernel against the float64 NumPy reference.

    Example::

        report = verify(natten.na2d, dims=(2,), head_dims=(8, 16, 32), rpb=False, backward=False)
        print(report)            # table, summary, and a diagnosis of the first failure
        assert report.passed

    Args:
        fn: fused kernel ``fn(q, k, v, kernel_size=, stride=, dilation=, is_causal=, scale=[, rpb=])``.
        qk, av: an unfused pair instead (see :class:`KernelAdapter`).
        layout, array, device: how the kernel takes its inputs (see :class:`KernelAdapter`).
        dims, dtypes, head_dims, rpb, causal, stride, backward: the kernel's limits
            (see :class:`KernelLimits`); cases outside them are skipped.
        cases: the cases to run (default: curated edge cases + ``n_random`` random ones for ``dims``).
        seed: seed of the random sweep.
        tolerances, backward_tolerances: per-dtype overrides of the defaults.
        diagnose: probe the kernel to explain the first failure.
        progress: show a progress bar.
    """
    adapter = make_adapter(fn, qk=qk, av=av, layout=layout, array=array, device=device, dims=dims,
                           dtypes=dtypes, head_dims=head_dims, rpb=rpb, causal=causal, stride=stride,
                           backward=backward, name=name)
    if cases is None:
        cases = default_cases(tuple(dims), n_random, seed, **adapter.limits.sweep_options())
    return run_suite(adapter, cases, tolerances=tolerances, backward_tolerances=backward_tolerances,
                     diagnose=diagnose, progress=progress)
