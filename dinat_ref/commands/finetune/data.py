"""An image folder as a torch dataset, with the augmentation of Hugging Face's example script.

Layout (torchvision's ``ImageFolder``): one subfolder per class, the images inside; classes
are the subfolder names in sorted order, so class ``i`` is the ``i``-th name::

    data/
      cat/ 001.jpg 002.png ...
      dog/ 001.jpg ...

Augmentation as ``transformers``' ``run_image_classification.py`` example:

* train: ``RandomResizedCrop(size)`` (a random crop of 8-100% of the area, aspect ratio 3/4 to
  4/3, resized to ``size``) and a random horizontal flip, then rescale and normalize;
* validation: resize to ``size``, rescale and normalize, that is the
  :class:`~dinat_ref.hf.image_processor.DinatImageProcessor` itself, the preprocessing
  ``classify`` applies later.

The crop follows torchvision's ``RandomResizedCrop.get_params`` step by step, with Pillow and
NumPy: torchvision's wheels are built against one torch build (the CPU-only torch cannot load
the default CUDA wheel), so this module does not depend on it. Every random draw comes from a
generator seeded by ``(seed, epoch, index)``, so an image gets the same crop whatever process,
worker or batch it lands in: one process and many processes see identical inputs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from dinat_ref.hf.image_processor import DinatImageProcessor, is_image_file

__all__ = ["find_classes", "ImageFolder", "random_resized_crop_box", "stratified_split"]


def find_classes(root: str | os.PathLike) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted subfolder names) and ``(path, class_index)`` for every image file.

    Raises:
        FileNotFoundError: ``root`` is not a directory.
        ValueError: fewer than two classes, or a class folder without image files.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"finetune: data={os.fspath(root)!r} is not a directory; expected one "
                                f"subfolder per class with the images inside (data/cat/1.jpg, "
                                f"data/dog/2.png).")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise ValueError(f"finetune: data={os.fspath(root)!r} has {len(classes)} class folder(s) "
                         f"{classes}; a classifier needs at least 2 (one subfolder per class).")
    samples, empty = [], []
    for i, name in enumerate(classes):
        files = sorted(f for f in (root / name).rglob("*") if f.is_file() and is_image_file(f))
        if not files:
            empty.append(name)
        samples += [(f, i) for f in files]
    if empty:
        raise ValueError(f"finetune: class folder(s) {empty} in {os.fspath(root)!r} hold no image files "
                         f"(.png, .jpg, ...); remove them or add images.")
    return classes, samples


def stratified_split(labels: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of a train / validation split, ``round(val_fraction * n)`` of every class to validation.

    Deterministic in ``seed``; every class keeps at least one training image.
    """
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    train, val = [], []
    for c in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = min(int(round(val_fraction * len(idx))), len(idx) - 1)
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return sorted(train), sorted(val)


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params``: a crop box ``(left, top, right, bottom)``.

    Ten tries of a random area fraction in ``scale`` and a log-uniform aspect ratio in ``ratio``;
    if none fits, the largest central crop whose aspect ratio lies in ``ratio``.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height  # fallback: central crop
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


class ImageFolder(torch.utils.data.Dataset):
    """Images of some of a folder's files, preprocessed for a DiNAT.

    Args:
        samples: ``(path, class_index)`` pairs (see :func:`find_classes`).
        processor: rescales and normalizes (and, for validation, resizes).
        augment: RandomResizedCrop + horizontal flip (training), or the processor alone.
        seed: seeds the augmentation together with the epoch and the index.

    Items are ``(pixel_values (C, H, W) float32, label int64)``.
    """

    def __init__(self, samples: list[tuple[Path, int]], processor: DinatImageProcessor,
                 augment: bool = False, seed: int = 0) -> None:
        self.samples = list(samples)
        self.processor = processor
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New augmentation draws for a new epoch (call before iterating, like DistributedSampler's)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Image.Image:
        path = self.samples[index][0]
        try:
            with Image.open(path) as im:
                return im.convert({1: "L", 3: "RGB"}.get(self.processor.num_channels, "RGB"))
        except Exception as e:  # a corrupt file: name it
            raise ValueError(f"finetune: cannot read image {os.fspath(path)!r}: {e}") from e

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.load(index)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])  # same draws in any process
            box = random_resized_crop_box(image.width, image.height, rng)
            size = (self.processor.size["width"], self.processor.size["height"])
            image = image.resize(size, resample=self.processor.resample, box=box)
            if rng.random() < 0.5:
                image = ImageOps.mirror(image)  # horizontal flip
        x = self.processor(image)["pixel_values"][0]  # (C, H, W)
        return torch.from_numpy(x), torch.tensor(self.samples[index][1], dtype=torch.int64)
