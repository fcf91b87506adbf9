"""The verifier on torch kernels: gradients are checked, and real backends pass.

* the test gather kernel on torch tensors passes forward *and* backward (dq, dk, dv, drpb
  against the NumPy reference's hand-derived backward), and a copy that detaches the
  keys from autograd is caught as a backward-only bug;
* this package's torch backend (``dinat_ref.torch.na*d(..., backend="torch")``) passes;
* NATTEN's own kernels pass (on CPU its flex path: fp32, power-of-two head dims, no RPB,
  forward only, declared as limits), and a wrong scale wrapped around NATTEN is diagnosed.
"""

from __future__ import annotations

import sys
import warnings
from functools import partial
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

HELPERS = Path(__file__).resolve().parents[1] / "helpers"  # the independent kernels
sys.path.insert(0, str(HELPERS))

import mutant_kernels as mk  # noqa: E402

from dinat_ref.testing import curated_cases, verify  # noqa: E402

QUIET = dict(array="torch", progress=False)


def test_torch_kernel_passes_forward_and_backward():
    report = verify(mk.correct_na, dims=(1, 2), dtypes=("float64", "float32"), n_random=4, **QUIET)
    assert report.passed, report
    ran = [r for r in report.results if r.status == "PASS"]
    assert ran and all(r.bwd_abs is not None for r in ran)  # gradients were compared on every case
    assert any(r.case.use_rpb for r in ran)  # drpb included


def test_backward_only_bug_is_caught():
    report = verify(mk.make_kernel("grad_detached"), dims=(1,), n_random=0, **QUIET)
    assert not report.passed
    assert all(r.fwd_abs < 1e-4 for r in report.failures)  # the forward is right ...
    assert all("dk" in r.message for r in report.failures)  # ... the key gradient is not
    assert report.diagnosis.kind == "wrong_backward"


def test_probes_work_on_torch_tensors():
    report = verify(mk.make_kernel("causal_leak"), dims=(1,), n_random=0, backward=False, **QUIET)
    assert report.diagnosis.kind == "causal_leakage"


def test_backward_required_but_missing_is_an_error():
    def no_grad(q, k, v, **kw):
        with torch.no_grad():
            return mk.correct_na(q, k, v, **kw)

    report = verify(no_grad, cases=curated_cases((1,))[:2], backward=True, **QUIET)
    assert [r.status for r in report.results] == ["ERROR", "ERROR"]
    assert "does not require grad" in report.results[0].message


def _servable(fn) -> str | None:
    """None if ``fn`` runs on a tiny CPU input, else why not (a backend may be unavailable)."""
    x = torch.zeros(1, 6, 1, 8)
    try:
        fn(x, x, x, kernel_size=(3,))
    except ValueError as err:
        return str(err).split("\n")[0]
    return None


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_dinat_ref_torch_backend_passes(dim):
    dt = pytest.importorskip("dinat_ref.torch", reason="dinat_ref.torch is not importable")
    fn = partial(getattr(dt, f"na{dim}d"), backend="torch")
    if dim == 1 and _servable(fn):
        pytest.skip(f"backend='torch' cannot run here: {_servable(fn)}")
    report = verify(fn, dims=(dim,), n_random=8 if dim < 3 else 4, name=f"na{dim}d[torch]", **QUIET)
    assert report.passed, report
    assert all(r.bwd_abs is not None for r in report.results if r.status == "PASS")


@pytest.mark.natten
def test_natten_flex_passes_and_a_wrong_scale_around_it_is_diagnosed():
    natten = pytest.importorskip("natten", reason="NATTEN is not installed")
    limits = dict(head_dims=(8, 16, 32, 64), rpb=False, backward=False, dtypes=("float32",))
    fns = {1: natten.na1d, 2: natten.na2d, 3: natten.na3d}
    # NATTEN on CPU compiles once per shape (~1 s), so a handful of curated cases per dim.
    picks = {1: ["1d-border-dilated", "1d-even-kernel", "1d-causal-stride"],
             2: ["2d-nonsquare-kernel", "2d-stride"], 3: ["3d-causal-first-axis"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dim, names in picks.items():
            cases = [c.with_(use_rpb=False) for c in curated_cases((dim,)) if c.name in names]
            report = verify(fns[dim], dims=(dim,), cases=cases, name=f"natten.na{dim}d", **limits, **QUIET)
            assert report.passed and len(report.results) == len(names), report

        def double_scale(q, k, v, scale=None, **kw):
            s = q.shape[-1] ** -0.5 if scale is None else scale
            return natten.na1d(q, k, v, scale=2 * s, **kw)

        cases = [c for c in curated_cases((1,)) if c.name == "1d-kd-equals-L"]
        report = verify(double_scale, dims=(1,), cases=cases, **limits, **QUIET)
    assert not report.passed
    assert report.diagnosis.kind == "wrong_scale" and "ratio 2" in report.diagnosis.message
