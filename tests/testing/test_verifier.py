"""The kernel verifier catches real bugs, names them, passes correct kernels and survives bad ones.

The kernels under test come from ``mutant_kernels.py``: an independent gather kernel
(its own window formula) and copies of it with one classic bug each. Everything here
runs on NumPy arrays, so it needs no torch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"  # the independent kernels
sys.path.insert(0, str(HELPERS))

import mutant_kernels as mk  # noqa: E402

from dinat_ref import numpy as ref  # noqa: E402
from dinat_ref.neighborhood import neighbors_of  # noqa: E402
from dinat_ref.testing import (  # noqa: E402
    Case,
    KernelAdapter,
    KernelLimits,
    curated_cases,
    default_cases,
    random_cases,
    run_case,
    verify,
)

QUIET = dict(array="numpy", progress=False)
NUMPY_MUTATIONS = [m for m in mk.MUTATIONS if m != "grad_detached"]  # that one needs autograd


def reference_na(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None):
    """The NumPy reference as a kernel under test (any number of spatial dims)."""
    return ref.na_forward(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb, na_dim=q.ndim - 3)


# ------------------------------------------------------------------ cases
def test_curated_cases_cover_the_edge_cases():
    cases = curated_cases()
    assert {c.ndim for c in cases} == {1, 2, 3}
    assert any(c.kernel_size[a] * c.dilation[a] == c.shape[a] for c in cases for a in range(c.ndim))
    assert any(c.shape[a] % c.dilation[a] and c.dilation[a] > 1 for c in cases for a in range(c.ndim))
    assert any(k % 2 == 0 for c in cases for k in c.kernel_size)  # even kernels
    assert any(c.stride[a] == c.kernel_size[a] > 1 for c in cases for a in range(c.ndim))
    assert any(c.causal and not all(c.is_causal) for c in cases)  # causal on one axis only
    assert any(c.ndim == 2 and c.shape[0] != c.shape[1] for c in cases)
    assert any(c.kernel_size == c.shape for c in cases if c.ndim == 1)
    assert any(c.use_rpb and max(c.dilation) > 1 for c in cases)


def test_random_cases_are_seeded_valid_and_respect_limits():
    a, b = random_cases(20, seed=3), random_cases(20, seed=3)
    assert a == b and a != random_cases(20, seed=4)
    assert {c.ndim for c in a} == {1, 2, 3}
    limited = random_cases(40, seed=3, dims=(2,), head_dims=(8,), rpb=False, causal=False, stride=False)
    assert all(c.ndim == 2 and c.head_dim == 8 and not (c.use_rpb or c.causal or c.strided) for c in limited)
    # Inputs are reproducible from the case alone.
    np.testing.assert_array_equal(a[0].inputs().q, b[0].inputs().q)


def test_bad_case_is_rejected_where_it_is_written():
    with pytest.raises(ValueError, match="kernel_size \\* dilation"):
        Case("too-big", (5,), (3,), dilation=(2,))


# ------------------------------------------------------------------ correct kernels pass
def test_correct_kernels_pass_the_default_suite():
    for kernel in (mk.correct_na, reference_na):
        report = verify(kernel, dtypes=("float64", "float32", "float16"), **QUIET)
        assert report.passed, report
        assert not report.skipped and report.diagnosis is None
        assert len(report.results) == 3 * len(default_cases())


def test_unfused_pair_and_heads_first_layout():
    def qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb=None):
        return ref.na_qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, na_dim=q.ndim - 3)

    def av(probs, v, kernel_size, stride, dilation, is_causal):
        return ref.na_av(probs, v, kernel_size, stride, dilation, is_causal, na_dim=v.ndim - 3)

    assert verify(qk=qk, av=av, n_random=4, **QUIET).passed

    def heads_first(q, k, v, **kw):  # (B, heads, *spatial, D) in and out
        moved = [np.moveaxis(x, 1, -2) for x in (q, k, v)]
        return np.moveaxis(mk.correct_na(*moved, **kw), -2, 1)

    assert verify(heads_first, layout="heads_first", n_random=4, **QUIET).passed
    # Without the layout option the same kernel reads the axes wrong, and the verifier says so.
    assert not verify(heads_first, n_random=0, diagnose=False, **QUIET).passed


# ------------------------------------------------------------------ every mutant is caught and named
@pytest.mark.parametrize("bug", NUMPY_MUTATIONS)
def test_every_mutant_is_flagged_with_the_right_diagnosis(bug):
    report = verify(mk.make_kernel(bug), **QUIET)
    assert not report.passed, f"{bug} ({mk.MUTATIONS[bug]}) slipped through"
    assert report.failures
    d = report.diagnosis
    assert d is not None and d.kind == mk.EXPECTED_KIND[bug], f"{bug}: {d}"
    if d.kind in ("wrong_window", "causal_leakage"):
        # The grid shows expected vs observed, and "expected" is the rule's neighborhood.
        assert "expected" in d.grid and "observed" in d.grid
        c = d.case
        assert d.expected == neighbors_of(d.query, c.shape, c.kernel_size, c.stride, c.dilation, c.is_causal)
        assert sorted(d.observed) != sorted(d.expected)


def test_diagnosis_words():
    leak = verify(mk.make_kernel("causal_leak"), **QUIET).diagnosis
    assert "future key" in leak.message
    q = leak.query
    assert any(key[0] > q[0] for key in leak.observed)  # it really saw the future
    clamp = verify(mk.make_kernel("naive_clamp"), **QUIET).diagnosis
    assert "another dilation group" in clamp.message
    scale = verify(mk.make_kernel("no_scale"), **QUIET).diagnosis
    assert "no scale is applied" in scale.message
    sign = verify(mk.make_kernel("rpb_sign"), **QUIET).diagnosis
    assert "sign flipped" in sign.message
    axes = verify(mk.make_kernel("rpb_axes"), **QUIET).diagnosis
    assert "axes swapped" in axes.message


@pytest.mark.parametrize(("ignored", "words"), [
    ("stride", "the stride is ignored"), ("dilation", "the dilation is ignored"),
    ("is_causal", "the causal flag is ignored"),
])
def test_window_diagnosis_recognizes_an_ignored_argument(ignored, words):
    def ignoring(q, k, v, **kw):
        return mk.correct_na(q, k, v, **{**kw, ignored: False if ignored == "is_causal" else 1})

    d = verify(ignoring, **QUIET).diagnosis
    assert d.kind == ("causal_leakage" if ignored == "is_causal" else "wrong_window")
    assert words in d.message


def test_scale_probe_estimates_the_scale_the_kernel_applies():
    def scaled(q, k, v, scale=None, **kw):
        s = q.shape[-1] ** -0.5 if scale is None else scale
        return mk.correct_na(q, k, v, scale=1.7 * s, **kw)

    d = verify(scaled, dims=(2,), n_random=0, **QUIET).diagnosis
    assert d.kind == "wrong_scale"
    assert "ratio 1.7" in d.message


def test_probes_chunk_the_one_hot_values_when_head_dims_are_limited():
    # head_dims=(4,) forces the neighborhood probe to use 4 keys per call.
    report = verify(mk.make_kernel("causal_leak"), head_dims=(4,), dims=(2,), **QUIET)
    assert report.diagnosis.kind == "causal_leakage"
    assert report.diagnosis.case.head_dim == 4
    assert all(r.case.head_dim == 4 for r in report.results if r.status != "SKIP")


def test_wrong_normalization_is_told_apart():
    d = verify(mk.make_kernel("softmax_axis"), dims=(1,), **QUIET).diagnosis
    assert d.kind == "wrong_normalization" and "sum to" in d.message


# ------------------------------------------------------------------ tolerances
def test_tolerances_per_dtype_and_per_case():
    def noisy(q, k, v, **kw):  # right up to a relative 1e-3, like an fp16 accumulator
        out = mk.correct_na(q, k, v, **kw)
        return out * np.asarray(1 + 1e-3, dtype=out.dtype)

    cases = curated_cases((1,))[:3]
    strict = verify(noisy, cases=cases, **QUIET)
    assert not strict.passed and strict.diagnosis.kind == "numerical"
    assert verify(noisy, cases=cases, tolerances={"float32": 1e-2}, **QUIET).passed
    loose = [c.with_(tolerance=1e-2) for c in cases]
    assert verify(noisy, cases=loose, **QUIET).passed


# ------------------------------------------------------------------ limits and bad kernels
def test_unsupported_cases_are_skipped_with_reasons_not_failed():
    def no_extras(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb=None):
        if rpb is not None or any(np.atleast_1d(is_causal)) or max(np.atleast_1d(stride)) > 1:
            raise NotImplementedError("not in this kernel")
        return mk.correct_na(q, k, v, kernel_size, stride, dilation, is_causal, scale)

    report = verify(no_extras, dims=(1, 2), rpb=False, causal=False, stride=False, **QUIET)
    assert report.passed, report
    reasons = "\n".join(r.message for r in report.skipped)
    for reason in ("rpb not supported", "is_causal not supported", "stride > 1 not supported"):
        assert reason in reasons
    assert "SKIP" in report.table()
    everything_skipped = verify(no_extras, dims=(3,), cases=curated_cases((1,)), **QUIET)
    assert not everything_skipped.passed and "NOTHING RAN" in everything_skipped.summary()


def _kernel_raising(q, k, v, **kw):
    raise RuntimeError("my kernel's own message")


def _kernel_wrong_shape(q, k, v, **kw):
    return mk.correct_na(q, k, v, **kw)[..., :-1]


def _kernel_wrong_dtype(q, k, v, **kw):
    return mk.correct_na(q, k, v, **kw).astype(np.float64)


def _kernel_nan(q, k, v, **kw):
    out = mk.correct_na(q, k, v, **kw)
    out.reshape(-1)[3] = np.nan
    return out


def _kernel_tuple(q, k, v, **kw):
    return mk.correct_na(q, k, v, **kw), None


def _kernel_wrong_signature(q, k, v):
    return q


@pytest.mark.parametrize(("kernel", "status", "words"), [
    (_kernel_raising, "ERROR", "RuntimeError: my kernel's own message"),
    (_kernel_wrong_shape, "ERROR", "shape"),
    (_kernel_wrong_dtype, "ERROR", "dtype float64, expected float32"),
    (_kernel_nan, "FAIL", "NaN"),
    (_kernel_tuple, "ERROR", "tuple"),
    (_kernel_wrong_signature, "ERROR", "unexpected keyword argument"),
])
def test_bad_kernels_are_reported_per_case_and_the_run_continues(kernel, status, words):
    cases = curated_cases((1, 2))[:6]
    report = verify(kernel, cases=cases, **QUIET)
    assert len(report.results) == len(cases)  # no case was dropped
    assert all(r.status == status for r in report.results), report
    assert all(words in r.message for r in report.results), report.results[0].message
    assert report.diagnosis is not None  # diagnosing a broken kernel does not crash either
    assert report.diagnosis.kind == ("nan" if kernel is _kernel_nan else "error")


def test_a_kernel_failing_on_some_cases_only():
    def even_breaks(q, k, v, kernel_size, **kw):
        if any(kk % 2 == 0 for kk in kernel_size):
            raise ValueError("even kernels unsupported")
        return mk.correct_na(q, k, v, kernel_size, **kw)

    report = verify(even_breaks, n_random=0, **QUIET)
    statuses = {r.case.name: r.status for r in report.results}
    assert statuses["1d-even-kernel"] == "ERROR" and statuses["1d-basic"] == "PASS"
    assert report.diagnosis.kind == "error" and "even kernels unsupported" in report.diagnosis.message


def test_adapter_rejects_bad_options():
    with pytest.raises(ValueError, match="either fn"):
        KernelAdapter(None)
    with pytest.raises(ValueError, match="layout"):
        KernelAdapter(mk.correct_na, layout="nchw", array="numpy")
    with pytest.raises(ValueError, match="dtypes"):
        KernelLimits(dtypes=("float8",))
    case = curated_cases((1,))[0]
    assert run_case(KernelAdapter(mk.correct_na, array="numpy"), case, "bfloat16").status == "SKIP"


# ------------------------------------------------------------------ report and figure
def test_report_table_summary_and_figure(tmp_path):
    report = verify(mk.make_kernel("hw_swap"), dims=(2,), n_random=2, **QUIET)
    table = report.table()
    for column in ("case", "config", "fwd abs err", "fwd rel err", "status"):
        assert column in table
    assert report.summary().startswith("na_hw_swap: FAILED")
    assert "Diagnosis [wrong_window]" in str(report)
    path = report.save_figure(str(tmp_path / "errors.png"))
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = report.failures[0]
    assert first.error_map.shape == first.case.shape and first.error_map.max() > 1


def test_error_heatmap_for_1d_2d_3d():
    from dinat_ref.viz.verify_errors import plot_verify_errors

    for shape, query in (((7,), (2,)), ((4, 5), (1, 2)), ((3, 4, 5), (1, 2, 3))):
        error_map = np.zeros(shape)
        error_map[query] = 50.0
        fig = plot_verify_errors(error_map, query=query, expected=[query], observed=[], title="t")
        assert len(fig.axes) >= 2  # two panels (+ colorbar)


def test_importable_and_usable_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['matplotlib'] = None\n"
        f"sys.path.insert(0, {str(HELPERS)!r})\n"
        "import mutant_kernels as mk\n"
        "from dinat_ref.testing import verify\n"
        "r = verify(mk.correct_na, array='numpy', dims=(1,), n_random=2, progress=False)\n"
        "assert r.passed, r\n"
        "r = verify(mk.correct_na, dims=(1,), n_random=0, progress=False)\n"
        "assert r.passed and 'array: numpy (detected' in r.notes[0], r.notes\n"
        "try:\n"
        "    verify(mk.correct_na, array='torch', dims=(1,))\n"
        "except ValueError as e:\n"
        "    assert 'torch is not installed' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('array=torch without torch should be refused')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
