// The neighborhood rule, ported from dinat_ref/neighborhood.py (the one source of truth).
// The tests compare this port with the Python rule in a real browser; keep the two in step.
//
// Per axis of length L, kernel k, dilation d, stride s, query i (NATTEN 0.21's rule):
//   g  = i % d ; i' = i // d                  dilation group and index inside it
//   Lg = ceil((L - g) / d)                    tokens in group g
//   left = k // 2                             even k: k/2 keys left, k/2 - 1 right
//   non-causal: leader = min((i' // s) * s + s // 2, Lg - 1)
//               start' = clamp(leader - left, 0, Lg - k) ; end' = start' + k
//   causal:     leader = min((i' // s) * s + s - 1, Lg - 1)
//               start' = max(leader - k + 1, 0) ; end' = min(i' + 1, Lg)
//   keys: j = j' * d + g for j' in [start', end');  RPB index (k - 1) + (j - i) / d
// N-D is the product of the axes; flat indices are row-major.
"use strict";

const DinatRule = (function () {
  function isInt(x) {
    return typeof x === "number" && Number.isInteger(x);
  }

  // Same checks, same wording, as dinat_ref.checks.check_window_args.
  function checkWindowArgs(shape, kernelSize, stride, dilation, isCausal, where, checkFit = true) {
    if (!Array.isArray(shape) || shape.length === 0) {
      throw new Error(`${where}: shape=${JSON.stringify(shape)} must be an array of axis lengths (at least one).`);
    }
    const ndim = shape.length;
    const args = { kernelSize, stride, dilation, isCausal };
    for (const [name, value] of Object.entries(args)) {
      if (!Array.isArray(value) || value.length !== ndim) {
        throw new Error(
          `${where}: ${name}=${JSON.stringify(value)} must be an array with one entry per axis (${ndim}).`
        );
      }
    }
    for (let a = 0; a < ndim; a++) {
      const [L, k, s, d] = [shape[a], kernelSize[a], stride[a], dilation[a]];
      const at = ndim > 1 ? ` on axis ${a}` : "";
      for (const [name, v] of [["shape", L], ["kernelSize", k], ["stride", s], ["dilation", d]]) {
        if (!isInt(v)) throw new Error(`${where}: ${name}=${JSON.stringify(v)}${at} must be an integer.`);
      }
      if (typeof isCausal[a] !== "boolean") {
        throw new Error(`${where}: isCausal=${JSON.stringify(isCausal[a])}${at} must be true or false.`);
      }
      if (L < 1) throw new Error(`${where}: shape has ${L} tokens${at}; every spatial axis needs >= 1.`);
      if (k < 2) {
        throw new Error(
          `${where}: kernelSize=${k}${at} is too small; a neighborhood needs kernelSize >= 2 ` +
            `(kernelSize=1 would attend to the query alone).`
        );
      }
      if (d < 1) throw new Error(`${where}: dilation=${d}${at} must be >= 1 (1 means no dilation).`);
      if (s < 1) throw new Error(`${where}: stride=${s}${at} must be >= 1 (1 means every query has its own window).`);
      if (s > k) {
        throw new Error(
          `${where}: stride=${s}${at} must satisfy 1 <= stride <= kernelSize=${k}; a larger ` +
            `stride would leave queries outside the window they share.`
        );
      }
      if (checkFit && k * d > L) {
        throw new Error(
          `${where}: kernelSize * dilation = ${k} * ${d} = ${k * d} is larger than the input's ` +
            `${L} tokens${at}. NA needs kernelSize * dilation <= length so every dilation group ` +
            `holds a full window; the smallest input that works has ${k * d} tokens${at} ` +
            `(or lower kernelSize / dilation).`
        );
      }
    }
  }

  // The window of query i on one axis (arguments already checked).
  function axisWindow(L, k, s, d, causal, i) {
    const g = i % d; // dilation group
    const ig = Math.floor(i / d); // i', index inside the group
    const Lg = Math.floor((L - g + d - 1) / d); // ceil((L - g) / d)
    const left = Math.floor(k / 2);
    let leader, startG, endG;
    if (causal) {
      leader = Math.min(Math.floor(ig / s) * s + s - 1, Lg - 1); // last query of the stride group
      startG = Math.max(leader - k + 1, 0);
      endG = Math.min(ig + 1, Lg); // never past the query itself
    } else {
      leader = Math.min(Math.floor(ig / s) * s + Math.floor(s / 2), Lg - 1); // middle of the stride group
      startG = Math.min(Math.max(leader - left, 0), Lg - k); // shift inward at the borders
      endG = startG + k;
    }
    const keys = [];
    const rpb = [];
    for (let jg = startG; jg < endG; jg++) {
      keys.push(jg * d + g); // back to full-axis coordinates
      rpb.push(k - 1 + (jg - ig)); // (k - 1) + (j - i) / d
    }
    return { group: g, indexInGroup: ig, groupLength: Lg, leader: leader * d + g,
             start: startG * d + g, count: endG - startG, keys, rpb };
  }

  function checkQuery(query, shape, where) {
    if (!Array.isArray(query) || query.length !== shape.length ||
        query.some((q, a) => !isInt(q) || q < 0 || q >= shape[a])) {
      throw new Error(
        `${where}: query=${JSON.stringify(query)} is not a position on the grid of shape ` +
          `${JSON.stringify(shape)}; give one in-range index per axis.`
      );
    }
  }

  // Row-major product of per-axis index lists -> sorted flat indices.
  function product(perAxis, shape) {
    let flat = [0];
    for (let a = 0; a < shape.length; a++) {
      const next = [];
      for (const f of flat) for (const j of perAxis[a]) next.push(f * shape[a] + j);
      flat = next;
    }
    return flat.sort((x, y) => x - y);
  }

  // The keys of one query as sorted row-major flat indices (neighbors_of gives coordinate tuples).
  function neighbors(shape, kernelSize, stride, dilation, isCausal, query) {
    checkWindowArgs(shape, kernelSize, stride, dilation, isCausal, "neighbors");
    checkQuery(query, shape, "neighbors");
    const perAxis = shape.map((L, a) =>
      axisWindow(L, kernelSize[a], stride[a], dilation[a], isCausal[a], query[a]).keys);
    return product(perAxis, shape);
  }

  // Every window of one query, per axis (for drawing): group, start, count, keys, rpb.
  function windows(shape, kernelSize, stride, dilation, isCausal, query) {
    checkWindowArgs(shape, kernelSize, stride, dilation, isCausal, "windows");
    checkQuery(query, shape, "windows");
    return shape.map((L, a) => axisWindow(L, kernelSize[a], stride[a], dilation[a], isCausal[a], query[a]));
  }

  // One layer on one axis: M[q * L + j] = 1 iff output q depends on input j. Axes shorter than
  // k * d are padded at the end as DiNAT does (dinat_ref.receptive_field.layer_dependency).
  function layerDependency1d(L, k, d, s, causal) {
    const Lp = Math.max(L, k * d);
    const m = new Uint8Array(L * L);
    for (let q = 0; q < L; q++) {
      for (const j of axisWindow(Lp, k, s, d, causal, q).keys) if (j < L) m[q * L + j] = 1;
      m[q * L + q] = 1; // the residual
    }
    return m;
  }

  // (a o b)[q, j] = any_m a[q, m] and b[m, j]
  function compose(a, b, L) {
    const out = new Uint8Array(L * L);
    for (let q = 0; q < L; q++) {
      for (let m = 0; m < L; m++) {
        if (!a[q * L + m]) continue;
        const row = m * L;
        for (let j = 0; j < L; j++) if (b[row + j]) out[q * L + j] = 1;
      }
    }
    return out;
  }

  // Exact receptive field of one query after each layer: an array (one per layer) of sorted flat
  // indices. dilations[l] is layer l's dilation, a number or an array with one entry per axis.
  function receptiveFieldLayers(shape, kernelSize, dilations, stride, isCausal, query) {
    const ndim = shape.length;
    checkWindowArgs(shape, kernelSize, stride, shape.map(() => 1), isCausal, "receptiveField", false);
    checkQuery(query, shape, "receptiveField");
    if (!Array.isArray(dilations) || dilations.length === 0) {
      throw new Error("receptiveField: dilations=[] has no layers; give one dilation per layer.");
    }
    const perLayer = dilations.map((d, l) => {
      const dd = Array.isArray(d) ? d : shape.map(() => d);
      if (dd.length !== ndim || dd.some((x) => !isInt(x) || x < 1)) {
        throw new Error(`receptiveField: dilations[${l}]=${JSON.stringify(d)} must be an integer >= 1 or one per axis.`);
      }
      return dd;
    });
    // Per axis, the rows of the composed field after each layer; N-D is their product.
    const rows = []; // rows[a][l] = list of inputs the query depends on along axis a after layer l
    for (let a = 0; a < ndim; a++) {
      const L = shape[a];
      let rf = new Uint8Array(L * L);
      for (let i = 0; i < L; i++) rf[i * L + i] = 1;
      const perAxis = [];
      for (const dd of perLayer) {
        rf = compose(layerDependency1d(L, kernelSize[a], dd[a], stride[a], isCausal[a]), rf, L);
        const row = [];
        for (let j = 0; j < L; j++) if (rf[query[a] * L + j]) row.push(j);
        perAxis.push(row);
      }
      rows.push(perAxis);
    }
    return perLayer.map((_, l) => product(rows.map((r) => r[l]), shape));
  }

  function receptiveField(shape, kernelSize, dilations, stride, isCausal, query) {
    const layers = receptiveFieldLayers(shape, kernelSize, dilations, stride, isCausal, query);
    return layers[layers.length - 1];
  }

  function ravel(coords, shape) {
    let f = 0;
    for (let a = 0; a < shape.length; a++) f = f * shape[a] + coords[a];
    return f;
  }

  function unravel(flat, shape) {
    const out = new Array(shape.length);
    for (let a = shape.length - 1; a >= 0; a--) {
      out[a] = flat % shape[a];
      flat = Math.floor(flat / shape[a]);
    }
    return out;
  }

  return { checkWindowArgs, axisWindow, neighbors, windows, layerDependency1d,
           receptiveFieldLayers, receptiveField, ravel, unravel };
})();
