"""The DiNAT architecture as a diagram, drawn from a config.

Left: the whole network, top to bottom, with every tensor shape computed from the
config and the image size (stem, four stages with their depths, heads and per-layer
dilations, downsamplers, final norm, pooling, classifier). Right: one layer (block),
pre-norm, with layer scale and the MLP ratio. Nothing is hard-coded per preset: change
the config and the figure follows.

Example::

    from dinat_ref import DinatConfig
    from dinat_ref.viz.architecture import plot_dinat_architecture

    fig = plot_dinat_architecture(DinatConfig.from_preset("mini"), image_size=224)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from dinat_ref.config import DinatConfig
from dinat_ref.receptive_field import format_dilations

__all__ = ["ArchitectureBox", "architecture_boxes", "plot_dinat_architecture"]

_COLORS = {
    "io": "#eeeeee",
    "conv": "#fde0c5",
    "stage": "#cfe3f5",
    "norm": "#e5f2d9",
    "head": "#f3d9ec",
}


@dataclass(frozen=True)
class ArchitectureBox:
    """One box of the network diagram.

    Attributes:
        kind: ``"io"``, ``"conv"``, ``"stage"``, ``"norm"`` or ``"head"`` (its color).
        title: what the box computes.
        detail: the output shape, and for stages depth, heads, kernel and dilations.
    """

    kind: str
    title: str
    detail: str


def _half(n: int) -> int:
    """Output side of a 3x3 convolution with stride 2 and padding 1."""
    return (n - 1) // 2 + 1


def architecture_boxes(config: DinatConfig, image_size: int = 224) -> list[ArchitectureBox]:
    """The network as a list of boxes, top to bottom, shapes computed from ``config``.

    Args:
        config: the model's :class:`~dinat_ref.config.DinatConfig`.
        image_size: side of the (square) input image in pixels.

    Returns:
        One :class:`ArchitectureBox` per step, from the image to the logits.

    Raises:
        ValueError: if ``image_size`` is not a positive integer.
    """
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"architecture_boxes: image_size must be a positive integer, got {image_size!r}")
    e, c_in = config.embed_dim, config.num_channels
    dims = config.stage_dims()
    side = image_size
    boxes = [ArchitectureBox("io", "image", f"{c_in} x {side} x {side}")]
    side = _half(side)
    boxes.append(ArchitectureBox("conv", "stem: conv 3x3, stride 2", f"{e // 2} x {side} x {side}"))
    side = _half(side)
    boxes.append(ArchitectureBox("conv", "stem: conv 3x3, stride 2 + LayerNorm", f"{e} x {side} x {side}"))
    k = config.kernel_size
    for s, (dim, depth, heads) in enumerate(zip(dims, config.depths, config.num_heads, strict=True)):
        dils = config.dilations[s]
        boxes.append(ArchitectureBox(
            "stage", f"stage {s + 1}: {depth} layers, {heads} heads, {k}x{k} window",
            f"{dim} x {side} x {side}; dilations {format_dilations(dils)}"))
        if s < len(dims) - 1:
            side = _half(side)
            boxes.append(ArchitectureBox("conv", "downsampler: conv 3x3, stride 2 + LayerNorm",
                                         f"{2 * dim} x {side} x {side}"))
    boxes.append(ArchitectureBox("norm", "LayerNorm, mean over tokens", f"{dims[-1]}"))
    boxes.append(ArchitectureBox("head", "classifier: linear", f"{config.num_labels} logits"))
    return boxes


def _box(ax: Any, x: float, y: float, w: float, h: float, color: str, title: str, detail: str = "",
         fontsize: float = 8.5) -> None:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.06",
                                facecolor=color, edgecolor="#555555", linewidth=0.9))
    if detail:
        ax.text(x, y + h * 0.17, title, ha="center", va="center", fontsize=fontsize)
        ax.text(x, y - h * 0.22, detail, ha="center", va="center", fontsize=fontsize - 1, color="#333333")
    else:
        ax.text(x, y, title, ha="center", va="center", fontsize=fontsize)


def _arrow(ax: Any, x0: float, y0: float, x1: float, y1: float, **kw: Any) -> None:
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=9, color="#444444",
                                 linewidth=0.9, shrinkA=0, shrinkB=0, **kw))


def plot_dinat_architecture(config: DinatConfig | None = None, image_size: int = 224) -> Figure:
    """Draw DiNAT end to end (left) and one of its layers (right).

    Args:
        config: the model's config (default: the ``mini`` preset).
        image_size: side of the (square) input image, for the shapes (default 224).

    Returns:
        The figure.
    """
    config = DinatConfig.from_preset("mini") if config is None else config
    boxes = architecture_boxes(config, image_size)
    fig, (ax, ax_b) = plt.subplots(1, 2, figsize=(11.5, 8.2), width_ratios=[1.25, 1], layout="constrained")
    for a in (ax, ax_b):
        a.set_axis_off()

    # Left: the network.
    n = len(boxes)
    step, h, w = 1.0, 0.72, 3.6
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-n * step + 0.3, 0.7)
    for t, b in enumerate(boxes):
        y = -t * step
        _box(ax, 0, y, w, h, _COLORS[b.kind], b.title, b.detail)
        if t < n - 1:
            _arrow(ax, 0, y - h / 2, 0, y - step + h / 2)
    ax.set_title(f"DiNAT, {config.embed_dim} channels in stage 1, {image_size}x{image_size} input "
                 "(shapes: channels x height x width)", fontsize=9.5)

    # Right: one layer.
    r = config.mlp_ratio
    ax_b.set_xlim(-2.3, 2.3)
    ax_b.set_ylim(-10.4, 0.8)
    ls = "layer scale" + ("" if config.layer_scale_init_value > 0 else " (if enabled)")
    steps = [
        ("io", "x: (H, W, C)", ""),
        ("norm", "LayerNorm", ""),
        ("stage", "NA or DiNA, k x k window, dilation d", "q, k, v projections, + RPB, softmax, . v"),
        ("stage", "output projection (C -> C)", ""),
        ("head", f"x {ls}: gamma_1 (per channel)", ""),
        ("io", "x + ...   (residual)", ""),
        ("norm", "LayerNorm", ""),
        ("conv", f"MLP: linear C -> {r:g}C, GELU, linear {r:g}C -> C", ""),
        ("head", f"x {ls}: gamma_2 (per channel)", ""),
        ("io", "x + ...   (residual): (H, W, C)", ""),
    ]
    ys = [-i * 1.08 for i in range(len(steps))]
    for i, ((kind, title, detail), y) in enumerate(zip(steps, ys, strict=True)):
        _box(ax_b, 0.2, y, 3.4, 0.72, _COLORS[kind], title, detail, fontsize=8)
        if i < len(steps) - 1:
            _arrow(ax_b, 0.2, y - 0.36, 0.2, ys[i + 1] + 0.36)
    for top, bottom in ((0, 5), (5, 9)):  # the two residual connections skip the branch
        x_side = -1.75
        ax_b.plot([-1.5, x_side, x_side], [ys[top], ys[top], ys[bottom]], color="#444444", linewidth=0.9)
        _arrow(ax_b, x_side, ys[bottom], -1.5, ys[bottom])
    ax_b.set_title("one layer (pre-norm); stages alternate d = 1 (NA) and d > 1 (DiNA)", fontsize=9.5)
    return fig
