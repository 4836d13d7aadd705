"""Compiled Winograd transforms for 2-D 3x3 convolution (the optional ``convdot[fast]`` extra).

Importing this module imports numba; :mod:`convdot.algorithms.winograd` does so only for problems
large enough to repay it, so ``import convdot`` and ``convdot demo`` never load it. Each kernel
handles a range of channels of a block of images, releases the GIL, and is run on a thread pool.

Layouts (chosen so that the arithmetic runs over long contiguous vectors, which LLVM vectorizes):

- ``x`` : ``(N, C, H, W)`` C-contiguous, unpadded; zero padding is applied while reading.
  A block covers images ``n0:n1`` and tile rows ``i0:i0+th``; ``top = m*i0 - pad_top`` is the
  first input row it reads and ``r0 = m*i0`` the first output row it writes.
- ``V`` : ``(C, P, B)`` transformed input tiles, ``P = (m+2)**2`` transform points (row-major
  ``(p_row, p_col)``), ``B = images * tiles_h * tiles_w`` (row-major ``(n, i, j)``).
- ``M`` : ``(C_out, P, B)`` the products summed over input channels.
- ``out`` : ``(N, C_out, OH, OW)``.

Per input plane, :func:`_split` first deals the padded plane into phases,
``S[k, q, i*tw + j] = xpad[m*i + k, m*j + q]`` for row phases ``k < m`` and column phases
``q < m + 2`` (the last two repeat the next tile's first columns), so that element ``(k, q)`` of
every tile sits at the same flat index ``f = i*tw + j`` (rows ``k >= m`` at ``f + tw``). The row
and column transforms are then loops over ``f`` with unit stride, as is the inverse transform.

The formulas are the rows of ``B^T`` and ``A^T`` in :mod:`convdot.algorithms.winograd` with the
shared sub-expressions factored out; ``K`` holds the constants 2, 4, 5, 8 in the compute dtype so
that float32 stays float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._prefetch_jit import prefetch_read
from ._stream_jit import STREAM_BYTES, store_fence, transpose_stream

# numba cache stamp of the compiled-in modules: c435e3d991e18bba (_prefetch_jit, _stream_jit)


@njit(nogil=True, cache=True)
def _split(x, S, row, n, c, top, pl, m, tw, dw, twp):  # pragma: no cover - compiled
    """Deal plane ``x[n, c]`` into ``S[k, q, i*tw + j] = xpad[top + m*i + k, m*j + q]`` (zero outside ``x``).

    ``row`` is a zeroed scratch row of at least ``dw*(m*twp + 2) + pl + W`` elements: each input row
    is copied into it at offset ``pl``, so the dealing loop reads contiguous, in-bounds columns.
    With a column dilation ``dw > 1``, tile ``j = pc*twp + jj`` is tile ``jj`` of column phase
    ``pc``: it reads columns ``pc + dw*(m*jj + q)``. Returns how many values of the plane are not finite.
    """
    S[:] = 0
    rows = (S.shape[2] // tw) * m
    _, _, h, w = x.shape
    bad = 0
    for dr in range(max(0, -top), min(rows, h - top)):
        i = dr // m
        k = dr - i * m
        src = x[n, c, dr + top]
        for col in range(w):  # an integer count vectorizes; a float flag would chain every add
            v = src[col]
            bad += (v - v) != 0
            row[col + pl] = v
        d = S[k, :, i * tw:(i + 1) * tw]
        if dw != 1:
            for pc in range(dw):
                for jj in range(twp):
                    j = pc * twp + jj
                    b0 = pc + dw * m * jj
                    d[0, j] = row[b0]
                    d[1, j] = row[b0 + dw]
                    d[2, j] = row[b0 + 2 * dw]
                    d[3, j] = row[b0 + 3 * dw]
                    if m == 4:
                        d[4, j] = row[b0 + 4 * dw]
                        d[5, j] = row[b0 + 5 * dw]
        elif m == 4:
            for j in range(tw):
                d[0, j] = row[4 * j]
                d[1, j] = row[4 * j + 1]
                d[2, j] = row[4 * j + 2]
                d[3, j] = row[4 * j + 3]
                d[4, j] = row[4 * j + 4]
                d[5, j] = row[4 * j + 5]
        else:
            for j in range(tw):
                d[0, j] = row[2 * j]
                d[1, j] = row[2 * j + 1]
                d[2, j] = row[2 * j + 2]
                d[3, j] = row[2 * j + 3]
    return bad


@njit(nogil=True, cache=True, fastmath={"contract"}, inline="always")
def _bt(d0, d1, d2, d3, d4, d5, k2, k4, k5):  # pragma: no cover - compiled
    """``B^T (d0..d5)`` for the 6x6 ``B^T`` of F(4,3), shared sub-expressions factored out."""
    a = d4 - k4 * d2
    b = d3 - k4 * d1
    e = d4 - d2
    g = k2 * (d3 - d1)
    return k4 * d0 - k5 * d2 + d4, a + b, a - b, e + g, e - g, k4 * d1 - k5 * d3 + d5


@njit(nogil=True, cache=True, fastmath={"contract"}, inline="always")
def _at(m0, m1, m2, m3, m4, m5, k2, k4, k8):  # pragma: no cover - compiled
    """``A^T (m0..m5)`` for the 4x6 ``A^T`` of F(4,3)."""
    a = m1 + m2
    b = m3 + m4
    e = m1 - m2
    g = m3 - m4
    return m0 + a + b, e + k2 * g, a + k4 * b, e + k8 * g + m5


@njit(nogil=True, cache=True, fastmath={"contract"})
def _bt6(d, o, k2, k4, k5):  # pragma: no cover - compiled
    """``o[0:6, c] = (B^T d)[:, c]`` for the 6x6 ``B^T`` of F(4,3); ``d`` and ``o`` are ``(6, C)``."""
    for c in range(d.shape[1]):
        o[0, c], o[1, c], o[2, c], o[3, c], o[4, c], o[5, c] = _bt(d[0, c], d[1, c], d[2, c], d[3, c], d[4, c],
                                                                   d[5, c], k2, k4, k5)


@njit(nogil=True, cache=True, fastmath={"contract"})
def _at4(m, o, k2, k4, k8):  # pragma: no cover - compiled
    """``o[0:4, c] = (A^T m)[:, c]`` for the 4x6 ``A^T`` of F(4,3); ``m`` is ``(6, C)``, ``o`` ``(4, C)``."""
    for c in range(m.shape[1]):
        o[0, c], o[1, c], o[2, c], o[3, c] = _at(m[0, c], m[1, c], m[2, c], m[3, c], m[4, c], m[5, c], k2, k4, k8)


@njit(nogil=True, cache=True)
def input_f43(x, V, K, n0, n1, c0, c1, top, pl, th, tw, dw, twp):  # pragma: no cover - compiled
    """``V[c, :, b] = (B^T d B).ravel()`` for every 6x6 tile ``d`` (F(4,3)); True if ``x`` was finite."""
    k2, k4, k5 = K[0], K[1], K[2]
    t_ = th * tw
    S = np.empty((4, 6, (th + 1) * tw), dtype=V.dtype)
    row = np.zeros(dw * (4 * max(tw, twp) + 2) + pl + x.shape[3], dtype=V.dtype)
    R = np.empty((6, 6, t_), dtype=V.dtype)  # R[p, q, f] = (B^T d)[p, q]
    bad = 0
    for c in range(c0, c1):
        for n in range(n0, n1):
            bad += _split(x, S, row, n, c, top, pl, 4, tw, dw, twp)
            for q in range(6):  # rows: B^T d
                s0, s1, s2, s3 = S[0, q], S[1, q], S[2, q], S[3, q]
                r0, r1, r2, r3, r4, r5 = R[0, q], R[1, q], R[2, q], R[3, q], R[4, q], R[5, q]
                for f in range(t_):
                    r0[f], r1[f], r2[f], r3[f], r4[f], r5[f] = _bt(s0[f], s1[f], s2[f], s3[f], s0[f + tw], s1[f + tw],
                                                                   k2, k4, k5)
            base = (n - n0) * t_
            for p in range(6):  # columns: (B^T d) B
                _bt6(R[p], V[c, 6 * p:6 * p + 6, base:base + t_], k2, k4, k5)
    return bad == 0


@njit(nogil=True, cache=True)
def _interleave(Y, out, line, n, o, r0, m, th, tw, dw, twp):  # pragma: no cover - compiled
    """``out[n, o, r0 + m*i + a, m*j + b] = Y[a, b, i*tw + j]``, cropped to ``out``'s shape.

    ``line`` is scratch of ``dw*m*twp`` (at least ``m*tw``) elements: each output row is assembled
    there, then its first ``OW`` elements copied out. With a column dilation ``dw > 1``, tile
    ``j = pc*twp + jj`` writes columns ``pc + dw*(m*jj + b)`` (see :func:`_split`).
    """
    _, _, oh, ow = out.shape
    for i in range(th):
        for a in range(min(m, oh - r0 - m * i)):
            y = Y[a, :, i * tw:(i + 1) * tw]
            if dw != 1:
                for pc in range(dw):
                    for jj in range(twp):
                        j = pc * twp + jj
                        b0 = pc + dw * m * jj
                        line[b0] = y[0, j]
                        line[b0 + dw] = y[1, j]
                        if m == 4:
                            line[b0 + 2 * dw] = y[2, j]
                            line[b0 + 3 * dw] = y[3, j]
            elif m == 4:
                for j in range(tw):
                    line[4 * j] = y[0, j]
                    line[4 * j + 1] = y[1, j]
                    line[4 * j + 2] = y[2, j]
                    line[4 * j + 3] = y[3, j]
            else:
                for j in range(tw):
                    line[2 * j] = y[0, j]
                    line[2 * j + 1] = y[1, j]
            dst = out[n, o, r0 + m * i + a]
            for col in range(ow):
                dst[col] = line[col]


@njit(nogil=True, cache=True)
def output_f43(M, out, K, n0, n1, c0, c1, r0, th, tw, dw, twp):  # pragma: no cover - compiled
    """``out[n, o, r0+4i:r0+4i+4, 4j:4j+4] = A^T m A`` for every 6x6 tile of products ``m`` (F(4,3))."""
    k2, k4, k8 = K[0], K[1], K[3]
    t_ = th * tw
    S = np.empty((4, 6, t_), dtype=M.dtype)  # S[a, pc, f] = (A^T m)[a, pc]
    Y = np.empty((4, 4, t_), dtype=M.dtype)  # Y[a, b, f] = (A^T m A)[a, b]
    line = np.empty(dw * 4 * max(tw, twp), dtype=M.dtype)
    for o in range(c0, c1):
        for n in range(n0, n1):
            base = (n - n0) * t_
            for pc in range(6):  # rows: A^T m
                _at4(M[o, pc:36:6, base:base + t_], S[:, pc], k2, k4, k8)
            for ra in range(4):  # columns: (A^T m) A
                _at4(S[ra], Y[ra], k2, k4, k8)
            _interleave(Y, out, line, n, o, r0, 4, th, tw, dw, twp)


@njit(nogil=True, cache=True)
def input_f23(x, V, K, n0, n1, c0, c1, top, pl, th, tw, dw, twp):  # pragma: no cover - compiled
    """``V[c, :, b] = (B^T d B).ravel()`` for every 4x4 tile ``d`` (F(2,3)); True if ``x`` was finite."""
    t_ = th * tw
    S = np.empty((2, 4, (th + 1) * tw), dtype=V.dtype)
    row = np.zeros(dw * (2 * max(tw, twp) + 2) + pl + x.shape[3], dtype=V.dtype)
    R = np.empty((4, 4, t_), dtype=V.dtype)
    bad = 0
    for c in range(c0, c1):
        for n in range(n0, n1):
            bad += _split(x, S, row, n, c, top, pl, 2, tw, dw, twp)
            for q in range(4):
                s0, s1 = S[0, q], S[1, q]
                r0, r1, r2, r3 = R[0, q], R[1, q], R[2, q], R[3, q]
                for f in range(t_):
                    d0 = s0[f]
                    d1 = s1[f]
                    d2 = s0[f + tw]
                    d3 = s1[f + tw]
                    r0[f] = d0 - d2
                    r1[f] = d1 + d2
                    r2[f] = d2 - d1
                    r3[f] = d1 - d3
            base = (n - n0) * t_
            for p in range(4):
                e0, e1, e2, e3 = R[p, 0], R[p, 1], R[p, 2], R[p, 3]
                v0, v1 = V[c, 4 * p, base:base + t_], V[c, 4 * p + 1, base:base + t_]
                v2, v3 = V[c, 4 * p + 2, base:base + t_], V[c, 4 * p + 3, base:base + t_]
                for f in range(t_):
                    d0 = e0[f]
                    d1 = e1[f]
                    d2 = e2[f]
                    d3 = e3[f]
                    v0[f] = d0 - d2
                    v1[f] = d1 + d2
                    v2[f] = d2 - d1
                    v3[f] = d1 - d3
    return bad == 0


@njit(nogil=True, cache=True)
def output_f23(M, out, K, n0, n1, c0, c1, r0, th, tw, dw, twp):  # pragma: no cover - compiled
    """``out[n, o, r0+2i:r0+2i+2, 2j:2j+2] = A^T m A`` for every 4x4 tile of products ``m`` (F(2,3))."""
    t_ = th * tw
    S = np.empty((2, 4, t_), dtype=M.dtype)
    Y = np.empty((2, 2, t_), dtype=M.dtype)
    line = np.empty(dw * 2 * max(tw, twp), dtype=M.dtype)
    for o in range(c0, c1):
        for n in range(n0, n1):
            base = (n - n0) * t_
            for pc in range(4):
                m0, m1 = M[o, pc, base:base + t_], M[o, 4 + pc, base:base + t_]
                m2, m3 = M[o, 8 + pc, base:base + t_], M[o, 12 + pc, base:base + t_]
                s0, s1 = S[0, pc], S[1, pc]
                for f in range(t_):
                    s0[f] = m0[f] + m1[f] + m2[f]
                    s1[f] = m1[f] - m2[f] - m3[f]
            for ra in range(2):
                m0, m1, m2, m3 = S[ra, 0], S[ra, 1], S[ra, 2], S[ra, 3]
                y0, y1 = Y[ra, 0], Y[ra, 1]
                for f in range(t_):
                    y0[f] = m0[f] + m1[f] + m2[f]
                    y1[f] = m1[f] - m2[f] - m3[f]
            _interleave(Y, out, line, n, o, r0, 2, th, tw, dw, twp)


# ----------------------------------------------------------------- channels-last F(4,3), groups=1
#
# With many channels the transforms run along the channel axis instead: ``V`` is ``(P, B, C_in)``
# and ``M`` is ``(P, B, C_out)``, so ``M[p] = V[p] @ U[p]^T`` is one GEMM per point whose inner
# dimension is contiguous (``U^T`` is cached contiguous too), and the output tiles of every channel
# come out together. The input rows of a tile row are transposed once into a scratch ``T`` of six
# flat ``(column, channel)`` rows (the two rows a tile row shares with the next are kept, not read
# again); the row transform is then one flat loop over those rows, and the column transform a loop
# over each tile's channel vectors.
#
# Every inner loop indexes 1-D slices from 0: numba wraps negative indices, and with an offset
# (``a[i0 + c]``) LLVM cannot prove the index positive, keeps that select and does not vectorize.
# Slicing made these transforms 1.2-1.5x faster. The kernels have no default arguments: a call
# that leaves one out is compiled as a separate specialization, which ran 1.6x slower.


@njit(nogil=True, cache=True, inline="always")
def tile_rows(x, T, keep, n, y0, h, ys, ystep, lo, hi, pl):  # pragma: no cover - compiled
    """``T[a]`` = input row ``y0 + a`` of image ``n`` as flat (column, channel) rows, zeros outside ``x``
    (rows ``ys + ystep*y`` of ``x``, ``h`` of them); returns the first row read.

    With ``keep``, rows 0 and 1 are the last tile row's last two (the rows neighbouring tile rows
    share), moved rather than read again.
    """
    a_n, c_in = T.shape[0], x.shape[1]
    first = 0
    if keep:
        T[0] = T[a_n - 2]
        T[1] = T[a_n - 1]
        first = 2
    for a in range(first, a_n):
        y = y0 + a
        ta = T[a]
        if y < 0 or y >= h:
            ta[:] = 0
            continue
        src = x[n, :, ys + ystep * y, lo - pl:hi - pl]  # (C, columns): one view per row, not per channel
        dst = ta[lo * c_in:hi * c_in].reshape(hi - lo, c_in)
        c8 = c_in - c_in % 8
        for c0 in range(0, c8, 8):  # eight channels' rows at once, so that a column's eight are one store
            s0, s1, s2, s3 = src[c0], src[c0 + 1], src[c0 + 2], src[c0 + 3]
            s4, s5, s6, s7 = src[c0 + 4], src[c0 + 5], src[c0 + 6], src[c0 + 7]
            for col in range(hi - lo):
                d = dst[col]
                d[c0], d[c0 + 1], d[c0 + 2], d[c0 + 3] = s0[col], s1[col], s2[col], s3[col]
                d[c0 + 4], d[c0 + 5], d[c0 + 6], d[c0 + 7] = s4[col], s5[col], s6[col], s7[col]
        for c in range(c8, c_in):  # read along the row, write along the channels
            for col in range(hi - lo):
                dst[col, c] = src[c, col]
        if y + a_n - 2 < h:  # ask for the row the next tile row reads in this one's place (see _prefetch_jit)
            line = max(1, 64 // x.itemsize)  # elements per 64-byte cache line
            for c in range(c_in):
                row = x[n, c, ys + ystep * (y + a_n - 2)]
                for col in range(lo - pl, hi - pl, line):
                    prefetch_read(row, col)
    return first


@njit(nogil=True, cache=True, inline="always")
def rows_out(Y, out, n, rows, y0, os, ostep):  # pragma: no cover - compiled
    """Output rows ``y0 .. y0 + rows - 1`` of image ``n`` (rows ``os + ostep*y`` of ``out``) from
    ``Y``'s flat (column, channel) rows."""
    if _rows_streamed(Y, out, n, rows, y0 + os, ostep):
        return
    c_out, ow = out.shape[1], out.shape[3]
    for a in range(rows):
        y = os + ostep * (y0 + a)
        ya = Y[a]
        for o in range(c_out):  # read along the channels, write along the row
            dst = out[n, o, y]
            col_o = ya[o:ow * c_out:c_out]
            for col in range(ow):
                dst[col] = col_o[col]


@njit(nogil=True, cache=True, inline="always")
def _rows_streamed(Y, out, n, rows, y0, ostep):  # pragma: no cover - compiled
    """:func:`rows_out` with whole lines written past the caches (:mod:`convdot.algorithms._stream_jit`),
    where the output is large and the rows' run of each channel is whole 64-byte lines: consecutive
    rows, channels in whole blocks. False (nothing written) otherwise."""
    c_out, ow, isz = out.shape[1], out.shape[3], out.itemsize
    size = 64 // isz
    start, span = y0 * ow, rows * ow  # the run of each channel's rows, in its plane
    if out.nbytes < STREAM_BYTES or ostep != 1 or out.strides[3] != isz or out.strides[2] != ow * isz \
            or c_out % size or out.strides[1] % 64 or out.strides[0] % 64 or out.ctypes.data % 64 \
            or start % size or span % size:
        return False
    sn, sc, yw = out.strides[0] // isz, out.strides[1] // isz, Y.shape[1]
    offs = np.empty((2, size), np.int64)  # a block's rows in Y (positions) and in out (channels)
    so, do = offs[0], offs[1]
    for j in range(size):
        do[j] = j * sc
    for f0 in range(0, span, size):
        for i in range(size):
            a, col = divmod(f0 + i, ow)
            so[i] = a * yw + col * c_out
        for o0 in range(0, c_out, size):
            transpose_stream(Y, o0, so, out, n * sn + o0 * sc + start + f0, do)
    return True


@njit(nogil=True, cache=True, inline="always")
def input_setup(x, V, m, tw, dw, twp, hp, pl):  # pragma: no cover - compiled
    """What the channels-last F(``m``,3) input kernels share before their tile-row loop:
    ``(c_in, h, twp, wp, T, R, V2, lo, hi, s)`` -- input channels, input rows (``hp`` when >= 0),
    tiles per column phase, input columns a tile row spans, the zeroed rows ``T`` it reads
    (``T[a, col*C + c]``; columns outside ``x`` stay zero) and ``R = B^T T``, ``V`` as
    (point, flat tiles), the columns of ``T`` inside ``x`` and the step between a tile's columns."""
    c_in, h, w = x.shape[1], x.shape[2], x.shape[3]
    if hp >= 0:
        h = hp
    if dw == 1:
        twp = tw
    wp = dw * (m * twp + 2)
    T = np.zeros((m + 2, wp * c_in), dtype=V.dtype)
    R = np.empty((m + 2, wp * c_in), dtype=V.dtype)
    V2 = V.reshape((m + 2) ** 2, V.shape[1] * c_in)
    return c_in, h, twp, wp, T, R, V2, max(0, pl), min(wp, pl + w), dw * c_in


@njit(nogil=True, cache=True, fastmath={"contract"})
def input_f43_cl(x, V, K, r0, r1, rb, n0, top0, pl, th, tw, dw, twp, ys, ystep, hp):  # pragma: no cover
    """``V[:, b, c] = (B^T d B).ravel()`` for the tiles of tile rows ``r0:r1``; returns the non-finite inputs' count.

    Tile row ``r`` is row ``i = r % th`` of image ``n0 + r // th``; it reads input rows from
    ``top0 + 4*i`` and its tiles are ``b = (r - rb)*tw + j`` of ``V``. With a column dilation
    ``dw > 1``, tile ``j = pc*twp + jj`` is tile ``jj`` of column phase ``pc`` (as in :func:`_split`).
    The rows of ``x`` read are ``ys + ystep*y``, ``hp`` of them (-1: all; ``ys, ystep = 0, 1``):
    a row phase is given as the whole array, as numba types a strided view with a run-time stride,
    and the kernel ran 2.2x slower on one.
    """
    k2, k4, k5 = K[0], K[1], K[2]
    c_in, h, twp, wp, T, R, V2, lo, hi, s = input_setup(x, V, 4, tw, dw, twp, hp, pl)
    bad = 0
    for r in range(r0, r1):
        n = n0 + r // th
        i = r % th
        tile_rows(x, T, r > r0 and i > 0, n, top0 + 4 * i, h, ys, ystep, lo, hi, pl)
        t0, t1, t2, t3, t4, t5 = T[0], T[1], T[2], T[3], T[4], T[5]
        e0, e1, e2, e3, e4, e5 = R[0], R[1], R[2], R[3], R[4], R[5]
        for f in range(wp * c_in):  # rows: B^T d, every column and channel in one loop
            d0 = t0[f]
            d1 = t1[f]
            d2 = t2[f]
            d3 = t3[f]
            d4 = t4[f]
            d5 = t5[f]
            # an integer count vectorizes; a float flag would chain every add
            bad += ((d0 - d0) != 0) + ((d1 - d1) != 0) + ((d2 - d2) != 0)
            bad += ((d3 - d3) != 0) + ((d4 - d4) != 0) + ((d5 - d5) != 0)
            # written out, not _bt: beside the count, its tuple made this pass 0.84-0.87x as fast
            a_ = d4 - k4 * d2
            b_ = d3 - k4 * d1
            e = d4 - d2
            g = k2 * (d3 - d1)
            e0[f] = k4 * d0 - k5 * d2 + d4
            e1[f] = a_ + b_
            e2[f] = a_ - b_
            e3[f] = e + g
            e4[f] = e - g
            e5[f] = k4 * d1 - k5 * d3 + d5
        for p in range(6):  # columns: (B^T d) B
            rp = R[p]
            for pc in range(dw):
                for jj in range(twp):
                    i0 = (pc + 4 * dw * jj) * c_in
                    o0 = ((r - rb) * tw + pc * twp + jj) * c_in
                    d0s, d1s, d2s = rp[i0:i0 + c_in], rp[i0 + s:i0 + s + c_in], rp[i0 + 2 * s:i0 + 2 * s + c_in]
                    d3s, d4s = rp[i0 + 3 * s:i0 + 3 * s + c_in], rp[i0 + 4 * s:i0 + 4 * s + c_in]
                    d5s = rp[i0 + 5 * s:i0 + 5 * s + c_in]
                    v0, v1, v2 = V2[6 * p, o0:o0 + c_in], V2[6 * p + 1, o0:o0 + c_in], V2[6 * p + 2, o0:o0 + c_in]
                    v3, v4, v5 = V2[6 * p + 3, o0:o0 + c_in], V2[6 * p + 4, o0:o0 + c_in], V2[6 * p + 5, o0:o0 + c_in]
                    for c in range(c_in):
                        v0[c], v1[c], v2[c], v3[c], v4[c], v5[c] = _bt(d0s[c], d1s[c], d2s[c], d3s[c], d4s[c], d5s[c],
                                                                       k2, k4, k5)
    return bad


@njit(nogil=True, cache=True, inline="always")
def output_setup(M, out, m, tw, dw, twp, ohp):  # pragma: no cover - compiled
    """What the channels-last F(``m``,3) output kernels share before their tile-row loop:
    ``(c_out, oh, twp, M2, n_f, S, Y, s)`` -- output channels, output rows (``ohp`` when >= 0),
    tiles per column phase, ``M`` as (slot, flat tile row), one tile row of one point
    (``n_f = tw * c_out``), scratch ``S`` for ``A^T m`` and ``Y`` for one tile row of outputs
    (channels last), and the step between a tile's columns in ``Y``."""
    c_out = M.shape[2]
    oh = out.shape[2]
    if ohp >= 0:
        oh = ohp
    if dw == 1:
        twp = tw
    M2 = M.reshape(M.shape[0], M.shape[1] * c_out)
    n_f = tw * c_out
    S = np.empty((m, (m + 2) * n_f), dtype=M.dtype)  # S[a, q*n_f + j*C + o] = (A^T m)[a, q] of tile j
    Y = np.empty((m, m * dw * twp * c_out), dtype=M.dtype)
    return c_out, oh, twp, M2, n_f, S, Y, dw * c_out


@njit(nogil=True, cache=True, fastmath={"contract"})
def output_f43_cl(M, perm, out, K, r0, r1, rb, n0, row0, th, tw, dw, twp, os, ostep, ohp):  # pragma: no cover
    """``out[n, :, row0+4i:row0+4i+4, 4j:4j+4] = A^T m A`` for tile rows ``r0:r1`` (see :func:`input_f43_cl`).

    The products of transform point ``p`` are ``M[perm[p]]`` (``M`` may hold more slots than
    points: the shared chunks leave each point's products where a free slot was). The rows of ``out``
    written are ``os + ostep*y``, ``ohp`` of them (-1: all; ``os, ostep = 0, 1``).
    """
    k2, k4, k8 = K[0], K[1], K[3]
    c_out, oh, twp, M2, L, S, Y, s = output_setup(M, out, 4, tw, dw, twp, ohp)
    for r in range(r0, r1):
        n = n0 + r // th
        i = r % th
        o0 = (r - rb) * L
        for q in range(6):  # rows: A^T m, every tile and channel of the row in one loop
            m0, m1, m2 = M2[perm[q], o0:o0 + L], M2[perm[6 + q], o0:o0 + L], M2[perm[12 + q], o0:o0 + L]
            m3, m4, m5 = M2[perm[18 + q], o0:o0 + L], M2[perm[24 + q], o0:o0 + L], M2[perm[30 + q], o0:o0 + L]
            z0, z1 = S[0, q * L:(q + 1) * L], S[1, q * L:(q + 1) * L]
            z2, z3 = S[2, q * L:(q + 1) * L], S[3, q * L:(q + 1) * L]
            for f in range(L):
                z0[f], z1[f], z2[f], z3[f] = _at(m0[f], m1[f], m2[f], m3[f], m4[f], m5[f], k2, k4, k8)
        for a in range(4):  # columns: (A^T m) A
            sa, ya = S[a], Y[a]
            for pc in range(dw):
                for jj in range(twp):
                    f0 = (pc * twp + jj) * c_out
                    y0 = (pc + 4 * dw * jj) * c_out
                    u0, u1, u2 = sa[f0:f0 + c_out], sa[L + f0:L + f0 + c_out], sa[2 * L + f0:2 * L + f0 + c_out]
                    u3, u4 = sa[3 * L + f0:3 * L + f0 + c_out], sa[4 * L + f0:4 * L + f0 + c_out]
                    u5 = sa[5 * L + f0:5 * L + f0 + c_out]
                    w0, w1 = ya[y0:y0 + c_out], ya[y0 + s:y0 + s + c_out]
                    w2, w3 = ya[y0 + 2 * s:y0 + 2 * s + c_out], ya[y0 + 3 * s:y0 + 3 * s + c_out]
                    for o in range(c_out):
                        w0[o], w1[o], w2[o], w3[o] = _at(u0[o], u1[o], u2[o], u3[o], u4[o], u5[o], k2, k4, k8)
        rows_out(Y, out, n, min(4, oh - row0 - 4 * i), row0 + 4 * i, os, ostep)
    store_fence()  # the streamed lines written before the caller reads them


KERNELS = {4: (input_f43, output_f43), 2: (input_f23, output_f23)}


def constants(dtype: np.dtype) -> np.ndarray:
    """The transform constants (2, 4, 5, 8) in the compute dtype."""
    return np.array([2, 4, 5, 8], dtype=dtype)
