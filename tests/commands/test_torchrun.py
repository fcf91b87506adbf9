"""``torchrun --nproc-per-node 2 -m dinat_ref.commands.finetune`` takes the same steps as one process.

Two CPU processes (gloo), each with half of every global batch, against one process with the
whole batch: DistributedSampler gives the two halves of the same permutation, augmentation is
seeded per image (not per process), and DDP averages the two halves' gradients, which equals
the gradient of the whole batch. Final weights agree to float32 rounding (1e-5).

Left out of the comparison: the attention ``key.bias``. Its true gradient is exactly zero
(it adds ``q . b`` to every logit of a query, which softmax cancels), so what AdamW sees there
is rounding noise divided by its own square root: an update of +-lr whose sign is noise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed")
from PIL import Image  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from dinat_ref.commands.classify import DEFAULT_MODEL  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _shapes_folder(root: Path, n: int = 8) -> Path:
    """Two classes of 48x48 grayscale drawings: a bright square and a bright bar, in random places."""
    rng = np.random.default_rng(0)
    for cls in ("bar", "square"):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            img = np.zeros((48, 48), dtype=np.uint8)
            y, x = rng.integers(4, 30, 2)
            if cls == "square":
                img[y:y + 14, x:x + 14] = 255
            else:
                img[y:y + 4, 4:44] = 255
            Image.fromarray(img).save(root / cls / f"{i}.png")
    return root


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    data = _shapes_folder(tmp_path / "data")
    # 16 images, 4 held out -> 12 training images = 3 global batches of 4 per epoch.
    common = ["-m", "dinat_ref.commands.finetune", "--data", str(data), "--model", str(DEFAULT_MODEL),
              "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--val-split", "0.25", "--no-progress"]
    one = _run([sys.executable, *common, "--out", str(tmp_path / "one")], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                *common, "--out", str(tmp_path / "two")], tmp_path)
    assert two.returncode == 0, two.stderr[-5000:]
    # Rank 0 alone logs: one line per epoch, as the single process.
    epochs_one = [line for line in one.stdout.splitlines() if line.startswith("epoch ")]
    epochs_two = [line for line in two.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs_one) == len(epochs_two) == 2
    assert epochs_one == epochs_two  # same loss (4 decimals) and validation accuracy
    a, b = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(str(tmp_path / "two" /
                                                                                 "model.safetensors"))
    start = load_file(str(DEFAULT_MODEL / "model.safetensors"))
    assert a.keys() == b.keys()
    moved = 0.0
    for k in a:
        if k.endswith("key.bias"):
            continue
        np.testing.assert_allclose(a[k], b[k], atol=1e-5, rtol=0, err_msg=k)
        if k in start and start[k].shape == a[k].shape:
            moved = max(moved, float(np.abs(a[k] - start[k]).max()))
    assert moved > 1e-3  # training changed the weights far more than the tolerance
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())
