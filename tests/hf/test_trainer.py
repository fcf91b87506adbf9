"""``transformers.Trainer`` trains our torch classifier as it is, and its checkpoints reload.

Trainer reads ``outputs["loss"]`` during training and every other output value as the
predictions in evaluation, so this checks the outputs' dict behaviour end to end. The task is
learnable on purpose (which quadrant of the image is bright), so the loss must fall.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dinat_ref import DinatConfig  # noqa: E402
from dinat_ref.torch import DinatForImageClassification  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trainer_classes():
    try:
        from transformers import Trainer, TrainingArguments
    except Exception as e:  # noqa: BLE001 - not installed, or failing to import here
        pytest.skip(f"transformers.Trainer is not importable: {type(e).__name__}: {e}")
    return Trainer, TrainingArguments


class Quadrants(torch.utils.data.Dataset):
    """32x32 noise with one bright quadrant; the label is the quadrant (0..3)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 4, (n,), generator=g)
        self.x = torch.randn(n, 3, 32, 32, generator=g) * 0.3
        for i, q in enumerate(self.labels.tolist()):
            r, c = divmod(q, 2)
            self.x[i, :, 16 * r:16 * (r + 1), 16 * c:16 * (c + 1)] += 1.5

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.x[i], "labels": self.labels[i]}


def test_trainer_trains_evaluates_and_its_checkpoint_reloads(tmp_path):
    Trainer, TrainingArguments = _trainer_classes()
    torch.manual_seed(0)
    config = DinatConfig(embed_dim=16, depths=[1, 1], num_heads=[2, 4], kernel_size=3, dilations=[[1], [2]],
                         mlp_ratio=2.0, num_labels=4, drop_path_rate=0.0,
                         id2label={0: "top-left", 1: "top-right", 2: "bottom-left", 3: "bottom-right"})
    model = DinatForImageClassification(config)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16,
                             per_device_eval_batch_size=16, max_steps=30, learning_rate=3e-3,
                             warmup_steps=0, logging_steps=1, save_steps=30, report_to=[], use_cpu=True,
                             dataloader_num_workers=0, seed=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Quadrants(256, seed=1),
                      eval_dataset=Quadrants(32, seed=2))
    trainer.train()

    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses  # measured: 1.35 -> 1.11

    pred = trainer.predict(Quadrants(32, seed=2))
    assert isinstance(pred.predictions, np.ndarray) and pred.predictions.shape == (32, 4)  # logits only
    assert math.isfinite(pred.metrics["test_loss"])

    ckpt = tmp_path / "checkpoint-30"
    assert (ckpt / "model.safetensors").is_file()
    # Trainer writes only the weights for a model that is not a transformers PreTrainedModel
    reloaded = DinatForImageClassification.from_pretrained(ckpt, config=config)
    x = Quadrants(8, seed=3).x
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x).logits, rtol=0, atol=1e-6)
    # and save_pretrained writes a directory that reloads on its own, labels included
    model.save_pretrained(tmp_path / "final")
    again = DinatForImageClassification.from_pretrained(tmp_path / "final")
    assert again.config.id2label[3] == "bottom-right"
