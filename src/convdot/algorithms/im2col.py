"""Windows as columns and one matrix multiply per block: the dot-product view.

Every receptive field is flattened into a column of ``X_col`` (shape ``(C/G * prod(k), P)``) and
every filter into a row of ``W_row`` (``(C_out/G, C/G * prod(k))``); the output is
``W_row @ X_col``.

- Columns are built a block of images and output rows at a time, small enough to stay in cache
  and always within the memory budget. With numba (2-D float layers, :func:`compiled`) each
  thread takes the next block (:data:`FUSED_BYTES` each) as it finishes one, fills it with a
  single call of a compiled gather and multiplies it on one BLAS thread at once. Otherwise they
  are built tap by tap: for each kernel tap, one strided slice of the padded input is copied into
  its rows of the column block (``prod(k)`` large copies instead of one scattered gather;
  :data:`BLOCK_BYTES`).
- Where the memory bound would cut the columns into row blocks too narrow for an efficient GEMM (a
  large weight on small images: the deep layers of a CNN at batch 1), the sum over input channels
  is blocked instead (:func:`channel_block`): each block of input channels is gathered for every
  output position and its GEMM added into the output, so the weight is read once.
- Strided layers read the input's stride phases (:func:`phased`), so every tap's rows are
  unit-stride.
- ``np.matmul`` broadcasts ``W_row`` of shape ``(G, Cog, Cg*K)`` over a column block of shape
  ``(n, G, Cg*K, P)``: batch and groups are one call, and it writes straight into the output
  (``out=``, a view of the output rows), so no result is copied.
- A 1x1 kernel without padding is a plain GEMM on ``x`` itself (no columns); with a stride, the
  subsampled input is the only copy, made a block of images at a time.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import numpy as np

from .. import _threads
from .._spec import PAD_MODES, ConvSpec
from ._common import (
    array_bytes,
    ensure_memory,
    jit_available,
    output_array,
    pad,
    phase_cut,
    scratch_budget,
    tap_index,
    weight_rows,
)

#: Target bytes of one column block: written by the copies and read by the GEMM while in cache.
BLOCK_BYTES = 4 << 20

#: With the compiled gather, each thread's column block: half of one core's L2 (2 MiB on the Xeon guest). Against
#: NumPy's tap copies into 4 MiB blocks multiplied on both BLAS threads (interleaved A/B): stem-7x7
#: 1.35-1.42x, down-3x3 1.36-1.45x, resnet-3x3-56 1.24x faster (with 2 MiB blocks). With fixed shares
#: of the blocks, 512 KiB - 1 MiB ran within the noise of 2 MiB and 256 KiB 0.76-0.95x; since the
#: threads take blocks as they finish one, 1 MiB ran 1.02-1.10x (more blocks even out uneven cores).
#: Gathering on both threads into one block multiplied on both BLAS threads ran 0.45-0.86x.
#: Not rescaled to the cache: on a Zen 3 guest with 512 KiB of L2 per core, 256 and 128 KiB blocks
#: were no faster (stem-7x7 best of 20 shuffled calls: 5.8 ms at 1 MiB, 8.2 and 8.0 at 256/128 KiB).
FUSED_BYTES = 1 << 20

#: Column blocks narrower than this many output positions (images x rows x columns) run the GEMM far
#: below its rate; where the budget allows no wider row blocks, the input channels are blocked instead.
NARROW = 64

#: The compiled gather runs from this many multiply-adds, as Winograd's compiled kernels: below, loading
#: numba (about 0.3 s, once per process) costs more than the gather saves, and `convdot demo` stays without it.
JIT_MIN_MACS = 1 << 25


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``W_row @ X_col`` per group, in blocks; ``(N, C_out, *out)``."""
    ensure_memory(spec, array_bytes(spec.x_shape, spec.dtype) + array_bytes(spec.out_shape, spec.dtype), "im2col")
    if is_pointwise(spec):
        return _pointwise(x, w, spec)
    return _columns(x, w, spec)


def unsupported(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> str | None:
    """Every configuration works."""
    return None


def is_pointwise(spec: ConvSpec) -> bool:
    """A 1x1 kernel with no padding: the convolution is a GEMM on (subsampled) ``x``."""
    return all(k == 1 for k in spec.kernel) and not any(lo or hi for lo, hi in spec.pads)


def cost(spec: ConvSpec, threads: int | None = None) -> dict[str, float]:
    """What :func:`run` costs on ``spec`` with ``threads`` threads (None: the default), for the planner's model.

    Returns
    -------
    dict
        ``gemm`` flops (``2 * spec.macs``), ``copy`` bytes written into column blocks (0 for a
        stride-1 1x1 kernel), ``blocks`` how many GEMM calls the blocking makes, ``compiled`` 1.0
        when the compiled gather writes the columns (:func:`compiled`), else 0.0, ``accumulate``
        bytes read and written adding the partial products of input-channel blocks (:func:`channel_block`),
        ``narrow`` the smallest side of its GEMMs (output positions, output channels or depth).
    """
    n = spec.x_shape[0]
    if is_pointwise(spec):
        strided = any(s != 1 for s in spec.stride)
        copy = array_bytes((*spec.x_shape[:2], *spec.out_shape[2:]), spec.dtype) if strided else 0
        narrow = min(math.prod(spec.out_shape[2:]), spec.out_shape[1] // spec.groups, spec.w_shape[1])
        return {"gemm": 2.0 * spec.macs, "copy": float(copy), "blocks": 1.0, "compiled": 0.0, "accumulate": 0.0,
                "narrow": float(narrow)}
    taps = math.prod(spec.kernel)
    copy = array_bytes((n, spec.x_shape[1], taps, *spec.out_shape[2:]), spec.dtype)
    fast = compiled(spec)
    by_channels = channel_block(spec, threads if fast else 1)
    if by_channels:
        channels, outs = by_channels
        steps = -(-spec.x_shape[1] // channels)
        calls = steps * -(-spec.out_shape[1] // outs)
        # every block after the first writes its partial products and adds them into the output
        added = 3.0 * (steps - 1) * array_bytes(spec.out_shape, spec.dtype)
        narrow = min(math.prod(spec.out_shape[2:]), channels * taps, outs)
        return {"gemm": 2.0 * spec.macs, "copy": float(copy), "blocks": float(calls), "compiled": float(fast),
                "accumulate": added, "narrow": float(narrow)}
    images, rows = column_block(spec, threads)
    nblocks = -(-n // images) * -(-spec.out_shape[2] // rows)
    width = images * rows * math.prod(spec.out_shape[3:])
    narrow = min(width, spec.out_shape[1] // spec.groups, spec.w_shape[1] * taps)
    return {"gemm": 2.0 * spec.macs, "copy": float(copy), "blocks": float(nblocks), "compiled": float(fast),
            "accumulate": 0.0, "narrow": float(narrow)}


def _w_row(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``W_row`` ``(G, Cog, Cg*K)``: a view of ``w`` in its own dtype (see :func:`_weight`)."""
    g = spec.groups
    return np.asarray(w).reshape(g, spec.w_shape[0] // g, -1)


def _pointwise(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    g = spec.groups
    n, c_out = spec.out_shape[:2]
    p = math.prod(spec.out_shape[2:])
    out = output_array((n, g, c_out // g, p), spec.dtype)  # (N, G, Cog, P)
    xs = np.asarray(x)
    stride1 = all(s == 1 for s in spec.stride)
    xm = xs.astype(spec.dtype, copy=False).reshape(n, g, -1, p) if stride1 else None  # (N, G, Cg, P)
    committed = 0 if xm is None or xm.dtype == xs.dtype else xm.nbytes  # a view when x is contiguous
    w_row, chunk, committed = _weight(w, spec, committed)  # (G, Cog, Cg)
    if xm is not None:
        _gemm(w_row, xm, out, spec, chunk)
        return out.reshape(spec.out_shape)
    sub = (slice(None), slice(None), *(slice(None, None, s) for s in spec.stride))
    per_image = array_bytes((1, spec.x_shape[1], p), spec.dtype)
    room = scratch_budget(spec, committed) // (1 if w_row.dtype == spec.dtype else 2)  # half to convert the weight
    step = max(1, min(BLOCK_BYTES, room) // per_image)
    for n0 in range(0, n, step):
        blk = np.ascontiguousarray(xs[n0:n0 + step][sub], dtype=spec.dtype)  # (n, C, *out): the only copy
        _gemm(w_row, blk.reshape(blk.shape[0], g, -1, p), out[n0:n0 + step], spec, chunk)  # (n, G, Cg, P)
    return out.reshape(spec.out_shape)


def _weight(w: np.ndarray, spec: ConvSpec, committed: int) -> tuple[np.ndarray, int, int]:
    """``W_row``, the output channels to convert at a time and the bytes committed with it
    (:func:`~convdot.algorithms._common.weight_rows` within half of what the blocks may use
    besides ``committed`` bytes)."""
    w_row, chunk = weight_rows(w, spec, scratch_budget(spec, committed) // 2)
    converted = w_row.dtype == spec.dtype and np.asarray(w).dtype != spec.dtype
    return w_row, chunk, committed + (w_row.nbytes if converted else 0)


def _gemm(w_row: np.ndarray, x_col: np.ndarray, out: np.ndarray, spec: ConvSpec, chunk: int) -> None:
    """``out = w_row @ x_col``, ``chunk`` output channels at a time, each converted as it is used
    when ``w_row`` has another dtype (:func:`_weight`)."""
    for o0 in range(0, w_row.shape[1], chunk):
        np.matmul(w_row[:, o0:o0 + chunk].astype(spec.dtype, copy=False), x_col, out=out[..., o0:o0 + chunk, :])


def _block(spec: ConvSpec, committed: int, target: int = BLOCK_BYTES) -> tuple[int, int]:
    """Images and output rows per column block: about ``target`` bytes, never over the budget."""
    out_sp = spec.out_shape[2:]
    row = array_bytes((spec.x_shape[1], math.prod(spec.kernel), *out_sp[1:]), spec.dtype)  # one image, one row
    target = max(row, min(target, scratch_budget(spec, committed)))
    image = row * out_sp[0]
    if image <= target:
        return max(1, min(spec.x_shape[0], target // image)), out_sp[0]
    return 1, max(1, target // row)


def compiled(spec: ConvSpec) -> bool:
    """Whether the columns are gathered by the compiled kernel, the threads taking blocks in turn.

    2-D float layers from :data:`JIT_MIN_MACS` multiply-adds, with numba (``convdot[fast]``).
    """
    return (spec.nd == 2 and spec.dtype in (np.float32, np.float64) and spec.macs >= JIT_MIN_MACS
            and jit_available())


def column_block(spec: ConvSpec, threads: int | None = None, committed: int = 0) -> tuple[int, int]:
    """Images and output rows per column block when :func:`run` has ``threads`` threads (None: the
    default) and ``committed`` bytes of scratch (the padded input) exist besides the output."""
    if compiled(spec):
        return _thread_block(spec, committed, _threads.num_threads(threads))
    return _block(spec, committed)


def _thread_block(spec: ConvSpec, committed: int, threads: int) -> tuple[int, int]:
    """Blocks of about :data:`FUSED_BYTES` each, at least one per thread, within the budget together,
    and as many for every thread where that takes only smaller blocks (see :func:`_even`)."""
    total = array_bytes((spec.x_shape[0], spec.x_shape[1], math.prod(spec.kernel), *spec.out_shape[2:]), spec.dtype)
    share = scratch_budget(spec, committed) // threads
    images, rows = _block(spec, committed, min(FUSED_BYTES, share, -(-total // threads)))
    return _even(images, rows, spec.x_shape[0], spec.out_shape[2], threads)


def _even(images: int, rows: int, n: int, h: int, threads: int) -> tuple[int, int]:
    """``(images, rows)`` per block, no larger, such that the threads get as many blocks each.

    A count that does not divide by the threads leaves one thread a block more at the end while the
    other waits (when the cores run at the same speed): on the stem-7x7 layer, 25-row blocks (5 of
    them) gave one thread 62 rows and the other 50.
    """
    if rows < h:  # blocks of rows of one image
        per = -(-h // rows)
        for more in range(per, min(h, per + threads) + 1):
            if (n * more) % threads == 0:
                return 1, -(-h // more)
        return 1, rows
    count = -(-n // images)
    even = -(-count // threads) * threads
    return max(1, -(-n // even)) if even <= n else images, rows


def channel_block(spec: ConvSpec, threads: int | None = None, *, convert: bool = False,
                  force: bool = False) -> tuple[int, int] | None:
    """``(channels, outputs)``: input channels per column block and output channels per GEMM when
    :func:`run` blocks the sum over input channels; None when it blocks the output positions.

    It does so when the layer has one group, the row blocks that fit the budget (:func:`column_block`,
    with the padded input made) would be narrower than :data:`NARROW` output positions and more
    than one per thread, and a block of input channels still gives the GEMM at least :data:`NARROW`
    rows of columns (or all of them). A block holds its channels' padded input and columns at every
    output position of every image, and the partial products of ``outputs`` output channels, added
    into the output after each GEMM but the first: about two thirds and one third of the budget.
    With ``convert`` (a weight of another dtype than the compute dtype) a block also holds its
    slice of the weight converted; ``force`` blocks the channels whatever the row blocks' width
    (a weight too large to convert whole is read a slice at a time).

    Measured on 3x3 layers against row blocks (interleaved A/B): N1 C128 28x28 1.4x, N1 C256 14x14 2.2-2.5x, N1 C512 7x7
    3.7x, N1 C512 14x14 2.3x, N4 C512 7x7 2.4-2.7x, N8 C512 7x7 1.3-1.9x faster; in single calls
    after a torch call (the bench's pattern), N1 C256 14x14 1.7x. Wider row blocks keep them:
    resnet-3x3-14 (98 positions) and down-3x3 (196) ran 1.02-1.20x faster with channel blocks in
    back-to-back calls, but 0.80-0.90x in single calls after torch's.
    """
    if spec.groups != 1 or is_pointwise(spec):
        return None
    threads = _threads.num_threads(threads)
    # kept per problem, threads and setting (0.06 ms to work out, on every call of a 2-4 ms layer)
    return _channel_block(spec, threads, convert, force, jit_available(), scratch_budget(spec), NARROW, FUSED_BYTES,
                          BLOCK_BYTES, JIT_MIN_MACS)


@functools.lru_cache(maxsize=256)
def _channel_block(spec: ConvSpec, threads: int, convert: bool, force: bool,
                   *settings: object) -> tuple[int, int] | None:
    """:func:`channel_block` of ``spec`` for ``threads`` threads; ``settings`` only key the cache."""
    n, c_in = spec.x_shape[:2]
    out_sp = spec.out_shape[2:]
    if not force:
        images, rows = column_block(spec, threads, padded_bytes(spec))
        blocks = -(-n // images) * -(-out_sp[0] // rows)
        if images * rows * math.prod(out_sp[1:]) >= NARROW or blocks <= threads:
            return None  # wide enough, or narrow only to give each thread a block
    taps, item = math.prod(spec.kernel), spec.dtype.itemsize
    positions = n * math.prod(out_sp)
    budget = scratch_budget(spec)
    c_out = spec.out_shape[1]
    outputs = _even_split(c_out, budget // 3 // (positions * item))
    per_channel = taps * positions * item + padded_bytes(spec) // c_in + (outputs * taps * item if convert else 0)
    channels = _even_split(c_in, (budget - outputs * positions * item) // per_channel)
    if channels * taps < min(NARROW, c_in * taps) and not force:
        return None
    return channels, outputs


def _even_split(total: int, most: int) -> int:
    """The size of the fewest near-equal parts of ``total`` that are at most ``most`` (at least 1)."""
    parts = -(-total // max(1, min(total, most)))
    return -(-total // parts)


def padded_bytes(spec: ConvSpec) -> int:
    """Bytes of the padded input (split into stride phases when strided) that the columns are gathered from."""
    per_plane = _phase_shape(spec) if any(st != 1 for st in spec.stride) else spec.padded_shape
    return array_bytes((*spec.x_shape[:2], *per_plane), spec.dtype)


def _phase_shape(spec: ConvSpec) -> tuple[int, ...]:
    """``(*stride, *ceil(padded / stride))``: one plane of the padded input split into its stride phases."""
    return (*spec.stride, *(-(-p // s) for p, s in zip(spec.padded_shape, spec.stride)))


def _columns(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    g = spec.groups
    n, c_out = spec.out_shape[:2]
    cg, cog = spec.w_shape[1], c_out // g
    out_sp = spec.out_shape[2:]
    rest = math.prod(out_sp[1:])
    taps = math.prod(spec.kernel)
    strided = any(st != 1 for st in spec.stride)
    fast = compiled(spec)
    threads = _threads.num_threads() if fast else 1  # NumPy's tap copies: one thread, the BLAS uses all
    by_channels = channel_block(spec, threads, convert=np.asarray(w).dtype != spec.dtype)
    if not by_channels:
        w_row, _, committed = _weight(w, spec, padded_bytes(spec))  # (G, Cog, Cg*K)
        if w_row.dtype != spec.dtype:  # a weight too large to convert whole: a slice at a time
            by_channels = channel_block(spec, threads, convert=True, force=True)
            if not by_channels:  # grouped: its weight, 1/G of a dense layer's, converted whole
                w_row, committed = w_row.astype(spec.dtype), committed + w_row.size * spec.dtype.itemsize
    if by_channels:
        return _channel_blocks(x, _w_row(w, spec), spec, strided, fast, by_channels)
    # (N, C, *stride, *padded/stride) when strided, so every tap reads a unit-stride slice; else (N, C, *padded)
    xg = phased(x, spec) if strided else pad(x, spec)
    images, rows = column_block(spec, threads, committed)
    blocks = [(n0, min(images, n - n0), r0, min(rows, out_sp[0] - r0))
              for n0 in range(0, n, images) for r0 in range(0, out_sp[0], rows)]
    out = output_array((n, g, cog, *out_sp), spec.dtype)  # (N, G, Cog, *out)
    gather = _gatherer(xg, spec, strided) if fast else None

    def work(worker: int, take: Callable[[], int]) -> None:
        # one buffer for a thread's blocks; a smaller last block uses its start, so it is still contiguous
        storage = np.empty(images * g * cg * taps * rows * rest, dtype=spec.dtype)
        while (i := take()) < len(blocks):
            n0, nb, r0, nr = blocks[i]
            cols = storage[:nb * g * cg * taps * nr * rest].reshape(nb, g * cg, taps, nr, *out_sp[1:])
            if fast:
                gather(cols, n0, r0)
            else:
                _copy_taps(cols, xg, spec, strided, n0, r0)
            x_col = cols.reshape(nb, g, cg * taps, nr * rest)  # (nb, G, Cg*K, P_blk): free, cols is contiguous
            flat = out[n0:n0 + nb, :, :, r0:r0 + nr].view()
            flat.shape = (nb, g, cog, nr * rest)  # rows of one channel are contiguous: a view, never a copy
            np.matmul(w_row, x_col, out=flat)

    used = min(threads, len(blocks))
    if used > 1:  # each thread's GEMMs on one BLAS thread: the threads already fill the cores
        with _threads.blas_single():
            _threads.run_shared(work, used)  # each takes the next block when done with one
    else:
        work(0, itertools.count().__next__)
    return out.reshape(spec.out_shape)


def _channel_blocks(x: np.ndarray, w_row: np.ndarray, spec: ConvSpec, strided: bool, fast: bool,
                    sizes: tuple[int, int]) -> np.ndarray:
    """:func:`run` with the sum over input channels blocked (:func:`channel_block`; one group).

    Each block of ``sizes[0]`` input channels is padded and gathered for every image and output
    position, images side by side (:func:`_gather_channels`), then multiplied by its slice of
    ``W_row``, ``sizes[1]`` output channels at a time, on the BLAS's threads: one GEMM over all
    images, whose products go into the output for the first block and are added to it for the others.
    """
    channels, outputs = sizes
    n, c_out = spec.out_shape[:2]
    c_in, taps = spec.x_shape[1], math.prod(spec.kernel)
    out_sp = spec.out_shape[2:]
    p = math.prod(out_sp)
    out = output_array((n, c_out, p), spec.dtype)
    storage = np.empty(channels * taps * n * p, dtype=spec.dtype)
    part = np.empty((outputs, n * p), dtype=spec.dtype) if channels < c_in or n > 1 else None  # partial products
    w2 = w_row[0]  # (C_out, C_in * K), in the weight's own dtype
    converted = np.empty((outputs, channels * taps), dtype=spec.dtype) if w2.dtype != spec.dtype else None
    x = np.asarray(x)
    for c0 in range(0, c_in, channels):
        cb = min(channels, c_in - c0)
        xg = phased(x, spec, (c0, c0 + cb)) if strided else pad(x[:, c0:c0 + cb], spec)
        x_col = storage[:cb * taps * n * p].reshape(cb * taps, n * p)  # (Cb*K, N*P): the images side by side
        cols = x_col.reshape(cb, taps, n, *out_sp)  # (Cb, K, N, *out)
        if fast:
            _gather_channels(xg, cols, spec, strided)
        else:
            _copy_taps(cols.swapaxes(0, 2).swapaxes(1, 2), xg, spec, strided, 0, 0)  # (N, Cb, K, *out) view
        del xg  # freed before the next block's is made: the budget holds one
        for o0 in range(0, c_out, outputs):
            o1 = min(c_out, o0 + outputs)
            wk = w2[o0:o1, c0 * taps:(c0 + cb) * taps]
            if converted is not None:  # this slice of the weight in the compute dtype
                np.copyto(converted[:o1 - o0, :cb * taps], wk)
                wk = converted[:o1 - o0, :cb * taps]
            if n == 1 and c0 == 0:  # one image: the first block's products straight into the output
                np.matmul(wk, x_col, out=out[0, o0:o1])
                continue
            products = part[:o1 - o0]
            np.matmul(wk, x_col, out=products)
            target = out[:, o0:o1]  # (N, Co, P)
            source = products.reshape(o1 - o0, n, p).swapaxes(0, 1)  # (Co, N*P) -> (N, Co, P) view
            if c0 == 0:
                target[...] = source
            else:
                target += source
    return out.reshape(spec.out_shape)


def _copy_taps(cols: np.ndarray, xg: np.ndarray, spec: ConvSpec, strided: bool, n0: int, r0: int) -> None:
    """Fill column block ``cols`` ``(nb, C, taps, rows, *rest)`` from images ``n0:`` and output rows
    ``r0:`` of ``xg``, one NumPy copy per kernel tap."""
    nb, _, _, nr, *rest = cols.shape
    for t, tap in enumerate(np.ndindex(*spec.kernel)):  # (nb, cb, rows, *rest) per tap
        if strided:
            index = _phase_index(tap, spec, (nr, *rest), r0)
        else:
            index = tap_index(tap, spec.stride, spec.dilation, (nr, *rest), r0)
        cols[:, :, t] = xg[(slice(n0, n0 + nb), slice(None), *index)]


def _gatherer(xg: np.ndarray, spec: ConvSpec, strided: bool) -> Callable[[np.ndarray, int, int], None]:
    """The compiled gather of one column block, bound to ``xg`` and the taps' phases and offsets."""
    from . import _im2col_jit

    xg, taps = _phase_taps(xg, spec, strided)
    return lambda cols, n0, r0: _im2col_jit.gather(xg, cols, n0, r0, *taps)


def _gather_channels(xg: np.ndarray, cols: np.ndarray, spec: ConvSpec, strided: bool) -> None:
    """Compiled gather of every image and output position into ``cols`` ``(C, taps, N, *out)``, on one
    thread: two threads each taking half the channels were no faster (n8 C512 7x7: 3.2 against
    2.7 ms), the BLAS's threads still spinning on the cores after the previous block's GEMM. A
    strided layer reads the block's stride phases: reading the padded block with a stride instead
    (no phases to make) ran 0.93-0.97x as fast."""
    from . import _im2col_jit

    xg, taps = _phase_taps(xg, spec, strided)
    _im2col_jit.gather_images_inner(xg, cols, *taps)


def _phase_taps(xg: np.ndarray, spec: ConvSpec, strided: bool) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """``xg`` as stride phases ``(N, C, sy, sx, Hq, Wq)`` (one phase per axis when not ``strided``), and
    the taps' ``(py, px, ys, xs)`` in them, as the compiled gathers take them."""
    if not strided:
        xg = xg[:, :, None, None]
    return xg, _tap_phases(spec.kernel, spec.dilation, spec.stride)


@functools.lru_cache(maxsize=64)
def _tap_phases(kernel: tuple[int, int], dilation: tuple[int, int],
                stride: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Each 2-D tap's stride phase and offset in it, ``(py, px, ys, xs)`` (cached: 49 taps cost 0.05 ms a call)."""
    (dy, dx), (sy, sx) = dilation, stride
    where = [(a * dy % sy, b * dx % sx, a * dy // sy, b * dx // sx) for a, b in np.ndindex(*kernel)]
    arrays = tuple(np.array(v, dtype=np.intp) for v in zip(*where))
    for a in arrays:
        a.flags.writeable = False
    return arrays


def phased(x: np.ndarray, spec: ConvSpec, channels: tuple[int, int] | None = None) -> np.ndarray:
    """:func:`phases` of the padded input, ``(N, C, *stride, *ceil(padded/stride))``; of input
    channels ``channels[0]:channels[1]`` only when given.

    With constant padding it is built straight from ``x``: one strided copy per phase into an
    array filled with the padding value (measured on the down-3x3 layer: 1.5 ms instead of 3.0 ms
    for padding, then splitting); for a layer with the compiled gather, by one compiled pass on
    every thread (:func:`_split_phases`, 0.6 ms against NumPy's 1.0 there).
    """
    x = np.asarray(x)
    c0, c1 = channels or (0, x.shape[1])
    if PAD_MODES[spec.padding_mode] != "constant":
        return phases(pad(x[:, c0:c1], spec), spec.stride)
    shape = (x.shape[0], c1 - c0, *_phase_shape(spec))
    if compiled(spec):  # one compiled pass on every thread: NumPy's strided copies took 1.2 ms of down-3x3
        return _split_phases(x, c0, shape, spec)
    x = x[:, c0:c1]
    out = np.full(shape, spec.fillvalue, dtype=spec.dtype)
    for q in np.ndindex(*spec.stride):
        dst, src = [], []
        for qa, s, (lo, _), n, length in zip(q, spec.stride, spec.pads, x.shape[2:], shape[2 + spec.nd:]):
            first, start, count = phase_cut(qa, s, lo, n, length)
            dst.append(slice(first, first + count))
            src.append(slice(start, start + s * count, s) if count else slice(0, 0))
        out[(slice(None), slice(None), *q, *dst)] = x[(slice(None), slice(None), *src)]
    return out


def _split_phases(x: np.ndarray, c0: int, shape: tuple[int, ...], spec: ConvSpec) -> np.ndarray:
    """:func:`phased` of a 2-D layer by the compiled kernel, from channel ``c0`` of ``x`` on, the
    threads taking a share of the channels. ``x`` is read as it is (any layout, any real dtype):
    a contiguous copy in the compute dtype would cost the memory bound an input's worth."""
    from . import _im2col_jit

    out = np.empty(shape, dtype=spec.dtype)  # (N, C, sy, sx, Hq, Wq): every element written
    (top, _), (left, _) = spec.pads
    fill = spec.dtype.type(spec.fillvalue)
    threads = _threads.num_threads()
    _threads.run_parallel(lambda a, b: _im2col_jit.split_phases(x, out[:, a:b], c0 + a, top, left, fill),
                          _threads.split(0, shape[1], threads), threads)
    return out


def phases(xp: np.ndarray, stride: tuple[int, ...]) -> np.ndarray:
    """Split every spatial axis into its ``stride`` phases: ``out[..., q, j] = xp[..., j*stride + q]``.

    ``xp`` is ``(N, C, *padded)``; returns ``(N, C, *stride, *ceil(padded/stride))`` (zeros past the
    end). With it, the input a strided tap reads is one unit-stride slice of one phase -- a fast
    copy -- instead of a strided gather; measured on the stem-7x7 layer, the 49 tap copies took
    0.38 ms instead of 1.0 ms.
    """
    lead, sp = xp.shape[:2], xp.shape[2:]
    out = np.zeros((*lead, *stride, *(-(-p // s) for p, s in zip(sp, stride))), dtype=xp.dtype)
    for q in np.ndindex(*stride):  # one strided copy per phase, straight into place
        part = xp[(Ellipsis, *(slice(a, None, s) for a, s in zip(q, stride)))]
        out[(Ellipsis, *q, *(slice(0, n) for n in part.shape[2:]))] = part
    return out


def _phase_index(tap: tuple[int, ...], spec: ConvSpec, out_sp: tuple[int, ...], first: int) -> tuple:
    """Index into :func:`phases` output for kernel tap ``tap`` and output rows ``first : first + out_sp[0]``."""
    offsets = [t * d for t, d in zip(tap, spec.dilation)]
    phase = tuple(o % s for o, s in zip(offsets, spec.stride))
    starts = [o // s for o, s in zip(offsets, spec.stride)]
    starts[0] += first
    return (*phase, *(slice(b, b + n) for b, n in zip(starts, out_sp)))
