# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10. Fine-tune a DiNAT on your own image folder
#
# You have pictures sorted into one folder per class, and a trained DiNAT. Fine-tuning keeps
# the trained trunk (the patch embedding and every attention/MLP layer), puts a new linear
# head with one output per class on top, and trains the whole network briefly on your images.
# The result is a model directory that `dinat-ref classify` and `from_pretrained` load.
#
# Here, on a CPU in well under a minute:
#
# 1. write an image folder of handwritten digits as PNG files, under *new* class names;
# 2. look at the images through the shipped checkpoint (tutorial 5's model);
# 3. fine-tune from that checkpoint, and, for comparison, from random weights;
# 4. classify new images with the fine-tuned model.
#
# The same run from the command line, on one process or several:
#
# ```bash
# dinat-ref finetune --data my_folder --out my-model --model dinat_ref/assets/digits-dinat --no-augment
# torchrun --nproc-per-node 2 -m dinat_ref.commands.finetune --data my_folder --out my-model --model ...
# dinat-ref classify some.png --model my-model --top 3
# ```

# %%
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from dinat_ref import DinatImageProcessor
from dinat_ref.commands.classify import DEFAULT_MODEL, classify
from dinat_ref.commands.finetune.train import FinetuneConfig, finetune
from dinat_ref.torch import DinatForImageClassification
from dinat_ref.torch.digits import digits_model_config

torch.set_num_threads(1)  # tiny matrices: one thread is fastest on a busy machine
work = Path(tempfile.mkdtemp(prefix="dinat-finetune-"))

# %% [markdown]
# ## 1. An image folder
#
# The layout of torchvision's `ImageFolder`: one subfolder per class, the images inside; the
# classes are the folder names in sorted order. We take four digits from scikit-learn's set,
# only from the quarter the shipped checkpoint never trained on, and name the classes in
# words, so the new head has to learn which output means what.

# %%
digits = load_digits()
_, unseen = train_test_split(np.arange(len(digits.target)), test_size=0.25, stratify=digits.target,
                             random_state=0)  # the checkpoint's test split
classes = {"four": 4, "one": 1, "seven": 7, "zero": 0}
per_class = 30  # 24 to train on, 6 to validate with (val_split=0.2)
data = work / "data"
for name, digit in classes.items():
    (data / name).mkdir(parents=True)
    picks = [i for i in unseen if digits.target[i] == digit][:per_class]
    for j, i in enumerate(picks):
        pixels = np.round(digits.images[i] * 255 / 16).astype(np.uint8)  # 8x8, 0..16 -> 0..255
        Image.fromarray(pixels).save(data / name / f"{j:02d}.png")

for folder in sorted(data.iterdir()):
    files = sorted(folder.iterdir())
    print(f"{folder.name + '/':8s} {len(files)} files: {files[0].name}, {files[1].name}, ...")

# %% [markdown]
# ## 2. What the checkpoint sees
#
# The digits checkpoint ships with a `preprocessor_config.json`: resize to 48x48 (bilinear),
# rescale to [0, 1], normalize with the training digits' mean and std. `classify` applies it
# and prints the checkpoint's own labels, "0" to "9":

# %%
print(DinatImageProcessor.from_pretrained(DEFAULT_MODEL))
for p in classify([str(data / "seven" / "00.png"), str(data / "zero" / "00.png")], top=2):
    print(p)

# %% [markdown]
# ## 3. Fine-tune
#
# `finetune` checks every argument and the folder before it starts, keeps the trunk, and puts
# a new 4-class head on it (the line it prints names the newly initialized parameters). The
# recipe is Hugging Face's image-classification example with a cosine schedule: AdamW, a
# short linear warm-up, then cosine decay, and validation accuracy after every epoch.
#
# One setting differs from the example: `augment=False`. The example's RandomResizedCrop keeps
# as little as 8% of an image, which suits photos but wipes out an 8x8 digit; keep it on for
# photographs.
#
# For comparison, the same architecture with random weights goes through the same recipe: a
# model directory holding an untrained DinatForImageClassification.

# %%
recipe = dict(data=data, epochs=3, lr=2e-3, batch_size=16, val_split=0.2, augment=False, progress=False)
tuned = finetune(FinetuneConfig(out=work / "tuned", model=DEFAULT_MODEL, **recipe))

scratch_dir = work / "random-init"
torch.manual_seed(0)
DinatForImageClassification(digits_model_config()).save_pretrained(scratch_dir)
shutil.copy(DEFAULT_MODEL / "preprocessor_config.json", scratch_dir)
scratch = finetune(FinetuneConfig(out=work / "scratch", model=scratch_dir, **recipe))

print(f"{'epoch':>5s}  {'from the checkpoint':>20s}  {'from random weights':>20s}")
for a, b in zip(tuned.history, scratch.history, strict=True):
    print(f"{a['epoch']:5d}  {a['val_accuracy']:20.0%}  {b['val_accuracy']:20.0%}")
assert tuned.val_accuracy >= 0.9 and tuned.val_accuracy > scratch.val_accuracy

# %% [markdown]
# The trunk learned in tutorial 5 already separates digits; the new head only has to map
# them to the new names, which takes a few dozen steps. From random weights, the same
# 96 images and steps are far from enough.
#
# ## 4. The result is a model directory
#
# It holds `config.json` (with the class names in `id2label`), `model.safetensors`,
# `preprocessor_config.json`, and the state to resume from (`--resume`).

# %%
print(sorted(p.name for p in (work / "tuned").iterdir()))
model = DinatForImageClassification.from_pretrained(work / "tuned")
print(model.config.id2label)

# Digits of the four classes the run never saw (the rest of the unseen split).
new = [i for i in unseen if digits.target[i] in classes.values()][-8:]
paths = []
for i in new:
    paths.append(str(work / f"new_{i}.png"))
    Image.fromarray(np.round(digits.images[i] * 255 / 16).astype(np.uint8)).save(paths[-1])
names = {d: n for n, d in classes.items()}
predictions = classify(paths, model=work / "tuned", top=1)
for i, p in zip(new, predictions, strict=True):
    print(f"digit {digits.target[i]} ({names[digits.target[i]]:5s}) -> {p.labels[0]:5s} {p.probs[0]:.0%}")

# %%
shutil.rmtree(work)
