"""Train a tiny DiNAT on handwritten digits, on one CPU thread, in under a minute.

The data set is scikit-learn's ``load_digits``: 1797 grayscale 8x8 digits (0-9), shipped
with the package, so nothing is downloaded. An 8x8 image is too small for DiNAT: the
patch embedding downsamples 4x, which would leave a 2x2 grid. So every digit is
upsampled (bilinear) to ``IMAGE_SIZE x IMAGE_SIZE``; the first stage then sees an
``IMAGE_SIZE/4 = 12`` grid, big enough for a 3x3 window with dilation 3.

One copy of the training code, used by ``tutorials/09_train_tiny_dinat.py`` and to
regenerate the committed checkpoint::

    dinat-ref train-digits --out dinat_ref/assets/digits-dinat

DiNAT: https://arxiv.org/abs/2209.15001. Data: the UCI optical recognition of
handwritten digits set (https://archive.ics.uci.edu/dataset/80).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dinat_ref.config import DinatConfig
from dinat_ref.torch import DinatForImageClassification

__all__ = [
    "IMAGE_SIZE", "PIXEL_MEAN", "PIXEL_STD", "BACKGROUND", "ASSET_DIR", "TrainConfig",
    "load_digits_split", "to_unit_range", "digits_model_config", "evaluate", "train",
    "load_pretrained",
]

IMAGE_SIZE = 48  # input side after upsampling the 8x8 digits (4x patch embedding -> 12x12 grid)
# Mean and std of the upsampled training digits in [0, 1] (split_seed 0), like ImageNet's
# per-channel statistics: inputs are standardized to zero mean, unit variance.
PIXEL_MEAN, PIXEL_STD = 0.305, 0.324
BACKGROUND = (0.0 - PIXEL_MEAN) / PIXEL_STD  # a blank pixel, after standardization
ASSET_NAME = "digits-dinat"


def _asset_dir() -> Path:
    return Path(str(resources.files("dinat_ref") / "assets" / ASSET_NAME))


ASSET_DIR = _asset_dir()


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------

def load_digits_split(
    image_size: int = IMAGE_SIZE, test_fraction: float = 0.25, split_seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits, upsampled, standardized, split into train and test (stratified).

    Returns:
        ``x_train (N, 1, S, S)``, ``y_train (N,)``, ``x_test (M, 1, S, S)``, ``y_test (M,)``;
        float32 images, int64 labels. The split is the same for the same ``split_seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8) in [0, 1]
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear",
                           align_corners=False)  # (1797, 1, S, S)
    images = (images - PIXEL_MEAN) / PIXEL_STD  # zero mean, unit variance
    labels = torch.tensor(digits.target, dtype=torch.int64)  # (1797,)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=digits.target,
        random_state=split_seed,
    )
    idx_train, idx_test = torch.from_numpy(idx_train), torch.from_numpy(idx_test)
    return images[idx_train], labels[idx_train], images[idx_test], labels[idx_test]


def to_unit_range(x: np.ndarray) -> np.ndarray:
    """Undo the standardization of :func:`load_digits_split` for display: [0, 1]."""
    return np.clip(x * PIXEL_STD + PIXEL_MEAN, 0.0, 1.0)


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels per axis (pad with background, crop)."""
    if max_shift == 0:
        return x
    B, C, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=BACKGROUND)  # (B, C, H + 2m, W + 2m)
    offsets = torch.randint(0, 2 * max_shift + 1, (B, 2), generator=generator)  # (B, 2)
    return torch.stack([
        padded[b, :, oy : oy + H, ox : ox + W] for b, (oy, ox) in enumerate(offsets.tolist())
    ])  # (B, C, H, W)


# ----------------------------------------------------------------------------------------
# Model and training
# ----------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """How to train (the model's shape is :func:`digits_model_config`).

    Args:
        image_size: side of the upsampled digits.
        epochs: passes over the 1347 training digits.
        batch_size: digits per step.
        lr: peak learning rate of the one-cycle schedule (warm-up, then cosine decay).
        weight_decay: AdamW decoupled weight decay.
        max_shift: random translation of each training digit, in pixels per axis.
        seed: seeds the initialization, the batch order and the shifts.
        num_threads: torch CPU threads while training (restored afterwards); None keeps the
            current setting. One by default: the matrices are tiny, and on a busy machine
            two threads that wait for each other can run many times slower than one.
    """

    image_size: int = IMAGE_SIZE
    epochs: int = 12
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.05
    max_shift: int = 2
    seed: int = 0
    num_threads: int | None = 1


def digits_model_config() -> DinatConfig:
    """A two-stage DiNAT small enough to train on a CPU in a minute or two.

    Stage 1 sees a 12x12 grid (48 / 4) and alternates NA (dilation 1) with DiNA
    (dilation 3: the 3x3 window spans 7x7 cells); stage 2 sees 6x6 and uses dilation 2.
    """
    return DinatConfig(
        num_channels=1, num_labels=10, id2label={i: str(i) for i in range(10)},
        embed_dim=32, depths=[2, 2], num_heads=[2, 4], kernel_size=3,
        dilations=[[1, 3], [1, 2]], mlp_ratio=2.0, drop_path_rate=0.0,
    )


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on images ``x (N, C, S, S)`` with labels ``y (N,)``."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size]).logits  # (b, 10)
        correct += int((logits.argmax(-1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


def train(config: TrainConfig | None = None, model_config: DinatConfig | None = None,
          progress: bool = True) -> tuple[DinatForImageClassification, float]:
    """Train a DiNAT on the digits' training split and measure it on the test split.

    Args:
        config: a :class:`TrainConfig` (defaults: the committed checkpoint's recipe).
        model_config: a :class:`~dinat_ref.config.DinatConfig` (default :func:`digits_model_config`).
        progress: show a tqdm bar with the running loss.

    Returns:
        ``(model, test_accuracy)``: the trained model in eval mode, accuracy in [0, 1].
    """
    config = config or TrainConfig()
    model_config = model_config or digits_model_config()
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        return _train(config, model_config, progress)
    finally:
        torch.set_num_threads(threads)


def _train(config: TrainConfig, model_config: DinatConfig, progress: bool
           ) -> tuple[DinatForImageClassification, float]:
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    x_train, y_train, x_test, y_test = load_digits_split(config.image_size)
    model = DinatForImageClassification(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(x_train) // config.batch_size)
    # One-cycle: warm up for the first 15% of steps, then cosine-anneal to ~0.
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.15)
    model.train()
    bar = tqdm(total=config.epochs * steps_per_epoch, desc="training", disable=not progress,
               mininterval=1.0)
    for epoch in range(config.epochs):
        order = torch.randperm(len(x_train), generator=generator)  # (N,)
        for i in range(0, len(x_train), config.batch_size):
            batch = order[i : i + config.batch_size]
            x = _random_shift(x_train[batch], config.max_shift, generator)  # (b, 1, S, S)
            loss = model(x, labels=y_train[batch]).loss  # cross-entropy over 10 digits
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    model.eval()
    return model, evaluate(model, x_test, y_test)


def load_pretrained(path: str | Path | None = None) -> DinatForImageClassification:
    """The committed digits checkpoint (or one at ``path``), in eval mode."""
    path = Path(path) if path is not None else ASSET_DIR
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"load_pretrained: no model.safetensors in {path}. Regenerate the checkpoint with "
            f"`dinat-ref train-digits --out {path}`.")
    return DinatForImageClassification.from_pretrained(path).eval()
