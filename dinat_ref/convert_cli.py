"""``dinat-ref convert``: an original SHI-Labs NAT/DiNAT checkpoint -> a Hugging Face model directory.

The checkpoint (``.pth`` read with ``torch.load(weights_only=True)``, or ``.safetensors``) is
renamed to Hugging Face's names (:func:`dinat_ref.weights.convert_shi_labs`: fused ``qkv``
split, ``gamma1/gamma2`` stacked into ``layer_scale_parameters``, ...), checked against the
config, and written as ``config.json`` + ``model.safetensors``, which both
``dinat_ref.numpy.DinatForImageClassification.from_pretrained`` and the torch model load.

Dilations are not stored in a checkpoint; give ``--preset`` or ``--config``, or let the
architecture read off the shapes pick the one preset that fits.

    dinat-ref convert dinat_mini_in1k_224.pth out/dinat-mini --preset mini
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="SHI-Labs checkpoint (.pth/.pt/.bin or .safetensors)")
    parser.add_argument("output", help="directory to write config.json and model.safetensors into")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--preset", help="architecture preset (mini, tiny, small, base, large, large-384, "
                                      "large-11x11-384); default: the preset whose shapes fit")
    src.add_argument("--config", help="a config.json giving the architecture (dilations included)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite files in a non-empty output directory")


def run(args: argparse.Namespace) -> int:
    from dinat_ref.config import DinatConfig
    from dinat_ref.weights import (
        check_state_dict,
        convert_shi_labs,
        expected_shapes,
        infer_shi_labs_config,
        load_shi_labs_checkpoint,
        save_state_dict,
    )

    if os.path.isdir(args.output) and os.listdir(args.output) and not args.force:
        raise SystemExit(f"dinat-ref convert: output directory {args.output!r} is not empty; "
                         f"pass --force to overwrite.")
    original = load_shi_labs_checkpoint(args.checkpoint, framework="numpy")
    state_dict = convert_shi_labs(original)
    if args.config:
        config = DinatConfig.from_json_file(args.config)
    elif args.preset:
        head = original.get("head.weight")
        config = DinatConfig.from_preset(args.preset, num_labels=0 if head is None else head.shape[0])
    else:
        config = infer_shi_labs_config(original)
    # Every key and shape must fit before anything is written.
    check_state_dict(state_dict, expected_shapes(config, "classification"), where="dinat-ref convert")
    os.makedirs(args.output, exist_ok=True)
    config.extra["architectures"] = ["DinatForImageClassification"]
    config.save_pretrained(args.output)
    save_state_dict(state_dict, os.path.join(args.output, "model.safetensors"))
    n = sum(v.size for v in state_dict.values())
    print(f"converted {len(original)} tensors -> {len(state_dict)} Hugging Face tensors ({n / 1e6:.2f}M "
          f"parameters) into {args.output}")
    return 0
