"""The definition, as loops: the oracle every other method is tested against.

Each output element is the sum over input channels of its group and over kernel taps of
``xpad[n, c, i*stride + k*dilation] * w[o, c, k]``. The loops run over output positions, kernel
taps and groups; only the batch and channel products are vectorised, and sums are accumulated in
float64/complex128/int64 whatever the input precision.
"""

from __future__ import annotations

import numpy as np

from .._spec import ConvSpec
from ._common import accumulate_dtype, pad


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Compute ``spec`` literally; returns ``(N, C_out, *out)`` in the compute dtype."""
    acc_t = accumulate_dtype(spec.dtype)
    xp = pad(x, spec).astype(acc_t, copy=False)
    wk = np.asarray(w, dtype=acc_t)
    c_out = spec.out_shape[1]
    cg, cog = spec.w_shape[1], c_out // spec.groups
    out = np.zeros(spec.out_shape, dtype=acc_t)
    for pos in np.ndindex(*spec.out_shape[2:]):
        for tap in np.ndindex(*spec.kernel):
            src = tuple(p * s + t * d for p, t, s, d in zip(pos, tap, spec.stride, spec.dilation))
            for g in range(spec.groups):
                xs = xp[(slice(None), slice(g * cg, (g + 1) * cg), *src)]  # (N, Cg)
                ws = wk[(slice(g * cog, (g + 1) * cog), slice(None), *tap)]  # (Cog, Cg)
                out[(slice(None), slice(g * cog, (g + 1) * cog), *pos)] += xs @ ws.T  # (N, Cog)
    return out.astype(spec.dtype, copy=False)


def unsupported(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> str | None:
    """Every configuration can be computed by definition."""
    return None
