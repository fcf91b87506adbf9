"""``dinat-ref train-digits``: train the tiny digits DiNAT and write its checkpoint.

Regenerates the committed checkpoint (:mod:`dinat_ref.torch.digits` holds the data, the
model and the training loop)::

    dinat-ref train-digits --out dinat_ref/assets/digits-dinat
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["add_arguments", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults are TrainConfig's, read when the command runs (dinat-ref --help imports no torch).
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint directory (default: the committed dinat_ref/assets/digits-dinat)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training split (default 12)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seeds init, batch order and shifts (default 0)")


def run(args: argparse.Namespace) -> int:
    from dinat_ref.torch.digits import ASSET_DIR, TrainConfig, train  # torch: only when training

    chosen = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    out = ASSET_DIR if args.out is None else args.out
    start = time.perf_counter()
    model, accuracy = train(TrainConfig(**chosen))
    print(f"test accuracy {accuracy:.2%} after {time.perf_counter() - start:.0f} s")
    model.save_pretrained(out)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({size / 1e3:.0f} kB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
