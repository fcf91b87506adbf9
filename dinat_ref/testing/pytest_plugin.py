"""pytest integration: the verifier's suite as parametrized tests in your own test file.

One line gives one test per (case, dtype), with the case's name as the test id::

    # tests/test_my_kernel.py
    from dinat_ref.testing import pytest_suite
    from my_package import my_na2d

    test_my_na2d = pytest_suite(my_na2d, dims=(2,), dtypes=("float32", "float16"))

Run ``pytest tests/test_my_kernel.py`` as usual: a failing case fails with the
reference comparison and the probe diagnosis in its message; cases outside the
kernel's declared limits are reported as skipped, with the reason.

To write the test body yourself, decorate with :func:`parametrize_cases` and call
:func:`check_case`::

    @parametrize_cases(dims=(2,))
    def test_my_na2d(case, dtype):
        check_case(my_na2d, case, dtype, dims=(2,))

pytest is imported only when these functions are called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dinat_ref.testing.adapters import KernelAdapter
from dinat_ref.testing.cases import Case, default_cases
from dinat_ref.testing.report import CaseResult

__all__ = ["pytest_suite", "parametrize_cases", "check_case"]


def parametrize_cases(dims: tuple[int, ...] = (1, 2, 3), dtypes: Sequence[str] = ("float32",),
                      cases: Sequence[Case] | None = None, n_random: int = 16, seed: int = 0,
                      **limits: Any):
    """``@pytest.mark.parametrize("case, dtype", ...)`` over the suite, ids ``<case>-<dtype>``.

    ``limits`` (``head_dims``, ``rpb``, ``causal``, ``stride``, ``dilation``, ``even_kernel``)
    shape the random sweep.
    """
    import pytest

    cases = list(cases) if cases is not None else default_cases(tuple(dims), n_random, seed, **limits)
    params = [pytest.param(c, d, id=f"{c.name}-{d}") for c in cases for d in dtypes]
    return pytest.mark.parametrize(("case", "dtype"), params)


def check_case(kernel: Callable | KernelAdapter, case: Case, dtype: str,
               tolerances: dict[str, float] | None = None,
               backward_tolerances: dict[str, float] | None = None, diagnose: bool = True,
               **options: Any) -> CaseResult:
    """Run one case inside a test: skip outside the limits, fail (with the diagnosis) when wrong.

    Args:
        kernel: the fused kernel, or a ready :class:`KernelAdapter`.
        options: adapter options when ``kernel`` is a function (see :func:`dinat_ref.testing.verify`).
    """
    import pytest

    from dinat_ref.testing.probes import diagnose_result
    from dinat_ref.testing.runner import make_adapter, run_case

    adapter = kernel if isinstance(kernel, KernelAdapter) else make_adapter(kernel, **options)
    result = run_case(adapter, case, dtype, tolerances, backward_tolerances)
    if result.status == "SKIP":
        pytest.skip(f"{case.name}: {result.message}")
    if result.status in ("FAIL", "ERROR"):
        text = f"{case.name} ({case.config()}, {dtype}): {result.status}: {result.message}"
        if diagnose:
            text += "\n\n" + str(diagnose_result(adapter, result))
        pytest.fail(text, pytrace=False)
    return result


def pytest_suite(fn: Callable | None = None, *, cases: Sequence[Case] | None = None, n_random: int = 16,
                 seed: int = 0, tolerances: dict[str, float] | None = None,
                 backward_tolerances: dict[str, float] | None = None, diagnose: bool = True,
                 **options: Any) -> Callable:
    """A parametrized test function for the whole suite; assign it to a ``test_*`` name.

    Args:
        fn: the fused kernel (or pass ``qk=`` and ``av=`` in ``options``).
        cases, n_random, seed: the suite (default: curated + random cases for ``dims``).
        tolerances, backward_tolerances, diagnose: as in :func:`dinat_ref.testing.verify`.
        options: adapter options: ``layout``, ``array`` (default ``"auto"``: detected), ``device``,
            ``dims``, ``dtypes``, ``head_dims``, ``rpb``, ``causal``, ``stride``, ``dilation``,
            ``even_kernel``, ``backward``, ``qk``, ``av``, ``bwd``, ``name``.
    """
    from dinat_ref.testing.runner import make_adapter

    adapter = make_adapter(fn, **options)  # bad options fail at import of the test file, loudly
    limits = adapter.limits

    @parametrize_cases(limits.dims, limits.dtypes, cases, n_random, seed, **limits.sweep_options())
    def test_kernel(case: Case, dtype: str) -> None:
        check_case(adapter, case, dtype, tolerances, backward_tolerances, diagnose)

    test_kernel.__doc__ = f"Verify {adapter.name} against the float64 NumPy reference, one case at a time."
    return test_kernel
