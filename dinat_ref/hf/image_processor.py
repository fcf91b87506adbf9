"""Images in, ``pixel_values`` out: the preprocessing of the Hugging Face DiNAT checkpoints.

The DiNAT checkpoints on the Hugging Face hub (``shi-labs/dinat-*-in1k-224``) ship a
``preprocessor_config.json`` that ``transformers`` reads into its ``ViTImageProcessor``
(``AutoImageProcessor`` maps ``model_type="dinat"`` to it)::

    {"do_normalize": true, "do_resize": true, "feature_extractor_type": "ViTFeatureExtractor",
     "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
     "resample": 3, "size": 224}

:class:`DinatImageProcessor` does the same steps with NumPy and Pillow only (no torch, no
``transformers``), per image:

1. **resize** to ``size["height"] x size["width"]`` with Pillow's filter ``resample``
   (3 = bicubic, 2 = bilinear; Pillow antialiases when it shrinks), channel by channel;
2. **rescale**: ``x * rescale_factor`` (1/255 maps 8-bit pixels to [0, 1]);
3. **normalize**: ``(x - image_mean[c]) / image_std[c]`` per channel ``c``;
4. **channels first**: ``(C, H, W)``, stacked into a batch ``(B, C, H, W)`` of float32.

Defaults are ``ViTImageProcessor``'s (bilinear, mean = std = 0.5), so a
``preprocessor_config.json`` that leaves a key out means the same here as in
``transformers``; :meth:`DinatImageProcessor.imagenet` gives the hub checkpoints' settings.

One difference on purpose: a float image is resized in float (Pillow mode ``"F"``), where
``transformers`` first rounds it to 8 bits; for uint8 images and files (the usual case) the
two agree to float32 rounding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DinatImageProcessor", "BatchFeature", "IMAGENET_DEFAULT_MEAN", "IMAGENET_DEFAULT_STD",
           "PREPROCESSOR_CONFIG_NAME"]

PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"
IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406]
IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225]
# Pillow's resampling filters by their integer value (PIL.Image.Resampling).
_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class BatchFeature(dict):
    """The processor's output: a dict (``inputs["pixel_values"]``) that also reads as attributes
    (``inputs.pixel_values``), so ``model(**inputs)`` works as with ``transformers``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _size_dict(size: Any) -> dict[str, int]:
    """``224``, ``(h, w)`` or ``{"height": h, "width": w}`` -> ``{"height": h, "width": w}``."""
    if isinstance(size, dict):
        if set(size) != {"height", "width"}:
            raise ValueError(f"DinatImageProcessor: size={size!r} must have exactly the keys 'height' and "
                             f"'width' (resizing to the shortest edge is not part of the DiNAT recipe).")
        h, w = size["height"], size["width"]
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        h, w = size
    else:
        h = w = size
    for name, v in (("height", h), ("width", w)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"DinatImageProcessor: size={size!r}: {name}={v!r} must be a positive integer.")
    return {"height": int(h), "width": int(w)}


@dataclass
class DinatImageProcessor:
    """Resize, rescale and normalize images into a ``pixel_values`` batch ``(B, C, H, W)``.

    Args:
        do_resize: resize every image to ``size``.
        size: ``{"height": h, "width": w}`` (an int ``s`` or a pair ``(h, w)`` is accepted).
        resample: Pillow filter: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming.
        do_rescale: multiply by ``rescale_factor``.
        rescale_factor: 1/255 maps 8-bit pixels to [0, 1].
        do_normalize: subtract ``image_mean`` and divide by ``image_std``, per channel.
        image_mean: one mean per channel; its length is the number of channels the model takes.
        image_std: one standard deviation per channel.
        extra: other ``preprocessor_config.json`` keys (``feature_extractor_type``, ...), kept and
            written back.

    Example::

        processor = DinatImageProcessor.from_pretrained("my-dinat")    # reads preprocessor_config.json
        inputs = processor(["cat.jpg", "dog.png"], return_tensors="pt")
        logits = model(**inputs).logits
    """

    do_resize: bool = True
    size: dict[str, int] = field(default_factory=lambda: {"height": 224, "width": 224})
    resample: int = 2
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        where = "DinatImageProcessor"
        self.size = _size_dict(self.size)
        if isinstance(self.resample, bool) or int(self.resample) not in _RESAMPLE_NAMES:
            raise ValueError(f"{where}: resample={self.resample!r} must be one of Pillow's filters "
                             f"{_RESAMPLE_NAMES}.")
        self.resample = int(self.resample)
        if not isinstance(self.rescale_factor, (int, float)) or not self.rescale_factor > 0:
            raise ValueError(f"{where}: rescale_factor={self.rescale_factor!r} must be a positive number.")
        self.rescale_factor = float(self.rescale_factor)
        mean = [self.image_mean] if isinstance(self.image_mean, (int, float)) else list(self.image_mean)
        std = [self.image_std] if isinstance(self.image_std, (int, float)) else list(self.image_std)
        if not mean or len(mean) != len(std):
            raise ValueError(f"{where}: image_mean={mean} and image_std={std} need one entry per channel, "
                             f"the same number in both.")
        if any(not s > 0 for s in std):
            raise ValueError(f"{where}: image_std={std} must be positive (it divides).")
        self.image_mean, self.image_std = [float(m) for m in mean], [float(s) for s in std]

    @property
    def num_channels(self) -> int:
        """Channels of the output: the length of ``image_mean``."""
        return len(self.image_mean)

    @classmethod
    def imagenet(cls, size: int = 224) -> DinatImageProcessor:
        """The settings of the hub's ImageNet DiNAT checkpoints: bicubic resize to ``size x size``,
        ImageNet mean and std."""
        return cls(size=size, resample=3, image_mean=list(IMAGENET_DEFAULT_MEAN),
                   image_std=list(IMAGENET_DEFAULT_STD),
                   extra={"feature_extractor_type": "ViTFeatureExtractor",
                          "image_processor_type": "ViTImageProcessor"})

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """A ``preprocessor_config.json`` dictionary that ``transformers`` reads too."""
        d = dict(self.extra)
        d.setdefault("image_processor_type", "ViTImageProcessor")
        d.update({k: v for k, v in asdict(self).items() if k != "extra"})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DinatImageProcessor:
        """Build from a ``preprocessor_config.json`` dictionary; unknown keys go to ``extra``."""
        names = {"do_resize", "size", "resample", "do_rescale", "rescale_factor", "do_normalize",
                 "image_mean", "image_std"}
        kwargs = {k: v for k, v in d.items() if k in names}
        return cls(**kwargs, extra={k: v for k, v in d.items() if k not in names})

    def save_pretrained(self, directory: str | os.PathLike) -> str:
        """Write ``preprocessor_config.json`` into ``directory``; returns its path."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, PREPROCESSOR_CONFIG_NAME)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> DinatImageProcessor:
        """Read ``preprocessor_config.json`` from a model directory (or the file itself).

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not valid JSON or holds invalid settings.
        """
        p = os.fspath(path)
        if os.path.isdir(p):
            p = os.path.join(p, PREPROCESSOR_CONFIG_NAME)
        if not os.path.isfile(p):
            raise FileNotFoundError(f"DinatImageProcessor.from_pretrained: no {PREPROCESSOR_CONFIG_NAME} "
                                    f"at {os.fspath(path)!r}.")
        with open(p, encoding="utf-8") as fh:
            try:
                d = json.load(fh)
            except json.JSONDecodeError as e:
                raise ValueError(f"DinatImageProcessor.from_pretrained: {p!r} is not valid JSON: {e}") from e
        return cls.from_dict(d)

    # ------------------------------------------------------------------ images
    def to_array(self, image: Any, index: int = 0) -> np.ndarray:
        """One image (PIL image, path, or array HWC / CHW / HW) -> ``(C, H, W)`` uint8 or float32.

        PIL images and files are converted to ``"RGB"`` (3 channels) or ``"L"`` (1 channel) to
        match :attr:`num_channels`; arrays must already have that many channels.
        """
        where = f"DinatImageProcessor: images[{index}]"
        if isinstance(image, (str, os.PathLike)):
            from PIL import Image

            if not os.path.isfile(image):
                raise FileNotFoundError(f"{where}: no such file {os.fspath(image)!r}.")
            try:
                with Image.open(image) as im:
                    im.load()
                    image = im.copy()
            except Exception as e:  # Pillow raises UnidentifiedImageError and others
                raise ValueError(f"{where}: {os.fspath(image)!r} is not an image Pillow can read "
                                 f"({e}).") from e
        if type(image).__module__.startswith("PIL."):
            mode = {1: "L", 3: "RGB"}.get(self.num_channels)
            if mode is None:
                raise ValueError(f"{where}: a PIL image can become 1 (L) or 3 (RGB) channels, but image_mean "
                                 f"has {self.num_channels}; pass an array (C, H, W) instead.")
            arr = np.asarray(image.convert(mode))
            return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)  # (C, H, W)
        if hasattr(image, "detach"):  # a torch tensor
            image = image.detach().cpu().numpy()
        if not isinstance(image, np.ndarray):
            raise TypeError(f"{where} is a {type(image).__name__}; expected a PIL image, a file path or an "
                            f"array (H, W, C), (C, H, W) or (H, W).")
        if image.dtype == np.bool_ or not (np.issubdtype(image.dtype, np.integer)
                                           or np.issubdtype(image.dtype, np.floating)):
            raise TypeError(f"{where} has dtype {image.dtype}; expected uint8 or float pixels.")
        c = self.num_channels
        if image.ndim == 2:
            image = image[None]  # (1, H, W)
        elif image.ndim == 3:
            if image.shape[0] == c and image.shape[-1] != c:
                pass  # (C, H, W)
            elif image.shape[-1] == c:
                image = np.moveaxis(image, -1, 0)  # (H, W, C) -> (C, H, W)
            elif image.shape[0] != c:
                raise ValueError(f"{where} has shape {image.shape}: neither the first nor the last axis has "
                                 f"the {c} channel(s) of image_mean.")
        else:
            raise ValueError(f"{where} has shape {image.shape}; expected (H, W, C), (C, H, W) or (H, W).")
        if image.shape[0] != c:
            raise ValueError(f"{where} has {image.shape[0]} channel(s), image_mean has {c}.")
        if min(image.shape[1:]) < 1:
            raise ValueError(f"{where} has shape {image.shape}: an image needs at least one pixel.")
        if np.issubdtype(image.dtype, np.integer):
            if image.min() < 0 or image.max() > 255:
                raise ValueError(f"{where}: integer pixels must lie in [0, 255], got [{image.min()}, "
                                 f"{image.max()}].")
            return image.astype(np.uint8)
        if not np.isfinite(image).all():
            raise ValueError(f"{where} holds NaN or infinite values.")
        return image.astype(np.float32)

    def _resize(self, image: np.ndarray) -> np.ndarray:
        """(C, H, W) -> (C, h, w) with Pillow, one channel at a time (as Pillow does inside RGB)."""
        from PIL import Image

        h, w = self.size["height"], self.size["width"]
        if image.shape[1:] == (h, w):
            return image
        # uint8 channels become Pillow "L" images, float32 channels "F" images
        return np.stack([
            np.asarray(Image.fromarray(np.ascontiguousarray(ch)).resize((w, h), resample=self.resample))
            for ch in image
        ])

    def preprocess(self, images: Any, return_tensors: str | None = "np") -> BatchFeature:
        """See :meth:`__call__`."""
        if return_tensors not in ("np", "pt", None):
            raise ValueError(f"DinatImageProcessor: return_tensors={return_tensors!r} must be 'np' or 'pt'.")
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)  # a batch (B, ...) of arrays
        elif not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 0:
            raise ValueError("DinatImageProcessor: images is empty; pass at least one image.")
        arrays = [self.to_array(im, i) for i, im in enumerate(images)]  # check all before any work
        if not self.do_resize:
            shapes = {a.shape[1:] for a in arrays}
            if len(shapes) > 1:
                raise ValueError(f"DinatImageProcessor: do_resize=False but the images have different sizes "
                                 f"{sorted(shapes)}; they cannot be stacked into one batch.")
        mean = np.asarray(self.image_mean, dtype=np.float32)[:, None, None]  # (C, 1, 1)
        std = np.asarray(self.image_std, dtype=np.float32)[:, None, None]  # (C, 1, 1)
        out = []
        for a in arrays:
            if self.do_resize:
                a = self._resize(a)  # (C, h, w), dtype kept
            # rescale: 8-bit [0, 255] -> [0, 1]
            x = (a.astype(np.float64) * self.rescale_factor if self.do_rescale else a).astype(np.float32)
            if self.do_normalize:
                x = (x - mean) / std  # zero mean, unit variance per channel (on the training data)
            out.append(x)
        pixel_values = np.stack(out)  # (B, C, H, W) float32
        if return_tensors == "pt":
            import torch

            pixel_values = torch.from_numpy(pixel_values)
        return BatchFeature(pixel_values=pixel_values)

    def __call__(self, images: Any, return_tensors: str | None = "np") -> BatchFeature:
        """Preprocess one image or a list of them.

        Args:
            images: a PIL image, a file path, an array ``(H, W, C)``, ``(C, H, W)`` or ``(H, W)``
                (uint8 in [0, 255] or float), a torch tensor, a batch array ``(B, ...)``, or a list
                of any of these.
            return_tensors: "np" (NumPy) or "pt" (torch) ``pixel_values``.

        Returns:
            A :class:`BatchFeature` with ``pixel_values`` of shape ``(B, C, H, W)``, float32.

        Raises:
            ValueError: an image with the wrong number of channels, pixels out of range, or
                different sizes with ``do_resize=False``; nothing is processed then.
            TypeError: an input that is not an image.
            FileNotFoundError: a path that does not exist.
        """
        return self.preprocess(images, return_tensors=return_tensors)


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an image file suffix Pillow reads."""
    return Path(path).suffix.lower() in _IMAGE_SUFFIXES


def list_images(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand directories into the image files they hold (sorted); keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f)))
        else:
            out.append(p)
    return out
