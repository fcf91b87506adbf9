"""Attention statistics in neighborhood layout: mean attention distance, entropy, rollout.

The three numbers ViT papers report about their heads, for NA / DiNA attention stored the
way NATTEN and the models store it: ``(B, *spatial, heads, K)``, one probability per
neighbor slot (``K = prod(kernel_size)``), heads last. Which key a slot holds comes from
the shared rule (:func:`dinat_ref.neighborhood.neighbor_indices`); nothing here re-derives it.

* **Mean attention distance** (Dosovitskiy et al. 2021, Fig. 7): for query ``i``,
  ``D_i = sum_t p_it * ||x(j_t) - x(i)||_2``, the attention-weighted Euclidean distance (in
  grid cells, times ``cell_size``) to the keys ``j_t`` it reads; averaged over queries
  and images, one number per head. A dilated layer reaches ``d`` times farther with the
  same ``k``.
* **Attention entropy**: ``H_i = -sum_t p_it log p_it`` in nats; ``0`` for one-hot
  attention, ``log(n_i)`` for uniform attention over the ``n_i`` keys of query ``i``
  (``log K`` except where causal masking leaves fewer). ``normalize=True`` divides by
  ``log(n_i)``.
* **Attention rollout** (Abnar & Zuidema 2020): with the residual, layer ``l`` mixes
  tokens as ``A_hat_l = r I + (1 - r) A_l`` (``A_l``: its heads' attention fused into one
  ``N x N`` matrix, ``r = 0.5``); the flow of the stack is ``R = A_hat_L ... A_hat_1``.
  Row ``q`` of ``R`` says how much of output ``q`` traces back to each input token. In
  neighborhood layout ``A_l`` is scattered from the ``(N, K)`` slots; rollout runs within
  one grid (one stage), since DiNAT's downsamplers are convolutions, not attention.

Every function takes NumPy arrays or torch tensors and answers in the same kind (torch:
same device, no gradient needed). :func:`model_attention_statistics` runs a model and
returns the numbers per layer and head; the plots are in :mod:`dinat_ref.viz.statistics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dinat_ref.checks import Bools, Ints, as_tuple, check_window_args
from dinat_ref.neighborhood import neighbor_indices

__all__ = [
    "attention_distance",
    "mean_attention_distance",
    "attention_entropy",
    "mean_attention_entropy",
    "attention_rollout",
    "LayerStatistics",
    "check_pixel_values",
    "model_attentions",
    "model_attention_statistics",
    "model_attention_rollout",
]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _check_attn(attn: Any, kernel_size: Ints, where: str) -> tuple[Any, tuple[int, ...], tuple[int, ...]]:
    """``attn`` as an array of the right layout; its spatial shape and kernel size per axis."""
    if not (_is_torch(attn) or isinstance(attn, np.ndarray)):
        raise TypeError(f"{where}: attn is a {type(attn).__name__}; pass a NumPy array or a torch tensor "
                        f"of shape (B, *spatial, heads, K).")
    if not 4 <= attn.ndim <= 6:
        raise ValueError(f"{where}: attn has shape {tuple(attn.shape)}; expected (B, *spatial, heads, K) "
                         f"with 1 to 3 spatial axes (index a layer's attention, keep the batch axis).")
    spatial = tuple(int(n) for n in attn.shape[1:-2])
    ks = as_tuple(kernel_size, len(spatial), "kernel_size", where)
    if int(attn.shape[-1]) != int(np.prod(ks)):
        raise ValueError(f"{where}: attn has {attn.shape[-1]} slots on its last axis but kernel_size={ks} "
                         f"has {int(np.prod(ks))}; they must match.")
    if attn.numel() if _is_torch(attn) else attn.size:
        sums = attn.sum(-1)
        low, high = (float(sums.min()), float(sums.max()))
        if float(attn.min()) < 0 or low < 0.99 or high > 1.01:
            raise ValueError(f"{where}: attn rows sum to {low:.3g}..{high:.3g} (min value "
                             f"{float(attn.min()):.3g}); pass probabilities (the softmax over the last "
                             f"axis), not logits.")
    return attn, spatial, ks


def _as(table: np.ndarray, like: Any) -> Any:
    """``table`` as an array of the kind and device of ``like`` (float tables take its dtype)."""
    if _is_torch(like):
        import torch

        dtype = like.dtype if np.issubdtype(table.dtype, np.floating) else None
        return torch.as_tensor(table, device=like.device, dtype=dtype)
    return table.astype(like.dtype) if np.issubdtype(table.dtype, np.floating) else table


def _slot_distances(spatial, kernel_size, dilation, stride, is_causal) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) Euclidean distance from each query to the key in each slot, and (N, K) valid."""
    keys, valid = neighbor_indices(spatial, kernel_size, stride, dilation, is_causal)  # (N, K) x2
    q = np.stack(np.unravel_index(np.arange(keys.shape[0]), spatial), axis=-1)  # (N, ndim)
    k = np.stack(np.unravel_index(keys, spatial), axis=-1)  # (N, K, ndim)
    return np.sqrt(((k - q[:, None, :]) ** 2).sum(-1)), valid  # (N, K), (N, K)


def attention_distance(
    attn: Any,
    kernel_size: Ints,
    dilation: Ints = 1,
    stride: Ints = 1,
    is_causal: Bools = False,
    cell_size: float = 1.0,
) -> Any:
    """Attention-weighted distance from every query to its keys: ``sum_t p_t * ||x_key - x_query||``.

    Args:
        attn: ``(B, *spatial, heads, K)`` attention probabilities in neighborhood layout.
        kernel_size: the layer's window size, one value or one per axis.
        dilation: the layer's dilation.
        stride: the layer's stride.
        is_causal: the layer's causality per axis.
        cell_size: length of one grid cell (e.g. input pixels per token, ``4 * 2**stage``).

    Returns:
        ``(B, *spatial, heads)`` distances, in grid cells times ``cell_size``; same kind as ``attn``.

    Raises:
        TypeError: ``attn`` is neither a NumPy array nor a torch tensor.
        ValueError: wrong layout, slots that do not match ``kernel_size``, rows that are not
            probabilities, or a window that does not fit the grid.
    """
    where = "attention_distance"
    attn, spatial, ks = _check_attn(attn, kernel_size, where)
    spatial, ks, st, dil, causal = check_window_args(spatial, ks, stride, dilation, is_causal, where=where)
    dist, valid = _slot_distances(spatial, ks, dil, st, causal)  # (N, K) x2
    table = (dist * valid * float(cell_size)).reshape(*spatial, 1, -1)  # (*spatial, 1, K)
    return (attn * _as(table, attn)).sum(-1)  # (B, *spatial, heads)


def mean_attention_distance(attn: Any, kernel_size: Ints, dilation: Ints = 1, stride: Ints = 1,
                            is_causal: Bools = False, cell_size: float = 1.0) -> Any:
    """:func:`attention_distance` averaged over images and queries: ``(heads,)``.

    Takes the arguments of :func:`attention_distance` and raises its errors.

    Returns:
        (heads,) mean distance per head; same kind as ``attn``.
    """
    d = attention_distance(attn, kernel_size, dilation, stride, is_causal, cell_size)
    return d.reshape(-1, d.shape[-1]).mean(0)  # (heads,)


def attention_entropy(attn: Any, kernel_size: Ints, dilation: Ints = 1, stride: Ints = 1,
                      is_causal: Bools = False, normalize: bool = False) -> Any:
    """Entropy of every query's attention over its neighbors, ``-sum_t p_t log p_t`` (nats).

    Args:
        attn: ``(B, *spatial, heads, K)`` attention probabilities in neighborhood layout.
        kernel_size: the layer's window size.
        dilation: the layer's dilation.
        stride: the layer's stride.
        is_causal: the layer's causality per axis (masked slots hold no key).
        normalize: divide by ``log(n)``, ``n`` the query's number of keys: 1 is uniform
            attention, 0 one-hot (a query with a single key gets 0).

    Returns:
        ``(B, *spatial, heads)`` entropies; same kind as ``attn``.
    """
    where = "attention_entropy"
    attn, spatial, ks = _check_attn(attn, kernel_size, where)
    spatial, ks, st, dil, causal = check_window_args(spatial, ks, stride, dilation, is_causal, where=where)
    if _is_torch(attn):
        import torch

        h = -torch.special.xlogy(attn, attn).sum(-1)  # 0 log 0 = 0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(attn > 0, attn * np.log(np.where(attn > 0, attn, 1)), 0).sum(-1)
    if not normalize:
        return h  # (B, *spatial, heads)
    _, valid = neighbor_indices(spatial, ks, st, dil, causal)  # (N, K)
    n = valid.sum(-1).reshape(*spatial, 1)  # (*spatial, 1) keys per query
    log_n = np.where(n > 1, np.log(np.maximum(n, 2)), np.inf)  # a single key: entropy 0 / inf = 0
    return h / _as(log_n, h)


def mean_attention_entropy(attn: Any, kernel_size: Ints, dilation: Ints = 1, stride: Ints = 1,
                           is_causal: Bools = False, normalize: bool = False) -> Any:
    """:func:`attention_entropy` averaged over images and queries: ``(heads,)``.

    Takes the arguments of :func:`attention_entropy` and raises its errors.

    Returns:
        (heads,) mean entropy per head; same kind as ``attn``.
    """
    h = attention_entropy(attn, kernel_size, dilation, stride, is_causal, normalize)
    return h.reshape(-1, h.shape[-1]).mean(0)  # (heads,)


def attention_rollout(
    attentions: Sequence[Any],
    kernel_size: Ints,
    dilations: Sequence[Ints],
    query: Ints | None = None,
    residual: float = 0.5,
    head_fusion: str = "mean",
) -> Any:
    """Attention rollout through a stack of NA/DiNA layers on one grid.

    Each layer's heads are fused (``mean``, ``max`` or ``min``) into ``A_l`` (N x N,
    scattered from neighborhood layout, rows renormalized), mixed with the residual,
    ``A_hat_l = residual * I + (1 - residual) * A_l``, and chained:
    ``R = A_hat_L ... A_hat_1``. The matrices are dense ``N x N`` (a 56x56 grid: 3136
    tokens, 79 MB in float64), so use it on one stage at a time.

    Args:
        attentions: the layers' attention, first layer first, each ``(B, *spatial, heads, K)``
            on the same grid.
        kernel_size: the layers' window size.
        dilations: one dilation (int or per axis) per layer.
        query: a grid cell: return its row of ``R`` as a map; None: all of ``R``.
        residual: weight of the identity (the skip connection); 0 is raw attention.
        head_fusion: how heads become one matrix: ``"mean"``, ``"max"`` or ``"min"``.

    Returns:
        With ``query``: ``(B, *spatial)``, how much of the query's output after the last
        layer traces back to each input token (sums to 1). Without: (B, N, N), ``N``
        cells row-major. Same kind as the inputs.

    Raises:
        ValueError: no layers, one dilation per layer missing, layers on different
            grids, a bad ``query``, ``residual`` or ``head_fusion``.
    """
    where = "attention_rollout"
    if len(attentions) == 0:
        raise ValueError(f"{where}: attentions is empty; give each layer's (B, *spatial, heads, K) "
                         f"attention.")
    if len(dilations) != len(attentions):
        raise ValueError(f"{where}: {len(attentions)} layers of attention but {len(dilations)} dilations; "
                         f"give one dilation per layer.")
    if head_fusion not in ("mean", "max", "min"):
        raise ValueError(f"{where}: head_fusion={head_fusion!r}; use 'mean', 'max' or 'min'.")
    if not 0.0 <= float(residual) <= 1.0:
        raise ValueError(f"{where}: residual={residual}; it is a weight in [0, 1].")
    first = attentions[0]
    checked = [_check_attn(a, kernel_size, where) for a in attentions]
    spatial = checked[0][1]
    for i, (a, sp, _) in enumerate(checked):
        if sp != spatial or a.shape[0] != first.shape[0]:
            raise ValueError(f"{where}: attentions[{i}] has shape {tuple(a.shape)} but attentions[0] has "
                             f"{tuple(first.shape)}; rollout runs on one grid (one stage).")
    B, N = int(first.shape[0]), int(np.prod(spatial))
    torch_mode = _is_torch(first)
    if torch_mode:
        import torch

        eye = torch.eye(N, dtype=first.dtype, device=first.device).expand(B, N, N)
    else:
        eye = np.broadcast_to(np.eye(N, dtype=first.dtype), (B, N, N))
    rollout = eye
    for attn, d in zip(attentions, dilations, strict=True):
        keys, valid = neighbor_indices(spatial, kernel_size, 1, d)  # (N, K)
        fused = attn.reshape(B, N, attn.shape[-2], attn.shape[-1])  # (B, N, heads, K)
        if torch_mode:
            fused = {"mean": torch.mean, "max": torch.amax, "min": torch.amin}[head_fusion](fused, dim=2)
        else:
            fused = getattr(np, head_fusion)(fused, axis=2)  # (B, N, K)
        fused = fused * _as(valid.astype(np.float64), fused)
        fused = fused / fused.sum(-1, keepdims=True)  # max/min fusion: rows sum to 1 again
        dense = _scatter_rows(fused, keys, N)  # (B, N, N)
        layer = float(residual) * eye + (1.0 - float(residual)) * dense
        rollout = layer @ rollout  # the new layer reads the previous layers' outputs
    if query is None:
        return rollout  # (B, N, N)
    q = as_tuple(query, len(spatial), "query", where)
    if any(not 0 <= c < n for c, n in zip(q, spatial, strict=True)):
        raise ValueError(f"{where}: query={q} is not a cell of the grid {spatial}.")
    return rollout[:, int(np.ravel_multi_index(q, spatial))].reshape(B, *spatial)  # (B, *spatial)


def _scatter_rows(weights: Any, keys: np.ndarray, n: int) -> Any:
    """(B, N, K) weights of slot ``t`` onto column ``keys[i, t]``: a dense (B, N, N) matrix."""
    B = weights.shape[0]
    if _is_torch(weights):
        import torch

        index = torch.as_tensor(keys, device=weights.device).expand(B, -1, -1)  # (B, N, K)
        dense = torch.zeros(B, n, n, dtype=weights.dtype, device=weights.device)
        return dense.scatter_add_(2, index, weights)
    dense = np.zeros((B, n, n), dtype=weights.dtype)
    rows = np.broadcast_to(np.arange(n)[:, None], keys.shape)  # (N, K)
    for b in range(B):
        np.add.at(dense[b], (rows, keys), weights[b])  # masked slots repeat a key with weight 0
    return dense


# ----------------------------------------------------------------------------------------
# A model's heads, layer by layer
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerStatistics:
    """Per-head statistics of one layer of a model.

    Attributes:
        stage: the stage, from 0 (``encoder.levels.{stage}``).
        layer: the layer in its stage, from 0 (``layers.{layer}``).
        kernel_size: the layer's window size.
        dilation: the layer's dilation.
        cell_px: input pixels per grid cell on each axis (``4 * 2**stage``).
        distance: (heads,) mean attention distance in input pixels.
        entropy: (heads,) mean attention entropy in nats.
        normalized_entropy: (heads,) the same divided by ``log(k * k)``: 1 is uniform.
    """

    stage: int
    layer: int
    kernel_size: int
    dilation: int
    cell_px: int
    distance: np.ndarray
    entropy: np.ndarray
    normalized_entropy: np.ndarray


def _real_grid(image_shape: Sequence[int], stage: int) -> tuple[int, int]:
    """Cells of the image itself at ``stage``: stride-2 convolutions (padding 1) round up."""
    def down(n: int, times: int) -> int:
        for _ in range(times):
            n = -(-n // 2)
        return n

    return down(int(image_shape[0]), stage + 2), down(int(image_shape[1]), stage + 2)


def check_pixel_values(pixel_values: Any, where: str, one_image: bool = False) -> None:
    """A float torch tensor (B, C, H, W) (B = 1 with ``one_image``), else an error saying what to pass."""
    import torch

    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"{where}: pixel_values is a {type(pixel_values).__name__}; the model is a torch "
                        f"model: pass a float tensor (B, C, H, W), e.g. torch.from_numpy(x), or "
                        f"dinat_ref.viz.attention_maps.image_to_pixels(image, processor) for a picture.")
    if pixel_values.ndim != 4:
        raise ValueError(f"{where}: pixel_values has shape {tuple(pixel_values.shape)}; expected "
                         f"(B, C, H, W) with the batch axis.")
    if one_image and pixel_values.shape[0] != 1:
        raise ValueError(f"{where}: pixel_values holds {pixel_values.shape[0]} images; this draws one image: "
                         f"pass pixel_values[i : i + 1].")


def model_attentions(model: Any, pixel_values: Any, where: str = "model_attentions",
                     one_image: bool = False) -> list[Any]:
    """Run ``model`` once in eval mode without gradients; its attention maps, one per layer.

    Args:
        model: a DiNAT model whose forward takes ``output_attentions=True``.
        pixel_values: (B, C, H, W) float torch tensor.
        where: the caller's name, for error messages.
        one_image: refuse a batch of more than one image.

    Returns:
        One (B, h, w, heads, k*k) tensor per layer, all stages in order.

    Raises:
        TypeError: ``pixel_values`` is not a torch tensor.
        ValueError: a wrong shape, or a model that returns a map per layer of another count.
    """
    import torch

    check_pixel_values(pixel_values, where, one_image)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(pixel_values, output_attentions=True)
    finally:
        model.train(was_training)
    depths = list(model.config.depths)
    if len(out.attentions) != sum(depths):
        raise ValueError(f"{where}: the model returned {len(out.attentions)} attention maps but "
                         f"config.depths={depths} has {sum(depths)} layers.")
    return list(out.attentions)


def model_attention_statistics(model: Any, pixel_values: Any) -> list[LayerStatistics]:
    """Mean attention distance and entropy of every head of every layer of a DiNAT model.

    Queries on padding (a layer whose ``k * d`` exceeds its grid pads it) are left out of
    the averages; the weight real queries give to padded keys counts, since the model
    gives it.

    Args:
        model: a :class:`dinat_ref.torch.DinatModel` or ``DinatForImageClassification``
            (anything with ``config.depths/dilations/kernel_size`` whose forward takes
            ``output_attentions=True``).
        pixel_values: (B, C, H, W) float tensor, as the model takes it.

    Returns:
        One :class:`LayerStatistics` per layer, in model order.
    """
    attentions = model_attentions(model, pixel_values, "model_attention_statistics")
    cfg = model.config
    k = int(cfg.kernel_size)
    out, flat = [], 0
    for stage, depth in enumerate(cfg.depths):
        h, w = _real_grid(pixel_values.shape[-2:], stage)
        for layer in range(depth):
            d = int(cfg.dilations[stage][layer])
            attn = attentions[flat].detach().double().cpu().numpy()  # (B, hp, wp, heads, K)
            flat += 1
            cell = 4 * 2**stage
            dist = attention_distance(attn, k, d, cell_size=cell)[:, :h, :w]  # (B, h, w, heads)
            ent = attention_entropy(attn, k, d)[:, :h, :w]
            heads = dist.shape[-1]
            out.append(LayerStatistics(stage, layer, k, d, cell, dist.reshape(-1, heads).mean(0),
                                       ent.reshape(-1, heads).mean(0),
                                       ent.reshape(-1, heads).mean(0) / np.log(k * k)))
    return out


def model_attention_rollout(model: Any, pixel_values: Any, stage: int, query_cell: Sequence[int],
                            residual: float = 0.5, head_fusion: str = "mean") -> np.ndarray:
    """Attention rollout through every layer of one stage of a model, for one query cell.

    Args:
        model: as for :func:`model_attention_statistics`.
        pixel_values: (1, C, H, W) float tensor: one image.
        stage: the stage, from 0.
        query_cell: (row, col) on the stage's grid (a pixel ``p`` is cell ``p // (4 * 2**stage)``).
        residual: weight of the skip connection in each layer.
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over heads.

    Returns:
        (h, w) on the stage's (possibly padded) grid: how much of the query cell's output
        after the stage's last layer traces back to each of the stage's input tokens.
    """
    where = "model_attention_rollout"
    depths = list(model.config.depths)
    if not 0 <= int(stage) < len(depths):
        raise ValueError(f"{where}: stage={stage}; the model has stages 0..{len(depths) - 1}.")
    attentions = model_attentions(model, pixel_values, where, one_image=True)
    first = sum(depths[:stage])
    layers = [a.detach().double().cpu().numpy() for a in attentions[first:first + depths[stage]]]
    dils = [int(d) for d in model.config.dilations[stage]]
    return attention_rollout(layers, int(model.config.kernel_size), dils, tuple(query_cell), residual,
                             head_fusion)[0]
