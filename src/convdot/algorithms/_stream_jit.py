"""Writing a large output past the caches, for the channels-last Winograd output kernels.

A store to a line that is not in the cache first reads the line from memory. Those kernels write
the whole output once and never read it back, so for a large output (:data:`STREAM_BYTES`) they
write whole 64-byte lines with non-temporal stores instead, which skip that read. Measured here,
0.2 s after the last call (as the bench runs): writing 6.4 MB took 0.91 ms with plain stores and
0.36 ms with these, on one thread.

Each output row holds one channel, and the kernels hold a tile row's values channels-last, so
:func:`transpose_stream` gathers a square block (``L`` positions x ``L`` channels, one 64-byte
vector each, ``L = 64 / itemsize``), transposes it in registers with four rounds of two-vector
shuffles (at round ``b = L/2, ..., 1`` the rows ``i`` and ``i + b`` swap their off-diagonal
``b``-wide blocks) and writes each channel's ``L`` values as one line. :func:`store_fence` makes
the writes visible before the kernel returns: non-temporal stores are not ordered with others.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Outputs of at least this many bytes are written past the caches: twice a core's L2 here
#: (2 MiB), so an output this size would not have stayed in it for the caller anyway.
STREAM_BYTES = 4 << 20


@intrinsic
def transpose_stream(typingctx, src, s0, soffs, dst, d0, doffs):
    """``dst[d0 + doffs[j] + i] = src[s0 + soffs[i] + j]`` for ``i, j < L = 64 / itemsize``, the
    stores non-temporal; offsets in elements from each array's first element, ``soffs`` and
    ``doffs`` int64 arrays of ``L``. Each ``dst`` line written, ``d0 + doffs[j]``, must start on
    64 bytes (the caller checks: a misaligned streaming store faults)."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.dtype == dst.dtype):
        return None
    if not all(isinstance(t, types.Array) and t.dtype == types.int64 for t in (soffs, doffs)):
        return None

    def codegen(context, builder, signature, args):
        kinds = signature.args
        width = context.get_abi_sizeof(context.get_data_type(kinds[0].dtype))
        n = max(1, 64 // width)
        word = ir.IntType(8 * width)  # the bits moved as they are: any dtype of this size
        vec = ir.VectorType(word, n)
        i64, i32 = ir.IntType(64), ir.IntType(32)

        def array(i):
            return context.make_array(kinds[i])(context, builder, args[i]).data

        def offsets(i):  # array argument i's n offsets, loaded
            return [builder.load(builder.gep(array(i), [ir.Constant(i64, k)])) for k in range(n)]

        def at(i, off):  # word* to element ``off`` of array argument i
            off = builder.sext(off, i64) if off.type.width < 64 else off
            return builder.gep(builder.bitcast(array(i), word.as_pointer()), [off])

        sp, dp = at(0, args[1]), at(3, args[4])
        rows = [builder.load(builder.bitcast(builder.gep(sp, [o]), vec.as_pointer()), align=width)
                for o in offsets(2)]
        b = n // 2
        while b:
            out = list(rows)
            for i in range(n):
                if not i & b:
                    for target, mask in ((i, [k if not k & b else n + k - b for k in range(n)]),
                                         (i + b, [k + b if not k & b else n + k for k in range(n)])):
                        out[target] = builder.shuffle_vector(rows[i], rows[i + b],
                                                             ir.Constant(ir.VectorType(i32, n), mask))
            rows, b = out, b // 2
        hint = builder.module.add_metadata([ir.Constant(i32, 1)])
        for row, o in zip(rows, offsets(5)):
            store = builder.store(row, builder.bitcast(builder.gep(dp, [o]), vec.as_pointer()), align=64)
            store.set_metadata("nontemporal", hint)
        return context.get_dummy_value()

    return types.void(src, s0, soffs, dst, d0, doffs), codegen


@intrinsic
def store_fence(typingctx):
    """Order every store before it, the non-temporal ones included, ahead of any after it."""

    def codegen(context, builder, signature, args):
        if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):  # numba compiles for this host
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse.sfence")
            builder.call(fn, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen
