"""Attention maps: the scattered map matches dense masked attention, and the figures render.

The check for :func:`attention_to_grid` is independent of the gather path: we build
attention the dense way (every query against every key, ``-inf`` outside
:func:`dense_mask`, softmax over all N keys) and compare that row with what the
scatter made of the NumPy reference's neighborhood-layout probabilities.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dinat_ref.neighborhood import dense_mask  # noqa: E402
from dinat_ref.numpy import na2d_qk  # noqa: E402
from dinat_ref.viz.attention_maps import (  # noqa: E402
    LayerAttention,
    attention_to_grid,
    pixel_to_cell,
    plot_attention_maps,
    upsample_cells,
)

# (grid shape, kernel_size, dilation, is_causal): square and not, borders, L % d != 0, causal.
CONFIGS = [
    ((7, 7), 3, 1, False),
    ((9, 6), 3, 2, False),
    ((11, 8), (5, 3), (2, 2), False),
    ((10, 10), 4, 2, False),  # even kernel
    ((10, 11), 3, 3, False),  # 10 % 3 != 0
    ((7, 9), 3, (2, 1), (True, False)),  # causal on rows
]


def _softmax(s: np.ndarray, axis: int = -1) -> np.ndarray:
    m = s.max(axis=axis, keepdims=True)
    e = np.exp(s - m)
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("shape, kernel_size, dilation, is_causal", CONFIGS)
def test_scatter_equals_dense_masked_attention(shape, kernel_size, dilation, is_causal):
    rng = np.random.default_rng(0)
    heads, dim = 3, 4
    q = rng.standard_normal((1, *shape, heads, dim))  # (1, h, w, heads, dim)
    k = rng.standard_normal((1, *shape, heads, dim))
    probs = _softmax(na2d_qk(q, k, kernel_size, dilation=dilation, is_causal=is_causal))[0]
    # Dense: all N keys, masked by the rule's window bounds, softmax over N.
    mask = dense_mask(shape, kernel_size, dilation=dilation, is_causal=is_causal)  # (N, N)
    qf, kf = q[0].reshape(-1, heads, dim), k[0].reshape(-1, heads, dim)  # (N, heads, dim)
    logits = np.einsum("nhd,mhd->hnm", qf, kf) / np.sqrt(dim)  # (heads, N, N)
    dense = _softmax(np.where(mask[None], logits, -np.inf))  # (heads, N, N)
    h, w = shape
    for query in [(0, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w - 1), (h - 2, 1)]:
        grid = attention_to_grid(probs, query, kernel_size, dilation=dilation, is_causal=is_causal)
        assert grid.shape == (heads, h, w)
        n = query[0] * w + query[1]
        # Weight only on the query's neighbors, every neighbor gets some, each head sums to 1.
        support = grid.reshape(heads, -1) > 0  # (heads, N)
        assert (support == mask[n][None]).all()
        np.testing.assert_allclose(grid.reshape(heads, -1).sum(-1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(grid.reshape(heads, -1), dense[:, n], rtol=1e-10, atol=1e-14)


def test_scatter_rejects_bad_input():
    attn = np.full((5, 5, 2, 9), 1 / 9)
    with pytest.raises(ValueError, match="slots"):
        attention_to_grid(attn, (0, 0), kernel_size=5)
    with pytest.raises(ValueError, match="outside"):
        attention_to_grid(attn, (5, 0), kernel_size=3)
    with pytest.raises(ValueError, match="4 axes"):
        attention_to_grid(attn[None], (0, 0), kernel_size=3)
    with pytest.raises(ValueError, match="outside"):
        pixel_to_cell((32, 0), (32, 32), cell_px=4)


def test_upsample_and_pixel_to_cell_agree():
    grid = np.arange(12.0).reshape(3, 4)
    up = upsample_cells(grid, 4)  # (12, 16)
    for pixel in [(0, 0), (5, 9), (11, 15)]:
        assert up[pixel] == grid[pixel_to_cell(pixel, up.shape, 4)]


def test_plot_renders_from_hand_built_layers():
    rng = np.random.default_rng(1)
    layers = []
    for stage, (side, heads, dil) in enumerate([(8, 2, 2), (4, 4, 1)]):
        q = rng.standard_normal((1, side, side, heads, 8))
        probs = _softmax(na2d_qk(q, q, 3, dilation=dil))[0]  # (side, side, heads, 9)
        cell = 4 * 2**stage
        query_cell = pixel_to_cell((13, 20), (32, 32), cell)
        layers.append(LayerAttention(stage, 0, 3, dil, cell, (13, 20), query_cell, (side, side),
                                     attention_to_grid(probs, query_cell, 3, dilation=dil)))
    image = rng.random((32, 32))
    fig = plot_attention_maps(image, layers, title="random", max_heads=3)
    fig.canvas.draw()
    # One input column + 3 head columns + a colorbar, per row.
    assert len(fig.axes) == 2 * (3 + 2)
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        plot_attention_maps(image, [])


# ----------------------------------------------------------------------------------------
# Model paths: a real DiNAT's attention, scattered, obeys the rule
# ----------------------------------------------------------------------------------------

def _check_against_rule(layers):
    """Every map: weight exactly on the query cell's neighbors (dense_mask), 1 per head."""
    for lay in layers:
        heads, h, w = lay.maps.shape
        mask = dense_mask((h, w), lay.kernel_size, dilation=lay.dilation)  # (N, N)
        n = lay.query_cell[0] * w + lay.query_cell[1]
        flat = lay.maps.reshape(heads, -1)  # (heads, N)
        assert ((flat > 0) == mask[n][None]).all(), (lay.stage, lay.layer)
        np.testing.assert_allclose(flat.sum(-1), 1.0, rtol=1e-5)
        assert lay.query_cell == tuple(p // lay.cell_px for p in lay.query_pixel)


def test_digits_checkpoint_attention_obeys_the_rule():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from dinat_ref.torch import digits as train_digits
    from dinat_ref.viz.attention_maps import model_attention

    model = train_digits.load_pretrained()
    _, _, x_test, _ = train_digits.load_digits_split()
    for query in [(0, 0), (21, 21), (47, 30)]:
        layers = model_attention(model, x_test[:1], query, layers="all")
        assert [(lay.stage, lay.layer) for lay in layers] == [(0, 0), (0, 1), (1, 0), (1, 1)]
        assert [lay.dilation for lay in layers] == [1, 3, 1, 2]
        _check_against_rule(layers)
    with pytest.raises(ValueError, match="outside"):
        model_attention(model, x_test[:1], (48, 0))
    with pytest.raises(ValueError, match="does not exist"):
        model_attention(model, x_test[:1], (0, 0), layers=[(2, 0)])


def test_photo_figure_on_a_padded_grid():
    """At 112x112, DiNAT-mini's dilation-8 layer pads 28x28 to 56x56: maps cover the padding."""
    pytest.importorskip("torch")
    import torch

    from dinat_ref.config import DinatConfig
    from dinat_ref.torch import DinatForImageClassification
    from dinat_ref.viz.attention_maps import model_attention, photo_attention_figure, sample_photo

    image = sample_photo(112)
    assert image.shape == (112, 112, 3) and 0.0 <= image.min() and image.max() <= 1.0
    torch.manual_seed(0)
    model = DinatForImageClassification(DinatConfig.from_preset("mini")).eval()
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None]
    layers = model_attention(model, pixels, (40, 66))
    assert [(lay.stage, lay.dilation) for lay in layers] == [(0, 8), (1, 4), (2, 2), (3, 1)]
    assert layers[0].maps.shape[1:] == (56, 56) and layers[0].image_grid == (28, 28)
    _check_against_rule(layers)

    fig = photo_attention_figure(size=112)
    assert "random weights" in fig._suptitle.get_text()  # the default must say so
    fig.canvas.draw()
    plt.close(fig)


def test_figure_registry_lists_both_and_writes_the_digits_png(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from dinat_ref.commands.figures import FIGURES, generate

    assert {"attention_photo", "attention_digits"} <= set(FIGURES)
    paths = generate(tmp_path, ["attention_digits"], verbose=False)
    assert [p.name for p in paths] == ["attention_digits.png"]
    assert paths[0].stat().st_size > 10_000


# ----------------------------------------------------------------------------------------
# Style, heads and clear errors
# ----------------------------------------------------------------------------------------

def _hand_layers(heads=4):
    rng = np.random.default_rng(2)
    q = rng.standard_normal((1, 8, 8, heads, 8))
    probs = _softmax(na2d_qk(q, q, 3, dilation=2))[0]  # (8, 8, heads, 9)
    cell = pixel_to_cell((13, 20), (32, 32), 4)
    maps = attention_to_grid(probs, cell, 3, dilation=2)  # (heads, 8, 8)
    return [LayerAttention(0, 1, 3, 2, 4, (13, 20), cell, (8, 8), maps)]


def test_heads_selection_keeps_the_head_numbers_and_shares_the_scale():
    layers = _hand_layers()
    image = np.random.default_rng(3).random((32, 32))
    fig = plot_attention_maps(image, layers, heads=[3, 1], vmax=1.0, cmap="magma", overlay=False)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("head")]
    assert titles == ["head 3", "head 1"]
    maps = [ax.images[-1] for ax in fig.axes[1:3]]
    assert all(m.norm.vmin == 0.0 and m.norm.vmax == 1.0 and m.cmap.name == "magma" for m in maps)
    # What the panel for "head 3" shows is head 3's map, upsampled.
    np.testing.assert_allclose(np.ma.getdata(maps[0].get_array()), upsample_cells(layers[0].maps[3], 4))
    assert "stage 0, layer 1" in fig.axes[0].get_ylabel()  # 0-based, as the API
    with pytest.raises(ValueError, match="heads 0..3"):
        plot_attention_maps(image, layers, heads=[4])


def test_rcparams_colormap_applies():
    with plt.rc_context({"image.cmap": "cividis"}):
        fig = plot_attention_maps(np.zeros((32, 32)), _hand_layers(), max_heads=2)
    assert fig.axes[1].images[-1].cmap.name == "cividis"


def test_image_errors_say_what_to_pass():
    layers = _hand_layers()
    with pytest.raises(ValueError, match="channels first"):
        plot_attention_maps(np.zeros((3, 32, 32)), layers)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plot_attention_maps(np.full((32, 32), 255.0), layers)
    with pytest.raises(ValueError, match="index a batch"):
        plot_attention_maps(np.zeros((2, 32, 32, 3)), layers)


def test_model_attention_refuses_numpy_and_batches():
    torch = pytest.importorskip("torch")
    from dinat_ref.config import DinatConfig
    from dinat_ref.torch import DinatForImageClassification
    from dinat_ref.viz.attention_maps import model_attention

    model = DinatForImageClassification(DinatConfig(embed_dim=8, depths=[1], num_heads=[1], dilations=[[1]],
                                                    kernel_size=3, num_channels=1))
    with pytest.raises(TypeError, match="torch model"):
        model_attention(model, np.zeros((1, 1, 16, 16), dtype=np.float32), (0, 0))
    with pytest.raises(ValueError, match="holds 2 images"):
        model_attention(model, torch.zeros(2, 1, 16, 16), (0, 0))


def test_one_image_helper_feeds_both_paths():
    """The digits figure's pixels equal the test split's, through the digits processor."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from dinat_ref.torch import digits as train_digits
    from dinat_ref.viz.attention_maps import Normalize, digits_processor, image_to_pixels

    _, _, x_test, _ = train_digits.load_digits_split()
    image = train_digits.to_unit_range(x_test[1, 0].numpy())
    np.testing.assert_allclose(image_to_pixels(image, digits_processor()).numpy(), x_test[1:2].numpy(),
                               atol=1e-5)
    rgb = np.random.default_rng(0).random((8, 8, 3))
    by_hand = (rgb - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])  # ImageNet
    np.testing.assert_allclose(image_to_pixels(rgb).numpy()[0], by_hand.transpose(2, 0, 1), rtol=1e-5)
    from dinat_ref.viz.attention_maps import photo_processor

    hub = image_to_pixels(rgb, photo_processor(8)).numpy()[0]  # the hub checkpoints' recipe, no resize at 8
    np.testing.assert_allclose(hub, by_hand.transpose(2, 0, 1), rtol=1e-5)
    with pytest.raises(ValueError, match="channel"):
        image_to_pixels(rgb, Normalize((0.5,), (0.5,)))
