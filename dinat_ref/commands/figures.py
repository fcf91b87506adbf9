"""``dinat-ref figures [--out DIR]``: regenerate every figure, deterministically.

Every figure in ``figures/`` is made by one function ``make(out_dir) -> path`` listed in
:data:`FIGURES`. To add a figure, add one entry: either the function itself, or a
``"module:function"`` string that is imported only when the figure is made (so this
module, and ``dinat-ref --help``, never import matplotlib or torch).

Determinism: figures are drawn with matplotlib's default style (whatever the user's
matplotlibrc says), with the Agg backend, at a fixed dpi, and without the
``Software`` PNG tag (which carries the matplotlib version); nothing here is random.
Figure functions that use randomness must seed it themselves.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FIGURES", "save_figure", "generate", "add_arguments", "run"]

FigureMaker = Callable[[Path], Path] | str


def save_figure(fig: Any, out_dir: str | Path, name: str) -> Path:
    """:func:`dinat_ref.viz.style.save_figure`, imported only when a figure is saved (no matplotlib
    for ``dinat-ref --help``)."""
    from dinat_ref.viz.style import save_figure as save

    return save(fig, out_dir, name)


# ----------------------------------------------------------------------------------------
# Neighborhoods (dinat_ref.viz.windows)
# ----------------------------------------------------------------------------------------

def neighborhood_dina_corner(out_dir: Path) -> Path:
    """DiNA on a 9x12 grid, a corner query: dilation groups and the inward shift."""
    from dinat_ref.viz.windows import plot_neighborhood

    return save_figure(plot_neighborhood((9, 12), (0, 11), kernel_size=3, dilation=2), out_dir,
                       "neighborhood_dina_corner")


def neighborhood_panel_na(out_dir: Path) -> Path:
    """NA k=5 on a non-square 9x12 grid: corner, edge, middle, corner."""
    from dinat_ref.viz.windows import plot_neighborhood_panel

    return save_figure(plot_neighborhood_panel((9, 12), kernel_size=5), out_dir, "neighborhood_panel_na")


def neighborhood_panel_dina_1d(out_dir: Path) -> Path:
    """DiNA k=3, d=3 on 17 tokens (not divisible by 3), with RPB indices."""
    from dinat_ref.viz.windows import plot_neighborhood_panel

    fig = plot_neighborhood_panel(17, [0, 1, 2, 8, 15, 16], kernel_size=3, dilation=3, show_rpb=True,
                                  suptitle="DiNA, k=3, d=3 on 17 tokens (groups of 6, 6, 5); "
                                           "numbers: RPB index")
    return save_figure(fig, out_dir, "neighborhood_panel_dina_1d")


def neighborhood_panel_causal(out_dir: Path) -> Path:
    """Causal NA k=4 on 14 tokens: the window ends at the query."""
    from dinat_ref.viz.windows import plot_neighborhood_panel

    return save_figure(plot_neighborhood_panel(14, [0, 2, 7, 13], kernel_size=4, is_causal=True), out_dir,
                       "neighborhood_panel_causal")


def neighborhood_panel_strided(out_dir: Path) -> Path:
    """Strided NA k=(3,5), s=(2,3) on 10x13: the dots mark the queries sharing this window."""
    from dinat_ref.viz.windows import plot_neighborhood_panel

    fig = plot_neighborhood_panel((10, 13), [(0, 0), (4, 5), (5, 3), (9, 12)], kernel_size=(3, 5),
                                  stride=(2, 3))
    return save_figure(fig, out_dir, "neighborhood_panel_strided")


def grid_and_mask(out_dir: Path) -> Path:
    """DiNA k=3, d=2 on 7x9: the grid view beside the flattened Q x K mask."""
    from dinat_ref.viz.windows import plot_grid_and_mask

    fig = plot_grid_and_mask((7, 9), (0, 8), kernel_size=3, dilation=2)
    return save_figure(fig, out_dir, "grid_and_mask")


def rpb_corner(out_dir: Path) -> Path:
    """The RPB entries a corner query of DiNA reads: an off-center block of the table."""
    from dinat_ref.viz.windows import plot_rpb

    return save_figure(plot_rpb((9, 12), (0, 11), kernel_size=3, dilation=2), out_dir, "rpb_corner")


# ----------------------------------------------------------------------------------------
# Receptive fields (dinat_ref.viz.rf)
# ----------------------------------------------------------------------------------------

def rf_growth(out_dir: Path) -> Path:
    """Three NA layers vs NA-DiNA-NA [1, 8, 1] on 56 tokens, layer by layer: 19 tokens vs all 56."""
    from dinat_ref.viz.rf import plot_rf_growth

    return save_figure(plot_rf_growth(), out_dir, "rf_growth")


def rf_per_query(out_dir: Path) -> Path:
    """Every query's field after the stack, with the analytic formula."""
    from dinat_ref.viz.rf import plot_rf_per_query

    return save_figure(plot_rf_per_query(), out_dir, "rf_per_query")


def rf_2d(out_dir: Path) -> Path:
    """Three NA layers vs NA-DiNA-NA [1, 4, 1] on a 28x28 grid (DiNAT's stage-1 dilation)."""
    from dinat_ref.viz.rf import plot_rf_2d

    return save_figure(plot_rf_2d(), out_dir, "rf_2d")


def rf_dinat_presets(out_dir: Path) -> Path:
    """Per-stage receptive field of the mini, tiny and large-384 presets, DiNAT vs NA-only."""
    from dinat_ref.viz.rf import plot_preset_rf

    return save_figure(plot_preset_rf(), out_dir, "rf_dinat_presets")


def rf_dinat_presets_table(out_dir: Path) -> Path:
    """The per-stage receptive-field table of every preset."""
    from dinat_ref.viz.rf import plot_preset_table

    return save_figure(plot_preset_table(), out_dir, "rf_dinat_presets_table")


# ----------------------------------------------------------------------------------------
# A trained model's heads (the digits checkpoint; need torch and scikit-learn)
# ----------------------------------------------------------------------------------------

def attention_statistics(out_dir: Path) -> Path:
    """Mean attention distance, entropy per head and a rollout of the digits checkpoint."""
    from dinat_ref.viz.statistics import statistics_figure

    return save_figure(statistics_figure(), out_dir, "attention_statistics")


def rpb_values(out_dir: Path) -> Path:
    """The learned RPB table of the digits checkpoint's dilated layer, what a corner query reads."""
    from dinat_ref.torch import digits as train_digits
    from dinat_ref.viz.rpb import plot_rpb_values

    return save_figure(plot_rpb_values(train_digits.load_pretrained(), stage=0, layer=1, head=0), out_dir,
                       "rpb_values")


# name -> make(out_dir) -> path, or "module:function" (imported lazily). One entry per figure.
FIGURES: dict[str, FigureMaker] = {
    "neighborhood_dina_corner": neighborhood_dina_corner,
    "neighborhood_panel_na": neighborhood_panel_na,
    "neighborhood_panel_dina_1d": neighborhood_panel_dina_1d,
    "neighborhood_panel_causal": neighborhood_panel_causal,
    "neighborhood_panel_strided": neighborhood_panel_strided,
    "grid_and_mask": grid_and_mask,
    "rpb_corner": rpb_corner,
    "rf_growth": rf_growth,
    "rf_per_query": rf_per_query,
    "rf_2d": rf_2d,
    "rf_dinat_presets": rf_dinat_presets,
    "rf_dinat_presets_table": rf_dinat_presets_table,
    "attention_photo": "dinat_ref.viz.attention_maps:save_photo_attention",
    "attention_digits": "dinat_ref.viz.attention_maps:save_digits_attention",
    "attention_statistics": "dinat_ref.commands.figures:attention_statistics",
    "rpb_values": "dinat_ref.commands.figures:rpb_values",
    "verify_errors": "dinat_ref.testing.example_figure:save_example",
}


def _resolve(maker: FigureMaker) -> Callable[[Path], Path]:
    if callable(maker):
        return maker
    module, _, func = maker.partition(":")
    return getattr(importlib.import_module(module), func)


def generate(
    out_dir: str | Path = "figures", names: Sequence[str] | None = None, verbose: bool = True
) -> list[Path]:
    """Make the figures ``names`` (default: all) in ``out_dir``; return their paths.

    A figure whose optional dependency is missing (e.g. scikit-learn for the digits data)
    is skipped with a line saying what to install; the others are still made.
    """
    names = list(FIGURES) if names is None else list(names)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"generate: unknown figure(s) {unknown}; known: {sorted(FIGURES)}.")
    import matplotlib

    matplotlib.use("Agg")  # headless and byte-for-byte reproducible
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.style.context("default"):  # ignore the user's matplotlibrc
        for name in names:
            t0 = time.perf_counter()
            try:
                path = Path(_resolve(FIGURES[name])(out_dir))
            except ModuleNotFoundError as err:
                print(f"  skipped {name}: it needs the {err.name!r} package "
                      f"(pip install 'dinat-ref[viz]' brings it)")
                continue
            paths.append(path)
            if verbose:
                print(f"  {path}  ({time.perf_counter() - t0:.1f} s)")
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="make only these figures (see --list)")
    parser.add_argument("--list", action="store_true", help="list the figure names and exit")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, maker in FIGURES.items():
            doc = (maker.__doc__ or "").strip().split("\n")[0] if callable(maker) else maker
            print(f"{name:28s} {doc}")
        return 0
    try:
        names = args.only
        print(f"Writing {len(names) if names else len(FIGURES)} figures to {args.out}/")
        generate(args.out, names)
    except ValueError as err:
        print(f"dinat-ref figures: {err}")
        return 2
    return 0
