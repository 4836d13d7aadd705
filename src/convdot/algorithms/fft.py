"""FFT: correlation as a pointwise product in the frequency domain.

For stride 1, ``corr[i] = sum_k x[i+k] w[k]`` is the inverse FFT of ``X * conj(FFT(conj(w)))``
(no wrap-around reaches the valid outputs when the transform is as long as the padded input).
The sum over input channels is a matrix multiply per frequency. Strides subsample the stride-1
result. Integers are transformed in float64 and rounded, which is exact while the estimated
rounding error stays far below 0.5 (checked by :func:`unsupported`).
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from .._spec import ConvSpec
from ._common import finite_fixup, pad

_EPS64 = float(np.finfo(np.float64).eps)


def _dilate(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Insert ``dilation - 1`` zeros between kernel taps."""
    if all(d == 1 for d in spec.dilation):
        return w
    span = tuple(d * (k - 1) + 1 for d, k in zip(spec.dilation, spec.kernel))
    wd = np.zeros(w.shape[:2] + span, dtype=w.dtype)
    wd[(slice(None), slice(None), *(slice(None, None, d) for d in spec.dilation))] = w
    return wd


def _fft_dtype(spec: ConvSpec) -> np.dtype:
    return np.dtype(np.float64) if spec.dtype.kind == "i" else spec.dtype


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """FFT correlation of the padded input with the (dilated) kernel; ``(N, C_out, *out)``."""
    nd, g = spec.nd, spec.groups
    ft = _fft_dtype(spec)
    xp = pad(x, spec).astype(ft, copy=False)
    wd = _dilate(np.asarray(w, dtype=ft), spec)
    finite = ft.kind == "i" or (np.isfinite(xp).all() and np.isfinite(wd).all())
    xs, ws = (xp, wd) if finite else (np.where(np.isfinite(xp), xp, 0), np.where(np.isfinite(wd), wd, 0))
    axes = tuple(range(2, 2 + nd))
    complex_ = ft.kind == "c"
    shape = tuple(sfft.next_fast_len(p, real=not complex_) for p in spec.padded_shape)
    if complex_:
        xf = sfft.fftn(xs, s=shape, axes=axes, workers=-1)
        wf = np.conj(sfft.fftn(np.conj(ws), s=shape, axes=axes, workers=-1))
    else:
        xf = sfft.rfftn(xs, s=shape, axes=axes, workers=-1)
        wf = np.conj(sfft.rfftn(ws, s=shape, axes=axes, workers=-1))
    n, c_out = spec.out_shape[:2]
    fshape = xf.shape[2:]
    cg, cog = spec.w_shape[1], c_out // g
    xg = xf.reshape(n, g, cg, -1).transpose(1, 3, 0, 2)  # (G, F, N, Cg)
    wg = wf.reshape(g, cog, cg, -1).transpose(0, 3, 2, 1)  # (G, F, Cg, Cog)
    yf = np.matmul(xg, wg).transpose(2, 0, 3, 1).reshape(n, c_out, *fshape)  # (N, C_out, *F)
    y = sfft.ifftn(yf, s=shape, axes=axes, workers=-1) if complex_ else sfft.irfftn(yf, s=shape, axes=axes, workers=-1)
    sel = (slice(None), slice(None)) + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(spec.out_shape[2:], spec.stride))
    out = y[sel]
    if spec.dtype.kind == "i":
        return np.rint(out).astype(np.int64)
    out = np.ascontiguousarray(out, dtype=spec.dtype)
    return out if finite else finite_fixup(out, pad(x, spec), np.asarray(w, dtype=spec.dtype), spec)


def unsupported(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> str | None:
    """Integers too large for an exactly-rounded float64 transform."""
    if spec.dtype.kind != "i":
        return None
    xa = np.abs(np.asarray(x, dtype=np.float64))
    wa = np.abs(np.asarray(w, dtype=np.float64))
    size = float(np.prod([p + k for p, k in zip(spec.padded_shape, spec.kernel)]))
    est = _EPS64 * 8 * np.log2(size + 2) * np.sqrt((xa * xa).sum()) * np.sqrt((wa * wa).sum())
    if est > 0.05:
        return "integer inputs are too large to be computed exactly through a float64 FFT"
    return None
