"""A self-contained HTML page: hover a pixel of the image, see where it attends, per layer and head.

The page holds the image (PNG, base64), each chosen layer's attention in neighborhood layout
(``(h*w, heads, K)`` probabilities) and the key table of its window (``(h*w, K)`` flat key
indices, from :func:`dinat_ref.neighborhood.neighbor_indices`). Hovering a pixel picks its
cell on each layer's grid (``pixel // cell_px``) and scatters that query's ``K`` weights onto
the grid, exactly as :func:`dinat_ref.viz.attention_maps.attention_to_grid` does, then paints
one small map per head (viridis, 0 to the largest weight of the map). No server, no network:
open the file in any browser.

``window.attentionGrid(layer, head)`` returns the map on display (``h*w`` numbers, row-major)
so a browser test can compare it with the Python scatter.
"""

from __future__ import annotations

import base64
import html as html_lib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dinat_ref.neighborhood import neighbor_indices
from dinat_ref.viz.attention_maps import _check_image, _choose_layers, image_to_pixels

__all__ = ["attention_html", "model_attention_html", "write_html"]


def _png_base64(image: np.ndarray) -> str:
    from PIL import Image

    arr = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _viridis() -> list[list[int]]:
    from matplotlib import colormaps

    return (np.round(colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255)).astype(int).tolist()


def attention_html(image: np.ndarray, layers: Sequence[dict[str, Any]], title: str = "") -> str:
    """The page for ``image`` and the attention of some layers.

    Args:
        image: (H, W) or (H, W, 3) floats in [0, 1], as drawn.
        layers: one dict per layer with ``name`` (a label), ``attn`` ((h, w, heads, K)
            probabilities of this image), ``kernel_size``, ``dilation`` and ``cell_px``
            (input pixels per cell).
        title: heading of the page.

    Returns:
        The HTML text.
    """
    image = _check_image(image, "attention_html")
    data = []
    for i, lay in enumerate(layers):
        attn = np.asarray(lay["attn"], dtype=np.float64)
        if attn.ndim != 4:
            raise ValueError(f"attention_html: layers[{i}]['attn'] has shape {attn.shape}; expected "
                             f"(h, w, heads, K) for one image.")
        h, w, heads, K = attn.shape
        keys, valid = neighbor_indices((h, w), int(lay["kernel_size"]), 1, int(lay["dilation"]))  # (N, K)
        weights = np.where(valid[:, None, :], attn.reshape(h * w, heads, K), 0.0)  # (N, heads, K)
        data.append({"name": str(lay["name"]), "h": h, "w": w, "heads": heads, "cell": int(lay["cell_px"]),
                     "keys": keys.tolist(), "attn": np.round(weights, 5).tolist()})
    payload = json.dumps({"layers": data, "viridis": _viridis(), "H": image.shape[0], "W": image.shape[1]},
                         separators=(",", ":"))
    return _TEMPLATE.replace("__TITLE__", html_lib.escape(title or "Attention per head")) \
        .replace("__IMAGE__", _png_base64(image)).replace("__DATA__", payload)


def model_attention_html(model: Any, image: np.ndarray, processor: Any = None,
                         layers: str | Sequence[tuple[int, int]] = "dilated", title: str = "") -> str:
    """Run ``model`` on ``image`` and build the hover page for the chosen layers.

    Args:
        model: a torch DiNAT model (``output_attentions=True``).
        image: (H, W) or (H, W, 3) floats in [0, 1], as drawn.
        processor: the model's image processor (see :func:`~dinat_ref.viz.attention_maps.image_to_pixels`).
        layers: ``"dilated"``, ``"all"`` or ``(stage, layer)`` pairs, from 0.
        title: heading of the page.

    Returns:
        The HTML text.
    """
    from dinat_ref.analysis import model_attentions

    pixels = image_to_pixels(image, processor)
    cfg = model.config
    chosen = _choose_layers(list(cfg.depths), [list(d) for d in cfg.dilations], layers)
    attentions = model_attentions(model, pixels, "model_attention_html", one_image=True)
    out, flat = [], 0
    for stage, depth in enumerate(cfg.depths):
        for layer in range(depth):
            if (stage, layer) in chosen:
                d = int(cfg.dilations[stage][layer])
                out.append({"name": f"stage {stage}, layer {layer} (d={d})",
                            "attn": attentions[flat][0].float().cpu().numpy(),
                            "kernel_size": int(cfg.kernel_size), "dilation": d, "cell_px": 4 * 2**stage})
            flat += 1
    return attention_html(image, out, title)


def write_html(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 14px sans-serif; margin: 1em; }
.row { display: flex; align-items: flex-start; gap: 10px; margin: 6px 0; }
.label { width: 11em; font-size: 12px; }
canvas { image-rendering: pixelated; border: 1px solid #ccc; }
figure { margin: 0; text-align: center; font-size: 12px; }
</style></head>
<body>
<h3>__TITLE__</h3>
<p>Hover the image: each map shows where that pixel's cell attends, per layer (rows) and head
(columns); colour: the attention weight (viridis, 0 to the map's largest weight).</p>
<div class="row"><canvas id="image"></canvas><pre id="readout" data-query="">move over the image</pre></div>
<div id="maps"></div>
<script>
const DATA = __DATA__;
const IMG = new Image();
const SCALE = Math.max(1, Math.floor(224 / Math.max(DATA.H, DATA.W)));
const grids = [];  // grids[layer][head]: Float64Array(h*w), the map on display
function setup() {
  const c = document.getElementById("image");
  c.width = DATA.W * SCALE; c.height = DATA.H * SCALE;
  c.getContext("2d").imageSmoothingEnabled = false;
  c.getContext("2d").drawImage(IMG, 0, 0, c.width, c.height);
  const maps = document.getElementById("maps");
  DATA.layers.forEach((L, li) => {
    const row = document.createElement("div"); row.className = "row";
    const lab = document.createElement("div"); lab.className = "label"; lab.textContent = L.name;
    row.appendChild(lab);
    grids.push([]);
    for (let h = 0; h < L.heads; h++) {
      const fig = document.createElement("figure");
      const cv = document.createElement("canvas");
      cv.id = `map-${li}-${h}`; cv.width = L.w * L.cell * SCALE / 2; cv.height = L.h * L.cell * SCALE / 2;
      fig.appendChild(cv);
      const cap = document.createElement("figcaption"); cap.textContent = `head ${h}`; fig.appendChild(cap);
      row.appendChild(fig);
      grids[li].push(new Float64Array(L.h * L.w));
    }
    maps.appendChild(row);
  });
  c.addEventListener("mousemove", (e) => {
    const r = Math.floor(e.offsetY / SCALE), col = Math.floor(e.offsetX / SCALE);
    if (r >= 0 && r < DATA.H && col >= 0 && col < DATA.W) show(r, col);
  });
}
function show(r, c) {
  const out = [`query pixel (${r}, ${c})`];
  DATA.layers.forEach((L, li) => {
    const qr = Math.floor(r / L.cell), qc = Math.floor(c / L.cell), n = qr * L.w + qc;
    out.push(`${L.name}: cell (${qr}, ${qc})`);
    for (let h = 0; h < L.heads; h++) {
      const g = grids[li][h]; g.fill(0);
      for (let t = 0; t < L.keys[n].length; t++) g[L.keys[n][t]] += L.attn[n][h][t];
      paint(document.getElementById(`map-${li}-${h}`), L, g, qr, qc);
    }
  });
  const ro = document.getElementById("readout");
  ro.dataset.query = `${r},${c}`; ro.textContent = out.join("\\n");
}
function paint(cv, L, g, qr, qc) {
  const ctx = cv.getContext("2d"), sx = cv.width / L.w, sy = cv.height / L.h;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(IMG, 0, 0, DATA.W * SCALE / 2, DATA.H * SCALE / 2);  // the padded grid may be larger
  ctx.fillStyle = "rgba(0,0,0,0.45)"; ctx.fillRect(0, 0, cv.width, cv.height);
  let top = 0; for (const v of g) top = Math.max(top, v);
  for (let i = 0; i < g.length; i++) {
    if (g[i] <= 0) continue;
    const rgb = DATA.viridis[Math.min(255, Math.floor(255 * g[i] / top))];
    ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
    ctx.fillRect((i % L.w) * sx, Math.floor(i / L.w) * sy, sx, sy);
  }
  ctx.strokeStyle = "red"; ctx.lineWidth = 2; ctx.strokeRect(qc * sx, qr * sy, sx, sy);
}
window.attentionGrid = (layer, head) => Array.from(grids[layer][head]);
IMG.onload = setup;
IMG.src = "data:image/png;base64,__IMAGE__";
</script></body></html>
"""
