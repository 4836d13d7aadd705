"""Software prefetch for the compiled kernels: ``prefetch_read(a, i)`` asks the CPU to bring the
cache line holding ``a[i]`` (``a`` a 1-D array) into its caches, without waiting for
it and without faulting on any address.

The Winograd transforms read their input rows channel by channel: one short row per channel, each
in another 4 KiB page, more streams than the hardware prefetcher follows. Asking for the next
tile row's lines while the current one is transformed overlaps those misses with the work:
resnet-3x3-56 (8 x 64 planes of 56x56, 6.4 MB read from memory after the bench's pause) 6.26-6.46 ->
5.68-5.92 ms, median of 15 interleaved calls 0.2 s apart; asking for the output rows to be written
next (``prefetchw``) gave nothing more.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch_read(typingctx, arr, idx):
    """``llvm.prefetch`` of ``arr[idx]``'s line for reading, kept in every cache level (its
    read/write and locality arguments must be constants in the IR)."""

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        at = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])  # by the array's stride
        i8p = ir.IntType(8).as_pointer()
        ptr = builder.bitcast(at, i8p)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        # the name carries the pointer type, as llvmlite spells it (checked with numba 0.60 and 0.68)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch." + i8p.intrinsic_name)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen
