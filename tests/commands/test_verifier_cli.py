"""``dinat-ref verify`` and the pytest one-liner, end to end."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dinat_ref.cli import main

KERNELS = Path(__file__).parents[1] / "helpers" / "mutant_kernels.py"
NUMPY = ["--array", "numpy", "--no-progress", "--random", "2"]


def test_verify_passes_a_correct_kernel(capsys):
    assert main(["verify", f"{KERNELS}:correct_na", "--dims", "1,2", *NUMPY]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "fwd abs err" in out


def test_verify_fails_a_mutant_with_a_diagnosis_and_a_figure(capsys, tmp_path):
    (tmp_path / "buggy.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(KERNELS.parent)!r})\n"
        "import mutant_kernels\n"
        "leaky = mutant_kernels.make_kernel('causal_leak')\n"
    )
    figure = tmp_path / "errors.png"
    code = main(["verify", f"{tmp_path / 'buggy.py'}:leaky", "--dims", "1", "--failures-only",
                 "--figure", str(figure), *NUMPY])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED" in out and "Diagnosis [causal_leakage]" in out and "expected" in out
    assert " PASS " not in out  # --failures-only
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_verify_limits_and_tolerance_options(capsys):
    code = main(["verify", f"{KERNELS}:correct_na", "--dims", "2", "--no-rpb", "--no-causal",
                 "--head-dims", "8", "--tol", "float32=1e-3", *NUMPY])
    out = capsys.readouterr().out
    assert code == 0 and "rpb not supported" in out and "is_causal not supported" in out


@pytest.mark.parametrize(("target", "words"), [
    ("no_such_module_xyz:fn", "cannot import 'no_such_module_xyz'"),
    (f"{KERNELS}:no_such_fn", "has no attribute 'no_such_fn'"),
    (f"{KERNELS}:MUTATIONS", "not a function"),
    ("missing_colon", "MODULE:FUNCTION"),
    ("/no/such/file.py:fn", "no file"),
])
def test_verify_bad_targets_exit_2_with_a_message(capsys, target, words):
    assert main(["verify", target, *NUMPY]) == 2
    assert words in capsys.readouterr().err


def test_verify_wrong_signature_is_reported_per_case(capsys):
    code = main(["verify", f"{KERNELS}:make_kernel", "--dims", "1", *NUMPY])
    out = capsys.readouterr().out
    assert code == 1 and "unexpected keyword argument 'kernel_size'" in out and "ERROR" in out


def test_verify_unfused_pair(capsys):
    code = main(["verify", "--qk", "dinat_ref.numpy:na1d_qk", "--av", "dinat_ref.numpy:na1d_av",
                 "--dims", "1", *NUMPY])
    assert code == 0, capsys.readouterr().out


def test_pytest_one_liner_collects_passes_fails_and_skips(tmp_path):
    test_file = tmp_path / "test_user_kernels.py"
    test_file.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(KERNELS.parent)!r})
        import mutant_kernels as mk
        from dinat_ref.testing import Case, check_case, parametrize_cases, pytest_suite

        cases = [Case("plain", (8,), (3,)), Case("dilated", (9,), (3,), dilation=(3,)),
                 Case("with-rpb", (8,), (3,), use_rpb=True)]
        test_good = pytest_suite(mk.correct_na, array="numpy", dims=(1,), cases=cases)
        test_clamp = pytest_suite(mk.make_kernel("naive_clamp"), array="numpy", dims=(1,), cases=cases,
                                  rpb=False)

        @parametrize_cases(dims=(1,), cases=cases[:1])
        def test_by_hand(case, dtype):
            check_case(mk.correct_na, case, dtype, array="numpy")
    """))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-v", "-rs", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = run.stdout
    assert run.returncode == 1, out  # the mutant fails, so the user's test run fails
    for name in ("test_good[plain-float32]", "test_good[dilated-float32]", "test_good[with-rpb-float32]",
                 "test_clamp[plain-float32]", "test_by_hand[plain-float32]"):
        assert f"{name} PASSED" in out, out
    assert "test_clamp[dilated-float32] FAILED" in out
    assert "test_clamp[with-rpb-float32] SKIPPED" in out and "rpb not supported" in out
    assert "Diagnosis [wrong_window]" in out  # the diagnosis is in the failure message
    assert "1 failed, 5 passed, 1 skipped" in out.strip().splitlines()[-1]
