"""Compiled channels-last F(5,3) transforms for 2-D 3x3 convolution (the ``convdot[fast]`` extra).

F(5,3) computes a 5x5 output tile from a 7x7 input tile with 49 products: 1.96 per output against
F(4,3)'s 2.25. It pays where F(4,3) tiles waste outputs: a 14x14 layer is 4x4 tiles of 4 (16x16
outputs, 576 products per output channel pair) but 3x3 tiles of 5 (15x15, 441). Its transforms
interpolate at 0, 1, -1, 2, -2, 1/2 and infinity (see :data:`convdot.algorithms.winograd.TRANSFORMS`);
the 1/2 breaks the +-p symmetry that lets F(4,3)'s ``B^T`` be factored by hand, so these kernels
take ``B^T`` and ``A^T`` as arrays and sum every row densely (7 terms, zeros included): the passes
are bound by memory, not by those extra multiply-adds.

The layouts and the row arguments are those of :func:`convdot.algorithms._winograd_jit.input_f43_cl`
and ``output_f43_cl``: ``V`` and ``M`` are ``(49, B, C)``; a tile row reads input rows from
``top0 + 5*i``; with a column dilation ``dw > 1``, tile ``j = pc*twp + jj`` is tile ``jj`` of column
phase ``pc``; ``(ys, ystep, hp)`` and ``(os, ostep, ohp)`` select the rows of a row phase in the
whole arrays. As there, inner loops index 1-D slices from 0 so that LLVM vectorizes them.
"""

from __future__ import annotations

from numba import njit

from ._stream_jit import store_fence
from ._winograd_jit import input_setup, output_setup, rows_out, tile_rows

# numba cache stamp of the compiled-in modules: 63d90de55c408b05 (_prefetch_jit, _stream_jit, _winograd_jit)


@njit(nogil=True, cache=True, fastmath={"contract"})
def input_f53_cl(x, V, BT, r0, r1, rb, n0, top0, pl, th, tw, dw, twp, ys, ystep, hp):  # pragma: no cover
    """``V[:, b, c] = (B^T d B).ravel()`` for the 7x7 tiles of tile rows ``r0:r1``; returns how many
    inputs were not finite."""
    c_in, h, twp, wp, T, R, V2, lo, hi, s = input_setup(x, V, 5, tw, dw, twp, hp, pl)
    n_f = wp * c_in
    bad = 0
    for r in range(r0, r1):
        n = n0 + r // th
        i = r % th
        first = tile_rows(x, T, r > r0 and i > 0, n, top0 + 5 * i, h, ys, ystep, lo, hi, pl)
        for a in range(first, 7):
            ta = T[a]
            for f in range(n_f):  # an integer count vectorizes; a float flag would chain every add
                v = ta[f]
                bad += (v - v) != 0
        t0, t1, t2, t3, t4, t5, t6 = T[0], T[1], T[2], T[3], T[4], T[5], T[6]
        for p in range(7):  # rows: B^T d, every column and channel in one loop
            b0, b1, b2, b3, b4, b5, b6 = BT[p, 0], BT[p, 1], BT[p, 2], BT[p, 3], BT[p, 4], BT[p, 5], BT[p, 6]
            e = R[p]
            for f in range(n_f):
                e[f] = b0 * t0[f] + b1 * t1[f] + b2 * t2[f] + b3 * t3[f] + b4 * t4[f] + b5 * t5[f] + b6 * t6[f]
        for p in range(7):  # columns: (B^T d) B
            rp = R[p]
            for pc in range(dw):
                for jj in range(twp):
                    i0 = (pc + 5 * dw * jj) * c_in
                    o0 = ((r - rb) * tw + pc * twp + jj) * c_in
                    d0, d1 = rp[i0:i0 + c_in], rp[i0 + s:i0 + s + c_in]
                    d2, d3 = rp[i0 + 2 * s:i0 + 2 * s + c_in], rp[i0 + 3 * s:i0 + 3 * s + c_in]
                    d4, d5 = rp[i0 + 4 * s:i0 + 4 * s + c_in], rp[i0 + 5 * s:i0 + 5 * s + c_in]
                    d6 = rp[i0 + 6 * s:i0 + 6 * s + c_in]
                    for k in range(7):
                        b0, b1, b2, b3 = BT[k, 0], BT[k, 1], BT[k, 2], BT[k, 3]
                        b4, b5, b6 = BT[k, 4], BT[k, 5], BT[k, 6]
                        v = V2[7 * p + k, o0:o0 + c_in]
                        for c in range(c_in):
                            v[c] = (b0 * d0[c] + b1 * d1[c] + b2 * d2[c] + b3 * d3[c] + b4 * d4[c]
                                    + b5 * d5[c] + b6 * d6[c])
    return bad


@njit(nogil=True, cache=True, fastmath={"contract"})
def output_f53_cl(M, perm, out, AT, r0, r1, rb, n0, row0, th, tw, dw, twp, os, ostep, ohp):  # pragma: no cover
    """``out[n, :, row0+5i:row0+5i+5, 5j:5j+5] = A^T m A`` for tile rows ``r0:r1`` (see :func:`input_f53_cl`);
    point ``p``'s products are ``M[perm[p]]``."""
    c_out, oh, twp, M2, n_f, S, Y, s = output_setup(M, out, 5, tw, dw, twp, ohp)
    for r in range(r0, r1):
        n = n0 + r // th
        i = r % th
        o0 = (r - rb) * n_f
        for q in range(7):  # rows: A^T m, every tile and channel of the row in one loop
            m0, m1 = M2[perm[q], o0:o0 + n_f], M2[perm[7 + q], o0:o0 + n_f]
            m2, m3 = M2[perm[14 + q], o0:o0 + n_f], M2[perm[21 + q], o0:o0 + n_f]
            m4, m5 = M2[perm[28 + q], o0:o0 + n_f], M2[perm[35 + q], o0:o0 + n_f]
            m6 = M2[perm[42 + q], o0:o0 + n_f]
            for a in range(5):
                a0, a1, a2, a3 = AT[a, 0], AT[a, 1], AT[a, 2], AT[a, 3]
                a4, a5, a6 = AT[a, 4], AT[a, 5], AT[a, 6]
                z = S[a, q * n_f:(q + 1) * n_f]
                for f in range(n_f):
                    z[f] = a0 * m0[f] + a1 * m1[f] + a2 * m2[f] + a3 * m3[f] + a4 * m4[f] + a5 * m5[f] + a6 * m6[f]
        for a in range(5):  # columns: (A^T m) A
            sa, ya = S[a], Y[a]
            for pc in range(dw):
                for jj in range(twp):
                    f0 = (pc * twp + jj) * c_out
                    y0 = (pc + 5 * dw * jj) * c_out
                    u0, u1 = sa[f0:f0 + c_out], sa[n_f + f0:n_f + f0 + c_out]
                    u2, u3 = sa[2 * n_f + f0:2 * n_f + f0 + c_out], sa[3 * n_f + f0:3 * n_f + f0 + c_out]
                    u4, u5 = sa[4 * n_f + f0:4 * n_f + f0 + c_out], sa[5 * n_f + f0:5 * n_f + f0 + c_out]
                    u6 = sa[6 * n_f + f0:6 * n_f + f0 + c_out]
                    for k in range(5):
                        a0, a1, a2, a3 = AT[k, 0], AT[k, 1], AT[k, 2], AT[k, 3]
                        a4, a5, a6 = AT[k, 4], AT[k, 5], AT[k, 6]
                        wv = ya[y0 + k * s:y0 + k * s + c_out]
                        for o in range(c_out):
                            wv[o] = (a0 * u0[o] + a1 * u1[o] + a2 * u2[o] + a3 * u3[o] + a4 * u4[o]
                                     + a5 * u5[o] + a6 * u6[o])
        rows_out(Y, out, n, min(5, oh - row0 - 5 * i), row0 + 5 * i, os, ostep)
    store_fence()  # the streamed lines written before the caller reads them
