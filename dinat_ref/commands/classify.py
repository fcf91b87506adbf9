"""``dinat-ref classify``: images in, top-k labels with probabilities out.

A model directory holds ``config.json`` (with ``id2label``), the weights and
``preprocessor_config.json``; :class:`~dinat_ref.hf.image_processor.DinatImageProcessor` turns the
images into ``pixel_values``, the classifier gives logits, softmax gives probabilities::

    dinat-ref classify seven.png cat.jpg --model my-dinat --top 3
    dinat-ref classify digits/ --numpy            # a folder: every image in it; NumPy model

Without ``--model`` the shipped digits checkpoint (``dinat_ref/assets/digits-dinat``, trained
by tutorial 5) is used: 48x48 grayscale, a light digit on a dark background.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dinat_ref.hf.image_processor import PREPROCESSOR_CONFIG_NAME, DinatImageProcessor, list_images

__all__ = ["DEFAULT_MODEL", "Prediction", "classify", "softmax", "add_arguments", "run"]

DEFAULT_MODEL = Path(str(resources.files("dinat_ref") / "assets" / "digits-dinat"))


@dataclass
class Prediction:
    """The top-k labels of one image.

    Args:
        image: the image's name (its path, or ``images[i]`` for in-memory images).
        labels: label names, most probable first (from the config's ``id2label``).
        ids: class indices, in the same order.
        probs: softmax probabilities, in the same order.
    """

    image: str
    labels: list[str]
    ids: list[int]
    probs: list[float]

    def __str__(self) -> str:
        lines = [self.image]
        lines += [f"  {p:7.2%}  {label}" for label, p in zip(self.labels, self.probs, strict=True)]
        return "\n".join(lines)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum so ``exp`` never overflows."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _check_model_dir(model: str | os.PathLike) -> Path:
    path = Path(model)
    if not path.is_dir():
        raise FileNotFoundError(f"classify: model={os.fspath(model)!r} is not a directory; expected a "
                                f"model directory with config.json, model.safetensors and "
                                f"{PREPROCESSOR_CONFIG_NAME}.")
    for name in ("config.json", PREPROCESSOR_CONFIG_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(f"classify: model={os.fspath(model)!r} has no {name}; a model directory "
                                    f"written by `dinat-ref finetune` or save_pretrained has one"
                                    + (" (write one with DinatImageProcessor(...).save_pretrained(dir))."
                                       if name == PREPROCESSOR_CONFIG_NAME else "."))
    return path


def classify(images: Any, model: str | os.PathLike = DEFAULT_MODEL, top: int = 5,
             framework: str = "torch", batch_size: int = 32) -> list[Prediction]:
    """Classify images with a model directory.

    Args:
        images: a list of file paths, directories (every image file inside), PIL images or arrays.
        model: a model directory (``config.json``, weights, ``preprocessor_config.json``).
        top: labels per image (at most ``num_labels``).
        framework: "torch" or "numpy" (the NumPy reference model; no torch needed).
        batch_size: images per forward pass.

    Returns:
        One :class:`Prediction` per image, in input order.

    Raises:
        ValueError: bad ``top``, ``framework``, ``batch_size``, no images, or a config without a
            classifier (``num_labels=0``); raised before any image is read.
        FileNotFoundError: a missing model directory, file, or image.
    """
    from dinat_ref.config import DinatConfig

    if framework not in ("torch", "numpy"):
        raise ValueError(f"classify: framework={framework!r} must be 'torch' or 'numpy'.")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"classify: top={top!r} must be a positive integer.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"classify: batch_size={batch_size!r} must be a positive integer.")
    path = _check_model_dir(model)
    config = DinatConfig.from_pretrained(path)
    if config.num_labels < 1:
        raise ValueError(f"classify: {os.fspath(model)!r} has num_labels=0 (no classifier head).")
    processor = DinatImageProcessor.from_pretrained(path)
    if processor.num_channels != config.num_channels:
        raise ValueError(f"classify: {PREPROCESSOR_CONFIG_NAME} normalizes {processor.num_channels} "
                         f"channel(s) but the model takes num_channels={config.num_channels}.")
    if not isinstance(images, (list, tuple)):
        images = [images]
    if all(isinstance(im, (str, os.PathLike)) for im in images):
        files = list_images(images)
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"classify: no such image file(s): {', '.join(missing)}.")
        images, names = list(files), [str(f) for f in files]
    else:
        names = [f"images[{i}]" for i in range(len(images))]
    if not images:
        raise ValueError("classify: no images given (a directory with no image files?).")
    top = min(top, config.num_labels)
    id2label = config.id2label or {i: f"LABEL_{i}" for i in range(config.num_labels)}

    if framework == "numpy":
        import dinat_ref.numpy as dn

        net = dn.DinatForImageClassification.from_pretrained(path)
        forward = lambda x: np.asarray(net(x).logits)  # (b, num_labels)
    else:
        import torch

        import dinat_ref.torch as dt

        net = dt.DinatForImageClassification.from_pretrained(path).eval()

        def forward(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():  # not inference_mode: backends cache index tables reused by training
                return net(torch.from_numpy(x)).logits.float().numpy()  # (b, num_labels)

    out = []
    for i in range(0, len(images), batch_size):
        x = processor(images[i:i + batch_size])["pixel_values"]  # (b, C, H, W)
        probs = softmax(forward(x).astype(np.float64))  # (b, num_labels)
        for j, p in enumerate(probs):
            order = np.argsort(-p, kind="stable")[:top]
            out.append(Prediction(image=names[i + j], labels=[id2label[int(k)] for k in order],
                                  ids=[int(k) for k in order], probs=[float(p[k]) for k in order]))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    parser.add_argument("--model", default=str(DEFAULT_MODEL),
                        help="model directory: config.json, weights, preprocessor_config.json "
                             "(default: the shipped digits checkpoint)")
    parser.add_argument("--top", type=int, default=5, help="labels per image (default 5)")
    parser.add_argument("--numpy", action="store_true", help="run the NumPy reference model instead of torch")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")


def run(args: argparse.Namespace) -> int:
    try:
        predictions = classify(args.images, model=args.model, top=args.top,
                               framework="numpy" if args.numpy else "torch", batch_size=args.batch_size)
    except (ValueError, FileNotFoundError, TypeError) as e:
        raise SystemExit(f"dinat-ref classify: {e}") from None
    for p in predictions:
        print(p)
    return 0
