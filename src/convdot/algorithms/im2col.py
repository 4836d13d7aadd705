"""Windows as columns and one matrix multiply per group: the dot-product view.

Every receptive field is flattened into a column of ``X_col`` (shape ``(C/G * prod(k), P)``) and
every filter into a row of ``W_row`` (``(C_out/G, C/G * prod(k))``); the output is
``W_row @ X_col``. Columns are built for a block of output rows at a time so the extra memory
stays bounded, and a 1x1 stride-1 unpadded convolution is a plain GEMM on ``x`` itself.
"""

from __future__ import annotations

import numpy as np

from .._spec import ConvSpec
from ._common import grouped, pad, windows

_BLOCK_BYTES = 16 << 20  # size of one block of columns


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``W_row @ X_col`` per group, in blocks of output rows; ``(N, C_out, *out)``."""
    nd, g = spec.nd, spec.groups
    n, c_out = spec.out_shape[:2]
    out_sp = spec.out_shape[2:]
    w_row = np.asarray(w, dtype=spec.dtype).reshape(g, c_out // g, -1)  # (G, Cog, Cg*K)
    pointwise = all(k == 1 for k in spec.kernel) and all(s == 1 for s in spec.stride)
    if pointwise and not any(lo or hi for lo, hi in spec.pads):
        x_col = np.asarray(x, dtype=spec.dtype).reshape(n, g, -1, int(np.prod(out_sp)))  # (N, G, Cg, P)
        return np.matmul(w_row, x_col).reshape(spec.out_shape)
    win = grouped(windows(pad(x, spec), spec), g)  # (N, G, Cg, *out, *k)
    kk = int(np.prod(spec.kernel))
    # (N, G, Cg, *out, *k) -> (N, G, Cg, *k, *out): columns are (Cg, *k) flattened
    perm = (0, 1, 2, *range(3 + nd, 3 + 2 * nd), *range(3, 3 + nd))
    win = win.transpose(perm)
    out = np.empty((n, g, c_out // g, *out_sp), dtype=spec.dtype)  # (N, G, Cog, *out)
    row_cols = n * spec.w_shape[1] * g * kk * int(np.prod(out_sp[1:]))
    step = max(1, _BLOCK_BYTES // max(row_cols * win.itemsize, 1))
    for r in range(0, out_sp[0], step):
        blk = win[(Ellipsis, slice(r, r + step)) + (slice(None),) * (nd - 1)]  # (N, G, Cg, *k, r, *rest)
        rows = blk.shape[-nd]
        x_col = blk.reshape(n, g, -1, rows * int(np.prod(out_sp[1:])))  # (N, G, Cg*K, P_blk): the copy
        res = np.matmul(w_row, x_col)  # (N, G, Cog, P_blk)
        out[:, :, :, r:r + rows] = res.reshape(n, g, c_out // g, rows, *out_sp[1:])
    return out.reshape(spec.out_shape)


def unsupported(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> str | None:
    """Every configuration works."""
    return None
