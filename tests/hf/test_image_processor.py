"""DinatImageProcessor against transformers' own ViT image processor, by hand, and on bad input.

transformers runs in a subprocess: its image utilities import torchvision when it is
installed, and a torchvision wheel built for another torch (e.g. the CUDA wheel beside a CPU
torch) fails to load; the subprocess then hides torchvision so transformers takes its Pillow
path, the one the DiNAT checkpoints used.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dinat_ref import DinatImageProcessor

DIGITS = Path(__file__).resolve().parents[2] / "dinat_ref" / "assets" / "digits-dinat"

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

_HF_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    try:
        import torchvision  # noqa: F401
    except Exception:
        sys.modules["torchvision"] = None  # unusable: let transformers take its Pillow path
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil
    from PIL import Image
    cfg, images, out = json.loads(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
    cfg = {k: v for k, v in cfg.items() if k not in ("image_processor_type", "feature_extractor_type")}
    proc = ViTImageProcessorPil(**cfg)
    res = {}
    for name in images.files:
        a = images[name]
        if name.startswith("pil"):
            a = Image.fromarray(a)
        res[name] = proc(a, return_tensors="np")["pixel_values"]
    np.savez(out, **res)
""")


def _transformers_pixels(tmp_path, processor: DinatImageProcessor, images: dict[str, np.ndarray]):
    pytest.importorskip("transformers")
    np.savez(tmp_path / "in.npz", **images)
    proc = subprocess.run([sys.executable, "-c", _HF_SCRIPT, json.dumps(processor.to_dict()),
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=240)
    if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr and "transformers" in proc.stderr:
        pytest.skip("transformers' ViTImageProcessorPil is not available")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(tmp_path / "out.npz"))


def test_matches_transformers_on_8bit_images(tmp_path, rng):
    """uint8 images (the usual case: files, PIL images) go through the same Pillow resize,
    so the only difference left is float32 rounding: tolerance 1e-5."""
    processor = DinatImageProcessor.imagenet()  # the hub checkpoints' settings: bicubic, ImageNet stats
    images = {
        "pil_down": rng.integers(0, 256, (300, 200, 3), dtype=np.uint8),   # shrink (antialiased)
        "pil_up": rng.integers(0, 256, (50, 70, 3), dtype=np.uint8),       # enlarge
        "hwc_same": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),   # no resize
        "chw": rng.integers(0, 256, (3, 97, 131), dtype=np.uint8),
    }
    expected = _transformers_pixels(tmp_path, processor, images)
    for name, img in images.items():
        ours = processor(Image.fromarray(img) if name.startswith("pil") else img)["pixel_values"]
        assert ours.shape == expected[name].shape == (1, 3, 224, 224)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, expected[name], atol=1e-5, rtol=0, err_msg=name)


def test_matches_transformers_bilinear_one_channel_and_float(tmp_path, rng):
    """The digits settings (bilinear, one channel), and float images: transformers rounds a float
    image to 8 bits before resizing, we resize in float; half an 8-bit level (0.5 / 255) divided by
    the std (0.324) bounds the difference: 0.0061, plus interpolation rounding -> 0.01."""
    processor = DinatImageProcessor.from_pretrained(DIGITS)  # the shipped digits checkpoint's settings
    gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    images = {"pil_gray": gray, "float": (rng.random((1, 30, 20)) * 0.999).astype(np.float32)}
    expected = _transformers_pixels(tmp_path, processor, images)
    np.testing.assert_allclose(processor(Image.fromarray(gray))["pixel_values"], expected["pil_gray"],
                               atol=1e-5, rtol=0)
    ours = processor(images["float"])["pixel_values"]
    assert ours.shape == expected["float"].shape == (1, 1, 48, 48)
    np.testing.assert_allclose(ours, expected["float"], atol=1e-2, rtol=0)


def test_rescale_and_normalize_by_hand():
    processor = DinatImageProcessor(size=2, image_mean=[0.5, 0.25, 0.0], image_std=[0.5, 0.25, 2.0])
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 51, 102  # 1.0, 0.2, 0.4 after rescaling
    out = processor(img)["pixel_values"]  # no resize: already 2x2
    np.testing.assert_allclose(out[0, :, 0, 0], [(1.0 - 0.5) / 0.5, (0.2 - 0.25) / 0.25, 0.4 / 2.0],
                               rtol=1e-6)


def test_inputs_all_agree(tmp_path, rng):
    """A PIL image, its file, its HWC and CHW arrays and a torch tensor give the same pixels."""
    processor = DinatImageProcessor.imagenet(size=32)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    ref = processor(Image.fromarray(img))["pixel_values"]
    for other in (str(tmp_path / "a.png"), tmp_path / "a.png", img, img.transpose(2, 0, 1)):
        np.testing.assert_array_equal(processor(other)["pixel_values"], ref)
    batch = processor([img, Image.fromarray(img[:20])])
    assert batch.pixel_values.shape == (2, 3, 32, 32)
    torch = pytest.importorskip("torch")
    out = processor(torch.from_numpy(img), return_tensors="pt")["pixel_values"]
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), ref)


def test_gray_file_becomes_rgb_and_rgb_becomes_gray(tmp_path, rng):
    gray = rng.integers(0, 256, (10, 10), dtype=np.uint8)
    rgb_proc = DinatImageProcessor(size=10)
    out = rgb_proc(Image.fromarray(gray))["pixel_values"]
    assert out.shape == (1, 3, 10, 10)
    np.testing.assert_allclose(out[0, 0], (gray / 255 - 0.5) / 0.5, atol=1e-6)
    gray_proc = DinatImageProcessor(size=10, image_mean=[0.5], image_std=[0.5])
    assert gray_proc(Image.fromarray(np.stack([gray] * 3, -1)))["pixel_values"].shape == (1, 1, 10, 10)


def test_config_round_trip(tmp_path):
    processor = DinatImageProcessor.imagenet(size=96)
    processor.save_pretrained(tmp_path)
    d = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert d["size"] == {"height": 96, "width": 96} and d["resample"] == 3
    assert DinatImageProcessor.from_pretrained(tmp_path) == processor
    # The hub's older form: size as an int, unknown keys kept and written back.
    hub = {"do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
           "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 3,
           "size": 224}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(hub))
    loaded = DinatImageProcessor.from_pretrained(tmp_path)
    assert loaded.size == {"height": 224, "width": 224} and loaded.rescale_factor == pytest.approx(1 / 255)
    assert loaded.to_dict()["feature_extractor_type"] == "ViTFeatureExtractor"


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=0), "size=0: height=0 must be a positive integer"),
    (dict(size={"shortest_edge": 224}), "exactly the keys 'height' and 'width'"),
    (dict(resample=7), "resample=7 must be one of Pillow's filters"),
    (dict(image_mean=[0.5], image_std=[0.5, 0.5]), "one entry per channel"),
    (dict(image_std=[0.5, 0.0, 0.5]), "must be positive"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DinatImageProcessor(**kwargs)


def test_bad_images(tmp_path):
    processor = DinatImageProcessor(size=8)
    with pytest.raises(ValueError, match=r"images\[0\] has shape \(4, 8, 8\): neither .* has the 3 channel"):
        processor(np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"images\[1\].*integer pixels must lie in \[0, 255\]"):
        processor([np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 300, np.int32)])
    with pytest.raises(ValueError, match="NaN or infinite"):
        processor(np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(FileNotFoundError, match="no such file"):
        processor(str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        processor(str(tmp_path / "bad.png"))
    with pytest.raises(TypeError, match="is a dict"):
        processor({"a": 1})
    with pytest.raises(ValueError, match="images is empty"):
        processor([])
    with pytest.raises(ValueError, match="return_tensors='tf'"):
        processor(np.zeros((8, 8, 3), np.uint8), return_tensors="tf")
    with pytest.raises(ValueError, match="different sizes"):
        DinatImageProcessor(do_resize=False)([np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)])


def test_works_without_torch(tmp_path):
    """The processor needs NumPy and Pillow only: it runs with torch made unimportable."""
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # any `import torch` now fails
        import numpy as np
        from dinat_ref import DinatImageProcessor
        out = DinatImageProcessor.imagenet(size=16)(np.zeros((20, 20, 3), np.uint8))["pixel_values"]
        assert out.shape == (1, 3, 16, 16), out.shape
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
