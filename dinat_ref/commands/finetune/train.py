"""Fine-tune a DiNAT classifier on an image folder, on one process or many (torchrun).

Recipe (as Hugging Face's image-classification example, with a cosine schedule):

* model: a checkpoint's trunk with a new head of one output per class (kept when the
  checkpoint's labels are exactly the folder's classes), or a preset from scratch;
* AdamW (decoupled weight decay), learning rate warmed up linearly for ``warmup_ratio`` of
  the steps, then cosine-annealed to 0; gradients clipped to norm ``max_grad_norm``;
* cross-entropy on RandomResizedCrop + flip augmented images; top-1 accuracy on the held-out
  validation split after every epoch.

Many processes: ``torchrun --nproc-per-node N -m dinat_ref.commands.finetune ...`` starts N copies;
each joins the process group (gloo on CPU, nccl on CUDA), wraps the model in
DistributedDataParallel and reads its own shard of every global batch through a
DistributedSampler. DDP averages the gradients, so with ``--batch-size B`` (the *global*
batch, ``B / N`` per process) N processes take the same steps as one process with batch B.
Rank 0 alone shows progress and writes checkpoints. On CUDA the forward runs under bf16
autocast (weights and optimizer stay float32).

Output directory (after every epoch): ``config.json`` (with ``id2label``), ``model.safetensors``,
``preprocessor_config.json`` (what ``dinat-ref classify`` and ``from_pretrained`` load),
``training_state.pt`` (optimizer, scheduler, epoch, RNG: ``--resume`` continues from it) and
``trainer_state.json`` (per-epoch loss and accuracy).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dinat_ref.commands.finetune.data import ImageFolder, find_classes, stratified_split
from dinat_ref.config import PRESET_RESULTS, DinatConfig, preset_names
from dinat_ref.hf.image_processor import PREPROCESSOR_CONFIG_NAME, DinatImageProcessor
from dinat_ref.hf.weights import load_state_dict
from dinat_ref.torch import DinatForImageClassification

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "validate"]

STATE_NAME = "training_state.pt"
LOG_NAME = "trainer_state.json"
# Settings that must not change between a run and its --resume.
_RESUME_KEYS = ("lr", "batch_size", "weight_decay", "warmup_ratio", "val_split", "seed", "augment",
                "max_grad_norm")


@dataclass
class FinetuneConfig:
    """What to fine-tune on, and how.

    Args:
        data: image folder, one subfolder per class.
        out: output model directory (created; must be empty unless ``resume``).
        model: model directory to start from (``config.json`` + weights); or give ``preset``.
        preset: a :func:`~dinat_ref.config.preset_names` architecture, randomly initialized.
        epochs: passes over the training split.
        lr: peak learning rate (AdamW).
        batch_size: global batch: summed over all processes.
        weight_decay: AdamW decoupled weight decay.
        warmup_ratio: fraction of the steps with a linear warm-up, before the cosine decay.
        max_grad_norm: clip the gradient norm to this (0 = no clipping).
        val_split: fraction of every class held out for validation (0 = none).
        seed: seeds the split, the head's init, the batch order and the augmentation.
        image_size: side of the model's input; default the model's preprocessor (or the preset's).
        augment: RandomResizedCrop + horizontal flip on training images.
        resume: continue the run in ``out`` from its last finished epoch.
        num_workers: DataLoader worker processes per training process.
        device: "auto" (CUDA if available), "cpu" or "cuda".
        progress: show tqdm progress bars (rank 0 only).
    """

    data: str | os.PathLike
    out: str | os.PathLike
    model: str | os.PathLike | None = None
    preset: str | None = None
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    val_split: float = 0.15
    seed: int = 0
    image_size: int | None = None
    augment: bool = True
    resume: bool = False
    num_workers: int = 0
    device: str = "auto"
    progress: bool = True


@dataclass
class FinetuneResult:
    """What a run produced.

    Args:
        out: the model directory written.
        classes: class names, index order.
        history: one dict per epoch: ``epoch``, ``train_loss``, ``val_accuracy`` (None without a
            validation split), ``val_loss``, ``seconds``.
        newly_initialized: parameter names that did not come from the checkpoint (the new head).
    """

    out: Path
    classes: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    newly_initialized: list[str] = field(default_factory=list)

    @property
    def val_accuracy(self) -> float | None:
        """The last epoch's validation accuracy."""
        return self.history[-1]["val_accuracy"] if self.history else None


# ----------------------------------------------------------------------------------------
# Arguments: all checked before any work
# ----------------------------------------------------------------------------------------

def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def validate(cfg: FinetuneConfig) -> tuple[list[str], list]:
    """Check every setting and the data; return ``(classes, samples)``.

    Raises:
        ValueError: a bad setting, a bad preset, fewer than 2 classes, ...
        FileNotFoundError: a missing data folder, model directory or resume state.
    """
    w = "finetune"
    if cfg.model is not None and cfg.preset is not None:
        raise ValueError(f"{w}: model={os.fspath(cfg.model)!r} and preset={cfg.preset!r} both given; "
                         f"choose one.")
    if cfg.model is None and cfg.preset is None and not cfg.resume:
        raise ValueError(f"{w}: give exactly one of model= (a checkpoint directory) and preset= "
                         f"(one of {preset_names()}).")
    if cfg.preset is not None and cfg.preset not in preset_names():
        raise ValueError(f"{w}: preset={cfg.preset!r} is not a preset; choose from {preset_names()}.")
    if cfg.model is not None:
        m = Path(cfg.model)
        if not (m / "config.json").is_file():
            raise FileNotFoundError(f"{w}: model={os.fspath(cfg.model)!r} is not a model directory (no "
                                    f"config.json).")
    for name in ("epochs", "batch_size"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{w}: {name}={v!r} must be a positive integer.")
    if not isinstance(cfg.num_workers, int) or cfg.num_workers < 0:
        raise ValueError(f"{w}: num_workers={cfg.num_workers!r} must be an integer >= 0.")
    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"{w}: lr={cfg.lr!r} must be a positive number.")
    if not (isinstance(cfg.weight_decay, (int, float)) and cfg.weight_decay >= 0):
        raise ValueError(f"{w}: weight_decay={cfg.weight_decay!r} must be >= 0.")
    if not (isinstance(cfg.max_grad_norm, (int, float)) and cfg.max_grad_norm >= 0):
        raise ValueError(f"{w}: max_grad_norm={cfg.max_grad_norm!r} must be >= 0 (0 = no clipping).")
    if not (isinstance(cfg.warmup_ratio, (int, float)) and 0 <= cfg.warmup_ratio < 1):
        raise ValueError(f"{w}: warmup_ratio={cfg.warmup_ratio!r} must lie in [0, 1).")
    if not (isinstance(cfg.val_split, (int, float)) and 0 <= cfg.val_split < 1):
        raise ValueError(f"{w}: val_split={cfg.val_split!r} must lie in [0, 1) (0 = no validation).")
    if cfg.image_size is not None and (not isinstance(cfg.image_size, int) or cfg.image_size < 4):
        raise ValueError(f"{w}: image_size={cfg.image_size!r} must be an integer >= 4 (the patch "
                         f"embedding downsamples 4x).")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{w}: device={cfg.device!r} must be 'auto', 'cpu' or 'cuda'.")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{w}: device='cuda' but torch sees no CUDA device.")
    world = _world_size()
    if cfg.batch_size % world:
        raise ValueError(f"{w}: batch_size={cfg.batch_size} is the global batch and must be divisible by "
                         f"the {world} processes (each takes batch_size / {world}).")
    out = Path(cfg.out)
    if cfg.resume:
        if not (out / STATE_NAME).is_file():
            raise FileNotFoundError(f"{w}: resume=True but {os.fspath(out)!r} has no {STATE_NAME} to "
                                    f"resume from; drop --resume to start a new run.")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{w}: out={os.fspath(out)!r} exists and is not empty; pass --resume to continue "
                         f"the run there, or choose another directory.")
    classes, samples = find_classes(cfg.data)
    return classes, samples


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------

def _classifier_from_checkpoint(path: str | os.PathLike, id2label: dict[int, str]
                                ) -> tuple[DinatForImageClassification, list[str]]:
    """A classifier with the checkpoint's trunk and a head for ``id2label``.

    The head is kept when the checkpoint was trained on exactly these labels; for any other
    labels it is left out of the weights handed to ``from_pretrained``, which then initialises
    it (Hugging Face's init) and names it, even when the old head happens to have the same size.
    Every trunk weight must be in the checkpoint with the right shape; otherwise nothing loads
    and the error names every missing, unexpected and mis-shaped key.

    Returns:
        ``(model, newly_initialized_parameter_names)``.
    """
    config = DinatConfig.from_pretrained(path)
    old_labels = config.id2label or {i: f"LABEL_{i}" for i in range(config.num_labels)}
    keep_head = old_labels == dict(id2label)
    state_dict = None
    if not keep_head:  # other classes: a fresh head, not the old classes' weights relabelled
        state_dict = {k: v for k, v in load_state_dict(path, "torch").items()
                      if not k.startswith("classifier.")}
    model, info = DinatForImageClassification.from_pretrained(
        path, state_dict=state_dict, output_loading_info=True, num_labels=len(id2label),
        id2label=dict(id2label), label2id={name: i for i, name in id2label.items()})
    return model, sorted(info["missing_keys"])


def _processor_for(cfg: FinetuneConfig, config: DinatConfig) -> DinatImageProcessor:
    """The model's own preprocessing, or the hub checkpoints' ImageNet one; ``image_size`` overrides."""
    if cfg.model is not None and (Path(cfg.model) / PREPROCESSOR_CONFIG_NAME).is_file():
        processor = DinatImageProcessor.from_pretrained(cfg.model)
    elif config.num_channels == 3:
        size = PRESET_RESULTS[cfg.preset]["resolution"] if cfg.preset else 224
        processor = DinatImageProcessor.imagenet(size)
    else:
        raise ValueError(f"finetune: model={os.fspath(cfg.model)!r} takes {config.num_channels} "
                         f"channel(s) and has no {PREPROCESSOR_CONFIG_NAME}; add one (DinatImageProcessor("
                         f"...).save_pretrained(dir)) so the images are prepared as in its training.")
    if cfg.image_size is not None:
        processor = dataclasses.replace(processor, size=cfg.image_size)
    if processor.num_channels != config.num_channels:
        raise ValueError(f"finetune: {PREPROCESSOR_CONFIG_NAME} normalizes {processor.num_channels} "
                         f"channel(s), the model takes num_channels={config.num_channels}.")
    return processor


def _cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
                        ) -> torch.optim.lr_scheduler.LambdaLR:
    """lr * min(step / warmup, 1/2 (1 + cos(pi * progress))): linear warm-up, then cosine to 0."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------

@torch.no_grad()
def _evaluate(model: torch.nn.Module, dataset: ImageFolder, batch_size: int, device: torch.device,
              rank: int, world: int, autocast: bool) -> tuple[float, float]:
    """(accuracy, mean loss) over ``dataset``; each process takes every ``world``-th image."""
    was_training = model.training
    model.eval()
    indices = list(range(rank, len(dataset), world))
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # correct, loss sum, count
    for i in range(0, len(indices), batch_size):
        items = [dataset[j] for j in indices[i:i + batch_size]]
        x = torch.stack([it[0] for it in items]).to(device)  # (b, C, H, W)
        y = torch.stack([it[1] for it in items]).to(device)  # (b,)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x).logits.float()  # (b, num_labels)
        totals[0] += (logits.argmax(-1) == y).sum()
        totals[1] += torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        totals[2] += len(y)
    if world > 1:
        dist.all_reduce(totals)
    model.train(was_training)
    return float(totals[0] / totals[2]), float(totals[1] / totals[2])


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def finetune(cfg: FinetuneConfig) -> FinetuneResult:
    """Fine-tune as ``cfg`` says; see the module docstring. Works alone or under torchrun.

    Returns:
        A :class:`FinetuneResult` (on every rank; only rank 0 writes files).

    Raises:
        ValueError, FileNotFoundError: from :func:`validate`, before any work.
    """
    classes, samples = validate(cfg)
    world, rank = _world_size(), int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    started_group = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        started_group = True
    try:
        return _finetune(cfg, classes, samples, world, rank, device)
    finally:
        if started_group:
            dist.destroy_process_group()


def _finetune(cfg: FinetuneConfig, classes: list[str], samples: list, world: int, rank: int,
              device: torch.device) -> FinetuneResult:
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    id2label = dict(enumerate(classes))
    torch.manual_seed(cfg.seed)  # the new head's init: the same on every rank
    state = None
    newly_initialized: list[str] = []
    if cfg.resume:
        state = torch.load(out / STATE_NAME, map_location="cpu", weights_only=True)
        changed = [f"{k}: {state['settings'][k]!r} -> {getattr(cfg, k)!r}" for k in _RESUME_KEYS
                   if state["settings"][k] != getattr(cfg, k)]
        if changed:
            raise ValueError(f"finetune: resume with other settings than the run in {os.fspath(out)!r}: "
                             f"{'; '.join(changed)}.")
        model = DinatForImageClassification.from_pretrained(out)
        if model.config.id2label != id2label:
            raise ValueError(f"finetune: the run in {os.fspath(out)!r} has classes "
                             f"{list((model.config.id2label or {}).values())}, "
                             f"data={os.fspath(cfg.data)!r} has {classes}.")
        processor = DinatImageProcessor.from_pretrained(out)
    elif cfg.preset is not None:
        config = DinatConfig.from_preset(cfg.preset, num_labels=len(classes), id2label=id2label)
        model = DinatForImageClassification(config)
        newly_initialized = [n for n, _ in model.named_parameters()]
        processor = _processor_for(cfg, config)
    else:
        model, newly_initialized = _classifier_from_checkpoint(cfg.model, id2label)
        processor = _processor_for(cfg, model.config)
    model.to(device).train()

    train_idx, val_idx = stratified_split([c for _, c in samples], cfg.val_split, cfg.seed)
    train_set = ImageFolder([samples[i] for i in train_idx], processor, augment=cfg.augment, seed=cfg.seed)
    val_set = ImageFolder([samples[i] for i in val_idx], processor, augment=False)
    per_rank = cfg.batch_size // world
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                                  seed=cfg.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=per_rank, sampler=sampler,
                                         num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    steps_per_epoch = len(loader)
    total_steps = cfg.epochs * steps_per_epoch
    # fused: one kernel over all parameters (on CPU about 3x faster than the per-tensor loop)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    scheduler = _cosine_with_warmup(optimizer, total_steps, int(cfg.warmup_ratio * total_steps))
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"], json.loads(state["history"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
    autocast = device.type == "cuda"  # bf16 activations; float32 weights, grads and optimizer
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if rank == 0 and newly_initialized and cfg.model is not None:
        print(f"finetune: new head for {len(classes)} classes {classes}; newly initialized: "
              f"{', '.join(newly_initialized)}")
    show = cfg.progress and rank == 0
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)  # loss * n, n
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not show, leave=True)
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # (b, C, H, W), (b,)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = net(x, labels=y).loss  # cross-entropy, mean over this process's images
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP: gradients averaged over processes here
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            n = torch.tensor(len(y), dtype=torch.float64, device=device)
            loss_sum += torch.stack([loss.detach().double() * n, n])
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False)
        if world > 1:
            dist.all_reduce(loss_sum)
        record = {"epoch": epoch + 1, "train_loss": float(loss_sum[0] / loss_sum[1]),
                  "val_accuracy": None, "val_loss": None}
        if len(val_set):
            record["val_accuracy"], record["val_loss"] = _evaluate(
                model, val_set, per_rank * 2, device, rank, world, autocast)
        record["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(record)
        if rank == 0:
            acc = "" if record["val_accuracy"] is None else (
                f", val accuracy {record['val_accuracy']:.2%} ({len(val_set)} images)")
            print(f"epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f}{acc}", flush=True)
            _save(model, processor, optimizer, scheduler, epoch + 1, history, cfg, out, device)
        if world > 1:
            dist.barrier()  # no process runs ahead of the checkpoint
    return FinetuneResult(out=out, classes=classes, history=history, newly_initialized=newly_initialized)


def _save(model: DinatForImageClassification, processor: DinatImageProcessor,
          optimizer: torch.optim.Optimizer, scheduler: Any, epoch: int, history: list[dict[str, Any]],
          cfg: FinetuneConfig, out: Path, device: torch.device) -> None:
    """The model directory, then the resume state (written last, atomically)."""
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / LOG_NAME).write_text(json.dumps({"history": history, "settings": {
        k: v for k, v in dataclasses.asdict(cfg).items() if not isinstance(v, os.PathLike)}},
        indent=2, default=str) + "\n")
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
             "history": json.dumps(history), "rng": torch.get_rng_state(),
             "settings": {k: getattr(cfg, k) for k in _RESUME_KEYS}}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    _atomic_torch_save(state, out / STATE_NAME)
