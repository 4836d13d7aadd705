"""Sliding-window view times kernel, summed: "the sum of the element-wise (Hadamard) product".

A strided view exposes every receptive field as an array shaped like the kernel; each output is
``(window * kernel).sum()``, done for a block of output rows at a time by ``np.einsum``.
"""

from __future__ import annotations

import numpy as np

from .._spec import ConvSpec
from ._common import grouped, pad, windows

_BLOCK_BYTES = 32 << 20  # how much window data one einsum may touch


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Hadamard product of each window with the kernel, summed; ``(N, C_out, *out)``."""
    nd, g = spec.nd, spec.groups
    win = grouped(windows(pad(x, spec), spec), g)  # (N, G, Cg, *out, *k)
    wg = np.asarray(w, dtype=spec.dtype).reshape(g, -1, *w.shape[1:])  # (G, Cog, Cg, *k)
    o_ax, k_ax = "ijklmn"[:nd], "pqrstu"[:nd]  # spatial rank <= 6
    expr = f"zgc{o_ax}{k_ax},gyc{k_ax}->zgy{o_ax}"
    out = np.empty((spec.out_shape[0], g, wg.shape[1], *spec.out_shape[2:]), dtype=spec.dtype)  # (N, G, Cog, *out)
    row_bytes = win[:, :, :, :1].size * win.itemsize
    step = max(1, _BLOCK_BYTES // max(row_bytes, 1))
    for r in range(0, spec.out_shape[2], step):
        out[:, :, :, r:r + step] = np.einsum(expr, win[:, :, :, r:r + step], wg, optimize=True)
    return out.reshape(spec.out_shape)


def unsupported(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> str | None:
    """Every configuration works."""
    return None
