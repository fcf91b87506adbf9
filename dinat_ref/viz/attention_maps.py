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
  (:mod:`dinat_ref.torch.digits`, checkpoint in ``dinat_ref/assets/digits-dinat``):
  learned attention on a test digit.

Both figures go through one image helper, :func:`image_to_pixels`: the image as drawn
(``(H, W)`` or ``(H, W, 3)`` in [0, 1]) becomes the model's ``pixel_values`` through the
model's own image processor, :class:`dinat_ref.hf.image_processor.DinatImageProcessor` (or any
callable ``processor(images, return_tensors="pt")`` returning ``{"pixel_values": (B, C, H, W)}``).

Stages, layers and heads are numbered from 0, in the API and in every label, as in the
state-dict names (``encoder.levels.{stage}.layers.{layer}``).

The NumPy parts (:func:`attention_to_grid`, :func:`plot_attention_maps`) need no
torch; the model parts import torch only when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dinat_ref.analysis import check_pixel_values, model_attentions
from dinat_ref.checks import as_tuple
from dinat_ref.neighborhood import neighbor_indices

__all__ = [
    "Normalize",
    "image_to_pixels",
    "LayerAttention",
    "attention_to_grid",
    "pixel_to_cell",
    "upsample_cells",
    "sample_photo",
    "model_attention",
    "plot_attention_maps",
    "photo_processor",
    "photo_attention_figure",
    "digits_processor",
    "digits_attention_figure",
    "save_photo_attention",
    "save_digits_attention",
]



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
# One image helper for every model: the image as drawn -> the model's pixel_values
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Normalize:
    """The smallest image processor: ``(x - mean[c]) / std[c]`` per channel, no resize.

    Same call as :class:`dinat_ref.hf.image_processor.DinatImageProcessor`:
    ``Normalize(mean, std)(images, return_tensors="pt")["pixel_values"]`` is ``(B, C, H, W)``
    float32. Images are ``(H, W)`` or ``(H, W, C)`` floats in [0, 1], one or a list.

    Attributes:
        mean: one mean per channel (default: ImageNet's, as the hub's DiNAT checkpoints use).
        std: one standard deviation per channel.
    """

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    def __call__(self, images: Any, return_tensors: str = "np") -> dict[str, Any]:
        images = images if isinstance(images, list) else [images]
        batch = [np.asarray(im, dtype=np.float32) for im in images]
        c = len(self.mean)
        arrays = []
        for im in batch:
            im = im[:, :, None] if im.ndim == 2 else im  # (H, W, C)
            if im.shape[-1] != c:
                raise ValueError(f"Normalize: an image has shape {im.shape}; this processor takes {c} "
                                 f"channel(s), last.")
            arrays.append(((im - np.float32(self.mean)) / np.float32(self.std)).transpose(2, 0, 1))
        pixel_values = np.stack(arrays)  # (B, C, H, W)
        if return_tensors == "pt":
            import torch

            pixel_values = torch.from_numpy(pixel_values)
        return {"pixel_values": pixel_values}


def _check_image(image: Any, where: str) -> np.ndarray:
    """One image as drawn: (H, W) or (H, W, 3), float in [0, 1]; anything else says what to pass."""
    if type(image).__module__.split(".")[0] == "torch":
        raise TypeError(f"{where}: image is a torch tensor; pass the picture itself as a NumPy array "
                        f"(H, W) or (H, W, 3) in [0, 1] (e.g. tensor.permute(1, 2, 0).numpy()).")
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        raise ValueError(f"{where}: image has shape {image.shape}, channels first; pass it channels "
                         f"last, (H, W, 3) (image.transpose(1, 2, 0)), or (H, W) for one channel.")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"{where}: image has shape {image.shape}; expected one image, (H, W) grayscale or "
                         f"(H, W, 3) RGB (index a batch first).")
    if not np.issubdtype(image.dtype, np.floating) or image.min() < 0 or image.max() > 1:
        raise ValueError(f"{where}: image has dtype {image.dtype} and values in [{image.min()}, "
                         f"{image.max()}]; pass floats in [0, 1] (uint8 pixels: image / 255).")
    return image


def image_to_pixels(image: np.ndarray, processor: Any = None) -> Any:
    """The model's ``pixel_values`` (1, C, H, W) for one image, through the model's image processor.

    The photo and the digits figures both come through here, each with its model's processor
    (:func:`photo_processor`, :func:`digits_processor`), so what is drawn is what the model saw.

    Args:
        image: (H, W) grayscale or (H, W, 3) RGB, floats in [0, 1]: the picture as drawn.
        processor: the model's image processor, any callable
            ``processor(images, return_tensors="pt")["pixel_values"]``, e.g.
            :class:`dinat_ref.hf.image_processor.DinatImageProcessor` (with ``do_rescale=False``
            for [0, 1] floats). Default: :class:`Normalize`, plain ImageNet normalisation
            without a resize.

    Returns:
        (1, C, H, W) float torch tensor.
    """
    image = _check_image(image, "image_to_pixels")
    processor = Normalize() if processor is None else processor
    pixels = processor(image, return_tensors="pt")["pixel_values"]
    if getattr(pixels, "ndim", 0) != 4 or pixels.shape[0] != 1:
        raise ValueError(f"image_to_pixels: the processor returned pixel_values of shape "
                         f"{tuple(getattr(pixels, 'shape', ()))}; expected (1, C, H, W).")
    return pixels


# ----------------------------------------------------------------------------------------
# Torch: run a model and collect one query's map in every chosen layer
# ----------------------------------------------------------------------------------------

@dataclass
class LayerAttention:
    """One layer's attention for one query, scattered onto the layer's grid.

    Attributes:
        stage: the stage, from 0 (``encoder.levels.{stage}``).
        layer: the layer in its stage, from 0.
        kernel_size: the layer's window size.
        dilation: the layer's dilation.
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
        pixel_values: (1, C, H, W) float tensor, one image.
        query_pixel: (row, col) on the input image.
        layers: ``"dilated"``: per stage, the last layer with the stage's largest dilation
            (the most spread-out pattern); ``"all"``: every layer; or a list of
            ``(stage, layer)`` pairs, numbered from 0.

    Returns:
        One :class:`LayerAttention` per chosen layer, in model order.

    Raises:
        TypeError: ``pixel_values`` is not a torch tensor.
        ValueError: more than one image, a query off the image, a layer the model lacks.
    """

    check_pixel_values(pixel_values, "model_attention", one_image=True)
    cfg = model.config
    depths, dilations, k = list(cfg.depths), [list(d) for d in cfg.dilations], int(cfg.kernel_size)
    image_shape = tuple(pixel_values.shape[-2:])
    chosen = _choose_layers(depths, dilations, layers)
    pixel_to_cell(query_pixel, image_shape, 1)  # on the image? (checked before any work)
    attentions = model_attentions(model, pixel_values, "model_attention", one_image=True)
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
                             f"model with depths={list(depths)} (stages and layers count from 0).")
    return chosen


# ----------------------------------------------------------------------------------------
# matplotlib: one row per layer, one column per head
# ----------------------------------------------------------------------------------------

def _choose_heads(layers: Sequence[LayerAttention], heads: Sequence[int] | None, max_heads: int
                  ) -> list[list[int]]:
    """Per row, the head indices to draw (0-based): ``heads`` if given, else the first ``max_heads``."""
    out = []
    for lay in layers:
        n = lay.maps.shape[0]
        if heads is None:
            out.append(list(range(min(n, max_heads))))
            continue
        bad = [h for h in heads if not 0 <= int(h) < n]
        if bad:
            raise ValueError(f"plot_attention_maps: heads={list(heads)} but stage {lay.stage}, layer "
                             f"{lay.layer} has heads 0..{n - 1}.")
        out.append([int(h) for h in heads])
    return out


def plot_attention_maps(
    image: np.ndarray,
    layers: Sequence[LayerAttention],
    title: str = "",
    max_heads: int = 8,
    alpha: float = 0.75,
    panel_size: float | None = None,
    backdrop_levels: int | None = None,
    *,
    heads: Sequence[int] | None = None,
    overlay: bool = True,
    cmap: Any = None, norm: Any = None, vmin: float | None = None, vmax: float | None = None,
    fig: Any = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Any:
    """Draw each chosen layer's per-head maps over the image.

    Args:
        image: (H, W) grayscale or (H, W, 3) RGB, floats in [0, 1], channels last.
        layers: one row each, from :func:`model_attention` (or built by hand from
            :func:`attention_to_grid`); rows may show different queries. Each row's query
            pixel is marked with a red cross.
        title: the figure title (say which weights the model had).
        max_heads: without ``heads``, draw the first ``max_heads`` heads of each layer.
        alpha: opacity of the attention overlay.
        panel_size: side of one panel in inches (default: the panels fill ``figsize``).
        backdrop_levels: if set, the gray image under the maps is reduced to this many
            levels (a photo's PNG shrinks a lot; the input column is always drawn as is).
        heads: the heads to draw (0-based, the same for every row); labels keep these numbers.
        overlay: draw the maps over the gray image (True) or alone on white (False).
        cmap: colour map (default ``rcParams["image.cmap"]``).
        norm: a ``matplotlib.colors.Normalize`` shared by every panel and row.
        vmin: lower end of a colour scale shared by every row (default 0).
        vmax: upper end of a colour scale shared by every row; without ``norm``, ``vmin``
            and ``vmax`` each row gets its own scale, 0 to its largest weight.
        fig: draw into this Figure, SubFigure or SubplotSpec (default: a new figure).
        figsize: size of the new figure (default: 7 in wide).
        fontsize: base font size in points (default ``rcParams["font.size"]``).

    Returns:
        The figure (or subfigure): a column with the input and the query, then one row per
        layer; cells the query does not attend to are transparent.

    Raises:
        ValueError: no layers, a channels-first or batched image, values outside [0, 1],
            heads a layer does not have.
    """
    from matplotlib.colors import Normalize as ColorNorm

    from dinat_ref.viz.style import PAGE_WIDTH, fit_titles, new_figure, resolve_cmap, style_context

    if not layers:
        raise ValueError("plot_attention_maps: layers is empty; give at least one LayerAttention.")
    image = _check_image(image, "plot_attention_maps")
    chosen = _choose_heads(layers, heads, max_heads)
    gray = image if image.ndim == 2 else image @ np.array([0.299, 0.587, 0.114])  # (H, W)
    if backdrop_levels:
        gray = np.round(gray * (backdrop_levels - 1)) / (backdrop_levels - 1)
    H, W = gray.shape
    ncols, nrows = max(len(c) for c in chosen), len(layers)
    shared = norm if norm is not None else (
        ColorNorm(vmin=0.0 if vmin is None else vmin, vmax=vmax) if (vmin, vmax) != (None, None) else None)
    cmap = resolve_cmap(cmap)
    with style_context(fontsize):
        side = panel_size or (PAGE_WIDTH - 1.4) / (ncols + 1)
        default = (side * (ncols + 1) + 1.4, side * nrows + (0.55 if title else 0.25))
        fig = new_figure(fig, figsize if figsize is not None or panel_size is None else default, default,
                         "plot_attention_maps")
        axes = fig.subplots(nrows, ncols + 2, squeeze=False,
                            gridspec_kw={"width_ratios": [1] * (ncols + 1) + [0.07]})
        for row, (lay, head_ids) in enumerate(zip(layers, chosen, strict=True)):
            _draw_attention_row(axes[row], image, gray, lay, head_ids, shared, cmap, alpha, overlay, row == 0)
        if title:
            fig.suptitle(title, fontsize="medium")
    fit_titles(fig)
    return fig


def _draw_attention_row(axes, image, gray, lay: LayerAttention, head_ids, shared, cmap, alpha, overlay,
                        first_row: bool) -> None:
    """One layer: the input with the query cell, one panel per chosen head, a colorbar."""
    from matplotlib.colors import Normalize as ColorNorm

    H, W = gray.shape
    h, w = lay.maps.shape[1:]
    up = upsample_cells(lay.maps, lay.cell_px)  # (heads, h*cell, w*cell) in pixels
    norm = shared if shared is not None else ColorNorm(vmin=0.0, vmax=float(lay.maps.max()))
    ax = axes[0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    _mark_query(ax, lay, cell=True)
    grid = f"{h}x{w}" + ("" if (h, w) == tuple(lay.image_grid) else
                         f" (padded from {lay.image_grid[0]}x{lay.image_grid[1]})")
    ax.set_ylabel(f"stage {lay.stage}, layer {lay.layer}\nk={lay.kernel_size}, d={lay.dilation}\n"
                  f"grid {grid}", fontsize="x-small")
    if first_row:
        ax.set_title("input, query", fontsize="small")
    im = None
    for col, ax in enumerate(axes[1:-1]):
        if col >= len(head_ids):
            ax.axis("off")
            continue
        if overlay:
            ax.imshow(gray, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        overlay_map = np.ma.masked_equal(up[head_ids[col]], 0.0)  # non-neighbors transparent
        im = ax.imshow(overlay_map, cmap=cmap, norm=norm, alpha=alpha if overlay else 1.0,
                       interpolation="nearest", extent=(-0.5, up.shape[-1] - 0.5, up.shape[-2] - 0.5, -0.5))
        _mark_query(ax, lay, cell=False)
        ax.set_xlim(-0.5, max(W, up.shape[-1]) - 0.5)
        ax.set_ylim(max(H, up.shape[-2]) - 0.5, -0.5)
        ax.set_title(f"head {head_ids[col]}", fontsize="small")
    for ax in axes[:-1]:
        ax.set_xticks([])
        ax.set_yticks([])
    cb = axes[-1].figure.colorbar(im, cax=axes[-1])
    cb.ax.tick_params(labelsize="xx-small", length=2)
    cb.locator = __import__("matplotlib.ticker", fromlist=["MaxNLocator"]).MaxNLocator(nbins=3)
    cb.update_ticks()


def _mark_query(ax, lay: LayerAttention, cell: bool) -> None:
    """Red cross on the query pixel; with ``cell``, also outline its grid cell."""
    from matplotlib.patches import Rectangle

    r, c = lay.query_pixel
    ax.plot([c], [r], marker="+", color="red", markersize=7, markeredgewidth=1.4)
    if cell:
        qr, qc = lay.query_cell
        ax.add_patch(Rectangle((qc * lay.cell_px - 0.5, qr * lay.cell_px - 0.5), lay.cell_px,
                               lay.cell_px, fill=False, edgecolor="red", linewidth=1.0))


# ----------------------------------------------------------------------------------------
# The two figures
# ----------------------------------------------------------------------------------------

PHOTO_QUERY = (80, 132)  # (row, col) on the 224x224 photo: the subject's left eye


def photo_processor(size: int = 224) -> Any:
    """The hub's ImageNet DiNAT preprocessing for ``size x size`` float images in [0, 1].

    :meth:`dinat_ref.hf.image_processor.DinatImageProcessor.imagenet` (bicubic resize,
    ImageNet mean and std) with ``do_rescale=False``: the photo is already in [0, 1].
    """
    from dinat_ref.hf.image_processor import DinatImageProcessor

    processor = DinatImageProcessor.imagenet(size)
    processor.do_rescale = False
    return processor


def photo_attention_figure(model: Any = None, size: int = 224, query_pixel: Sequence[int] | None = None,
                           seed: int = 0, max_heads: int = 4, *, layers: Any = "dilated",
                           heads: Sequence[int] | None = None, processor: Any = None, **style: Any) -> Any:
    """A DiNAT on the matplotlib sample photo: each stage's most dilated layer, per head.

    Args:
        model: a 3-channel :class:`dinat_ref.torch.DinatForImageClassification`, e.g. a
            converted checkpoint from ``from_pretrained``. By default DiNAT-mini with
            *random* weights (seeded): no trained ImageNet weights ship with this package,
            so the default figure shows each layer's neighborhood (dilated, shifted inward at
            borders) and says so in its title; the weights of random heads mean nothing.
        size: side of the square photo (224 = DiNAT-mini's resolution: no layer pads).
        query_pixel: (row, col) on the resized photo; default: the subject's left eye.
        seed: seeds the random weights.
        max_heads: heads drawn per layer (without ``heads``).
        layers: see :func:`model_attention`.
        heads: the heads to draw, 0-based.
        processor: the model's image processor (default: :func:`photo_processor`).
        **style: passed to :func:`plot_attention_maps` (``cmap``, ``norm``, ``figsize``, ``fig``, ...).

    Returns:
        The figure.
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
    pixels = image_to_pixels(image, photo_processor(size) if processor is None else processor)
    found = model_attention(model, pixels, query_pixel, layers=layers)
    what = (f"DiNAT-mini, random weights (seed {seed})" if random_weights else "DiNAT (given weights)")
    note = ("the pattern is the neighborhood rule; random weights carry no learned meaning"
            if random_weights else "colour: attention weight")
    style.setdefault("backdrop_levels", 16)
    return plot_attention_maps(image, found, max_heads=max_heads, heads=heads,
                               title=f"{what}: where the query (red +) looks;\n{note}", **style)


DIGIT_INDEX = 1  # which test image to draw: a zero
DIGIT_QUERY = (21, 21)  # (row, col) on the 48x48 digit: inside the zero's hole


def digits_processor() -> Any:
    """The digits checkpoint's preprocessing for its 48x48 float images in [0, 1]: standardize.

    A :class:`dinat_ref.hf.image_processor.DinatImageProcessor` with the training set's mean and
    std (:data:`dinat_ref.torch.digits.PIXEL_MEAN`, ``PIXEL_STD``), one channel, no rescale.
    """
    from dinat_ref.hf.image_processor import DinatImageProcessor
    from dinat_ref.torch.digits import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD

    return DinatImageProcessor(size=IMAGE_SIZE, resample=2, do_rescale=False, image_mean=[PIXEL_MEAN],
                               image_std=[PIXEL_STD])


def digits_attention_figure(model: Any = None, digit_index: int = DIGIT_INDEX,
                            query_pixel: Sequence[int] = DIGIT_QUERY,
                            layers: str | Sequence[tuple[int, int]] = "all", *,
                            heads: Sequence[int] | None = None, processor: Any = None, **style: Any) -> Any:
    """The tiny DiNAT trained on handwritten digits, on one test digit.

    Args:
        model: defaults to the committed checkpoint (:func:`dinat_ref.torch.digits.load_pretrained`).
        digit_index: index into the held-out test split.
        query_pixel: (row, col) on the upsampled digit.
        layers: see :func:`model_attention`; by default every layer.
        heads: the heads to draw, 0-based.
        processor: the model's image processor (default: :func:`digits_processor`).
        **style: passed to :func:`plot_attention_maps` (``cmap``, ``norm``, ``figsize``, ``fig``, ...).

    Returns:
        The figure.
    """
    import torch

    from dinat_ref.torch import digits as train_digits

    if model is None:
        model = train_digits.load_pretrained()
    _, _, x_test, y_test = train_digits.load_digits_split(train_digits.IMAGE_SIZE)
    image = train_digits.to_unit_range(x_test[digit_index, 0].numpy())  # (S, S) in [0, 1], as drawn
    pixels = image_to_pixels(image, digits_processor() if processor is None else processor)
    found = model_attention(model, pixels, query_pixel, layers=layers)
    with torch.no_grad():
        pred = int(model(pixels).logits.argmax(-1))
    return plot_attention_maps(
        image, found, heads=heads,
        title=(f"Tiny DiNAT trained on digits, test image {digit_index} (label "
               f"{int(y_test[digit_index])}, predicted {pred}):\nlearned attention of the query (red +), "
               f"per layer and head"), **style)


def save_photo_attention(out_dir: str | Path) -> Path:
    """Write ``attention_photo.png`` into ``out_dir`` and return its path."""
    from dinat_ref.viz.style import save_figure

    return save_figure(photo_attention_figure(), out_dir, "attention_photo")


def save_digits_attention(out_dir: str | Path) -> Path:
    """Write ``attention_digits.png`` into ``out_dir`` and return its path."""
    from dinat_ref.viz.style import save_figure

    return save_figure(digits_attention_figure(), out_dir, "attention_digits")
