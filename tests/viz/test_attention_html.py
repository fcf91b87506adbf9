"""The hover page of attention maps, in a real headless browser.

The page scatters a query's neighborhood weights onto the grid in JavaScript; hovering a
pixel must show exactly what :func:`dinat_ref.viz.attention_maps.attention_to_grid` makes of
the model's attention for that pixel's cell, in every layer and head. The page must load
nothing from elsewhere and report no console error.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from browser import watch_problems  # noqa: E402

from dinat_ref.analysis import model_attentions  # noqa: E402
from dinat_ref.torch import digits as train_digits  # noqa: E402
from dinat_ref.viz.attention_maps import attention_to_grid, digits_processor, image_to_pixels  # noqa: E402
from dinat_ref.viz.html import attention_html, model_attention_html, write_html  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def digit():
    model = train_digits.load_pretrained()
    _, _, x_test, _ = train_digits.load_digits_split()
    return model, train_digits.to_unit_range(x_test[1, 0].numpy())  # (48, 48) in [0, 1]


def test_page_is_self_contained(digit, tmp_path):
    model, image = digit
    page = model_attention_html(model, image, digits_processor(), layers="all", title="digits <test>")
    assert page.lstrip().lower().startswith("<!doctype html>")
    for needle in ("http://", "https://", "<link", "@import"):
        assert needle not in page
    assert "digits &lt;test&gt;" in page  # the title is escaped
    path = write_html(page, tmp_path / "a.html")
    assert path.read_text(encoding="utf-8") == page and [p.name for p in tmp_path.iterdir()] == ["a.html"]
    with pytest.raises(ValueError, match="one image"):
        attention_html(image, [{"name": "x", "attn": np.zeros((1, 4, 4, 1, 9)), "kernel_size": 3,
                                "dilation": 1, "cell_px": 4}])


def test_hover_shows_the_scattered_attention(browser, digit, tmp_path):
    model, image = digit
    page_text = model_attention_html(model, image, digits_processor(), layers="all")
    path = write_html(page_text, tmp_path / "p.html")
    attentions = [a[0].numpy() for a in model_attentions(model, image_to_pixels(image, digits_processor()))]
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    problems = watch_problems(page, local=("file:", "data:"))
    page.goto(path.as_uri())
    page.wait_for_function("document.getElementById('image').width > 0")
    box = page.locator("#image").bounding_box()
    scale = box["width"] / image.shape[1]
    k, dilations = 3, [1, 3, 1, 2]  # the digits checkpoint: depths [2, 2], dilations [[1, 3], [1, 2]]
    for pixel in [(21, 21), (0, 47), (47, 3)]:
        page.mouse.move(box["x"] + (pixel[1] + 0.5) * scale, box["y"] + (pixel[0] + 0.5) * scale)
        shown = f"document.getElementById('readout').dataset.query === '{pixel[0]},{pixel[1]}'"
        page.wait_for_function(shown)
        for li, (attn, d) in enumerate(zip(attentions, dilations, strict=True)):
            cell_px = 4 * 2 ** (li // 2)
            cell = (pixel[0] // cell_px, pixel[1] // cell_px)
            want = attention_to_grid(attn, cell, k, dilation=d)  # (heads, h, w)
            for head in range(want.shape[0]):
                got = np.array(page.evaluate(f"window.attentionGrid({li}, {head})"))
                np.testing.assert_allclose(got, want[head].ravel(), atol=2e-5)
    context.close()
    assert not problems, problems
