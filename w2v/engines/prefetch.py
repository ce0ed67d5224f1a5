"""`prefetch_row(vectors, row)`: ask the CPU to start loading a row of a (V, d) array into cache.

The kernels visit rows of the (V, d) vectors in an order known a few steps ahead (the words of
the next pairs), and most of those rows are not in cache: the windows are drawn at random places
of the corpus. Loading the next rows while the CPU computes with the current ones hides part of
that latency. A prefetch changes no value, only when the memory arrives, so results are the same
bits with or without it.

numba has no prefetch, so this emits LLVM's `llvm.prefetch` (one per 64-byte line of the row;
read/write hint 1 = for writing, locality 3 = keep in all cache levels, cache type 1 = data).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

CACHE_LINE = 64  # bytes


@intrinsic
def prefetch_row(typingctx, vectors, row):
    """Prefetch vectors[row, :] of a C-contiguous 2-D array (row: an integer id in 0..V-1)."""
    if not (isinstance(vectors, types.Array) and vectors.ndim == 2 and isinstance(row, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        int64, byte_pointer, int32 = ir.IntType(64), ir.IntType(8).as_pointer(), ir.IntType(32)
        row = context.cast(builder, args[1], signature.args[1], types.int64)
        row_stride, item_stride = cgutils.unpack_tuple(builder, array.strides)
        start = builder.add(builder.ptrtoint(array.data, int64), builder.mul(row, row_stride))
        length = builder.mul(cgutils.unpack_tuple(builder, array.shape)[1], item_stride)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32]),
            "llvm.prefetch.p0")
        with cgutils.for_range_slice(builder, ir.Constant(int64, 0), length,
                                     ir.Constant(int64, CACHE_LINE)) as (offset, _):
            address = builder.inttoptr(builder.add(start, offset), byte_pointer)
            builder.call(prefetch, [address, ir.Constant(int32, 1), ir.Constant(int32, 3),
                                    ir.Constant(int32, 1)])
        return context.get_dummy_value()

    return types.void(vectors, row), codegen
