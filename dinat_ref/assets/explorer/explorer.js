// The explorer page: controls, the grid view, the Q x K mask row, the layer stack.
// Every index drawn comes from DinatRule (rule.js, the port of dinat_ref/neighborhood.py).
"use strict";

(function () {
  const R = DinatRule;
  // Okabe-Ito, as dinat_ref.viz.windows.OKABE_ITO: one color per dilation group.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"];
  const TINT = 0.22; // share of the group color in a non-neighbor cell (the rest is white)
  const RF_COLOR = "#0072B2";

  function hexRgb(hex) {
    return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  }
  function tint(hex, t) {
    const [r, g, b] = hexRgb(hex).map((c) => Math.round(255 - (255 - c) * t));
    return `rgb(${r},${g},${b})`;
  }
  function textColor(hex) {
    const [r, g, b] = hexRgb(hex).map((c) => c / 255);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 ? "#000" : "#fff";
  }
  const STRONG = PALETTE;
  const LIGHT = PALETTE.map((c) => tint(c, TINT));

  // ---------------------------------------------------------------- state
  const state = {
    ndim: 2,
    shape: [12, 16, 8],
    kernelSize: [3, 3, 3],
    dilation: [2, 2, 1],
    stride: [1, 1, 1],
    isCausal: [false, false, false],
    query: [0, 15, 0],
    viewSlice: 0, // 3-D: the axis-0 slice on screen
    pinned: false,
    showRpb: true,
    dilations: "1, 2, 1, 4",
    error: null,
    drawn: null, // what the last draw showed, for tests and curious readers
  };

  const $ = (id) => document.getElementById(id);
  const axesOf = (arr) => arr.slice(0, state.ndim);
  function config() {
    return {
      shape: axesOf(state.shape), kernelSize: axesOf(state.kernelSize), stride: axesOf(state.stride),
      dilation: axesOf(state.dilation), isCausal: axesOf(state.isCausal),
    };
  }

  // ---------------------------------------------------------------- controls
  const FIELDS = [
    ["shape", "length", 1, 256],
    ["kernelSize", "kernel size k", 2, 64],
    ["dilation", "dilation d", 1, 64],
    ["stride", "stride s", 1, 64],
  ];

  function buildControls() {
    const body = $("axes-body");
    for (let a = 0; a < 3; a++) {
      const tr = document.createElement("tr");
      tr.id = `axis-row-${a}`;
      tr.innerHTML = `<th scope="row">axis ${a}</th>` +
        FIELDS.map(([key, label, min, max]) =>
          `<td><input type="number" id="${key}-${a}" data-key="${key}" data-axis="${a}" ` +
          `min="${min}" max="${max}" step="1" aria-label="${label}, axis ${a}"></td>`).join("") +
        `<td><input type="checkbox" id="isCausal-${a}" data-key="isCausal" data-axis="${a}" ` +
        `aria-label="causal, axis ${a}"></td>`;
      body.appendChild(tr);
    }
    body.addEventListener("change", (ev) => {
      const el = ev.target;
      const key = el.dataset.key;
      const a = Number(el.dataset.axis);
      if (key === "isCausal") state.isCausal[a] = el.checked;
      else state[key][a] = Math.round(Number(el.value));
      clampQuery();
      update();
    });
    $("ndim").addEventListener("change", (ev) => {
      state.ndim = Number(ev.target.value);
      clampQuery();
      update();
    });
    $("show-rpb").addEventListener("change", (ev) => {
      state.showRpb = ev.target.checked;
      update();
    });
    $("slice").addEventListener("input", (ev) => {
      state.viewSlice = Number(ev.target.value);
      update();
    });
    $("dilations").addEventListener("change", (ev) => {
      state.dilations = ev.target.value;
      update();
    });
    for (const btn of document.querySelectorAll("[data-stack]")) {
      btn.addEventListener("click", () => {
        const cfg = config();
        // The largest dilation that fits every axis, as DiNAT picks per stage: floor(L / k).
        const big = Math.max(1, Math.min(...cfg.shape.map((L, a) => Math.floor(L / cfg.kernelSize[a]))));
        const pattern = { na: [1, 1, 1, 1], dinat: [1, big, 1, big], dina: [big, big] }[btn.dataset.stack];
        state.dilations = pattern.join(", ");
        update();
      });
    }
  }

  function syncControls() {
    $("ndim").value = String(state.ndim);
    for (let a = 0; a < 3; a++) {
      $(`axis-row-${a}`).hidden = a >= state.ndim;
      for (const [key] of FIELDS) {
        const el = $(`${key}-${a}`);
        if (Number(el.value) !== state[key][a] || el.value === "") el.value = String(state[key][a]);
      }
      $(`isCausal-${a}`).checked = state.isCausal[a];
    }
    $("show-rpb").checked = state.showRpb;
    $("dilations").value = state.dilations;
    $("slice-row").hidden = state.ndim !== 3;
    $("slice").max = String(state.shape[0] - 1);
    $("slice").value = String(state.viewSlice);
    $("slice-value").textContent = String(state.viewSlice);
  }

  function clampQuery() {
    for (let a = 0; a < 3; a++) state.query[a] = Math.min(Math.max(state.query[a], 0), Math.max(state.shape[a] - 1, 0));
    state.viewSlice = Math.min(state.viewSlice, Math.max(state.shape[0] - 1, 0));
  }

  // ---------------------------------------------------------------- geometry
  // The grid on screen: 1-D one row; 2-D rows = axis 0; 3-D the slice viewSlice of axis 0.
  function layout(maxW, maxH, maxCell) {
    const shape = axesOf(state.shape);
    const rows = state.ndim === 1 ? 1 : shape[state.ndim - 2];
    const cols = shape[state.ndim - 1];
    const cell = Math.max(3, Math.min(maxCell, Math.floor(Math.min(maxW / cols, maxH / rows))));
    return { rows, cols, cell };
  }

  function cellCoords(r, c) {
    if (state.ndim === 1) return [c];
    if (state.ndim === 2) return [r, c];
    return [state.viewSlice, r, c];
  }

  function prepareCanvas(canvas, w, h) {
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return ctx;
  }

  function groupIndex(coords, dilation) {
    let g = 0;
    for (let a = 0; a < coords.length; a++) g = g * dilation[a] + (coords[a] % dilation[a]);
    return g % PALETTE.length;
  }

  // ---------------------------------------------------------------- the grid view
  let grid = null; // last layout of the grid canvas, for hit tests

  function drawGrid(cfg, wins, nbrSet, sameWindow, rpbOf) {
    const canvas = $("grid");
    const room = Math.max(200, Math.min(720, $("view").clientWidth - 8)); // narrow windows, iframes
    const { rows, cols, cell } = layout(room, 560, 44);
    const pad = 2;
    const ctx = prepareCanvas(canvas, cols * cell + 2 * pad, rows * cell + 2 * pad);
    grid = { rows, cols, cell, pad };
    const q = axesOf(state.query);
    const qFlat = R.ravel(q, cfg.shape);
    const gap = cell >= 6 ? 1 : 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const coords = cellCoords(r, c);
        const flat = R.ravel(coords, cfg.shape);
        const g = groupIndex(coords, cfg.dilation);
        const isNbr = nbrSet.has(flat);
        ctx.fillStyle = isNbr ? STRONG[g] : LIGHT[g];
        ctx.fillRect(pad + c * cell, pad + r * cell, cell - gap, cell - gap);
        if (sameWindow.has(flat) && flat !== qFlat && cell >= 8) {
          ctx.fillStyle = "#000";
          ctx.beginPath();
          // bottom-right corner, clear of the RPB label in the middle
          ctx.arc(pad + c * cell + cell * 0.8 - gap, pad + r * cell + cell * 0.8 - gap, Math.max(1.5, cell / 10), 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    }
    // RPB index of each neighbor, when the cells are large enough to hold it.
    const text = state.showRpb && cell >= (state.ndim === 1 ? 16 : 26);
    if (text) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = `${Math.floor(cell * (state.ndim === 1 ? 0.42 : 0.3))}px system-ui, sans-serif`;
      for (const [flat, idx] of rpbOf) {
        const coords = R.unravel(flat, cfg.shape);
        if (state.ndim === 3 && coords[0] !== state.viewSlice) continue;
        if (flat === qFlat) continue;
        const r = state.ndim === 1 ? 0 : coords[state.ndim - 2];
        const c = coords[state.ndim - 1];
        ctx.fillStyle = textColor(STRONG[groupIndex(coords, cfg.dilation)]);
        const label = state.ndim === 3 ? idx.slice(1).join(",") : idx.join(",");
        ctx.fillText(label, pad + c * cell + cell / 2 - gap / 2, pad + r * cell + cell / 2);
      }
    }
    // The window: from the first to the last key on each displayed axis.
    const span = (w) => [w.start, w.start + (w.count - 1) * cfg.dilation[wins.indexOf(w)]];
    const [c0, c1] = span(wins[state.ndim - 1]);
    const [r0, r1] = state.ndim === 1 ? [0, 0] : span(wins[state.ndim - 2]);
    const onSlice = state.ndim !== 3 || wins[0].keys.includes(state.viewSlice);
    if (onSlice) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.setLineDash([5, 3]);
      ctx.strokeRect(pad + c0 * cell - gap / 2, pad + r0 * cell - gap / 2, (c1 - c0 + 1) * cell, (r1 - r0 + 1) * cell);
      ctx.setLineDash([]);
    }
    // The query: thick black border and a Q.
    if (state.ndim !== 3 || q[0] === state.viewSlice) {
      const qr = state.ndim === 1 ? 0 : q[state.ndim - 2];
      const qc = q[state.ndim - 1];
      ctx.strokeStyle = "#000";
      ctx.lineWidth = Math.max(1.5, Math.min(3, cell / 6));
      const lw = ctx.lineWidth;
      ctx.strokeRect(pad + qc * cell + lw / 2, pad + qr * cell + lw / 2, cell - gap - lw, cell - gap - lw);
      if (cell >= 12) {
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.font = `bold ${Math.floor(cell * 0.45)}px system-ui, sans-serif`;
        ctx.fillStyle = textColor(STRONG[groupIndex(q, cfg.dilation)]);
        ctx.fillText("Q", pad + qc * cell + cell / 2 - gap / 2, pad + qr * cell + cell / 2);
      }
    }
  }

  // 3-D: the depth axis as a strip of slices; the query's window on axis 0 is marked.
  function drawDepth(cfg, wins) {
    const canvas = $("depth");
    if (state.ndim !== 3) {
      canvas.hidden = true;
      return;
    }
    canvas.hidden = false;
    const L = cfg.shape[0];
    const cell = Math.max(6, Math.min(28, Math.floor(560 / L)));
    const ctx = prepareCanvas(canvas, L * cell + 4, cell + 4);
    const keys = new Set(wins[0].keys);
    for (let z = 0; z < L; z++) {
      ctx.fillStyle = keys.has(z) ? "#444" : "#ddd";
      ctx.fillRect(2 + z * cell, 2, cell - 1, cell - 1);
      if (z === state.viewSlice) {
        ctx.strokeStyle = "#D55E00";
        ctx.lineWidth = 2;
        ctx.strokeRect(3 + z * cell, 3, cell - 3, cell - 3);
      }
      if (z === state.query[0] && cell >= 12) {
        ctx.fillStyle = "#fff";
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.font = `bold ${Math.floor(cell * 0.5)}px system-ui, sans-serif`;
        ctx.fillText("Q", 2 + z * cell + cell / 2, 2 + cell / 2);
      }
    }
    canvas.onclick = (ev) => {
      const rect = canvas.getBoundingClientRect();
      const z = Math.floor((ev.clientX - rect.left - 2) / cell);
      if (z >= 0 && z < L) {
        state.viewSlice = z;
        update();
      }
    };
  }

  // ---------------------------------------------------------------- the Q x K mask row
  // Built like dinat_ref.neighborhood.dense_mask, from the window bounds (same group, inside
  // [start, start + count * d) on every axis), not from the neighbor list: the two check each other.
  function maskRow(cfg, wins) {
    const N = cfg.shape.reduce((x, y) => x * y, 1);
    const row = new Uint8Array(N);
    for (let flat = 0; flat < N; flat++) {
      const j = R.unravel(flat, cfg.shape);
      row[flat] = j.every((x, a) => {
        const w = wins[a];
        const d = cfg.dilation[a];
        return x % d === w.group && x >= w.start && x < w.start + w.count * d;
      }) ? 1 : 0;
    }
    return row;
  }

  function drawMaskRow(cfg, row) {
    const N = row.length;
    // Wrap long rows at a whole number of grid rows (so the wrap lines up with the grid).
    const cols = cfg.shape[cfg.shape.length - 1];
    const perLine = N <= 256 ? N : cols <= 256 ? cols * Math.floor(256 / cols) : 256;
    const cw = Math.max(2, Math.min(24, Math.floor(768 / perLine)));
    const lines = Math.ceil(N / perLine);
    const lh = N <= 256 ? Math.max(cw, 12) : lines <= 8 ? 12 : 6;
    const ctx = prepareCanvas($("maskrow"), perLine * cw + 4, lines * (lh + 2) + 4);
    const qFlat = R.ravel(axesOf(state.query), cfg.shape);
    for (let f = 0; f < N; f++) {
      const x = 2 + (f % perLine) * cw;
      const y = 2 + Math.floor(f / perLine) * (lh + 2);
      ctx.fillStyle = row[f] ? STRONG[groupIndex(R.unravel(f, cfg.shape), cfg.dilation)] : "#eee";
      ctx.fillRect(x, y, cw - (cw >= 4 ? 1 : 0), lh);
      if (f === qFlat) {
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 1.5;
        ctx.strokeRect(x - 0.5, y - 1, cw, lh + 2);
      }
    }
    const n = row.reduce((x, y) => x + y, 0);
    $("mask-caption").textContent =
      `row ${qFlat} of the ${N} x ${N} mask: ${n} of ${N} keys allowed ` +
      `(${(100 * n / N).toFixed(1)}%); keys in row-major order, ${perLine} per line, the query outlined.`;
  }

  // ---------------------------------------------------------------- the layer stack
  function parseDilations(text, ndim) {
    const items = text.split(",").map((x) => x.trim()).filter((x) => x.length > 0);
    if (items.length === 0) throw new Error("layer dilations: give one dilation per layer, e.g. 1, 2, 1, 4");
    if (items.length > 12) throw new Error(`layer dilations: ${items.length} layers; at most 12 are drawn.`);
    return items.map((item) => {
      const parts = item.split("/").map((x) => Number(x));
      if (parts.some((x) => !Number.isInteger(x) || x < 1) || (parts.length !== 1 && parts.length !== ndim)) {
        throw new Error(
          `layer dilations: "${item}" is not a dilation; give an integer >= 1, or one per axis as a/b.`);
      }
      return parts.length === 1 ? Array(ndim).fill(parts[0]) : parts;
    });
  }

  const rfCache = new Map();

  function rfLayers(cfg, dils, q) {
    const key = JSON.stringify([cfg, dils, q]);
    if (!rfCache.has(key)) {
      if (rfCache.size > 256) rfCache.clear();
      rfCache.set(key, R.receptiveFieldLayers(cfg.shape, cfg.kernelSize, dils, cfg.stride, cfg.isCausal, q));
    }
    return rfCache.get(key);
  }

  function drawStack(cfg) {
    const host = $("rf");
    host.textContent = "";
    $("stack-error").textContent = "";
    let dils;
    try {
      dils = parseDilations(state.dilations, state.ndim);
    } catch (err) {
      $("stack-error").textContent = err.message;
      return null;
    }
    const q = axesOf(state.query);
    const layers = rfLayers(cfg, dils, q);
    const shape = cfg.shape;
    const fmt = (d) => (d.every((x) => x === d[0]) ? String(d[0]) : d.join("/"));
    if (state.ndim === 1) {
      // One strip per layer, as in figures/rf_growth.png.
      const L = shape[0];
      const cell = Math.max(3, Math.min(24, Math.floor(720 / L)));
      const canvas = document.createElement("canvas");
      host.appendChild(canvas);
      const rowH = Math.max(cell, 14);
      const labels = layers.map((rf, l) =>
        `layer ${l + 1} (d=${fmt(dils[l])}): ${rf.length} tokens, extent ${Math.max(...rf) - Math.min(...rf) + 1}`);
      const font = "12px system-ui, sans-serif";
      const probe = canvas.getContext("2d");
      probe.font = font;
      const labelW = Math.ceil(Math.max(...labels.map((t) => probe.measureText(t).width))) + 10;
      const ctx = prepareCanvas(canvas, labelW + L * cell + 4, layers.length * (rowH + 4) + 4);
      layers.forEach((rf, l) => {
        const y = 2 + l * (rowH + 4);
        const set = new Set(rf);
        ctx.fillStyle = "#222";
        ctx.font = font;
        ctx.textAlign = "left";
        ctx.textBaseline = "middle";
        ctx.fillText(labels[l], 0, y + rowH / 2);
        for (let j = 0; j < L; j++) {
          ctx.fillStyle = set.has(j) ? RF_COLOR : "#e8e8e8";
          ctx.fillRect(labelW + j * cell, y, cell - (cell >= 5 ? 1 : 0), rowH);
        }
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 2;
        ctx.strokeRect(labelW + q[0] * cell + 1, y + 1, cell - 2, rowH - 2);
      });
    } else {
      const rows = shape[state.ndim - 2];
      const cols = shape[state.ndim - 1];
      const cell = Math.max(1, Math.min(12, Math.floor(150 / Math.max(rows, cols))));
      layers.forEach((rf, l) => {
        const fig = document.createElement("figure");
        const canvas = document.createElement("canvas");
        const ctx = prepareCanvas(canvas, cols * cell + 2, rows * cell + 2);
        ctx.fillStyle = "#e8e8e8";
        ctx.fillRect(1, 1, cols * cell, rows * cell);
        ctx.fillStyle = RF_COLOR;
        for (const flat of rf) {
          const c = R.unravel(flat, shape);
          if (state.ndim === 3 && c[0] !== state.viewSlice) continue;
          ctx.fillRect(1 + c[state.ndim - 1] * cell, 1 + c[state.ndim - 2] * cell, cell, cell);
        }
        if (state.ndim !== 3 || q[0] === state.viewSlice) {
          ctx.fillStyle = "#000";
          const s = Math.max(cell, 3);
          ctx.fillRect(1 + q[state.ndim - 1] * cell + (cell - s) / 2, 1 + q[state.ndim - 2] * cell + (cell - s) / 2, s, s);
        }
        const cap = document.createElement("figcaption");
        cap.textContent = `layer ${l + 1} (d=${fmt(dils[l])}): ${rf.length} tokens` +
          (state.ndim === 3 ? ` (slice ${state.viewSlice} shown)` : "");
        fig.appendChild(canvas);
        fig.appendChild(cap);
        host.appendChild(fig);
      });
    }
    return layers;
  }

  // ---------------------------------------------------------------- text panel
  function describe(cfg, wins, nbrs, rpbOf) {
    const q = axesOf(state.query);
    const lines = [];
    lines.push(`<p><b>query (${q.join(", ")})</b>, flat index ${R.ravel(q, cfg.shape)}; ` +
      `${nbrs.length} keys${state.pinned ? " &middot; pinned (click again to unpin)" : ""}</p>`);
    lines.push("<table class='axes'><tr><th>axis</th><th>group i % d</th><th>i'</th><th>group size</th>" +
      "<th>window keys</th><th>RPB indices</th></tr>");
    wins.forEach((w, a) => {
      lines.push(`<tr><td>${a}</td><td>${w.group}</td><td>${w.indexInGroup}</td><td>${w.groupLength}</td>` +
        `<td>${w.keys.join(" ")}</td><td>${w.rpb.join(" ")}</td></tr>`);
    });
    lines.push("</table>");
    if (nbrs.length <= 64) {
      lines.push("<details><summary>every key: coordinates, flat index, RPB index</summary><table class='keys'>" +
        "<tr><th>key</th><th>flat</th><th>rpb</th></tr>");
      for (const f of nbrs) {
        lines.push(`<tr><td>(${R.unravel(f, cfg.shape).join(", ")})</td><td>${f}</td>` +
          `<td>(${rpbOf.get(f) ? rpbOf.get(f).join(", ") : "-"})</td></tr>`);
      }
      lines.push("</table></details>");
    }
    $("info").innerHTML = lines.join("");
  }

  // ---------------------------------------------------------------- one update
  function update() {
    syncControls();
    const cfg = config();
    const err = $("error");
    try {
      R.checkWindowArgs(cfg.shape, cfg.kernelSize, cfg.stride, cfg.dilation, cfg.isCausal, "explorer");
      if (cfg.shape.reduce((x, y) => x * y, 1) > 262144) {
        throw new Error(`explorer: a grid of ${cfg.shape.join(" x ")} cells is too large to draw; keep it under 262144.`);
      }
    } catch (e) {
      state.error = e.message;
      err.textContent = e.message;
      err.hidden = false;
      state.drawn = null;
      return;
    }
    state.error = null;
    err.hidden = true;
    const q = axesOf(state.query);
    const wins = R.windows(cfg.shape, cfg.kernelSize, cfg.stride, cfg.dilation, cfg.isCausal, q);
    const nbrs = R.neighbors(cfg.shape, cfg.kernelSize, cfg.stride, cfg.dilation, cfg.isCausal, q);
    const nbrSet = new Set(nbrs);
    // Queries whose window equals this one (stride groups share one): same start, count, group per axis.
    const same = cfg.shape.map((L, a) => {
      const out = [];
      for (let i = 0; i < L; i++) {
        const w = R.axisWindow(L, cfg.kernelSize[a], cfg.stride[a], cfg.dilation[a], cfg.isCausal[a], i);
        if (w.start === wins[a].start && w.count === wins[a].count && w.group === wins[a].group) out.push(i);
      }
      return out;
    });
    const sameWindow = new Set();
    (function rec(a, flat) {
      if (a === cfg.shape.length) { sameWindow.add(flat); return; }
      for (const i of same[a]) rec(a + 1, flat * cfg.shape[a] + i);
    })(0, 0);
    // The RPB index of each key, per axis: the slot's index on that axis's window.
    const rpbAxes = wins.map((w) => new Map(w.keys.map((j, t) => [j, w.rpb[t]])));
    const rpbOf = new Map(nbrs.map((f) => [f, R.unravel(f, cfg.shape).map((x, a) => rpbAxes[a].get(x))]));
    drawGrid(cfg, wins, nbrSet, sameWindow, rpbOf);
    drawDepth(cfg, wins);
    const row = maskRow(cfg, wins);
    drawMaskRow(cfg, row);
    const rf = drawStack(cfg);
    describe(cfg, wins, nbrs, rpbOf);
    const maskKeys = [];
    row.forEach((v, f) => { if (v) maskKeys.push(f); });
    state.drawn = {
      config: cfg, query: q, neighbors: nbrs, maskRow: maskKeys,
      rpb: nbrs.map((f) => [f, rpbOf.has(f) ? rpbOf.get(f) : null]),
      sameWindow: [...sameWindow].sort((x, y) => x - y),
      receptiveField: rf, viewSlice: state.viewSlice,
    };
  }

  // ---------------------------------------------------------------- pointer
  function hit(ev) {
    if (!grid || state.error) return null;
    const rect = $("grid").getBoundingClientRect();
    const c = Math.floor((ev.clientX - rect.left - grid.pad) / grid.cell);
    const r = Math.floor((ev.clientY - rect.top - grid.pad) / grid.cell);
    if (c < 0 || r < 0 || c >= grid.cols || r >= grid.rows) return null;
    return cellCoords(r, c);
  }

  function setQueryFrom(coords) {
    for (let a = 0; a < coords.length; a++) state.query[a] = coords[a];
  }

  let lastHover = "";
  function onMove(ev) {
    if (state.pinned) return;
    const coords = hit(ev);
    if (!coords) return;
    const key = coords.join(",");
    if (key === lastHover) return;
    lastHover = key;
    setQueryFrom(coords);
    update();
  }

  function onClick(ev) {
    const coords = hit(ev);
    if (!coords) return;
    const same = coords.every((x, a) => x === state.query[a]);
    state.pinned = !(state.pinned && same);
    setQueryFrom(coords);
    lastHover = coords.join(",");
    update();
  }

  // Keyboard: arrows move the query on screen (3-D: PageUp/PageDown along axis 0), and pin it.
  function onKey(ev) {
    const n = state.ndim;
    const moves = { ArrowLeft: [n - 1, -1], ArrowRight: [n - 1, 1], ArrowUp: [n - 2, -1], ArrowDown: [n - 2, 1] };
    if (n === 3) Object.assign(moves, { PageUp: [0, -1], PageDown: [0, 1] });
    const move = moves[ev.key];
    if (!move || move[0] < 0 || state.error) return;
    ev.preventDefault();
    const [a, step] = move;
    state.query[a] = Math.min(Math.max(state.query[a] + step, 0), state.shape[a] - 1);
    if (n === 3) state.viewSlice = state.query[0];
    state.pinned = true;
    update();
  }

  // ---------------------------------------------------------------- public API
  function setConfig(cfg) {
    if (cfg.ndim !== undefined) state.ndim = cfg.ndim;
    for (const key of ["shape", "kernelSize", "dilation", "stride", "isCausal"]) {
      if (cfg[key] !== undefined) cfg[key].forEach((v, a) => { state[key][a] = v; });
    }
    if (cfg.dilations !== undefined) state.dilations = String(cfg.dilations);
    if (cfg.query !== undefined) setQueryFrom(cfg.query);
    if (cfg.viewSlice !== undefined) state.viewSlice = cfg.viewSlice;
    clampQuery();
    update();
    return state.drawn;
  }

  // Where a cell is drawn, in CSS pixels relative to the page (3-D: on the current slice).
  function cellRect(coords) {
    const rect = $("grid").getBoundingClientRect();
    const r = state.ndim === 1 ? 0 : coords[state.ndim - 2];
    const c = coords[state.ndim - 1];
    return { x: rect.left + grid.pad + c * grid.cell, y: rect.top + grid.pad + r * grid.cell,
             size: grid.cell };
  }

  window.dinat = {
    neighbors: R.neighbors,
    windows: R.windows,
    receptiveField: R.receptiveField,
    receptiveFieldLayers: R.receptiveFieldLayers,
    checkWindowArgs: R.checkWindowArgs,
    palette: PALETTE,
    setConfig,
    cellRect,
    get state() { return state.drawn; },
    get error() { return state.error; },
  };

  buildControls();
  const canvas = $("grid");
  canvas.addEventListener("mousemove", onMove);
  canvas.addEventListener("click", onClick);
  canvas.addEventListener("keydown", onKey);
  update();
})();
