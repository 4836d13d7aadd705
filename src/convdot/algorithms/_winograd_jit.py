"""Compiled Winograd transforms for 2-D 3x3 convolution (the optional ``convdot[fast]`` extra).

Importing this module imports numba; :mod:`convdot.algorithms.winograd` does so only for problems
large enough to repay it, so ``import convdot`` and ``convdot demo`` never load it. Each kernel
handles a range of channels of a block of images, releases the GIL, and is run on a thread pool.

Layouts (chosen so that every write and every read is a contiguous run):

- ``x`` : ``(N, C, H, W)`` C-contiguous, unpadded; zero padding is applied while reading.
  A block covers images ``n0:n1`` and tile rows ``i0:i0+th``; ``top = m*i0 - pad_top`` is the
  first input row it reads and ``r0 = m*i0`` the first output row it writes.
- ``V`` : ``(C, P, B)`` transformed input tiles, ``P = (m+2)**2`` transform points (row-major
  ``(p_row, p_col)``), ``B = images * tiles_h * tiles_w`` (row-major ``(n, i, j)``).
- ``M`` : ``(C_out, P, B)`` the products summed over input channels.
- ``out`` : ``(N, C_out, OH, OW)``.

The formulas are the rows of ``B^T`` and ``A^T`` in :mod:`convdot.algorithms.winograd` with the
shared sub-expressions factored out; ``K`` holds the constants 2, 4, 5, 8 in the compute dtype so
that float32 stays float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def _fill(x, buf, n, c, top, pl, m):
    """Copy plane ``x[n, c]`` into ``buf[r, q, t] = xpad[top + r, m*t + q]`` (zero outside ``x``).

    Row ``top + r`` of ``x`` is buffer row ``r`` (``top < 0``: padding rows above the input);
    column ``col`` of ``x`` is padded column ``col + pl``. Returns the sum of ``v - v`` over what
    was copied: 0 when every value is finite, NaN otherwise.
    """
    buf[:] = 0
    rows, cols = buf.shape[0], buf.shape[2]
    _, _, h, w = x.shape
    acc = buf[0, 0, 0]
    for dr in range(max(0, -top), min(rows, h - top)):
        r = dr + top
        for col in range(w):
            dc = col + pl
            t = dc // m
            if t < cols:
                v = x[n, c, r, col]
                acc += v - v
                buf[dr, dc - t * m, t] = v
    return acc


@njit(nogil=True, cache=True)
def input_f43(x, V, K, n0, n1, c0, c1, top, pl, th, tw):
    """``V[c, :, b] = (B^T d B).ravel()`` for every 6x6 tile ``d`` (F(4,3)); True if all finite."""
    k2, k4, k5 = K[0], K[1], K[2]
    buf = np.empty((4 * th + 2, 4, tw + 1), dtype=V.dtype)
    tmp = np.empty((6, 4, tw + 1), dtype=V.dtype)
    finite = K[0] - K[0]
    for c in range(c0, c1):
        for n in range(n0, n1):
            finite += _fill(x, buf, n, c, top, pl, 4)
            for i in range(th):
                r = 4 * i
                for q in range(4):  # rows: B^T d, for every input column (phase q, tile t)
                    for t in range(tw + 1):
                        d0 = buf[r, q, t]
                        d1 = buf[r + 1, q, t]
                        d2 = buf[r + 2, q, t]
                        d3 = buf[r + 3, q, t]
                        d4 = buf[r + 4, q, t]
                        d5 = buf[r + 5, q, t]
                        a = d4 - k4 * d2
                        b = d3 - k4 * d1
                        e = d4 - d2
                        f = k2 * (d3 - d1)
                        tmp[0, q, t] = k4 * d0 - k5 * d2 + d4
                        tmp[1, q, t] = a + b
                        tmp[2, q, t] = a - b
                        tmp[3, q, t] = e + f
                        tmp[4, q, t] = e - f
                        tmp[5, q, t] = k4 * d1 - k5 * d3 + d5
                base = (n - n0) * th * tw + i * tw
                for p in range(6):  # columns: (B^T d) B, tile t spans phases 0-3 of t and 0-1 of t+1
                    for t in range(tw):
                        d0 = tmp[p, 0, t]
                        d1 = tmp[p, 1, t]
                        d2 = tmp[p, 2, t]
                        d3 = tmp[p, 3, t]
                        d4 = tmp[p, 0, t + 1]
                        d5 = tmp[p, 1, t + 1]
                        a = d4 - k4 * d2
                        b = d3 - k4 * d1
                        e = d4 - d2
                        f = k2 * (d3 - d1)
                        V[c, 6 * p, base + t] = k4 * d0 - k5 * d2 + d4
                        V[c, 6 * p + 1, base + t] = a + b
                        V[c, 6 * p + 2, base + t] = a - b
                        V[c, 6 * p + 3, base + t] = e + f
                        V[c, 6 * p + 4, base + t] = e - f
                        V[c, 6 * p + 5, base + t] = k4 * d1 - k5 * d3 + d5
    return finite == 0


@njit(nogil=True, cache=True)
def output_f43(M, out, K, n0, n1, c0, c1, r0, th, tw):
    """``out[n, o, r0+4i:r0+4i+4, 4j:4j+4] = A^T m A`` for every 6x6 tile of products ``m`` (F(4,3))."""
    k2, k4, k8 = K[0], K[1], K[3]
    _, _, oh, ow = out.shape
    s = np.empty((4, 6, tw), dtype=M.dtype)
    row = np.empty((4, 4 * tw), dtype=M.dtype)
    for o in range(c0, c1):
        for n in range(n0, n1):
            for i in range(th):
                base = (n - n0) * th * tw + i * tw
                for pc in range(6):  # rows: A^T m, for every point column
                    for t in range(tw):
                        m0 = M[o, pc, base + t]
                        m1 = M[o, 6 + pc, base + t]
                        m2 = M[o, 12 + pc, base + t]
                        m3 = M[o, 18 + pc, base + t]
                        m4 = M[o, 24 + pc, base + t]
                        m5 = M[o, 30 + pc, base + t]
                        a = m1 + m2
                        b = m3 + m4
                        e = m1 - m2
                        f = m3 - m4
                        s[0, pc, t] = m0 + a + b
                        s[1, pc, t] = e + k2 * f
                        s[2, pc, t] = a + k4 * b
                        s[3, pc, t] = e + k8 * f + m5
                for ra in range(4):  # columns: (A^T m) A
                    for t in range(tw):
                        m0 = s[ra, 0, t]
                        m1 = s[ra, 1, t]
                        m2 = s[ra, 2, t]
                        m3 = s[ra, 3, t]
                        m4 = s[ra, 4, t]
                        m5 = s[ra, 5, t]
                        a = m1 + m2
                        b = m3 + m4
                        e = m1 - m2
                        f = m3 - m4
                        row[ra, 4 * t] = m0 + a + b
                        row[ra, 4 * t + 1] = e + k2 * f
                        row[ra, 4 * t + 2] = a + k4 * b
                        row[ra, 4 * t + 3] = e + k8 * f + m5
                for ra in range(min(4, oh - r0 - 4 * i)):
                    for col in range(ow):
                        out[n, o, r0 + 4 * i + ra, col] = row[ra, col]


@njit(nogil=True, cache=True)
def input_f23(x, V, K, n0, n1, c0, c1, top, pl, th, tw):
    """``V[c, :, b] = (B^T d B).ravel()`` for every 4x4 tile ``d`` (F(2,3)); True if all finite."""
    buf = np.empty((2 * th + 2, 2, tw + 1), dtype=V.dtype)
    tmp = np.empty((4, 2, tw + 1), dtype=V.dtype)
    finite = K[0] - K[0]
    for c in range(c0, c1):
        for n in range(n0, n1):
            finite += _fill(x, buf, n, c, top, pl, 2)
            for i in range(th):
                r = 2 * i
                for q in range(2):
                    for t in range(tw + 1):
                        d0 = buf[r, q, t]
                        d1 = buf[r + 1, q, t]
                        d2 = buf[r + 2, q, t]
                        d3 = buf[r + 3, q, t]
                        tmp[0, q, t] = d0 - d2
                        tmp[1, q, t] = d1 + d2
                        tmp[2, q, t] = d2 - d1
                        tmp[3, q, t] = d1 - d3
                base = (n - n0) * th * tw + i * tw
                for p in range(4):
                    for t in range(tw):
                        d0 = tmp[p, 0, t]
                        d1 = tmp[p, 1, t]
                        d2 = tmp[p, 0, t + 1]
                        d3 = tmp[p, 1, t + 1]
                        V[c, 4 * p, base + t] = d0 - d2
                        V[c, 4 * p + 1, base + t] = d1 + d2
                        V[c, 4 * p + 2, base + t] = d2 - d1
                        V[c, 4 * p + 3, base + t] = d1 - d3
    return finite == 0


@njit(nogil=True, cache=True)
def output_f23(M, out, K, n0, n1, c0, c1, r0, th, tw):
    """``out[n, o, r0+2i:r0+2i+2, 2j:2j+2] = A^T m A`` for every 4x4 tile of products ``m`` (F(2,3))."""
    _, _, oh, ow = out.shape
    s = np.empty((2, 4, tw), dtype=M.dtype)
    row = np.empty((2, 2 * tw), dtype=M.dtype)
    for o in range(c0, c1):
        for n in range(n0, n1):
            for i in range(th):
                base = (n - n0) * th * tw + i * tw
                for pc in range(4):
                    for t in range(tw):
                        m0 = M[o, pc, base + t]
                        m1 = M[o, 4 + pc, base + t]
                        m2 = M[o, 8 + pc, base + t]
                        m3 = M[o, 12 + pc, base + t]
                        s[0, pc, t] = m0 + m1 + m2
                        s[1, pc, t] = m1 - m2 - m3
                for ra in range(2):
                    for t in range(tw):
                        m0 = s[ra, 0, t]
                        m1 = s[ra, 1, t]
                        m2 = s[ra, 2, t]
                        m3 = s[ra, 3, t]
                        row[ra, 2 * t] = m0 + m1 + m2
                        row[ra, 2 * t + 1] = m1 - m2 - m3
                for ra in range(min(2, oh - r0 - 2 * i)):
                    for col in range(ow):
                        out[n, o, r0 + 2 * i + ra, col] = row[ra, col]


KERNELS = {4: (input_f43, output_f43), 2: (input_f23, output_f23)}


def constants(dtype: np.dtype) -> np.ndarray:
    """The transform constants (2, 4, 5, 8) in the compute dtype."""
    return np.array([2, 4, 5, 8], dtype=dtype)
