"""A float32 GEMM for Winograd's products, on a transformed kernel packed once when it is cached.

Each transform point multiplies ``M[p] = V[p] @ U[p]``: on resnet-3x3-14, 49 products of
(72 x 256) by (256 x 256). OpenBLAS repacks ``U[p]`` on every call and each call pays a thread
hand-off in Python, so it ran them at 123 GFLOP/s a core. Here ``U`` is kept packed as
``(P, N/64, K, 64)`` (:func:`pack`), ``V[p]`` is read in place, and a micro-kernel keeps a
``6 x 64`` block of ``M`` in sixteen-lane registers (explicit LLVM vectors, so AVX-512 where the
CPU has it) over the whole of ``K``. Measured on this machine (2 cores, interleaved, best of 20):
one (72 x 256) @ (256 x 256) product 182 GFLOP/s against OpenBLAS's 145; the 49 products of
resnet-3x3-14 on both cores, one compiled loop per thread taking points from a shared counter,
1.70 ms against 2.1-2.7 ms (49 ``np.matmul`` jobs), and 2.7-2.9 against 3.7 ms 0.2 s after
the last call. It sums ``K`` in order with fused multiply-adds, as OpenBLAS's kernel does (the
products agree bit for bit on this machine); NaN and inf propagate as in any IEEE product.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

NR = 64  # columns of M a micro-kernel call writes: four 16-lane vectors
MR = 6  # rows: 6 x 4 accumulators + 4 of U + 1 broadcast stay within 32 vector registers

_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, 16)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _micro_kernel(rows: int):
    """An intrinsic ``kernel(a, ao, lda, b, bo, c, co, ldc, k)``: ``c[co + i*ldc + j] =
    sum_q a[ao + i*lda + q] * b[bo + q*64 + j]`` for ``i < rows``, ``j < 64``, ``q < k``, on 1-D float32
    arrays (``b`` one packed panel, :func:`pack`)."""

    @intrinsic
    def kernel(typingctx, a, ao, lda, b, bo, c, co, ldc, k):
        if not all(isinstance(t, types.Array) and t.dtype == types.float32 for t in (a, b, c)):
            return None
        sig = types.void(a, ao, lda, b, bo, c, co, ldc, k)

        def codegen(context, builder, signature, args):
            _, ao_, lda_, _, bo_, _, co_, ldc_, k_ = args  # the arrays: through base()
            kinds = signature.args

            def base(i: int, off):  # float* to element ``off`` of array argument ``i``
                data = context.make_array(kinds[i])(context, builder, args[i]).data
                return builder.gep(data, [builder.sext(off, _I64) if off.type.width < 64 else off])

            pa, pb, pc = base(0, ao_), base(3, bo_), base(5, co_)
            lda_ = builder.sext(lda_, _I64) if lda_.type.width < 64 else lda_
            ldc_ = builder.sext(ldc_, _I64) if ldc_.type.width < 64 else ldc_
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32")
            vptr = _VEC.as_pointer()
            # accumulators in allocas: LLVM promotes them to registers (the loop's phis)
            acc = [cgutils.alloca_once_value(builder, ir.Constant(_VEC, [0.0] * 16)) for _ in range(rows * 4)]
            a_rows = [builder.gep(pa, [builder.mul(ir.Constant(_I64, i), lda_)]) for i in range(rows)]
            undef = ir.Constant(_VEC, ir.Undefined)
            splat = ir.Constant(ir.VectorType(_I32, 16), [0] * 16)
            with cgutils.for_range(builder, k_) as loop:
                q = builder.sext(loop.index, _I64) if loop.index.type.width < 64 else loop.index
                row = builder.gep(pb, [builder.mul(q, ir.Constant(_I64, NR))])
                bv = [builder.load(builder.bitcast(builder.gep(row, [ir.Constant(_I64, 16 * j)]), vptr), align=4)
                      for j in range(4)]
                for i in range(rows):
                    s = builder.load(builder.gep(a_rows[i], [q]))
                    av = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(_I32, 0)), undef, splat)
                    for j in range(4):
                        builder.store(builder.call(fma, [av, bv[j], builder.load(acc[4 * i + j])]), acc[4 * i + j])
            for i in range(rows):
                row = builder.gep(pc, [builder.mul(ir.Constant(_I64, i), ldc_)])
                for j in range(4):
                    builder.store(builder.load(acc[4 * i + j]),
                                  builder.bitcast(builder.gep(row, [ir.Constant(_I64, 16 * j)]), vptr), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return kernel


_k1, _k2, _k3, _k4, _k5, _k6 = (_micro_kernel(r) for r in range(1, MR + 1))


@intrinsic
def fetch_add(typingctx, counter, idx):
    """Atomically ``counter[idx] += 1`` (an int64 array); returns the value before."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        at = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]])
        return builder.atomic_rmw("add", at, ir.Constant(_I64, 1), "seq_cst")

    return types.int64(counter, idx), codegen


def pack(u: np.ndarray) -> np.ndarray:
    """``(..., K, N)`` float32 matrices as ``(..., N/64, K, 64)``: each panel of 64 columns contiguous."""
    *lead, k, n = u.shape
    if n % NR:
        raise ValueError(f"pack: the matrices' last axis must be a multiple of {NR}, got {n}")
    nl = len(lead)
    return np.ascontiguousarray(u.reshape(*lead, k, n // NR, NR).transpose(*range(nl), nl + 1, nl, nl + 2))


@njit(nogil=True, cache=True)
def gemm(a, bp, c):  # pragma: no cover - compiled
    """``c = a @ b`` for float32 ``a`` (m, k) with unit column stride, ``bp`` = :func:`pack` of
    ``b`` (k, n), and ``c`` (m, n) with unit column stride."""
    m, k = a.shape
    lda, ldc = a.strides[0] // 4, c.strides[0] // 4  # the kernels index from each array's first element
    for jb in range(bp.shape[0]):  # one panel of U (k x 64, 64 KB at k = 256) read from L2 by every row block
        bo = jb * k * NR
        i0 = 0
        while i0 + MR <= m:
            _k6(a, i0 * lda, lda, bp, bo, c, i0 * ldc + jb * NR, ldc, k)
            i0 += MR
        r = m - i0
        co = i0 * ldc + jb * NR
        if r == 1:
            _k1(a, i0 * lda, lda, bp, bo, c, co, ldc, k)
        elif r == 2:
            _k2(a, i0 * lda, lda, bp, bo, c, co, ldc, k)
        elif r == 3:
            _k3(a, i0 * lda, lda, bp, bo, c, co, ldc, k)
        elif r == 4:
            _k4(a, i0 * lda, lda, bp, bo, c, co, ldc, k)
        elif r == 5:
            _k5(a, i0 * lda, lda, bp, bo, c, co, ldc, k)


@njit(nogil=True, cache=True)
def products(v, up, mv, nb, perm, spare, counter):  # pragma: no cover - compiled
    """``M[p] = V[p][:nb] @ U[p]`` for the points ``p`` this thread takes from ``counter[0]``.

    ``v`` (P, B, K), ``up`` (P, N/64, K, 64) (:func:`pack`), ``mv`` (slots, B, N). With ``spare``
    < 0, ``M[p]`` goes to ``mv[p]``; otherwise into this thread's spare slot, which then becomes
    ``V[p]``'s (consumed) slot, and ``perm[p]`` records where ``M[p]`` went (the in-place scheme of
    :func:`convdot.algorithms.winograd._run_shared`).
    """
    points = v.shape[0]
    while True:
        p = fetch_add(counter, 0)
        if p >= points:
            return
        slot = p if spare < 0 else spare
        gemm(v[p, :nb], up[p], mv[slot, :nb])
        if spare >= 0:
            perm[p] = slot
            spare = p


@njit(nogil=True, cache=True)
def each_point(v, up, mv, nb):  # pragma: no cover - compiled
    """``M[p] = V[p][:nb] @ U[p]`` for every point ``p``, into ``mv[p]`` (one thread's own chunk)."""
    for p in range(v.shape[0]):
        gemm(v[p, :nb], up[p], mv[p, :nb])
