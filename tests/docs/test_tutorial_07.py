"""Tutorial 7 runs headless and shows what it claims: both implementations agree to rounding."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[2] / "tutorials" / "07_one_model_two_implementations.py"


@pytest.mark.slow
def test_tutorial_07_runs_and_the_two_models_agree(tmp_path):
    pytest.importorskip("torch")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, str(TUTORIAL)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    diff = float(re.search(r"max \|numpy - torch\| = (\S+)", out).group(1))
    assert diff < 1e-9
    assert float(re.search(r"layer 0 by hand vs torch module: max diff (\S+)", out).group(1)) < 1e-9
    assert re.search(r"mini\s+19\.98M\s+20M", out)
    assert "the key projection comes back exactly: True" in out
    assert "neighbor rows: [4, 12, 20, 28, 36, 44, 52]" in out  # dilation 8 around row 20
    # The exercises' solutions, against closed forms.
    from dinat_ref import DinatConfig
    from dinat_ref.hf.weights import count_parameters

    mini = DinatConfig.from_preset("mini", layer_scale_init_value=0.1)
    solutions = json.loads(re.search(r"^SOLUTIONS (.*)$", out, re.M).group(1))
    assert solutions == {
        "1_span_tokens": 1 + (7 - 1) * 8,  # 7 keys, 8 apart
        "1_rows_touched": 7,
        # 2 LayerNorms x (weight, bias) + 4 projections x (weight, bias) + rpb + 2 MLP linears x 2
        # + layer scale
        "2_arrays_per_layer": 2 * 2 + 4 * 2 + 1 + 2 * 2 + 1,
        "3_numbers_m": round(count_parameters(mini) / 1e6, 2),
        "4_qkv_shape": [3 * 128, 128],  # stage 2 has 2 * 64 channels
    }
