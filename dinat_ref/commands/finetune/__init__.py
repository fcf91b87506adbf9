"""``dinat-ref finetune``: fine-tune a DiNAT classifier on an image folder.

One process::

    dinat-ref finetune --data photos/ --out my-dinat --model dinat_ref/assets/digits-dinat --epochs 3

Many processes (DistributedDataParallel; gloo on CPU, nccl on CUDA)::

    torchrun --nproc-per-node 4 -m dinat_ref.commands.finetune --data photos/ --out my-dinat --preset mini

The training code is :mod:`dinat_ref.commands.finetune.train`, the data pipeline
:mod:`dinat_ref.commands.finetune.data`. This module only parses arguments, so ``dinat-ref --help``
never imports torch.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="image folder: one subfolder per class")
    parser.add_argument("--out", required=True, help="model directory to write (empty, or use --resume)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--model", help="start from this model directory (its trunk; a new head per class)")
    src.add_argument("--preset", help="start from a randomly initialized preset (mini, tiny, ...)")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training split (default 3)")
    parser.add_argument("--lr", type=float, default=5e-5, help="peak AdamW learning rate (default 5e-5)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="global batch, summed over processes (default 32)")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default 0.05)")
    parser.add_argument("--warmup-ratio", type=float, default=0.1,
                        help="fraction of steps of linear warm-up before the cosine decay (default 0.1)")
    parser.add_argument("--max-grad-norm", type=float, default=1.0,
                        help="clip the gradient norm (default 1.0; 0 = off)")
    parser.add_argument("--val-split", type=float, default=0.15,
                        help="fraction of each class held out for validation (default 0.15)")
    parser.add_argument("--seed", type=int, default=0, help="seeds split, head init, order, augmentation")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side (default: the model's preprocessor_config.json, or the preset's)")
    parser.add_argument("--no-augment", action="store_true",
                        help="no RandomResizedCrop / flip: train on the resized images")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader workers per process (default 0)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from dinat_ref.commands.finetune.train import FinetuneConfig, finetune

    cfg = FinetuneConfig(
        data=args.data, out=args.out, model=args.model, preset=args.preset, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio,
        max_grad_norm=args.max_grad_norm, val_split=args.val_split, seed=args.seed,
        image_size=args.image_size, augment=not args.no_augment, resume=args.resume,
        num_workers=args.num_workers, device=args.device, progress=not args.no_progress)
    try:
        result = finetune(cfg)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"dinat-ref finetune: {e}") from None
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {result.out} (classes {result.classes})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dinat_ref.commands.finetune`` and ``torchrun -m ...`` (the same module)."""
    parser = argparse.ArgumentParser(prog="python -m dinat_ref.commands.finetune",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(sys.argv[1:] if argv is None else argv))
