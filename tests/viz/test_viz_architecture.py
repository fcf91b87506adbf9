"""The architecture diagram's shapes come from the config and match what the model computes."""

from __future__ import annotations

import pytest

from dinat_ref import DinatConfig
from dinat_ref.viz.architecture import architecture_boxes, plot_dinat_architecture


@pytest.mark.parametrize("image_size", [224, 160, 97])
def test_stage_shapes_match_the_model(image_size):
    torch = pytest.importorskip("torch")
    import dinat_ref.torch as dt

    config = DinatConfig.from_preset("mini", num_labels=10)
    model = dt.DinatModel(config).eval()
    with torch.no_grad():
        hidden = model(torch.zeros(1, 3, image_size, image_size), output_hidden_states=True).hidden_states
    boxes = architecture_boxes(config, image_size)
    stages = [b for b in boxes if b.kind == "stage"]
    # hidden_states[0] is the stem's output, i.e. stage 1's input; stage s's input is hidden_states[s]
    for s, box in enumerate(stages):
        _, h, w, c = hidden[s].shape
        assert box.detail.startswith(f"{c} x {h} x {w};"), (s, box.detail)
    assert boxes[0].detail == f"3 x {image_size} x {image_size}"
    assert boxes[-1].detail == "10 logits"


def test_bad_image_size_is_named():
    with pytest.raises(ValueError, match="image_size must be a positive integer, got 0"):
        architecture_boxes(DinatConfig.from_preset("mini"), 0)


def test_figure_shows_every_box():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    config = DinatConfig.from_preset("tiny")
    fig = plot_dinat_architecture(config, image_size=384)
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    for box in architecture_boxes(config, 384):
        assert box.title in texts and box.detail in texts
    assert "MLP: linear C -> 3C, GELU, linear 3C -> C" in texts
    plt.close(fig)
