"""Run a kernel through the case suite and compare it with the float64 NumPy reference.

For every case and dtype:

1. draw the case's float64 inputs and round them to the dtype the kernel runs in, so
   the reference sees exactly the numbers the kernel sees;
2. the judge: :func:`dinat_ref.numpy.na_forward` (and :func:`~dinat_ref.numpy.na_backward`
   for gradients) in float64 on those rounded inputs;
3. call the kernel through its :class:`~dinat_ref.testing.adapters.KernelAdapter`;
   anything it raises (``SystemExit`` included), a wrong shape/dtype/type, an output that
   aliases an input, or inputs written in place become an ``ERROR`` row with its own
   message, and the run goes on (``KeyboardInterrupt`` stops it, as an error, never a
   pass);
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

A run where no case executed (every one outside the declared limits) is not a pass.
With ``timeout=`` every case runs in a worker process that is stopped when a case takes
longer (see :mod:`dinat_ref.testing.isolation`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from dinat_ref.numpy import na_backward, na_forward
from dinat_ref.testing.adapters import DTYPES, KernelAdapter, KernelLimits, KernelMutationError
from dinat_ref.testing.cases import Case, default_cases
from dinat_ref.testing.report import CaseResult, Diagnosis, Report
from dinat_ref.testing.targets import resolve

if TYPE_CHECKING:
    from dinat_ref.testing.isolation import CaseWorker

__all__ = ["DEFAULT_TOLERANCES", "DEFAULT_BACKWARD_TOLERANCES", "run_case", "run_suite", "verify",
           "make_adapter", "check_options"]

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
    """Run one case in one dtype; never raises for the kernel's faults (except KeyboardInterrupt)."""
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
        out, grads = adapter.run_with_grad(case, inputs, dtype, reference=(ref, lse))
    except KernelMutationError as err:
        return CaseResult(case, dtype, "ERROR", f"input mutated: {err}", tolerance=tol)
    except KeyboardInterrupt:
        raise  # run_suite records it and stops: a real Ctrl-C, or a kernel raising it
    except BaseException as err:  # noqa: B036 - the kernel's own message, verbatim; SystemExit too
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
              diagnose: bool = True, progress: bool = True, worker: CaseWorker | None = None) -> Report:
    """Run every case in every dtype; diagnose the first failure. Shows a tqdm bar if asked.

    Args:
        adapter: the kernel under test.
        cases: the cases to run.
        dtypes: the dtypes (default: the adapter's declared ones).
        tolerances: per-dtype forward tolerance overrides.
        backward_tolerances: per-dtype backward tolerance overrides.
        diagnose: probe the kernel to explain the first failure.
        progress: show a progress bar.
        worker: run the cases in this :class:`~dinat_ref.testing.isolation.CaseWorker` (a process
            that is stopped when a case exceeds its time limit) instead of in this process.
    """
    dtypes = tuple(dtypes or adapter.limits.dtypes)
    jobs = [(c, d) for c in cases for d in dtypes]
    it: Iterable = jobs
    if progress:
        try:
            from tqdm.auto import tqdm

            it = tqdm(jobs, desc=f"verify {adapter.name}", unit="case", leave=False, disable=None)
        except ImportError:  # tqdm is optional; run without a bar
            pass
    results, interrupted = [], False
    for c, d in it:
        try:
            if worker is not None:
                skip = adapter.skip_reason(c, d)  # decided here: the worker need not run skipped cases
                results.append(CaseResult(c, d, "SKIP", skip) if skip else
                               worker.run_case(adapter.array, c, d, tolerances, backward_tolerances))
            else:
                results.append(run_case(adapter, c, d, tolerances, backward_tolerances))
        except KeyboardInterrupt:
            results.append(CaseResult(c, d, "ERROR", "KeyboardInterrupt: the run was interrupted "
                                      "(by the kernel or by Ctrl-C); the remaining cases did not run"))
            interrupted = True
            break
    report = Report(adapter.name, results, interrupted=interrupted)
    if diagnose and report.failures and not interrupted:
        result = _pick(report)
        if worker is not None:
            report.diagnosis = worker.diagnose(adapter.array, result)
        else:
            from dinat_ref.testing.probes import diagnose_result

            report.diagnosis = diagnose_result(adapter, result)
    if not results or all(r.status == "SKIP" for r in results):
        reasons = sorted({r.message for r in results})
        report.diagnosis = Diagnosis("nothing_ran", (
            "No case ran, so nothing was verified: this is not a pass. "
            + (f"Every case was skipped: {'; '.join(reasons)}. Widen the declared limits "
               f"(dims, dtypes, head dims, --no-* flags) or give cases the kernel supports."
               if reasons else "The suite is empty.")))
    return report


def _pick(report: Report) -> CaseResult:
    """The failure to probe: the first numeric failure, else the first error."""
    fails = [r for r in report.failures if r.status == "FAIL"]
    return fails[0] if fails else report.failures[0]


def check_options(dtypes: Iterable[str] = ("float32",), tolerances: dict | None = None,
                  backward_tolerances: dict | None = None, n_random: int = 0, device: str = "cpu",
                  array: str = "auto", timeout: float | None = None, dims: Iterable[int] = (1, 2, 3)) -> None:
    """Check the verifier's options before any case runs; one clear error per mistake.

    Raises:
        ValueError: naming the option, the value and the rule.
    """
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise ValueError(f"dtypes: unknown dtype name(s) {bad}; choose from {', '.join(DTYPES)}.")
    for label, tols in (("tolerances (--tol)", tolerances), ("backward_tolerances (--bwd-tol)",
                                                             backward_tolerances)):
        for name, value in (tols or {}).items():
            if name not in DTYPES:
                raise ValueError(f"{label}: unknown dtype name {name!r}; choose from {', '.join(DTYPES)}.")
            if not value > 0:
                raise ValueError(f"{label}: {name}={value} must be a positive number.")
    if not isinstance(n_random, int) or n_random < 0:
        raise ValueError(f"n_random (--random): {n_random!r} must be an integer >= 0.")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout: {timeout!r} must be a positive number of seconds.")
    dims = tuple(dims)
    if not dims or not set(dims) <= {1, 2, 3}:
        raise ValueError(f"dims: {dims} must be a non-empty subset of 1, 2, 3.")
    if array not in ("auto", "numpy", "torch", "jax"):
        raise ValueError(f"array: {array!r} must be 'auto', 'numpy', 'torch' or 'jax'.")
    if device != "cpu":
        if array not in ("auto", "torch"):
            raise ValueError(f"device: {device!r} applies to torch tensors only (array={array!r}).")
        try:
            import torch

            torch.empty(1, device=device)
        except ImportError:
            raise ValueError(f"device: {device!r} needs torch, which is not installed.") from None
        except Exception as err:  # RuntimeError/AssertionError from torch: no such device here
            first = str(err).strip().split("\n")[0]
            raise ValueError(f"device: {device!r} is not available here ({type(err).__name__}: "
                             f"{first}).") from None


def make_adapter(fn: Callable | None = None, *, qk: Callable | None = None, av: Callable | None = None,
                 bwd: Callable | None = None, layout: str = "heads_last", array: str = "auto",
                 device: str = "cpu", dims: tuple[int, ...] = (1, 2, 3),
                 dtypes: tuple[str, ...] = ("float32",), head_dims: tuple[int, ...] | None = None,
                 rpb: bool = True, causal: bool = True, stride: bool = True, dilation: bool = True,
                 even_kernel: bool = True, backward: bool | None = None,
                 name: str | None = None) -> KernelAdapter:
    """A :class:`KernelAdapter` from the flat options :func:`verify` and the pytest helpers take.

    ``array="auto"`` detects the array library (:func:`~dinat_ref.testing.detect.detect_array`)
    and raises ``ValueError`` with every attempt's error when the kernel runs on none.
    """
    limits = KernelLimits(dims=tuple(dims), dtypes=tuple(dtypes),
                          head_dims=None if head_dims is None else tuple(head_dims), rpb=rpb,
                          causal=causal, stride=stride, dilation=dilation, even_kernel=even_kernel,
                          backward=backward)
    if array == "auto":
        from dinat_ref.testing.detect import detect_array

        found = detect_array(fn, qk=qk, av=av, layout=layout, device=device, limits=limits)
        if found.array is None:
            raise ValueError(found.explain())
        array = found.array
    return KernelAdapter(fn, qk=qk, av=av, bwd=bwd, layout=layout, array=array, device=device,
                         limits=limits, name=name)


def verify(fn: Callable | str | None = None, *, qk: Callable | str | None = None,
           av: Callable | str | None = None, bwd: Callable | str | None = None,
           layout: str = "heads_last", array: str = "auto", device: str = "cpu",
           dims: tuple[int, ...] = (1, 2, 3), dtypes: tuple[str, ...] = ("float32",),
           head_dims: tuple[int, ...] | None = None, rpb: bool = True, causal: bool = True,
           stride: bool = True, dilation: bool = True, even_kernel: bool = True,
           backward: bool | None = None, cases: Sequence[Case] | None = None,
           n_random: int = 16, seed: int = 0, tolerances: dict[str, float] | None = None,
           backward_tolerances: dict[str, float] | None = None, diagnose: bool = True,
           progress: bool = True, timeout: float | None = None, name: str | None = None) -> Report:
    """Verify a neighborhood-attention kernel against the float64 NumPy reference.

    Example::

        report = verify(natten.na2d, dims=(2,), head_dims=(8, 16, 32), rpb=False, backward=False)
        print(report)            # table, summary, and a diagnosis of the first failure
        assert report.passed

    Args:
        fn: fused kernel ``fn(q, k, v, kernel_size=, stride=, dilation=, is_causal=, scale=[, rpb=])``,
            or ``"module:function"`` / ``"path/file.py:function"``.
        qk: the q.k half of an unfused pair instead (see :class:`KernelAdapter`).
        av: the attention.v half of the unfused pair.
        bwd: an explicit backward kernel, checked against the reference gradients
            (see :class:`KernelAdapter`).
        layout: ``"heads_last"`` or ``"heads_first"``.
        array: ``"auto"`` (default: try the kernel on one small case with torch, JAX and NumPy
            inputs and keep what works), ``"numpy"``, ``"torch"`` or ``"jax"``.
        device: torch device of the inputs.
        dims: the kernel's limits (see :class:`KernelLimits`), like the next ones; cases
            outside them are skipped and listed.
        dtypes: dtypes to run.
        head_dims: allowed head dims (None: any).
        rpb: the kernel takes ``rpb=``.
        causal: the kernel supports ``is_causal``.
        stride: the kernel supports ``stride > 1``.
        dilation: the kernel supports ``dilation > 1``.
        even_kernel: the kernel supports even kernel sizes.
        backward: check gradients (None: when the kernel's output carries autograd).
        cases: the cases to run (default: curated edge cases + ``n_random`` random ones for ``dims``).
        n_random: number of random cases.
        seed: seed of the random sweep.
        tolerances: per-dtype forward tolerance overrides.
        backward_tolerances: per-dtype backward tolerance overrides.
        diagnose: probe the kernel to explain the first failure.
        progress: show a progress bar.
        timeout: seconds per case. When given, every case runs in a worker process that is
            stopped (and restarted) when a case takes longer; the kernel must then be importable
            by name (a string target, or a module-level function). Without it, cases run in this
            process and a hanging kernel hangs the run: Python cannot stop a running function.
        name: shown in the report (default: the function's name).

    Returns:
        The :class:`Report`; ``report.passed`` is False when anything failed, nothing ran, or
        the kernel runs on no array library (then the diagnosis lists each attempt).

    Raises:
        ValueError: on invalid options, before any case runs.
    """
    check_options(dtypes, tolerances, backward_tolerances, n_random, device, array, timeout, dims)
    given = dict(fn=fn, qk=qk, av=av, bwd=bwd)  # callables, or "module:function" strings
    fn, qk, av, bwd = (resolve(x) for x in (fn, qk, av, bwd))  # a bad target fails here, before any case
    target = given["fn"] if isinstance(given["fn"], str) else None
    limits = KernelLimits(dims=tuple(dims), dtypes=tuple(dtypes),
                          head_dims=None if head_dims is None else tuple(head_dims), rpb=rpb,
                          causal=causal, stride=stride, dilation=dilation, even_kernel=even_kernel,
                          backward=backward)
    name = name or _label(fn, qk, target)
    worker = None
    if timeout is not None:
        from dinat_ref.testing.isolation import CaseWorker

        worker = CaseWorker(dict(given, layout=layout, device=device, limits=limits, name=name), timeout)
    try:
        notes = []
        if array == "auto":
            from dinat_ref.testing.detect import detect_array

            options = dict(layout=layout, device=device, limits=limits)
            found = worker.detect(**options) if worker is not None else \
                detect_array(fn, qk=qk, av=av, **options)
            if found.array is None:
                return Report(name, [], diagnosis=Diagnosis("no_array", found.explain()))
            array = found.array
            notes.append(found.note())
        adapter = KernelAdapter(fn, qk=qk, av=av, bwd=bwd, layout=layout, array=array, device=device,
                                limits=limits, name=name)
        if cases is None:
            cases = default_cases(tuple(dims), n_random, seed, **limits.sweep_options())
        report = run_suite(adapter, cases, tolerances=tolerances, backward_tolerances=backward_tolerances,
                           diagnose=diagnose, progress=progress, worker=worker)
    finally:
        if worker is not None:
            worker.close()
    report.notes = notes + report.notes
    return report




def _label(fn, qk, target) -> str:
    from dinat_ref.testing.adapters import _name

    return target or _name(fn if fn is not None else qk)
