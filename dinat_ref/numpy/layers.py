"""The layers DiNAT is built from, in plain NumPy: linear, conv2d, LayerNorm, exact GELU.

Every function works in the dtype of its input (float64 in, float64 out) and uses the
channels-last layout ``(B, H, W, C)`` the model keeps between layers.

GELU is the exact one, ``x * Phi(x) = x/2 * erfc(-x / sqrt(2))`` (Hendrycks & Gimpel,
https://arxiv.org/abs/1606.08415), not the tanh approximation. NumPy has no ``erf``, so
:func:`erfc` implements W. J. Cody's rational Chebyshev approximations ("Rational
Chebyshev approximations for the error function", Math. Comp. 23, 1969; Netlib
``specfun/CALERF``), accurate to about 1e-16 relative in float64, vectorized over arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear", "conv2d", "layer_norm", "erf", "erfc", "gelu", "softmax"]


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``y = x W^T + b`` over the last axis; weight ``(out, in)`` as torch.nn.Linear."""
    # One 2-D GEMM: a (..., in) @ (in, out) matmul would run as many small batched ones.
    y = (x.reshape(-1, x.shape[-1]) @ weight.T).reshape(*x.shape[:-1], weight.shape[0])  # (..., out)
    if bias is not None:
        y += bias
    return y


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
           stride: int = 1, padding: int = 0) -> np.ndarray:
    """2-D convolution (cross-correlation, as torch) by im2col, channels last.

    Args:
        x: (B, H, W, C_in).
        weight: (C_out, C_in, kh, kw), torch.nn.Conv2d's layout.
    Returns:
        (B, H_out, W_out, C_out), ``H_out = (H + 2 padding - kh) // stride + 1``.
    """
    c_out, c_in, kh, kw = weight.shape
    b, h, w, c = x.shape
    if c != c_in:
        raise ValueError(f"conv2d: input has {c} channels but weight expects {c_in}.")
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))  # (B, H+2p, W+2p, C)
    h_out = (h + 2 * padding - kh) // stride + 1
    w_out = (w + 2 * padding - kw) // stride + 1
    # im2col: one strided view per kernel tap, (B, H_out, W_out, C) each, laid side by side.
    taps = [xp[:, i:i + stride * (h_out - 1) + 1:stride, j:j + stride * (w_out - 1) + 1:stride, :]
            for i in range(kh) for j in range(kw)]
    cols = np.concatenate(taps, axis=-1)  # (B, H_out, W_out, kh*kw*C) ordered (i, j, c)
    wmat = weight.transpose(2, 3, 1, 0).reshape(kh * kw * c_in, c_out)  # (kh*kw*C, C_out), same order
    y = (cols.reshape(-1, cols.shape[-1]) @ wmat).reshape(b, h_out, w_out, c_out)  # (B, H_out, W_out, C_out)
    if bias is not None:
        y += bias
    return y


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """``(x - mean) / sqrt(var + eps) * w + b`` over the last axis (biased variance, as torch)."""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (..., 1)
    return xc / np.sqrt(var + x.dtype.type(eps)) * weight + bias


# ----------------------------------------------------------------------------------------
# erf / erfc (W. J. Cody, 1969) and GELU
# ----------------------------------------------------------------------------------------

# Cody's coefficients, highest power first (for _horner); denominators are monic.
# erf(t) = t A_NUM(t^2) / A_DEN(t^2) on |t| <= 0.46875
_A_NUM = (1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02,
          3.77485237685302021e02, 3.20937758913846947e03)
_A_DEN = (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
# erfc(t) = exp(-t^2) C_NUM(t) / C_DEN(t) on 0.46875 < t <= 4
_C_NUM = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00,
          6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02,
          1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03)
_C_DEN = (1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
# erfc(t) = exp(-t^2) / t (1/sqrt(pi) + z P_NUM(z) / P_DEN(z)), z = 1/t^2, on t > 4
_P_NUM = (-1.63153871373020978e-2, -3.05326634961232344e-1, -3.60344899949804439e-1,
          -1.25781726111229246e-1, -1.60837851487422766e-2, -6.58749161529837803e-4)
_P_DEN = (1.0, 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_SQRPI = 5.6418958354775628695e-1  # 1 / sqrt(pi)


def _horner(coeffs, x: np.ndarray) -> np.ndarray:
    """``c[0] x^n + c[1] x^(n-1) + ... + c[n]``."""
    ct = x.dtype.type
    y = x * ct(coeffs[0])
    y += ct(coeffs[1])
    for c in coeffs[2:]:  # in place: these run on every GELU input
        y *= x
        y += ct(c)
    return y


def _erfc_nonneg(t: np.ndarray) -> np.ndarray:
    """erfc(t) for t >= 0 (float32 or float64 throughout), Cody's three intervals.

    The first two run on the whole array and ``np.where`` picks (boolean indexing is slow);
    the far tail (``t > 4``, erfc < 1.6e-8) is rare and computed on its entries only.
    """
    ct = t.dtype.type
    t2 = t * t
    # t <= 0.46875: erfc(t) = 1 - t A(t^2) / B(t^2)
    small = _horner(_A_NUM, t2)
    small /= _horner(_A_DEN, t2)
    small *= -t
    small += ct(1)
    # 0.46875 < t <= 4: erfc(t) = exp(-t^2) C(t) / D(t)
    mid = _horner(_C_NUM, t)
    mid /= _horner(_C_DEN, t)
    mid *= np.exp(-t2)
    out = np.where(t <= ct(0.46875), small, mid)
    far = t > ct(4)
    if far.any():  # t > 4: erfc(t) = exp(-t^2) / t (1/sqrt(pi) + z P(z) / Q(z)), z = 1/t^2
        y = np.minimum(t[far].astype(np.float64), 27.0)  # erfc underflows to 0 past ~26.5 anyway
        z = 1.0 / (y * y)
        r = (_SQRPI + z * _horner(_P_NUM, z) / _horner(_P_DEN, z)) / y
        y16 = np.trunc(y * 16.0) / 16.0  # exp(-y^2) split as in Cody, to keep the digits
        out[far] = r * np.exp(-y16 * y16) * np.exp(-(y - y16) * (y + y16))
    return out


def erfc(x: np.ndarray) -> np.ndarray:
    """Complementary error function ``1 - erf(x)``, accurate in both tails (float64: ~1e-15)."""
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    xf = x.astype(np.float64)
    pos = _erfc_nonneg(np.abs(xf))  # erfc(|x|)
    return np.where(xf < 0, 2.0 - pos, pos).astype(dtype, copy=False)  # erfc(-t) = 2 - erfc(t)


def erf(x: np.ndarray) -> np.ndarray:
    """Error function ``2/sqrt(pi) int_0^x exp(-t^2) dt = 1 - erfc(x)``."""
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    xf = x.astype(np.float64)
    t = np.abs(xf)
    t2 = t * t
    near0 = t * _horner(_A_NUM, t2) / _horner(_A_DEN, t2)  # no 1 - (1 - erf) rounding near 0
    out = np.where(t <= 0.46875, near0, 1.0 - _erfc_nonneg(t))
    return (np.sign(xf) * out).astype(dtype, copy=False)


def gelu(x: np.ndarray, chunk: int = 1 << 15) -> np.ndarray:
    """Exact GELU, ``x Phi(x)`` with ``Phi(x) = erfc(-x / sqrt(2)) / 2``.

    With ``t = |x| / sqrt(2)``: ``Phi(x) = erfc(t) / 2`` for x < 0 and ``1 - erfc(t) / 2`` for
    x >= 0, so the negative tail never suffers the cancellation of ``1 + erf(x)``. Float64
    inputs are computed in float64 (agrees with ``math.erfc`` to ~1e-15 absolute), float32 in
    float32. Works in cache-sized chunks: ~40 ns per float64 element.
    """
    x = np.asarray(x)
    ct = np.float64 if x.dtype == np.float64 else np.float32
    flat = x.reshape(-1)
    out = np.empty(flat.shape, dtype=ct)
    for s in range(0, flat.size, chunk):
        xc = flat[s:s + chunk].astype(ct)  # (n,)
        half_erfc = _erfc_nonneg(np.abs(xc) * ct(0.70710678118654752440))  # erfc(t)
        half_erfc *= ct(0.5)  # Phi(-|x|)
        phi = np.where(xc < 0, half_erfc, ct(1) - half_erfc)  # Phi(x)
        phi *= xc
        out[s:s + chunk] = phi
    return out.reshape(x.shape).astype(x.dtype, copy=False)


def softmax(s: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable softmax: ``exp(s - max) / sum exp(s - max)``; ``-inf`` entries get probability 0."""
    m = s.max(axis=axis, keepdims=True)
    e = np.exp(s - m)
    return e / e.sum(axis=axis, keepdims=True)
