"""Tutorial 8 runs headless and tells the story it promises: fail, diagnose, fix, pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "tutorials" / "08_verify_your_own_kernel.py"


def test_tutorial_08_runs_and_diagnoses(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, str(TUTORIAL)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "buggy_na: FAILED" in out
    assert "Diagnosis [wrong_window]" in out and "another dilation group" in out
    assert "fixed_na: PASSED" in out
    assert "unscaled_na: FAILED" in out and "no scale is applied" in out


def test_tutorial_08_is_a_jupytext_notebook():
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(TUTORIAL)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") >= 5 and kinds.count("code") >= 5
