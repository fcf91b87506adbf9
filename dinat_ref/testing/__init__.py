"""The kernel verifier: judge your own neighborhood-attention kernel against the float64 reference.

Point it at a kernel (NATTEN 0.21 style ``fn(q, k, v, kernel_size, stride, dilation,
is_causal, scale[, rpb])``, an unfused ``qk``/``av`` pair, heads-last or heads-first,
NumPy, torch on any device, or JAX, detected by calling it), and it runs curated edge
cases plus a seeded random sweep, prints a table, and, for the first failure, probes
the kernel to say *how* it is wrong (wrong window, causal leakage, wrong scale, wrong
RPB offsets, softmax over the wrong axis, backward only). A kernel that raises, returns
an input, writes into its inputs, hangs (with a time limit) or runs no case never passes.

Example::

    from dinat_ref.testing import verify
    report = verify(my_na2d, dims=(2,), dtypes=("float32", "float16"))
    print(report)
    assert report.passed

    # in a test file: one parametrized test per case
    from dinat_ref.testing import pytest_suite
    test_my_na2d = pytest_suite(my_na2d, dims=(2,))

    # on the command line
    #   dinat-ref verify my_package.kernels:my_na2d --dims 2

This package needs only NumPy; torch and JAX are imported when a kernel takes their
arrays (or detection tries them), matplotlib when a figure is saved, pytest when
:func:`pytest_suite` is called.
"""

from dinat_ref.testing.adapters import (
    ARRAYS,
    DTYPES,
    KernelAdapter,
    KernelLimits,
    KernelMutationError,
    KernelOutputError,
)
from dinat_ref.testing.cases import Case, CaseInputs, curated_cases, default_cases, random_cases
from dinat_ref.testing.detect import ArrayDetection, detect_array
from dinat_ref.testing.probes import diagnose_result
from dinat_ref.testing.pytest_plugin import check_case, parametrize_cases, pytest_suite
from dinat_ref.testing.report import CaseResult, Diagnosis, Report
from dinat_ref.testing.runner import (
    DEFAULT_BACKWARD_TOLERANCES,
    DEFAULT_TOLERANCES,
    check_options,
    run_case,
    run_suite,
    verify,
)

__all__ = [
    "verify", "run_suite", "run_case", "diagnose_result",
    "Case", "CaseInputs", "curated_cases", "random_cases", "default_cases",
    "KernelAdapter", "KernelLimits", "KernelOutputError", "KernelMutationError", "DTYPES", "ARRAYS",
    "detect_array", "ArrayDetection", "check_options",
    "Report", "CaseResult", "Diagnosis",
    "DEFAULT_TOLERANCES", "DEFAULT_BACKWARD_TOLERANCES",
    "pytest_suite", "parametrize_cases", "check_case",
]
