"""Attention maps: where one query pixel looks, per head, per stage, drawn on the image.

A DiNAT layer stores its attention in *neighborhood layout*: for every query cell of
its grid, one weight per neighbor slot, ``(h, w, heads, k*k)`` (heads last, like
NATTEN). To draw it we turn one query's ``k*k`` weights back into a picture:

1. Ask the shared rule (:func:`dinat_ref.neighborhood.neighbor_indices`) which key
   cell each slot of the query holds.
2. *Scatter* the weight of slot ``t`` onto that key cell of an ``(h, w)`` grid of
   zeros. Every other cell stays exactly 0: the query never looks there.
3. Each cell of stage ``s`` covers a ``4 * 2**s`` pixel square of the input (the
   patch embedding downsamples 4x, each downsampler 2x), so repeat every cell into
   that square (nearest, no blur, so the dilated checkerboard stays visible) and
   overlay it on the image.

Papers: NA https://arxiv.org/abs/2204.07143, DiNAT https://arxiv.org/abs/2209.15001.

Figures made here:

* :func:`photo_attention_figure`: DiNAT-mini on the photo matplotlib ships. No trained
  ImageNet weights ship with this package, so by default the model has *random* weights
  and the picture shows the neighborhood pattern (where each head can look), not learned
  semantics; the title says so. Pass a converted checkpoint as ``model`` to see learned maps.
* :func:`digits_attention_figure`: the tiny DiNAT trained on handwritten digits
  (:mod:`dinat_ref.train_digits`, checkpoint in ``dinat_ref/assets/digits-dinat``):
  learned attention on a test digit.

The NumPy parts (:func:`attention_to_grid`, :func:`plot_attention_maps`) need no
torch; the model parts import torch only when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dinat_ref.checks import as_tuple
from dinat_ref.neighborhood import neighbor_indices

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "LayerAttention",
    "attention_to_grid",
    "pixel_to_cell",
    "upsample_cells",
    "sample_photo",
    "model_attention",
    "plot_attention_maps",
    "photo_attention_figure",
    "digits_attention_figure",
    "save_photo_attention",
    "save_digits_attention",
]

# Sequential, perceptually uniform and colorblind-safe.
_CMAP = "viridis"


# ----------------------------------------------------------------------------------------
# NumPy: one query's neighborhood weights back onto its grid
# ----------------------------------------------------------------------------------------

def attention_to_grid(
    attn: np.ndarray,
    query: Sequence[int],
    kernel_size: int | Sequence[int],
    dilation: int | Sequence[int] = 1,
    stride: int | Sequence[int] = 1,
    is_causal: bool | Sequence[bool] = False,
) -> np.ndarray:
    """Scatter one query's attention weights onto the grid of its layer.

    Args:
        attn: (h, w, heads, K) attention probabilities of one image in neighborhood
            layout, ``K = k0 * k1`` slots row-major over the window.
        query: (row, col) cell of the query on the ``(h, w)`` grid.
        kernel_size, dilation, stride, is_causal: the layer's window arguments.

    Returns:
        (heads, h, w): ``out[head, r, c]`` is the weight the query gives key ``(r, c)``;
        0 wherever ``(r, c)`` is not one of its neighbors.
    """
    where = "attention_to_grid"
    attn = np.asarray(attn)
    if attn.ndim != 4:
        raise ValueError(
            f"{where}: attn has shape {attn.shape}; expected 4 axes (h, w, heads, K) for one "
            f"image (index the batch first)."
        )
    h, w, heads, num_slots = attn.shape
    ks = as_tuple(kernel_size, 2, "kernel_size", where)
    if num_slots != ks[0] * ks[1]:
        raise ValueError(
            f"{where}: attn has {num_slots} slots on its last axis but kernel_size={ks} "
            f"has {ks[0] * ks[1]}; they must match."
        )
    query = as_tuple(query, 2, "query", where)
    if not (0 <= query[0] < h and 0 <= query[1] < w):
        raise ValueError(f"{where}: query={query} is outside the ({h}, {w}) grid of attn.")
    keys, valid = neighbor_indices((h, w), ks, stride, dilation, is_causal)  # (N, K) x2
    n = query[0] * w + query[1]  # flat row-major index of the query
    weights = np.where(valid[n][:, None], attn[query[0], query[1]].T, 0)  # (K, heads)
    out = np.zeros((heads, h * w), dtype=np.float64)  # (heads, N)
    # Non-causal slots hold distinct keys; add.at keeps repeated (masked) keys correct anyway.
    np.add.at(out.T, keys[n], weights)  # out[:, keys[n, t]] += weights[t, :]
    return out.reshape(heads, h, w)  # (heads, h, w)


def pixel_to_cell(pixel: Sequence[int], image_shape: Sequence[int], cell_px: int) -> tuple[int, int]:
    """The grid cell a pixel falls in, when each cell covers ``cell_px x cell_px`` pixels.

    ``image_shape`` is only used to check the pixel is on the image.
    """
    r, c = (int(p) for p in pixel)
    if not (0 <= r < image_shape[0] and 0 <= c < image_shape[1]):
        raise ValueError(f"pixel_to_cell: pixel={tuple(pixel)} is outside the image of shape "
                         f"{tuple(image_shape[:2])}.")
    return r // cell_px, c // cell_px


def upsample_cells(grid: np.ndarray, cell_px: int) -> np.ndarray:
    """Repeat every cell of ``(..., h, w)`` into a ``cell_px`` square: ``(..., h*cell_px, w*cell_px)``.

    Nearest-neighbor on purpose: a blur would smear weight onto cells the query never sees.
    """
    return np.repeat(np.repeat(grid, cell_px, axis=-2), cell_px, axis=-1)


def sample_photo(size: int = 224) -> np.ndarray:
    """The Grace Hopper portrait that matplotlib ships, center-cropped square and resized.

    Returns:
        (size, size, 3) float32 RGB in [0, 1].
    """
    import matplotlib.cbook as cbook
    from PIL import Image  # a matplotlib dependency

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = Image.open(f).convert("RGB")
        width, height = img.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0  # (size, size, 3)


# ----------------------------------------------------------------------------------------
# Torch: run a model and collect one query's map in every chosen layer
# ----------------------------------------------------------------------------------------

@dataclass
class LayerAttention:
    """One layer's attention for one query, scattered onto the layer's grid.

    Attributes:
        stage, layer: where the layer is (0-based).
        kernel_size, dilation: its window.
        cell_px: input pixels per grid cell on each axis (``4 * 2**stage``).
        query_pixel: the query's (row, col) on the input image.
        query_cell: the grid cell holding that pixel, ``query_pixel // cell_px``.
        image_grid: (h, w) of the grid the image itself makes at this stage,
            ``ceil(H / cell_px)``; smaller than the maps' grid when the layer padded.
        maps: (heads, h, w) weights from :func:`attention_to_grid`; ``h, w`` may exceed
            the image's grid when the layer padded its input up to ``kernel_size * dilation``.
    """

    stage: int
    layer: int
    kernel_size: int
    dilation: int
    cell_px: int
    query_pixel: tuple[int, int]
    query_cell: tuple[int, int]
    image_grid: tuple[int, int]
    maps: np.ndarray


def model_attention(
    model: Any,
    pixel_values: Any,
    query_pixel: Sequence[int],
    layers: str | Sequence[tuple[int, int]] = "dilated",
) -> list[LayerAttention]:
    """Run ``model`` on one image and scatter ``query_pixel``'s attention in chosen layers.

    Args:
        model: a :class:`dinat_ref.torch.DinatForImageClassification` (or anything whose
            forward takes ``output_attentions=True`` and returns ``.attentions``, one
            ``(B, h, w, heads, k*k)`` tensor per layer, and whose ``config`` has
            ``depths``, ``dilations`` and ``kernel_size``).
        pixel_values: (1, C, H, W) tensor.
        query_pixel: (row, col) on the input image.
        layers: ``"dilated"``: per stage, the last layer with the stage's largest dilation
            (the most spread-out pattern); ``"all"``: every layer; or a list of
            ``(stage, layer)`` pairs.

    Returns:
        One :class:`LayerAttention` per chosen layer, in model order.
    """
    import torch

    cfg = model.config
    depths, dilations, k = list(cfg.depths), [list(d) for d in cfg.dilations], int(cfg.kernel_size)
    image_shape = tuple(pixel_values.shape[-2:])
    chosen = _choose_layers(depths, dilations, layers)
    pixel_to_cell(query_pixel, image_shape, 1)  # on the image? (checked before any work)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(pixel_values, output_attentions=True)
    finally:
        model.train(was_training)
    attentions = list(out.attentions)
    if len(attentions) != sum(depths):
        raise ValueError(f"model_attention: the model returned {len(attentions)} attention maps "
                         f"but config.depths={depths} has {sum(depths)} layers.")
    result = []
    flat = 0
    for stage, depth in enumerate(depths):
        for layer in range(depth):
            if (stage, layer) in chosen:
                cell_px = 4 * 2**stage
                attn = attentions[flat][0].float().cpu().numpy()  # (h, w, heads, K)
                query_cell = pixel_to_cell(query_pixel, image_shape, cell_px)
                maps = attention_to_grid(attn, query_cell, k, dilations[stage][layer])
                result.append(LayerAttention(stage, layer, k, dilations[stage][layer], cell_px,
                                             tuple(int(p) for p in query_pixel), query_cell,
                                             tuple(-(-n // cell_px) for n in image_shape), maps))
            flat += 1
    return result


def _choose_layers(depths, dilations, layers) -> set[tuple[int, int]]:
    if layers == "all":
        return {(s, i) for s, d in enumerate(depths) for i in range(d)}
    if layers == "dilated":
        chosen = set()
        for s, dil in enumerate(dilations):
            top = max(dil)
            chosen.add((s, max(i for i, d in enumerate(dil) if d == top)))
        return chosen
    if isinstance(layers, str):
        raise ValueError(f"model_attention: layers={layers!r}; use 'dilated', 'all' or a list of "
                         f"(stage, layer) pairs.")
    chosen = {(int(s), int(i)) for s, i in layers}
    for s, i in chosen:
        if not (0 <= s < len(depths) and 0 <= i < depths[s]):
            raise ValueError(f"model_attention: layer (stage={s}, layer={i}) does not exist in a "
                             f"model with depths={list(depths)}.")
    return chosen


# ----------------------------------------------------------------------------------------
# matplotlib: one row per layer, one column per head
# ----------------------------------------------------------------------------------------

def plot_attention_maps(
    image: np.ndarray,
    layers: Sequence[LayerAttention],
    title: str = "",
    max_heads: int = 8,
    alpha: float = 0.75,
    panel_size: float = 1.75,
    backdrop_levels: int | None = None,
) -> Figure:
    """Draw each chosen layer's per-head maps over the image.

    Args:
        image: (H, W) grayscale or (H, W, 3) RGB, values in [0, 1].
        layers: one row each, from :func:`model_attention` (or built by hand from
            :func:`attention_to_grid`); rows may show different queries. Each row's query
            pixel is marked with a red cross.
        title: the figure title (say which weights the model had).
        max_heads: show at most this many heads per layer (the first ones).
        alpha: opacity of the attention overlay.
        panel_size: side of one panel, in inches.
        backdrop_levels: if set, the gray image under the maps is reduced to this many
            levels (a photo's PNG shrinks a lot; the input column is always drawn as is).

    Returns:
        The Figure: a column with the input and the query, then one row per layer; cells the
        query does not attend to are transparent, so the image shows through.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    if not layers:
        raise ValueError("plot_attention_maps: layers is empty; give at least one LayerAttention.")
    gray = image if image.ndim == 2 else image @ np.array([0.299, 0.587, 0.114])  # (H, W)
    if backdrop_levels:
        gray = np.round(gray * (backdrop_levels - 1)) / (backdrop_levels - 1)
    H, W = gray.shape
    ncols = min(max(lay.maps.shape[0] for lay in layers), max_heads)
    nrows = len(layers)
    fig, axes = plt.subplots(
        nrows, ncols + 2, figsize=(panel_size * (ncols + 1) + 0.9, panel_size * nrows + 0.7),
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * (ncols + 1) + [0.08]}, layout="constrained",
    )
    for row, lay in enumerate(layers):
        heads, h, w = lay.maps.shape
        up = upsample_cells(lay.maps, lay.cell_px)  # (heads, h*cell, w*cell) in pixels
        vmax = float(lay.maps.max())
        norm = Normalize(vmin=0.0, vmax=vmax)
        # Column 0: the input with the query and the query's grid cell at this stage.
        ax = axes[row, 0]
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1,
                  interpolation="nearest")
        _mark_query(ax, lay, cell=True)
        shown = f", heads 1-{ncols} of {heads}" if heads > ncols else ""
        grid = f"grid {h}x{w}"
        if (h, w) != tuple(lay.image_grid):
            grid += f" (padded from {lay.image_grid[0]}x{lay.image_grid[1]})"
        ax.set_ylabel(f"stage {lay.stage + 1}, layer {lay.layer + 1}{shown}\nk={lay.kernel_size}, "
                      f"dilation={lay.dilation}, {grid}\nquery pixel {lay.query_pixel}",
                      fontsize=8)
        if row == 0:
            ax.set_title("input + query cell", fontsize=8)
        for col in range(ncols):
            ax = axes[row, col + 1]
            if col >= heads:
                ax.axis("off")
                continue
            ax.imshow(gray, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            overlay = np.ma.masked_equal(up[col], 0.0)  # non-neighbors transparent
            im = ax.imshow(overlay, cmap=_CMAP, norm=norm, alpha=alpha, interpolation="nearest",
                           extent=(-0.5, up.shape[-1] - 0.5, up.shape[-2] - 0.5, -0.5))
            _mark_query(ax, lay, cell=False)
            ax.set_xlim(-0.5, max(W, up.shape[-1]) - 0.5)
            ax.set_ylim(max(H, up.shape[-2]) - 0.5, -0.5)
            ax.set_title(f"head {col + 1}", fontsize=8)
        for ax in axes[row, :-1]:
            ax.set_xticks([])
            ax.set_yticks([])
        cb = fig.colorbar(im, cax=axes[row, -1])
        cb.ax.tick_params(labelsize=7)
        cb.set_label("weight", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _mark_query(ax, lay: LayerAttention, cell: bool) -> None:
    """Red cross on the query pixel; with ``cell``, also outline its grid cell."""
    from matplotlib.patches import Rectangle

    r, c = lay.query_pixel
    ax.plot([c], [r], marker="+", color="red", markersize=9, markeredgewidth=1.8)
    if cell:
        qr, qc = lay.query_cell
        ax.add_patch(Rectangle((qc * lay.cell_px - 0.5, qr * lay.cell_px - 0.5), lay.cell_px,
                               lay.cell_px, fill=False, edgecolor="red", linewidth=1.2))


# ----------------------------------------------------------------------------------------
# The two figures
# ----------------------------------------------------------------------------------------

PHOTO_QUERY = (80, 132)  # (row, col) on the 224x224 photo: the subject's left eye


def photo_attention_figure(model: Any = None, size: int = 224, query_pixel: Sequence[int] | None = None,
                           seed: int = 0, max_heads: int = 4) -> Figure:
    """A DiNAT on the matplotlib sample photo: each stage's most dilated layer, per head.

    Args:
        model: a 3-channel :class:`dinat_ref.torch.DinatForImageClassification` whose inputs
            are ImageNet-normalized, e.g. a converted checkpoint from ``from_pretrained``.
            By default DiNAT-mini with *random* weights (seeded): no trained ImageNet weights
            ship with this package, so the default figure shows each layer's neighborhood
            (dilated, shifted inward at borders) and says so in its title; the weights of
            random heads mean nothing.
        size: side of the square photo (224 = DiNAT-mini's resolution: no layer pads).
        query_pixel: (row, col) on the resized photo; default: the subject's left eye.
        seed: seeds the random weights.
        max_heads: heads drawn per layer.
    """
    import torch

    from dinat_ref.config import DinatConfig
    from dinat_ref.torch import DinatForImageClassification

    random_weights = model is None
    if random_weights:
        torch.manual_seed(seed)
        model = DinatForImageClassification(DinatConfig.from_preset("mini")).eval()
    if query_pixel is None:
        query_pixel = tuple(p * size // 224 for p in PHOTO_QUERY)
    image = sample_photo(size)  # (size, size, 3)
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None]  # (1, 3, size, size)
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]  # ImageNet statistics
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    layers = model_attention(model, (pixels - mean) / std, query_pixel, layers="dilated")
    what = (f"DiNAT-mini with random weights (seed {seed})" if random_weights
            else "DiNAT (given weights)")
    note = ("The pattern is the neighborhood rule; with random weights the colors carry no learned "
            "meaning." if random_weights else "Colors: the attention weight of each neighbor.")
    return plot_attention_maps(
        image, layers, max_heads=max_heads, panel_size=2.2, backdrop_levels=16,
        title=(f"{what}, {size}x{size} photo: where the query pixel (red +) looks in each "
               f"stage's most dilated layer.\n{note}"),
    )


DIGIT_INDEX = 1  # which test image to draw: a zero
DIGIT_QUERY = (21, 21)  # (row, col) on the 48x48 digit: inside the zero's hole


def digits_attention_figure(model: Any = None, digit_index: int = DIGIT_INDEX,
                            query_pixel: Sequence[int] = DIGIT_QUERY,
                            layers: str | Sequence[tuple[int, int]] = "all") -> Figure:
    """The tiny DiNAT trained on handwritten digits, on one test digit.

    Args:
        model: defaults to the committed checkpoint (:func:`dinat_ref.train_digits.load_pretrained`).
        digit_index: index into the held-out test split.
        query_pixel: (row, col) on the upsampled digit.
        layers: see :func:`model_attention`; by default every layer.
    """
    from dinat_ref import train_digits

    if model is None:
        model = train_digits.load_pretrained()
    _, _, x_test, y_test = train_digits.load_digits_split(train_digits.IMAGE_SIZE)
    pixels = x_test[digit_index : digit_index + 1]  # (1, 1, S, S)
    layers_ = model_attention(model, pixels, query_pixel, layers=layers)
    with __import__("torch").no_grad():
        pred = int(model(pixels).logits.argmax(-1))
    image = train_digits.to_unit_range(pixels[0, 0].numpy())  # (S, S) for display
    return plot_attention_maps(
        image, layers_,
        title=(f"Tiny DiNAT trained on handwritten digits (test image #{digit_index}: label "
               f"{int(y_test[digit_index])}, predicted {pred}).\nLearned attention of the query "
               f"pixel (red +) in every layer, per head; transparent cells are outside its window."),
    )


def save_photo_attention(out_dir: str | Path) -> Path:
    """Write ``attention_photo.png`` into ``out_dir`` and return its path."""
    from dinat_ref.viz.figures import save_figure

    return save_figure(photo_attention_figure(), out_dir, "attention_photo")


def save_digits_attention(out_dir: str | Path) -> Path:
    """Write ``attention_digits.png`` into ``out_dir`` and return its path."""
    from dinat_ref.viz.figures import save_figure

    return save_figure(digits_attention_figure(), out_dir, "attention_digits")
