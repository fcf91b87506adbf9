"""``dinat-ref classify`` on the shipped digits checkpoint: real digits as PNG files in, labels out."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
from PIL import Image  # noqa: E402

from dinat_ref.cli import main  # noqa: E402
from dinat_ref.commands.classify import DEFAULT_MODEL, classify  # noqa: E402


def _digit_files(folder, n: int) -> tuple[list[str], list[int]]:
    """``n`` scikit-learn digits of the checkpoint's test split (never trained on) as 8x8
    grayscale PNGs, 0..16 -> 0..255."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # The split of dinat_ref.torch.digits.load_digits_split (test_fraction 0.25, split_seed 0).
    _, test = train_test_split(np.arange(len(digits.target)), test_size=0.25, stratify=digits.target,
                               random_state=0)
    paths, labels = [], []
    for i in test[:n]:
        p = folder / f"digit_{i}.png"
        Image.fromarray(np.round(digits.images[i] * 255 / 16).astype(np.uint8)).save(p)
        paths.append(str(p))
        labels.append(int(digits.target[i]))
    return paths, labels


def test_digits_from_files_are_recognized(tmp_path, one_torch_thread):
    """The checkpoint reaches 97.6% on its test digits with its float pipeline; through 8-bit PNG
    files, Pillow's resize and preprocessor_config.json it must still be well above 90%. Wrong
    statistics, channels or resampling would drop it (an untrained model gets ~10%)."""
    paths, labels = _digit_files(tmp_path, 120)
    predictions = classify(paths, top=3)
    assert [p.image for p in predictions] == paths
    top1 = np.array([int(p.labels[0]) for p in predictions])
    accuracy = (top1 == np.array(labels)).mean()
    assert accuracy > 0.9, accuracy
    for p in predictions:
        assert len(p.labels) == len(p.ids) == len(p.probs) == 3
        assert p.probs == sorted(p.probs, reverse=True) and 0 < sum(p.probs) <= 1 + 1e-9
        assert p.labels == [str(i) for i in p.ids]  # id2label of the digits model


def test_numpy_and_torch_agree(tmp_path, one_torch_thread):
    paths, _ = _digit_files(tmp_path, 4)
    a = classify(paths, top=10, framework="torch")
    b = classify(paths, top=10, framework="numpy")
    for pa, pb in zip(a, b, strict=True):
        assert pa.ids[0] == pb.ids[0]
        np.testing.assert_allclose(sorted(pa.probs), sorted(pb.probs), atol=1e-4)
        assert sum(pa.probs) == pytest.approx(1.0, abs=1e-9)  # top=10 = every label


def test_cli_prints_top_labels(tmp_path, capsys, one_torch_thread):
    paths, labels = _digit_files(tmp_path, 2)
    assert main(["classify", *paths, "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == paths[0] and len(out) == 6
    assert out[1].strip().endswith(f"  {labels[0]}") and out[1].strip().split()[0].endswith("%")
    # A folder stands for the images in it; --numpy runs the NumPy model.
    assert main(["classify", str(tmp_path), "--top", "1", "--numpy"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_bad_arguments(tmp_path):
    paths, _ = _digit_files(tmp_path, 1)
    with pytest.raises(ValueError, match="top=0 must be a positive integer"):
        classify(paths, top=0)
    with pytest.raises(ValueError, match="framework='jax'"):
        classify(paths, framework="jax")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        classify(paths, model=tmp_path / "nope")
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    (model / "preprocessor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no preprocessor_config.json"):
        classify(paths, model=model)
    with pytest.raises(FileNotFoundError, match="no such image file"):
        classify([str(tmp_path / "missing.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images given"):
        classify([str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="dinat-ref classify: .*top=-1"):
        main(["classify", paths[0], "--top", "-1"])
