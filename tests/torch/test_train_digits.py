"""The digits data pipeline and the committed tiny checkpoint (training itself runs in tutorial 9)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402

from dinat_ref.torch import digits as train_digits  # noqa: E402


@pytest.fixture(scope="module")
def split():
    return train_digits.load_digits_split()


def test_split_shapes_stratified_and_deterministic(split):
    x_train, y_train, x_test, y_test = split
    assert x_train.shape == (1347, 1, 48, 48) and x_test.shape == (450, 1, 48, 48)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    # Stratified: every class is about 10% of the test split (the data set is ~balanced).
    counts = np.bincount(y_test.numpy(), minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47
    again = train_digits.load_digits_split()
    assert all(torch.equal(a, b) for a, b in zip(split, again, strict=True))
    # Every label count matches scikit-learn's data set.
    total = np.bincount(np.concatenate([y_train.numpy(), y_test.numpy()]), minlength=10)
    assert (total == np.bincount(load_digits().target, minlength=10)).all()


def test_standardization_constants_match_the_training_split(split):
    x_train = split[0]
    unit = x_train.numpy() * train_digits.PIXEL_STD + train_digits.PIXEL_MEAN  # back to [0, 1]
    assert abs(unit.mean() - train_digits.PIXEL_MEAN) < 1e-3
    assert abs(unit.std() - train_digits.PIXEL_STD) < 1e-3
    shown = train_digits.to_unit_range(x_train[0, 0].numpy())
    assert shown.min() >= 0.0 and shown.max() <= 1.0
    # A blank pixel is BACKGROUND after standardization and 0.0 when shown. The 8x8 digits'
    # first column is blank in all but a few (27 pixels in 1797 digits), so the 48x48 images'
    # first column is all BACKGROUND in nearly every training image.
    assert train_digits.to_unit_range(np.float32(train_digits.BACKGROUND)) == pytest.approx(0.0, abs=1e-6)
    first_col = x_train[:, 0, :, 0].numpy()  # (N, 48)
    blank = np.abs(first_col - train_digits.BACKGROUND).max(axis=1) < 1e-5  # (N,)
    assert blank.mean() > 0.97


def test_random_shift_translates_and_pads_with_background():
    x = torch.randn(6, 1, 10, 10)  # (B, C, H, W)
    m = 2
    out = train_digits._random_shift(x, m, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (m,) * 4, value=train_digits.BACKGROUND)
    for b in range(len(x)):
        crops = [padded[b, :, oy:oy + 10, ox:ox + 10] for oy in range(2 * m + 1) for ox in range(2 * m + 1)]
        assert any(torch.equal(out[b], c) for c in crops)
    assert torch.equal(train_digits._random_shift(x, 0, torch.Generator()), x)


def test_committed_checkpoint_is_small_safe_and_accurate(split):
    files = sorted(p.name for p in train_digits.ASSET_DIR.iterdir())
    assert files == ["config.json", "model.safetensors", "preprocessor_config.json"]  # no pickle
    assert sum(p.stat().st_size for p in train_digits.ASSET_DIR.iterdir()) < 2_000_000
    model = train_digits.load_pretrained()
    assert model.config.dilations == train_digits.digits_model_config().dilations
    _, _, x_test, y_test = split
    accuracy = train_digits.evaluate(model, x_test, y_test)
    assert accuracy > 0.95, accuracy  # what tutorial 9 and the README state


def test_load_pretrained_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="dinat-ref train-digits"):
        train_digits.load_pretrained(tmp_path)
