"""Fine-tuning on an image folder: arguments, the new head, the crop, resuming, and the result."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from PIL import Image  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from dinat_ref.cli import main  # noqa: E402
from dinat_ref.commands.classify import DEFAULT_MODEL, classify  # noqa: E402
from dinat_ref.commands.finetune import train as ft  # noqa: E402
from dinat_ref.commands.finetune.data import random_resized_crop_box, stratified_split  # noqa: E402
from dinat_ref.commands.finetune.train import FinetuneConfig, _classifier_from_checkpoint, finetune  # noqa: E402
from dinat_ref.hf.weights import StateDictError  # noqa: E402
from dinat_ref.torch import DinatForImageClassification  # noqa: E402


def digit_folder(root, digits_per_class: dict[str, int], n: int = 20):
    """An image folder of scikit-learn digits: class name -> digit, ``n`` 8x8 PNGs per class."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for name, d in digits_per_class.items():
        (root / name).mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(digits.target == d)[:n]):
            img = np.round(digits.images[i] * 255 / 16).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{j}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return digit_folder(tmp_path_factory.mktemp("data"), {"one": 1, "seven": 7, "zero": 0})


def cfg(data, out, **kw) -> FinetuneConfig:
    base = dict(data=data, out=out, model=DEFAULT_MODEL, epochs=2, lr=1e-3, batch_size=8, val_split=0.25,
                progress=False)
    base.update(kw)
    return FinetuneConfig(**base)


def _weights(path) -> dict[str, np.ndarray]:
    return load_file(str(path / "model.safetensors"))


def test_finetune_then_classify(data, tmp_path, one_torch_thread):
    """The digits trunk with a new 3-class head learns 0/1/7 under new names in two short epochs;
    the directory it writes is what classify and from_pretrained load."""
    out = tmp_path / "out"
    result = finetune(cfg(data, out))
    assert result.classes == ["one", "seven", "zero"]
    assert result.newly_initialized == ["classifier.bias", "classifier.weight"]
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.val_accuracy >= 0.8, result.history  # 15 validation digits; chance is 1/3
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "training_state.pt",
                 "trainer_state.json"):
        assert (out / name).is_file(), name
    model = DinatForImageClassification.from_pretrained(out)
    assert model.config.id2label == {0: "one", 1: "seven", 2: "zero"}
    # The trunk started from the checkpoint: it moved, but stayed close to it.
    before, after = _weights(DEFAULT_MODEL), _weights(out)
    key = "dinat.embeddings.patch_embeddings.projection.0.weight"
    assert 0 < np.abs(after[key] - before[key]).max() < 0.1 * np.abs(before[key]).max()
    preds = classify([str(p) for p in sorted((data / "zero").glob("*.png"))[:5]], model=out, top=1)
    assert [p.labels[0] for p in preds].count("zero") >= 4


def test_resume_continues_exactly(data, tmp_path, monkeypatch, one_torch_thread):
    """A run stopped after epoch 1 and resumed ends with the weights of an uninterrupted run:
    optimizer moments, the schedule's position, the epoch and the RNG were all restored."""
    full = finetune(cfg(data, tmp_path / "full"))
    save = ft._save

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt  # the process dies right after the first checkpoint

    monkeypatch.setattr(ft, "_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg(data, tmp_path / "cut"))
    monkeypatch.setattr(ft, "_save", save)
    resumed = finetune(cfg(data, tmp_path / "cut", resume=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, rtol=0, err_msg=k)
    assert resumed.history[-1]["val_accuracy"] == full.history[-1]["val_accuracy"]
    # Resuming with another learning rate is refused, naming the change.
    with pytest.raises(ValueError, match=r"lr: 0.001 -> 0.01"):
        finetune(cfg(data, tmp_path / "cut", resume=True, lr=1e-2))


def test_new_head_and_kept_head(tmp_path):
    model, new = _classifier_from_checkpoint(DEFAULT_MODEL, {0: "a", 1: "b"})
    assert new == ["classifier.bias", "classifier.weight"]
    assert model.classifier.weight.shape == (2, 64)
    ckpt = _weights(DEFAULT_MODEL)
    for k, v in model.state_dict().items():
        if not k.startswith("classifier."):
            np.testing.assert_array_equal(v.numpy(), ckpt[k], err_msg=k)
    assert torch.all(model.classifier.bias == 0)  # freshly initialized, as Hugging Face does
    same, new = _classifier_from_checkpoint(DEFAULT_MODEL, {i: str(i) for i in range(10)})
    assert new == []
    np.testing.assert_array_equal(same.classifier.weight.detach().numpy(), ckpt["classifier.weight"])


def test_trunk_mismatch_loads_nothing(tmp_path):
    from dinat_ref import DinatConfig

    other = DinatForImageClassification(DinatConfig(num_channels=1, embed_dim=16, depths=[2, 2],
                                                    num_heads=[2, 4], kernel_size=3,
                                                    dilations=[[1, 3], [1, 2]], num_labels=10))
    other.save_pretrained(tmp_path / "m")
    shutil.copy(DEFAULT_MODEL / "config.json", tmp_path / "m" / "config.json")  # says embed_dim=32
    with pytest.raises(StateDictError, match="mis-shaped key"):
        _classifier_from_checkpoint(tmp_path / "m", {0: "a", 1: "b"})


@pytest.mark.parametrize("change, error, match", [
    (dict(data="missing"), FileNotFoundError, "is not a directory"),
    (dict(model=None), ValueError, "exactly one of model="),
    (dict(model=None, preset="huge"), ValueError, "preset='huge' is not a preset"),
    (dict(preset="mini"), ValueError, "both given"),
    (dict(model="nowhere"), FileNotFoundError, "not a model directory"),
    (dict(epochs=0), ValueError, "epochs=0 must be a positive integer"),
    (dict(batch_size=2.5), ValueError, "batch_size=2.5 must be a positive integer"),
    (dict(lr=-1.0), ValueError, "lr=-1.0 must be a positive number"),
    (dict(val_split=1.0), ValueError, r"val_split=1.0 must lie in \[0, 1\)"),
    (dict(warmup_ratio=1.5), ValueError, "warmup_ratio=1.5"),
    (dict(image_size=2), ValueError, "image_size=2 must be an integer >= 4"),
    (dict(device="tpu"), ValueError, "device='tpu'"),
    (dict(resume=True), FileNotFoundError, "has no training_state.pt"),
])
def test_bad_arguments_fail_before_any_work(data, tmp_path, change, error, match):
    change = {k: (tmp_path / v if k in ("data", "model") and v and v not in ("mini",) else v)
              for k, v in change.items()}
    args = dict(data=data, out=tmp_path / "out")
    args.update(change)
    with pytest.raises(error, match=match):
        finetune(cfg(**args))
    assert not (tmp_path / "out").exists()


def test_bad_data_folders(tmp_path):
    one = digit_folder(tmp_path / "one", {"only": 1}, n=2)
    with pytest.raises(ValueError, match=r"1 class folder\(s\) \['only'\]; a classifier needs at least 2"):
        finetune(cfg(one, tmp_path / "out"))
    two = digit_folder(tmp_path / "two", {"a": 1, "b": 2}, n=2)
    (two / "c").mkdir()
    (two / "c" / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match=r"class folder\(s\) \['c'\] .* hold no image files"):
        finetune(cfg(two, tmp_path / "out"))
    shutil.rmtree(two / "c")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="exists and is not empty; pass --resume"):
        finetune(cfg(two, tmp_path / "full"))
    with pytest.raises(SystemExit, match="dinat-ref finetune: .*preset='nano'"):
        main(["finetune", "--data", str(two), "--out", str(tmp_path / "o"), "--preset", "nano"])


def test_random_resized_crop_box_follows_torchvision_rules():
    """Box inside the image; area 8-100% and aspect 3/4-4/3 up to integer rounding; the fallback
    is the largest central crop with an aspect ratio in range."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        W, H = (int(v) for v in rng.integers(20, 300, 2))
        left, top, right, bottom = random_resized_crop_box(W, H, rng)
        w, h = right - left, bottom - top
        assert 0 <= left < right <= W and 0 <= top < bottom <= H
        if (w, h) != (W, H) or W / H > 4 / 3 or W / H < 3 / 4:  # sampled, not the fallback
            assert 0.08 * 0.8 <= w * h / (W * H) <= 1.0
    # A 1000x10 strip: no sample fits 10 tries (aspect too wide); the fallback is 13x10, centered.
    assert random_resized_crop_box(1000, 10, np.random.default_rng(1), scale=(0.9, 1.0)) == (
        (1000 - 13) // 2, 0, (1000 - 13) // 2 + 13, 10)
    boxes = [random_resized_crop_box(100, 100, np.random.default_rng([0, 0, i])) for i in range(3)]
    assert boxes == [random_resized_crop_box(100, 100, np.random.default_rng([0, 0, i])) for i in range(3)]
    ratios = [(b[2] - b[0]) / (b[3] - b[1]) for b in
              (random_resized_crop_box(400, 400, rng) for _ in range(300))]
    assert min(ratios) > 3 / 4 * 0.95 and max(ratios) < 4 / 3 * 1.05
    assert math.isclose(np.median(np.log(ratios)), 0.0, abs_tol=0.1)  # log-uniform around 1


def test_stratified_split():
    labels = [0] * 10 + [1] * 4 + [2] * 1
    train, val = stratified_split(labels, 0.25, seed=3)
    assert sorted(train + val) == list(range(15))
    assert [labels[i] for i in val].count(0) == 2 and [labels[i] for i in val].count(1) == 1
    assert 14 in train  # a class with one image keeps it for training
    assert stratified_split(labels, 0.25, seed=3) == (train, val)


def test_from_a_preset(tmp_path, one_torch_thread):
    """A preset starts from random weights with ImageNet preprocessing; grayscale files become RGB."""
    from dinat_ref import DinatConfig, DinatImageProcessor

    data = digit_folder(tmp_path / "data", {"a": 1, "b": 2}, n=2)
    result = finetune(FinetuneConfig(data=data, out=tmp_path / "out", preset="mini", image_size=32, epochs=1,
                                     batch_size=4, val_split=0.0, progress=False))
    assert result.val_accuracy is None and len(result.history) == 1
    config = DinatConfig.from_pretrained(tmp_path / "out")
    mini = DinatConfig.from_preset("mini")
    assert (config.depths, config.embed_dim, config.dilations) == (
        mini.depths, mini.embed_dim, mini.dilations)
    assert config.id2label == {0: "a", 1: "b"}
    processor = DinatImageProcessor.from_pretrained(tmp_path / "out")
    assert processor.size == {"height": 32, "width": 32} and processor.image_mean == [0.485, 0.456, 0.406]
