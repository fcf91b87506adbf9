"""The verifier never passes a kernel by mistake, finds the array library by itself, and checks options first.

Kernels come from ``false_pass_kernels.py`` (ways to fool a verifier, hangs, crashes)
and ``mutant_kernels.py`` (an independent gather kernel). Every command-line run goes
through ``dinat-ref verify`` as a user types it.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import time
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"  # the independent kernels
sys.path.insert(0, str(HELPERS))

import false_pass_kernels as fp  # noqa: E402
import mutant_kernels as mk  # noqa: E402

from dinat_ref.cli import main  # noqa: E402
from dinat_ref.testing import curated_cases, verify  # noqa: E402

KERNELS = HELPERS / "false_pass_kernels.py"
FAST = ["--no-progress", "--random", "0", "--dims", "1"]
INPROC = [*FAST, "--timeout", "0"]  # no worker process: faster, for tests not about time limits
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------ the array library is detected
def test_a_numpy_kernel_is_verified_with_no_flags(capsys):
    code, out, _ = cli(capsys, f"{KERNELS}:numpy_only", *FAST)
    assert code == 0, out
    assert "array: numpy (detected" in out and "PASSED" in out


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_a_torch_kernel_is_verified_with_no_flags_and_its_gradients_checked(capsys):
    code, out, _ = cli(capsys, "dinat_ref.torch:na1d", *FAST)
    assert code == 0 and "array: torch (detected" in out, out
    report = verify("dinat_ref.torch:na1d", dims=(1,), n_random=2, progress=False)
    assert report.passed, report
    assert report.notes[0].startswith("array: torch (detected")
    assert all(r.bwd_abs is not None for r in report.results if r.status == "PASS")


JAX_KERNEL = '''
import jax
import jax.numpy as jnp
from dinat_ref.neighborhood import dense_mask


def na(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None):
    """Dense attention with the rule's mask, in jax.numpy (heads last)."""
    mask = jnp.asarray(dense_mask(q.shape[1:-2], kernel_size, stride, dilation, is_causal))  # (N, N)
    B, H, D = q.shape[0], q.shape[-2], q.shape[-1]
    qf, kf, vf = (x.reshape(B, -1, H, x.shape[-1]) for x in (q, k, v))  # (B, N, H, D)
    logits = jnp.einsum("bnhd,bmhd->bhnm", qf * (D ** -0.5 if scale is None else scale), kf)
    p = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)  # (B, H, N, N)
    return jnp.einsum("bhnm,bmhd->bnhd", p, vf).reshape(v.shape)


def na_keys_detached(q, k, v, **kw):
    return na(q, jax.lax.stop_gradient(k), v, **kw)
'''


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed (pip install 'dinat-ref[jax]')")
def test_a_jax_kernel_is_verified_with_no_flags_forward_and_backward(tmp_path, monkeypatch, capsys):
    (tmp_path / "jaxkernels.py").write_text(JAX_KERNEL)
    monkeypatch.chdir(tmp_path)  # `jaxkernels:na` is found in the current folder, as with python -m
    code, out, _ = cli(capsys, "jaxkernels:na", "--no-rpb", *INPROC)
    assert code == 0, out
    assert "array: jax (detected" in out
    cases = curated_cases((1,))[:3]
    report = verify("jaxkernels:na", cases=cases, rpb=False, progress=False)
    ran = [r for r in report.results if r.status == "PASS"]
    assert report.passed and len(ran) == 2 and all(r.bwd_abs is not None for r in ran)  # jax.vjp
    broken = verify("jaxkernels:na_keys_detached", cases=cases, rpb=False, progress=False)
    assert not broken.passed and broken.diagnosis.kind == "wrong_backward"
    assert all("dk" in r.message for r in broken.failures)


def test_no_array_library_works_the_diagnosis_lists_every_attempt(capsys):
    code, out, _ = cli(capsys, f"{KERNELS}:never_runs", *INPROC)
    assert code == 1
    assert "Diagnosis [no_array]" in out and "NOTHING RAN" in out
    assert "--array numpy: TypeError: this kernel takes nothing" in out
    if HAS_TORCH:
        assert "--array torch: TypeError" in out


# ------------------------------------------------------------------ no false pass
@pytest.mark.parametrize(("kernel", "words"), [
    ("exits", "SystemExit"),
    ("interrupts", "KeyboardInterrupt"),
    ("prints_and_returns_none", "returned NoneType"),
    ("returns_v", "returned its input v"),
    ("returns_view_of_v", "returned its input v (or a view of its memory)"),
    ("writes_output_into_v", "returned its input v"),
    ("right_but_mutates_q", "input mutated"),
    ("wrong_then_exits_on_probes", "Probing the kernel failed: SystemExit"),
])
def test_no_false_pass(capsys, kernel, words):
    code, out, _ = cli(capsys, f"{KERNELS}:{kernel}", "--array", "numpy", *INPROC)
    assert code != 0, out
    assert "PASSED" not in out and words in out, out


@pytest.mark.parametrize(("kernel", "words"), [
    ("exits", "SystemExit"), ("interrupts", "KeyboardInterrupt"),
    ("returns_view_of_v", "returned its input v"),
])
def test_no_false_pass_in_the_worker_process(capsys, kernel, words):
    code, out, _ = cli(capsys, f"{KERNELS}:{kernel}", "--array", "numpy", *FAST)  # default --timeout
    assert code != 0, out
    assert "PASSED" not in out and words in out, out


def test_a_module_that_exits_while_imported_is_not_a_pass(capsys, tmp_path):
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    code, _, err = cli(capsys, f"{tmp_path / 'exits_on_import.py'}:na", *INPROC)
    assert code == 2 and "SystemExit" in err


def test_a_kernel_without_rpb_is_told_the_flag(capsys, tmp_path, monkeypatch):
    (tmp_path / "norpb.py").write_text(
        f"import sys\nsys.path.insert(0, {str(HELPERS)!r})\nimport mutant_kernels as mk\n"
        "def na(q, k, v, kernel_size, stride, dilation, is_causal, scale):\n"
        "    return mk.correct_na(q, k, v, kernel_size, stride, dilation, is_causal, scale)\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "norpb:na", *INPROC)
    assert code == 1 and "declare that with --no-rpb" in out
    code, out, _ = cli(capsys, "norpb:na", "--no-rpb", *INPROC)
    assert code == 0 and "rpb not supported" in out


def test_mutation_is_its_own_diagnosis():
    report = verify(fp.right_but_mutates_q, array="numpy", dims=(1,), n_random=0, progress=False)
    assert report.diagnosis.kind == "mutates_inputs" and "q" in report.diagnosis.message
    assert all(r.status == "ERROR" for r in report.results)


def test_zero_executed_cases_is_not_a_pass(capsys):
    code, out, _ = cli(capsys, f"{KERNELS}:numpy_only", "--head-dims", "3", *INPROC)
    assert code == 1
    assert "NOTHING RAN" in out and "not a pass" in out and "Diagnosis [nothing_ran]" in out


def test_a_hanging_case_is_stopped_and_the_run_goes_on(capsys):
    t0 = time.perf_counter()
    code, out, _ = cli(capsys, f"{KERNELS}:hangs_on_even_kernels", "--array", "numpy", "--timeout", "3",
                       *FAST)
    assert time.perf_counter() - t0 < 120
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("1d-")}
    assert "timed out after 3 s" in rows["1d-even-kernel"]
    assert "PASS" in rows["1d-basic"] and "PASS" in rows["1d-kernel-equals-L"]  # cases after the hang ran


def test_a_kernel_that_kills_its_process_with_status_0_is_an_error(capsys):
    code, out, _ = cli(capsys, f"{KERNELS}:dies", "--array", "numpy", *FAST)
    assert code == 1 and "worker process died (exit code 0)" in out


def test_timeout_with_a_closure_explains_the_limitation():
    def closure(q, k, v, **kw):
        return mk.correct_na(q, k, v, **kw)

    with pytest.raises(ValueError, match="cannot be pickled.*in this process without a time limit"):
        verify(closure, array="numpy", dims=(1,), timeout=5, progress=False)


# ------------------------------------------------------------------ options checked before any case runs
@pytest.mark.parametrize(("args", "words"), [
    (["--tol", "float33=1e-3"], "unknown dtype name 'float33'"),
    (["--bwd-tol", "half=1e-3"], "unknown dtype name 'half'"),
    (["--dtypes", "float32,fp8"], "unknown dtype name(s) ['fp8']"),
    (["--random", "-1"], "n_random (--random): -1 must be an integer >= 0"),
    (["--device", "cuda:97"], "device: 'cuda:97' is not available here"),
    (["--device", "nosuchdevice"], "device: 'nosuchdevice'"),
    (["--figure", "/no/such/folder/errors.png"], "the folder '/no/such/folder' does not exist"),
    (["--figure", "errors.xyz"], "cannot write '.xyz' files"),
    (["--timeout", "-5"], "--timeout -5 must be >= 0"),
])
def test_bad_options_exit_2_with_one_line_before_any_case(capsys, tmp_path, monkeypatch, args, words):
    if "--device" in args and not HAS_TORCH:
        pytest.skip("torch is not installed")
    marker = tmp_path / "called"
    monkeypatch.setenv("DINAT_REF_TEST_MARKER", str(marker))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, f"{KERNELS}:called_marker", *FAST, *args)
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert out == "" and not marker.exists()  # nothing ran


def test_the_printed_figure_path_is_the_file_written(capsys, tmp_path):
    (tmp_path / "buggy.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HELPERS)!r})
        import mutant_kernels
        leaky = mutant_kernels.make_kernel('causal_leak')
    """))
    code, out, _ = cli(capsys, f"{tmp_path / 'buggy.py'}:leaky", "--array", "numpy",
                       "--figure", str(tmp_path / "errors"), *INPROC)
    assert code == 1
    printed = out.strip().splitlines()[-1].removeprefix("error heatmap saved to ")
    assert printed == str(tmp_path / "errors.png") and Path(printed).read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ explicit backward kernels
@pytest.mark.skipif(not HAS_TORCH, reason="the test's backward kernel uses torch autograd")
def test_an_explicit_backward_kernel_is_checked_against_the_reference(capsys):
    code, out, _ = cli(capsys, f"{KERNELS}:numpy_only", "--bwd", f"{KERNELS}:numpy_backward",
                       "--dtypes", "float64", *INPROC)
    assert code == 0, out
    report = verify(fp.numpy_only, bwd=fp.numpy_backward, array="numpy", dims=(1,), n_random=0,
                    dtypes=("float64",), progress=False)
    assert report.passed and all(r.bwd_abs is not None for r in report.results)
    assert any(r.case.use_rpb for r in report.results)  # drpb compared too
    wrong = verify(fp.numpy_only, bwd=fp.backward_dk_doubled, array="numpy", dims=(1,), n_random=0,
                   progress=False)
    assert not wrong.passed and wrong.diagnosis.kind == "wrong_backward"
    assert all("dk" in r.message and "dq" not in r.message for r in wrong.failures)


# ------------------------------------------------------------------ what real kernels need
def test_limits_no_dilation_and_no_even_kernel_skip_and_list(capsys):
    code, out, _ = cli(capsys, f"{KERNELS}:numpy_only", "--no-dilation", "--no-even-kernel",
                       "--no-progress", "--random", "6", "--dims", "1,2", "--timeout", "0")
    assert code == 0, out
    assert "dilation > 1 not supported" in out and "even kernel_size not supported" in out
    report = verify(fp.numpy_only, dims=(1, 2), dilation=False, even_kernel=False, progress=False)
    for r in report.results:  # what ran is inside the limits, what is outside was skipped
        outside = max(r.case.dilation) > 1 or any(k % 2 == 0 for k in r.case.kernel_size)
        assert (r.status == "SKIP") == outside, r


def test_an_output_on_the_strided_grid_is_named():
    cases = [c for c in curated_cases((1, 2)) if c.strided]
    report = verify(fp.strided_grid, array="numpy", cases=cases, progress=False)
    assert all(r.status == "ERROR" for r in report.results)
    assert all("this kernel subsamples queries by stride" in r.message for r in report.results)
    assert report.diagnosis.kind == "strided_output"


@pytest.mark.parametrize(("bug", "words"), [
    ("hw_swap", "The height and width axes are exchanged"),
    ("even_k_off", "Even kernel window shifted by one"),
])
def test_window_mistakes_named_in_words(bug, words):
    report = verify(mk.make_kernel(bug), array="numpy", progress=False)
    assert report.diagnosis.kind == "wrong_window" and words in report.diagnosis.message


def test_the_words_are_not_said_of_other_window_mistakes():
    for bug in ("naive_clamp", "group_div", "stride_leader"):
        message = verify(mk.make_kernel(bug), array="numpy", progress=False).diagnosis.message
        assert "exchanged" not in message and "shifted by one" not in message, (bug, message)


def test_module_in_the_current_folder_is_found(capsys, tmp_path, monkeypatch):
    (tmp_path / "mykernels.py").write_text(
        f"import sys\nsys.path.insert(0, {str(HELPERS)!r})\n"
        "from false_pass_kernels import numpy_only as na\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "mykernels:na", *FAST)  # the worker process finds it there too
    assert code == 0 and "PASSED" in out, out
