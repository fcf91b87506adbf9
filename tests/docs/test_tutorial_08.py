"""Tutorial 8 runs headless and tells the story it promises: fail, diagnose, fix, pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[2] / "tutorials" / "08_verify_your_own_kernel.py"


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
    solutions = json.loads(re.search(r"^SOLUTIONS (.*)$", out, re.M).group(1))
    assert solutions.pop("3_scale") == pytest.approx(1 / 32**0.5, rel=1e-12)
    assert solutions == {
        "1_wrong_queries": _wrong(16, 3, 3),
        "2_wrong_counts": [len(_wrong(16, 3, d)) for d in (1, 2, 3, 4)],
    }


def _wrong(length: int, k: int, d: int) -> list[int]:
    """Queries whose window under the full-axis clamp differs from NA's (odd k: the k
    members of the query's dilation group nearest to it)."""
    wrong = []
    for i in range(length):
        right = sorted(sorted(range(i % d, length, d), key=lambda j: abs(j - i))[:k])
        start = min(max(i - (k // 2) * d, 0), length - 1 - (k - 1) * d)
        if [start + t * d for t in range(k)] != right:
            wrong.append(i)
    return wrong


def test_tutorial_08_is_a_jupytext_notebook():
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(TUTORIAL)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") >= 5 and kinds.count("code") >= 5
