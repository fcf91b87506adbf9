"""``dinat-ref convert``: an original SHI-Labs NAT/DiNAT checkpoint -> a Hugging Face model directory.

The checkpoint (``.pth`` read with ``torch.load(weights_only=True)``, or ``.safetensors``) is
renamed to Hugging Face's names (:func:`dinat_ref.hf.weights.convert_shi_labs`: fused ``qkv``
split, ``gamma1/gamma2`` stacked into ``layer_scale_parameters``, ...), checked against the
config, and written as ``config.json`` + ``model.safetensors``, which both
``dinat_ref.numpy.DinatForImageClassification.from_pretrained`` and the torch model load.
The directory is written all or nothing; a bad command line (missing checkpoint, output that
is a file, unknown preset, missing ``--config``) exits with status 2 and a one-line message
before any work.

Dilations are not stored in a checkpoint; give ``--preset`` or ``--config``, or let the
architecture read off the shapes pick the one preset that fits.

    dinat-ref convert dinat_mini_in1k_224.pth out/dinat-mini --preset mini
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="SHI-Labs checkpoint (.pth/.pt/.bin or .safetensors)")
    parser.add_argument("output", help="directory to write config.json and model.safetensors into")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--preset", help="architecture preset (mini, tiny, small, base, large, large-384, "
                                      "large-11x11-384); default: the preset whose shapes fit")
    src.add_argument("--config", help="a config.json giving the architecture (dilations included)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite files in a non-empty output directory")


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, found before any conversion work (or None)."""
    from dinat_ref.config import preset_names

    if not os.path.exists(args.checkpoint):
        return f"checkpoint {args.checkpoint!r} does not exist."
    if not os.path.isfile(args.checkpoint):
        return f"checkpoint {args.checkpoint!r} is not a file."
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        return f"output {args.output!r} is a file; give a directory to write the model into."
    if os.path.isdir(args.output) and os.listdir(args.output) and not args.force:
        return f"output directory {args.output!r} is not empty; pass --force to overwrite."
    if args.preset is not None and args.preset not in preset_names():
        return f"unknown preset {args.preset!r}; choose one of {', '.join(preset_names())}."
    if args.config is not None and not os.path.isfile(args.config):
        return f"--config {args.config!r} does not exist."
    return None


def _config(args: argparse.Namespace, original: dict):
    from dinat_ref.config import DinatConfig
    from dinat_ref.hf.weights import infer_shi_labs_config

    if args.config:
        return DinatConfig.from_json_file(args.config)
    if args.preset:
        head = original.get("head.weight")
        return DinatConfig.from_preset(args.preset, num_labels=0 if head is None else head.shape[0])
    return infer_shi_labs_config(original)


def run(args: argparse.Namespace) -> int:
    """Convert; exit status 2 for a bad command line, 1 for a checkpoint that does not convert.

    Every message is one line on stderr. The output directory is written all or nothing
    (weights, then config, each through a temporary file and a rename).
    """
    from dinat_ref.hf.weights import (
        StateDictError,
        check_state_dict,
        convert_shi_labs,
        expected_shapes,
        load_shi_labs_checkpoint,
        save_pretrained,
    )

    problem = _usage_error(args)
    if problem is not None:
        print(f"dinat-ref convert: {problem}", file=sys.stderr)
        return 2
    try:
        original = load_shi_labs_checkpoint(args.checkpoint, framework="numpy")
        state_dict = convert_shi_labs(original)
        config = _config(args, original)
        # Every key and shape must fit before anything is written.
        check_state_dict(state_dict, expected_shapes(config, "classification"), where="dinat-ref convert")
    except (StateDictError, ValueError, KeyError, OSError) as e:
        message = " ".join(str(e).split())  # one line
        print(f"dinat-ref convert: {args.checkpoint!r} does not convert: {message}", file=sys.stderr)
        return 1
    save_pretrained(args.output, config, state_dict, architecture="DinatForImageClassification")
    n = sum(v.size for v in state_dict.values())
    print(f"converted {len(original)} tensors -> {len(state_dict)} Hugging Face tensors ({n / 1e6:.2f}M "
          f"parameters) into {args.output}")
    return 0
