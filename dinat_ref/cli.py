"""The ``dinat-ref`` command line.

Each subcommand is a module of :mod:`dinat_ref.commands` that defines
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches, so
``dinat-ref --help`` stays fast and never imports torch or matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module in dinat_ref.commands, one-line help). Imported lazily, only for the chosen command.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "tour": ("tour", "the main job: a short tour (neighborhood, cross-checks, timings, figures)"),
    "neighborhood": ("neighborhood", "print a query's neighborhood on a grid in the terminal"),
    "convert": ("convert", "convert a SHI-Labs DiNAT checkpoint to a Hugging Face directory"),
    "verify": ("verify", "check an NA kernel against the float64 reference, with a diagnosis"),
    "figures": ("figures", "regenerate every figure (PNG) in figures/ or --out DIR"),
    "classify": ("classify", "top-k labels of images with a model directory (default: digits)"),
    "finetune": ("finetune", "fine-tune a classifier on an image folder (one or many processes)"),
    "explore": ("explore", "write the interactive explorer of the rule, one offline HTML page"),
    "train-digits": ("train_digits", "train the tiny digits DiNAT and write its checkpoint"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dinat-ref",
        description="Neighborhood attention, dilated NA and DiNAT: explained, drawn and checked.",
    )
    from dinat_ref import __version__

    parser.add_argument("--version", action="version", version=f"dinat-ref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=f"dinat_ref.commands.{module}")
        # Arguments are declared by the module; import it only to read them.
        importlib.import_module(f"dinat_ref.commands.{module}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["tour"]  # the built-in default: `dinat-ref` alone runs the tour
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
