"""Winograd minimal filtering: F(2,3), F(4,3) and F(5,3) for 3-tap (3x3, 3x3x3) stride-1 kernels.

(Kernels of 1 or 2 taps on an axis are zero-extended to 3, see :func:`three_taps`; a dilated
kernel is split into one undilated problem per dilation phase, see :func:`dilation_phases`; the
compiled 2-D kernels take the column dilation themselves, so only the rows are split there.)

A tile of ``m`` outputs along an axis needs ``a = m + 2`` inputs. With the transforms ``B^T``
(``a x a``), ``G`` (``a x 3``) and ``A^T`` (``m x a``) of Lavin & Gray (2016), the correlation of
one input tile ``d`` with one kernel ``g`` is, per axis,

    y = A^T [ (G g) * (B^T d) ]          (``*`` element-wise, ``a`` products instead of ``3 m``)

and in ``nd`` dimensions the transforms act along every axis (``a**nd`` products for ``m**nd``
outputs). Because the transforms are linear, the sum over input channels moves inside: with
``U[p] = G g G^T`` per filter and ``V[p] = B^T d B`` per input tile, every transform point ``p`` is
one matrix multiply ``M[p] = U[p] @ V[p]`` of shape ``(C_out, C_in) @ (C_in, tiles)``, and
``out = A^T M A`` per tile. F(2,3) does 2.25x fewer multiplications than the direct sum in 2-D,
F(4,3) 4x, F(5,3) 4.6x. F(5,3) pays where F(4,3)'s tiles overhang the output: on a 14x14 layer
it computes 441 products per channel pair (3x3 tiles of 49), F(4,3) 576 (4x4 tiles of 36); and
its transformed tiles are fewer, so the whole batch of resnet-3x3-14 is one chunk within the memory
bound, which reads the transformed kernel once (:func:`default_block`).

Two back ends compute the same thing: compiled kernels (numba, the ``convdot[fast]`` extra; 2-D
float32/float64; F(5,3) channels-last only, :data:`CL_TILES`) that read the input once and write
the transformed tiles once, and a pure NumPy path for every dtype and rank. The transformed kernel
``U`` is cached per weight array. On the channels-last path, float32 layers with output channels
in multiples of 64 multiply on a compiled GEMM with ``U`` kept packed for it
(:mod:`convdot.algorithms._gemm_jit`, :func:`packed_gemm`), the others with ``np.matmul``; and an
output of 4 MiB or more is written in whole lines past the caches
(:mod:`convdot.algorithms._stream_jit`).

Rounding: the transforms amplify rounding error (entries of ``B^T`` and ``A^T`` up to 5 and 8).
Measured in float32 against a float64 oracle on standard-normal data (4 images of 24x24, 8 filters,
3 draws; both back ends), as ``max |error| / scale`` with ``scale = conv(|x|, |w|)``, the measure of
the float32 tolerance ``rtol = 1e-5`` in ``tests/conftest.py``::

    C_in per group      1       2       4       8       16      64      256
    F(2,3)           6.8e-7  3.4e-7  2.1e-7  1.6e-7  1.1e-7  8.4e-8  7.7e-8
    F(4,3)           1.9e-5  1.0e-5  4.9e-6  3.7e-6  3.2e-6  2.2e-6  3.3e-6
    F(5,3)           1.5e-5  1.4e-5  4.8e-6  3.7e-6  2.7e-6  2.3e-6  2.7e-6
    direct (im2col)  1.8e-7  2.0e-7  2.2e-7  2.3e-7  1.5e-7  9.4e-8  3.8e-8

(F(5,3) from 16 channels with 16 filters, its compiled kernels' least; the NumPy path's error is
the same.) F(2,3) is as accurate as the direct sum; F(4,3) and F(5,3) break the tolerance with one
or two input channels (the error of a whole tile lands on outputs whose own scale is small). So
float32 and complex64 use them only from :data:`F43_MIN_CHANNELS` = 8 input channels per group (a
2.7x margin); float64 errors are these times about 2e-9, far inside its tolerance, so float64 may
always use them.
"""

from __future__ import annotations

import functools
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import reduce

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _threads
from .._spec import PAD_MODES, ConvSpec
from ._common import (
    NonFiniteInput,
    array_bytes,
    clear_scratch,
    ensure_memory,
    finite_fixup,
    give_scratch,
    jit_available,
    output_array,
    pad,
    phase_cut,
    scratch_budget,
    take_scratch,
)

#: (A^T, G, B^T) for F(m, 3): interpolation points 0, 1, -1 (F(2,3)), 0, 1, -1, 2, -2 (F(4,3)) and
#: 0, 1, -1, 2, -2, 1/2 (F(5,3)), plus the point at infinity. F(5,3)'s come from the Toom-Cook
#: construction (``A^T`` evaluates the output polynomial, ``B^T`` is the inverse transpose of the
#: full evaluation matrix), each row of ``B^T`` scaled to small integers and ``G`` by the inverse.
TRANSFORMS: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    2: (np.array([[1, 1, 1, 0],
                  [0, 1, -1, -1]], dtype=float),
        np.array([[1, 0, 0],
                  [1 / 2, 1 / 2, 1 / 2],
                  [1 / 2, -1 / 2, 1 / 2],
                  [0, 0, 1]]),
        np.array([[1, 0, -1, 0],
                  [0, 1, 1, 0],
                  [0, -1, 1, 0],
                  [0, 1, 0, -1]], dtype=float)),
    4: (np.array([[1, 1, 1, 1, 1, 0],
                  [0, 1, -1, 2, -2, 0],
                  [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], dtype=float),
        np.array([[1 / 4, 0, 0],
                  [-1 / 6, -1 / 6, -1 / 6],
                  [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6],
                  [0, 0, 1]]),
        np.array([[4, 0, -5, 0, 1, 0],
                  [0, -4, -4, 1, 1, 0],
                  [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0],
                  [0, 2, -1, -2, 1, 0],
                  [0, 4, 0, -5, 0, 1]], dtype=float)),
    5: (np.array([[1, 1, 1, 1, 1, 1, 0],
                  [0, 1, -1, 2, -2, 1 / 2, 0],
                  [0, 1, 1, 4, 4, 1 / 4, 0],
                  [0, 1, -1, 8, -8, 1 / 8, 0],
                  [0, 1, 1, 16, 16, 1 / 16, 1]]),
        np.array([[1 / 4, 0, 0],
                  [1 / 6, 1 / 6, 1 / 6],
                  [1 / 18, -1 / 18, 1 / 18],
                  [1 / 72, 1 / 36, 1 / 18],
                  [1 / 120, -1 / 60, 1 / 30],
                  [32 / 45, 16 / 45, 8 / 45],
                  [0, 0, 1 / 2]]),
        np.array([[4, -8, -5, 10, 1, -2, 0],
                  [0, -4, 4, 9, -1, -2, 0],
                  [0, -4, 12, -7, -3, 2, 0],
                  [0, 2, -3, -4, 3, 2, 0],
                  [0, 2, -5, 0, 5, -2, 0],
                  [0, 4, 0, -5, 0, 1, 0],
                  [0, -4, 8, 5, -10, -1, 2]], dtype=float)),
}

#: Output tile sizes, smallest first.
TILES: tuple[int, ...] = (2, 4, 5)

#: float32/complex64 take F(4,3) and F(5,3) only with at least this many input channels per group (see above).
F43_MIN_CHANNELS = 8

#: The compiled F(4,3) and F(5,3) kernels run channels-last (see :mod:`convdot.algorithms._winograd_jit`)
#: from this many input and output channels, without groups; below, the F(2,3) and F(4,3) transforms
#: vectorize along tiles (F(5,3) has only the channels-last kernels).
CHANNELS_LAST_MIN = 16

#: Tile sizes with channels-last compiled kernels (:func:`_cl_kernels`), and with planar ones
#: (``_winograd_jit.KERNELS``: transforms along the tiles, any channels and groups).
CL_TILES: tuple[int, ...] = (4, 5)
PLANAR_TILES: tuple[int, ...] = (2, 4)

#: The planner offers the compiled kernels from this many multiply-adds of the direct sum: below,
#: importing numba (about 0.3 s, once per process) costs more than the kernels save.
JIT_MIN_MACS = 1 << 25

#: Whether the channels-last products (shared chunks, :func:`_run_shared`, and each thread's own,
#: :func:`_fused`) run on the compiled GEMM of :mod:`convdot.algorithms._gemm_jit` (float32, output
#: channels a multiple of 64) instead of ``np.matmul``: None chooses it where the CPU has AVX-512
#: (its kernel keeps 24 sixteen-lane accumulators; narrower registers split them, untested for
#: speed). True or False forces it.
PACKED_GEMM: bool | None = None

_KERNEL_CACHE_ENTRIES = 32
_KERNEL_CACHE_BYTES = 256 << 20


@dataclass(frozen=True)
class Params:
    """How to run one problem: tile size ``m``, images per block (or tile rows when one image is
    split), threads, and back end ("jit" or "numpy")."""

    tile: int
    block: int
    threads: int
    backend: str


# --------------------------------------------------------------------------- what can run


def unsupported(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> str | None:
    """Why Winograd cannot compute ``spec`` (None when it can)."""
    if any(k > 3 for k in spec.kernel):
        return f"winograd needs a kernel of at most 3 taps on every axis, got kernel {spec.kernel}"
    if any(s != 1 for s in spec.stride):
        return f"winograd needs stride 1, got stride {spec.stride}"
    if spec.dtype.kind not in "fc":
        return f"winograd computes in floating point and cannot sum {spec.dtype} inputs exactly; use an exact method"
    return None


def tiles_for(spec: ConvSpec) -> tuple[int, ...]:
    """Output tile sizes whose rounding error stays within the dtype's tolerance (see the module doc)."""
    precision = spec.dtype.itemsize // (2 if spec.dtype.kind == "c" else 1)  # bytes per real number
    if precision >= 8:
        return TILES
    return TILES if spec.w_shape[1] >= F43_MIN_CHANNELS else (2,)



def backends_for(spec: ConvSpec, tile: int, *, auto: bool = False) -> tuple[str, ...]:
    """Back ends able to run ``spec`` with F(``tile``,3): "numpy" always, "jit" for 2-D real floating
    point (F(5,3) only channels-last, :func:`channels_last`).

    With ``auto``, the ones worth choosing: "jit" only from :data:`JIT_MIN_MACS` multiply-adds.
    """
    if spec.nd == 2 and spec.dtype in (np.float32, np.float64) and jit_available() \
            and (tile in PLANAR_TILES or channels_last(spec, tile)):
        if not auto or spec.macs >= JIT_MIN_MACS:
            return ("numpy", "jit")
    return ("numpy",)


def channels_last(spec: ConvSpec, m: int) -> bool:
    """True when the compiled kernels run ``spec`` with tile ``m`` channels-last (F(4,3) or F(5,3),
    no groups, many channels)."""
    return m in CL_TILES and spec.nd == 2 and spec.groups == 1 \
        and min(spec.x_shape[1], spec.out_shape[1]) >= CHANNELS_LAST_MIN


def tile_grid(spec: ConvSpec, m: int) -> tuple[int, ...]:
    """Tiles per spatial axis: ``ceil(out / m)``."""
    return tuple(-(-o // m) for o in spec.out_shape[2:])


# --------------------------------------------------------------------------- kernel transform


_cache: OrderedDict[tuple, tuple[np.ndarray | int, np.ndarray, bool]] = OrderedDict()  # key -> (copy or CRC, U, finite)

#: From this many bytes the kernel cache keeps a copy of the weight to compare, not its CRC-32.
COPY_WEIGHTS_FROM = 1 << 20
_cache_lock = threading.Lock()


def kernel_transform(w: np.ndarray, m: int, dtype: np.dtype, groups: int, *, transposed: bool = False,
                     packed: bool = False, finite: bool = False) -> np.ndarray | None:
    """``U = G g G^T`` for every filter, as ``(P, G, C_out/G, C_in/G)`` in ``dtype``; cached.

    With ``finite``, None when the weight holds NaN or inf: each entry records that when it is made,
    so the compiled path need not read the weight again for it on every call (on resnet-3x3-14,
    ``np.isfinite`` of its 2.4 MB weight took 0.13-0.3 ms of each call, beside the comparison below).

    With ``transposed``, ``(P, G, C_in/G, C_out/G)`` (C-contiguous: as a transposed view, BLAS ran
    the channels-last GEMMs of the resnet-3x3-14 layer 1.4x slower); with ``packed`` as well, each
    point's matrix in panels of 64 columns, ``(P, G, C_out/G/64, C_in/G, 64)``, for
    :func:`convdot.algorithms._gemm_jit.products`.

    Computed in float64 (complex128) and rounded once. The cache key holds the array's identity,
    shape and dtype, and each entry what the weight's bytes were, checked on every call, so an
    array edited in place is transformed anew: a CRC-32 of them, or from :data:`COPY_WEIGHTS_FROM`
    bytes a copy, compared bit for bit (on a 9.4 MB weight the CRC-32 took 5.9 ms, the comparison
    1.1 ms; the copy is a quarter of the F(4,3) transform beside it). At most 32 entries and
    256 MiB are kept, least recently used dropped first.
    """
    wc = np.ascontiguousarray(w)
    key = (id(w), wc.shape, wc.dtype.str, m, np.dtype(dtype).str, groups, transposed, packed)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and _same_bytes(hit[0], wc):
            _cache.move_to_end(key)
            return None if finite and not hit[2] else hit[1]
    _, g_mat, _ = TRANSFORMS[m]
    nd = wc.ndim - 2
    gk = reduce(np.kron, [g_mat] * nd)  # (P, 3**nd): G applied along every axis
    acc = np.complex128 if np.dtype(dtype).kind == "c" else np.float64
    c_out, cg = wc.shape[:2]
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 in a non-finite weight: recorded below, not warned
        u = wc.reshape(c_out * cg, -1).astype(acc) @ gk.T  # (C_out*Cg, P)
    u = u.T.reshape(-1, groups, c_out // groups, cg)  # (P, G, Cog, Cg)
    u = np.ascontiguousarray(u.transpose(0, 1, 3, 2) if transposed else u, dtype=dtype)
    if packed:
        from ._gemm_jit import pack

        u = pack(u)
    return None if not _remember(key, wc, u) and finite else u


def _remember(key: tuple, wc: np.ndarray, value: np.ndarray) -> bool:
    """Cache ``value`` made from the weight ``wc`` under ``key``, with what its bytes were (see
    :func:`kernel_transform`) and whether they are all finite (returned); the least recently used
    entries go beyond the cache's limits."""
    finite = wc.dtype.kind not in "fc" or bool(np.isfinite(wc).all())
    with _cache_lock:
        _cache[key] = (wc.copy() if wc.nbytes >= COPY_WEIGHTS_FROM else zlib.crc32(_words(wc)), value, finite)
        while len(_cache) > _KERNEL_CACHE_ENTRIES or \
                sum(np.asarray(a).nbytes + b.nbytes for a, b, _ in _cache.values()) > _KERNEL_CACHE_BYTES:
            _cache.popitem(last=False)
    return finite


def _words(a: np.ndarray) -> np.ndarray:
    """A C-contiguous array's bytes as the widest unsigned words that divide them."""
    word = next(t for t in (np.uint64, np.uint32, np.uint8) if a.nbytes % np.dtype(t).itemsize == 0)
    return a.reshape(-1).view(np.uint8).view(word)


def _same_bytes(seen: np.ndarray | int, w: np.ndarray) -> bool:
    """Whether ``w`` holds the bytes ``seen`` records: a copy of them, or their CRC-32 (NaN and -0.0 included)."""
    if isinstance(seen, np.ndarray):
        return bool(np.array_equal(_words(seen), _words(w)))
    return zlib.crc32(_words(w)) == seen


def clear_cache() -> None:
    """Forget every cached kernel transform and kept scratch buffer."""
    with _cache_lock:
        _cache.clear()
    clear_scratch()


# --------------------------------------------------------------------------- blocks


def blocks(spec: ConvSpec, m: int, block: int) -> list[tuple[int, int, int, int]]:
    """Pieces of work ``(n0, n1, i0, i1)``: images ``n0:n1``, tile rows ``i0:i1`` of the first axis.

    ``block >= 1`` is images per piece; ``block <= -1`` splits every image into pieces of
    ``-block`` tile rows (for images too large to transform whole).
    """
    n = spec.out_shape[0]
    th = tile_grid(spec, m)[0]
    if block >= 1:
        return [(a, min(a + block, n), 0, th) for a in range(0, n, block)]
    rows = -block
    return [(i, i + 1, r, min(r + rows, th)) for i in range(n) for r in range(0, th, rows)]


#: Most bytes of transformed tiles and products one block holds (they should stay in the last-level cache).
BLOCK_BYTES = 16 << 20

#: Bytes of transformed tiles and products one thread's chunk holds in the channels-last path: about
#: one core's L2 (2 MiB on the Xeon guest it was measured on), so that the GEMMs read the tiles the
#: transform just wrote there.
#: Measured on resnet-3x3-28 (256 KiB per tile row): 4 to 16 rows all ran at 1.57-1.67x torch.
#: On a Zen 3 guest with 512 KiB of L2 per core, 1 MiB and 512 KiB chunks were within the noise
#: (best of 20 shuffled calls, 2 MiB / 1 MiB / 512 KiB: resnet-3x3-56 12.1 / 11.8 / 13.3 ms,
#: -28 38.3 / 38.8 / 36.3, dilated 14.1 / 15.8 / 15.9), so the size is not derived from the cache.
FUSED_BYTES = 2 << 20

#: From this size of the transformed kernel the channels-last threads share chunks and split their
#: transform points, not tile rows.
SPLIT_U_BYTES = 4 << 20

#: Scratch of the NumPy path per byte of transformed tiles and products (tensordot and transpose copies).
NUMPY_SCRATCH = 3

#: ``(first, step, count)`` of the rows a channels-last kernel reads or writes: all of them.
ALL_ROWS = (0, 1, -1)


def scratch_per_image(spec: ConvSpec, m: int, backend: str) -> int:
    """Bytes of scratch one image's block needs: transformed tiles and products (times the NumPy copies)."""
    tiles = int(np.prod(tile_grid(spec, m)))
    per_tile = (spec.x_shape[1] + spec.out_shape[1]) * (m + 2) ** spec.nd * spec.dtype.itemsize
    return per_tile * tiles * (1 if backend == "jit" else NUMPY_SCRATCH)


def default_block(spec: ConvSpec, m: int, backend: str = "jit", threads: int = 1) -> int:
    """Images per block, or ``-tile_rows`` when one image is too large, within the memory budget.

    The channels-last kernels take ``-tile_rows`` per chunk of each thread (:func:`_run_fused`):
    as many rows as fit in :data:`FUSED_BYTES` and in the thread's share of the budget. (Chunks the
    threads share, :func:`shares_chunks`, of even size instead, 16 + 16 rows on resnet-3x3-14 rather
    than 21 + 11, measured 0.95-1.02x in shuffled A/B runs, each call after a torch call or after
    itself: no change.)

    A block's scratch stays below :data:`BLOCK_BYTES` and below what the whole call may use
    besides its output: ``2 * (input + output)`` in all (:func:`~convdot.algorithms._common.scratch_budget`),
    less the padded copy of the input the NumPy path makes; the NumPy path runs ``threads`` blocks
    at once. The transformed kernel, ``(m+2)**2 / 9`` times the weight's bytes and cached across
    calls, is not counted: in a layer whose weight outweighs its data it alone exceeds the bound.
    """
    padded = array_bytes((*spec.x_shape[:2], *spec.padded_shape), spec.dtype)
    copy = 0 if backend == "jit" else padded
    if any(d != 1 for d in spec.dilation):  # one phase of the input and of the output at a time
        whole = 0 if PAD_MODES[spec.padding_mode] == "constant" and spec.fillvalue == 0 else padded
        copy += whole + (padded + array_bytes(spec.out_shape, spec.dtype)) // int(np.prod(spec.dilation))
    if backend == "jit" and channels_last(spec, m):  # tile rows per chunk
        per_row, fixed = _fused_bytes(spec, m, threads)
        if shares_chunks(spec, m):  # one chunk at a time, shared by the threads
            # all of the budget, its kernels' scratch counted: every chunk streams all of U, which
            # bounds these GEMMs (resnet-3x3-14, F(5,3): one chunk of 24 rows 5.8 ms, 22 + 2 rows 7.9)
            share = min(BLOCK_BYTES, scratch_budget(spec, copy)) - fixed * max(1, threads)
            return -int(max(1, share // per_row))
        share = int(0.9 * scratch_budget(spec, copy)) // max(1, threads) - fixed  # every thread its own chunk
        return -int(max(1, min(FUSED_BYTES, share) // per_row))
    # 10% kept back for the small arrays around the blocks
    budget = int(0.9 * min(BLOCK_BYTES, scratch_budget(spec, copy)))
    budget //= 1 if backend == "jit" else max(1, threads)
    per_image = _phased_per_image(spec, m, backend)
    if per_image <= budget:
        return int(max(1, min(spec.out_shape[0], budget // per_image)))
    per_row = per_image // tile_grid(spec, m)[0]
    return -int(max(1, budget // max(per_row, 1)))


def _phased_per_image(spec: ConvSpec, m: int, backend: str) -> int:
    """:func:`scratch_per_image` as :func:`_compute` runs ``spec``: with a dilation, a block of ``b``
    images runs ``b * phases`` images of each phase, so its scratch is that of the largest phase's
    image (its tiles rounded up on their own, and laid out as the kernels lay them) times the phases.

    Counting a phase as a ``1/phases`` share of the whole problem's tiles undercounted: an N8 C32
    20x20 layer with dilation 3 has 100 tiles of F(2,3) per image, but its three row phases 48 each
    (column phases side by side), so its blocks took 2.36 MB of scratch where 1.64 MB was counted
    and the call peaked at 2 x (input + output) + 64 KB.
    """
    if all(d == 1 for d in spec.dilation):
        return scratch_per_image(spec, m, backend)
    cols = _kernels_take_columns(spec, backend)
    phases = _column_dilated(spec) if cols else dilation_phases(spec)
    count = int(np.prod(spec.dilation[:1] if cols else spec.dilation))
    per_tile = (spec.x_shape[1] + spec.out_shape[1]) * (m + 2) ** spec.nd * spec.dtype.itemsize
    tiles = max(tile_grid(sub, m)[0] * tile_cols(sub, m)[0] if cols else int(np.prod(tile_grid(sub, m)))
                for _, _, sub in phases)
    return per_tile * tiles * count * (1 if backend == "jit" else NUMPY_SCRATCH)


def _kernels_take_columns(spec: ConvSpec, backend: str) -> bool:
    """Whether the compiled kernels take ``spec``'s column dilation themselves, so that only its rows
    are split into phases (see :func:`_compute`)."""
    return backend == "jit" and spec.nd == 2 and spec.kernel[1] == 3 and spec.dilation[1] != 1 \
        and PAD_MODES[spec.padding_mode] == "constant" and spec.fillvalue == 0


def shares_chunks(spec: ConvSpec, m: int) -> bool:
    """True when the channels-last threads share each chunk (:func:`_run_shared`), taking its
    transform points in turn, instead of taking whole chunks in turn.

    That is when the transformed kernel ``U`` (``(m+2)**2 x C_in x C_out``) exceeds :data:`SPLIT_U_BYTES`:
    every chunk reads all of ``U``, and with a chunk per thread each thread reads it. Measured with a
    chunk per thread and shared (then split by output channels): resnet-3x3-14 (9.4 MB) 0.81x and
    0.84x torch, an N1 C512 14x14 layer (37.7 MB) 0.55x and 1.35x.
    """
    points = (m + 2) ** 2
    return points * spec.x_shape[1] * spec.out_shape[1] // spec.groups * spec.dtype.itemsize > SPLIT_U_BYTES


def packed_gemm(spec: ConvSpec) -> bool:
    """True when the channels-last path multiplies on the compiled GEMM with ``U`` packed (:data:`PACKED_GEMM`)."""
    if spec.dtype != np.float32 or spec.groups != 1 or spec.out_shape[1] % 64:
        return False
    return _wide_vectors() if PACKED_GEMM is None else PACKED_GEMM


@functools.cache
def _wide_vectors() -> bool:
    """Whether LLVM sees AVX-512 on this CPU (only asked on the compiled path, where llvmlite is there)."""
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("avx512f", False))


def in_place(spec: ConvSpec, m: int) -> bool:
    """True when the shared chunks write the products ``M[p]`` over ``V[p]``: as many output channels as input."""
    return shares_chunks(spec, m) and spec.x_shape[1] == spec.out_shape[1]


def chunk_rows(spec: ConvSpec, m: int, block: int) -> int:
    """Tile rows per chunk of the channels-last path: ``block`` images' rows, or ``-block`` rows."""
    th = tile_grid(spec, m)[0]
    return max(1, min(spec.out_shape[0] * th, block * th if block > 0 else -block))


def tile_cols(spec: ConvSpec, m: int) -> tuple[int, int, int]:
    """``(tw, dw, twp)``: tiles per row of tiles, the column dilation, tiles per column phase.

    With a column dilation ``dw > 1`` (only from :func:`_column_dilated`) a row of tiles holds the
    ``dw`` column phases side by side, each ``ceil(ceil(OW/dw)/m)`` tiles.
    """
    dw = spec.dilation[1]
    phase_cols = -(-spec.out_shape[3] // dw)  # output columns of the widest column phase
    twp = -(-phase_cols // m)
    return dw * twp, dw, twp


def _fused_bytes(spec: ConvSpec, m: int, threads: int = 1) -> tuple[int, int]:
    """Bytes per tile row of a chunk (``V`` and ``M``), and its kernels' fixed scratch, channels-last.

    With a column dilation ``d`` a row holds ``d`` column phases of ``ceil(ceil(OW/d)/m)`` tiles each.
    When :func:`in_place`, a row holds ``V`` and, per thread, one point's products.
    """
    tw, d, _ = tile_cols(spec, m)
    a, points = m + 2, (m + 2) ** 2
    c_in, c_out, item = spec.x_shape[1], spec.out_shape[1], spec.dtype.itemsize
    # the input kernel's T and R, or the output kernel's Y and S: a thread runs one kernel at a time
    fixed = max(2 * a * d * (m * tw // d + 2) * c_in, (m + a) * m * tw * c_out) * item
    if in_place(spec, m):
        return (points * c_in + max(1, threads) * c_out) * tw * item, fixed
    return points * (c_in + c_out) * tw * item, fixed


# --------------------------------------------------------------------------- run


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec, *, tile: int | None = None, block: int | None = None,
        threads: int | None = None, backend: str | None = None, nonfinite: str = "fixup") -> np.ndarray:
    """Winograd F(m, 3) correlation; returns ``(N, C_out, *out)`` in ``spec.dtype``.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, *spatial)
        Unpadded input.
    w : ndarray of shape (C_out, C_in/groups, 3, ..., 3)
        Filters.
    spec : ConvSpec
        The canonical problem (stride 1, dilation 1, 3-tap kernel).
    tile, block, threads, backend : optional
        Output tile size (2 or 4), images per block, threads, "jit" or "numpy"; by default what
        :func:`convdot.planner.parameters` chooses for the problem.
    nonfinite : {"fixup", "raise"}
        NaN/inf in ``x``: computed exactly as the direct sum would ("fixup"), or
        :class:`~convdot.algorithms.NonFiniteInput` raised (what ``auto`` asks for when it left the
        check to the compiled kernels, see :func:`convdot.planner.choose`).

    Returns
    -------
    ndarray of shape (N, C_out, *out)

    Notes
    -----
    Per tile and transform point ``p``: ``M[p] = U[p] @ V[p]`` with ``U = G g G^T`` and
    ``V = B^T d B``; the output tile is ``A^T M A``. Non-finite inputs are computed as zeros and
    the outputs their windows reach are then recomputed directly, so NaN/inf land exactly where the
    direct sum puts them.
    """
    reason = unsupported(spec, x, w)
    if reason:
        raise ValueError(f"{spec.func}: method='winograd' cannot run this problem: {reason}")
    if nonfinite not in ("fixup", "raise"):
        raise ValueError(f"{spec.func}: winograd nonfinite must be 'fixup' or 'raise', got {nonfinite!r}")
    params = _resolve(spec, tile, block, threads, backend)
    w = np.asarray(w)
    # the compiled path learns whether w is finite from its cached transform, made once per weight
    if params.backend == "jit" or (np.isfinite(w).all() and np.isfinite(x).all()):
        out = _compute(x, w, spec, params)
        if out is not None:  # None: the compiled kernel found NaN/inf in x, or the weight holds some
            return _padding_margins(out, x, w, spec)
    if nonfinite == "raise":
        raise NonFiniteInput(f"{spec.func}: x or weight holds NaN or inf")
    # Non-finite values: transform zeros in their place, then put the direct sums back.
    xs = np.where(np.isfinite(x), x, 0)
    ws = np.where(np.isfinite(w), w, 0)
    out = _padding_margins(_compute(xs, ws, spec, replace(params, backend="numpy")), xs, ws, spec)
    return finite_fixup(out, pad(x, spec), np.asarray(w, dtype=spec.dtype), spec)


def _padding_margins(out: np.ndarray, x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Recompute directly the outputs whose windows reach more than ``(k - 1) // 2`` taps into zero padding.

    A tile's rounding error spreads over all its outputs and scales with the whole tile's inputs,
    while an output whose window is mostly padding has a much smaller scale of its own: with
    'same' padding (one tap of a 3x3 kernel) float32 F(4,3) stays within 3.2e-6 of the scale at 16
    channels, but a corner output with padding 2 on two sides (one data tap of nine) was 1.1e-4 off
    and an output of padding only 2e-4 instead of 0. Those margins are a few rows and columns, and
    only exist with padding wider than 'same'. Each margin row (column) is computed by im2col as
    the valid correlation of its own padded slab of ``x``, so the extra memory is a row's, not a
    padded copy of ``x`` (the first version, gathering every margin window at once, broke the
    2 x (input + output) bound on a 2x16x128x128 input).
    """
    if PAD_MODES[spec.padding_mode] != "constant" or spec.fillvalue != 0:
        return out
    if all(-(-p // d) <= (k - 1) // 2 for pads, k, d in zip(spec.pads, spec.kernel, spec.dilation) for p in pads):
        return out  # no window reaches further into the padding than 'same' does (checked per output below)
    margins = []
    for n, (lo, _), k, d, size in zip(spec.x_shape[2:], spec.pads, spec.kernel, spec.dilation, out.shape[2:]):
        i = np.arange(size)  # stride 1: output i's window starts at padded position i
        low = np.clip(-(-(lo - i) // d), 0, k)  # taps before x
        high = k - np.clip(-(-(lo + n - i) // d), 0, k)  # taps past x: i + t*d >= lo + n
        margins.append((low > (k - 1) // 2) | (high > (k - 1) // 2))
    if not any(m.any() for m in margins):
        return out
    from . import im2col

    wd, nd = np.asarray(w, dtype=spec.dtype), spec.nd
    for axis, m in enumerate(margins):  # each margin row (column) as the valid correlation of its slab
        n, (lo, _) = spec.x_shape[2 + axis], spec.pads[axis]
        span = spec.dilation[axis] * (spec.kernel[axis] - 1) + 1
        for i in np.flatnonzero(m):  # padded positions i : i + span, padded only where they leave x
            first, last = max(0, i - lo), max(0, min(n, i - lo + span))
            count = max(0, last - first)
            low = min(span, max(0, lo - i))
            part = x[(slice(None), slice(None), *(slice(first, first + count) if a == axis else slice(None)
                                                  for a in range(nd)))]
            pads = tuple((low, span - low - count) if a == axis else p for a, p in enumerate(spec.pads))
            slab = pad(part, replace(spec, x_shape=part.shape, pads=pads))
            sub = replace(spec, x_shape=slab.shape, pads=((0, 0),) * nd, padding_mode="zeros", fillvalue=0,
                          out_shape=(*out.shape[:2], *(1 if a == axis else out.shape[2 + a] for a in range(nd))))
            at = tuple(slice(i, i + 1) if a == axis else slice(None) for a in range(nd))
            out[(slice(None), slice(None), *at)] = im2col.run(slab, wd, sub)
    return out


def three_taps(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> tuple[np.ndarray, np.ndarray, ConvSpec]:
    """The same problem with every kernel axis zero-extended to 3 taps (unchanged when it has 3).

    A kernel of ``k < 3`` taps is a 3-tap kernel whose last ``3 - k`` taps are zero, correlated
    with an input padded by ``3 - k`` more zeros on the high side: the output is the same.
    """
    if all(k == 3 for k in spec.kernel):
        return x, w, spec
    extra = [3 - k for k in spec.kernel]
    w3 = _three_tap_weight(w)
    if PAD_MODES[spec.padding_mode] == "constant" and spec.fillvalue == 0:
        pads = tuple((lo, hi + e) for (lo, hi), e in zip(spec.pads, extra))
    else:  # the extra columns must be zeros, not more of the padding mode: pad now, extend with zeros
        x = pad(x, spec)
        pads = tuple((0, e) for e in extra)
    return x, w3, replace(spec, x_shape=x.shape, w_shape=w3.shape, pads=pads, padding_mode="zeros", fillvalue=0)


def _three_tap_weight(w: np.ndarray) -> np.ndarray:
    """``w`` zero-extended to 3 taps on every axis; cached as :func:`kernel_transform` caches ``U``.

    The same extended array on every call keeps :func:`kernel_transform`'s cache (keyed by the
    array's identity) hitting: a new one each time had ``U`` made anew, and a 1x1 layer
    (N2 C256->512 14x14) peaked at 4.6-25.7x input + output.
    """
    wc = np.ascontiguousarray(w)
    key = ("three taps", id(w), wc.shape, wc.dtype.str)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and _same_bytes(hit[0], wc):
            _cache.move_to_end(key)
            return hit[1]
    w3 = np.zeros(wc.shape[:2] + (3,) * (wc.ndim - 2), dtype=wc.dtype)
    w3[(slice(None), slice(None), *(slice(0, k) for k in wc.shape[2:]))] = wc
    _remember(key, wc, w3)
    return w3


def dilation_phases(spec: ConvSpec) -> list[tuple[tuple[slice, ...], tuple[slice, ...] | None, ConvSpec]]:
    """A dilated problem as undilated ones, one per phase ``r`` of the dilation on every axis.

    With ``i = d*u + r``, ``out[i] = sum_k xpad[i + d*k] w[k] = sum_k xpad[r + d*(u + k)] w[k]``: phase
    ``r`` of the output is the undilated correlation of phase ``r`` of the padded input,
    ``xpad[r::d]``. Returns ``(output phase, input slice, phase problem)`` triples. With zero
    padding the phase problem reads ``x[input slice]`` with its own zero padding; otherwise the
    input slice is None and it reads ``xpad[output phase]`` unpadded.
    """
    zeros = PAD_MODES[spec.padding_mode] == "constant" and spec.fillvalue == 0
    out = []
    for r in np.ndindex(*spec.dilation):
        sel = tuple(slice(ri, None, d) for ri, d in zip(r, spec.dilation))
        sub_x = tuple(-(-(p - ri) // d) for p, ri, d in zip(spec.padded_shape, r, spec.dilation))
        sub_out = tuple(-(-(o - ri) // d) for o, ri, d in zip(spec.out_shape[2:], r, spec.dilation))
        if any(o <= 0 for o in sub_out):
            continue
        src, pads, shape = None, ((0, 0),) * spec.nd, sub_x
        if zeros:
            cuts = []
            for n, (lo, _), ri, d, length in zip(spec.x_shape[2:], spec.pads, r, spec.dilation, sub_x):
                before, first, use = phase_cut(ri, d, lo, n, length)
                cuts.append((slice(first, first + d * use, d), (before, length - before - use), use))
            if all(use > 0 for _, _, use in cuts):  # else no input at all in this phase: pad a copy instead
                src, pads, shape = (tuple(c[i] for c in cuts) for i in range(3))
        sub = replace(spec, x_shape=(*spec.x_shape[:2], *shape), out_shape=(*spec.out_shape[:2], *sub_out),
                      pads=tuple(pads), dilation=(1,) * spec.nd, padding_mode="zeros", fillvalue=0)
        out.append((sel, src, sub))
    return out


def _column_dilated(spec: ConvSpec) -> list[tuple[tuple[slice, ...], tuple[slice, ...] | None, ConvSpec]]:
    """:func:`dilation_phases` of the rows only; each phase problem keeps the column dilation."""
    rows_only = replace(spec, dilation=(spec.dilation[0], 1))
    return [(sel, src, replace(sub, dilation=(1, spec.dilation[1]))) for sel, src, sub in dilation_phases(rows_only)]


def _compute(x: np.ndarray, w: np.ndarray, spec: ConvSpec, params: Params,
             out: np.ndarray | None = None) -> np.ndarray | None:
    """``spec`` computed into ``out`` (a new array when None); None when the compiled kernel met NaN/inf."""
    # The compiled kernels take a column dilation themselves (the tiles of every column phase side by
    # side in one row of tiles): only the rows are split into phases, and output rows are written whole.
    cols = _kernels_take_columns(spec, params.backend)
    if any(d != 1 for d in (spec.dilation[:1] if cols else spec.dilation)):
        phases = _column_dilated(spec) if cols else dilation_phases(spec)
        xp = pad(x, spec) if any(src is None for _, src, _ in phases) else None
        out = output_array(spec.out_shape, spec.dtype) if out is None else out
        # a phase has 1/(its phase count) of the tiles: as many more images (or tile rows) per block
        split = spec.dilation[:1] if cols else spec.dilation
        grow = int(np.prod(split)) if params.block > 0 else int(np.prod(split[1:]))
        sub_params = replace(params, block=params.block * grow)
        if cols and _fusable_phases(x, out, phases, params):
            return _phases_fused(x, w, out, phases, sub_params)
        for sel, src, sub in phases:
            part_x = x[(slice(None), slice(None), *src)] if src is not None else xp[(slice(None), slice(None), *sel)]
            dst = out[(slice(None), slice(None), *sel)]
            if params.backend == "jit":  # the kernels read and write the strided phases in place
                if _compute(part_x, w, sub, sub_params, out=dst) is None:
                    return None
            else:
                dst[...] = _compute(part_x, w, sub, sub_params)
        return out
    x, w, spec = three_taps(x, w, spec)
    if params.backend == "jit":
        return _run_jit(x, w, spec, params, out)
    if PAD_MODES[spec.padding_mode] == "constant" and spec.fillvalue == 0:
        # one copy: pad by the zeros the whole tiles need as well
        t = tile_grid(spec, params.tile)
        his = tuple(params.tile * tt + 2 - x.shape[2 + a] - lo for a, (tt, (lo, _)) in enumerate(zip(t, spec.pads)))
        return _run_numpy(pad(x, replace(spec, pads=tuple((lo, hi) for (lo, _), hi in zip(spec.pads, his)))), w,
                          spec, params)
    return _run_numpy(pad(x, spec), w, spec, params)


def _fusable_phases(x: np.ndarray, out: np.ndarray, phases: list, params: Params) -> bool:
    """Whether the row phases can run as the parts of one channels-last :func:`_fused` call: each
    phase channels-last (F(4,3) or F(5,3)) and read from ``x`` itself (zero padding), a chunk per
    thread, ``x`` and ``out`` C-contiguous in the compute dtype (else the phases run one by one on
    strided views)."""
    m = params.tile
    return (all(src is not None for _, src, _ in phases)
            and all(channels_last(sub, m) and not shares_chunks(sub, m) and sub.kernel == (3, 3)
                    for _, _, sub in phases)
            and x.flags.c_contiguous and out.flags.c_contiguous and x.dtype == out.dtype)


def _phases_fused(x: np.ndarray, w: np.ndarray, out: np.ndarray, phases: list, params: Params) -> np.ndarray | None:
    """The row phases of a dilated problem through one :func:`_fused` call, on the whole arrays.

    The kernels take each phase's rows as a first row and a step (measured on the dilated layer's
    kernels, one thread: 3.5 ms instead of 7.6 ms for a phase's input transform through a strided
    view, 1.6 ms instead of 2.4 ms for its output transform)."""
    sub, m = phases[0][2], params.tile
    parts = []
    for sel, src, ph in phases:
        th = tile_grid(ph, m)[0]
        x_rows = (src[0].start, src[0].step or 1, ph.x_shape[2])
        out_rows = (sel[0].start, sel[0].step or 1, ph.out_shape[2])
        parts.append((x, out, ph.pads[0][0], ph.pads[1][0], th, ph.out_shape[0] * th, x_rows, out_rows))
    packed = packed_gemm(sub)
    ut = kernel_transform(w, m, sub.dtype, 1, transposed=True, packed=packed, finite=True)
    if ut is None:  # the weight holds NaN or inf
        return None
    return out if _fused(parts, ut[:, 0], sub, params, tile_cols(sub, m), packed) else None


def _resolve(spec: ConvSpec, tile, block, threads, backend) -> Params:
    if tile is None or block is None or backend is None:
        from .. import planner  # the planner imports every algorithm; import it only when running

        chosen = planner.parameters("winograd", spec)
        tile = chosen.get("tile", 2) if tile is None else tile
        block = chosen.get("block", 1) if block is None else block
        backend = chosen.get("backend", "numpy") if backend is None else backend
        threads = chosen.get("threads") if threads is None else threads
    if tile not in tiles_for(spec):
        raise ValueError(f"{spec.func}: winograd tile must be one of {tiles_for(spec)} for this problem, got {tile!r}")
    if backend not in backends_for(spec, tile):
        raise ValueError(f"{spec.func}: winograd backend must be one of {backends_for(spec, tile)} for this problem "
                         f"with tile {tile}, got {backend!r}")
    return Params(int(tile), int(block), _threads.num_threads(threads, func=spec.func), backend)


def _run_numpy(xp: np.ndarray, w: np.ndarray, spec: ConvSpec, params: Params) -> np.ndarray:
    """The transforms as ``tensordot`` along each axis; ``xp`` is the padded input."""
    m, nd, g = params.tile, spec.nd, spec.groups
    at, _, bt = (t.astype(spec.dtype) for t in TRANSFORMS[m])
    a = m + 2
    t = tile_grid(spec, m)
    # Zeros on the high side so the tiles cover the padded input exactly: (N, C, *(m*t + 2)).
    extra = [(0, 0), (0, 0)] + [(0, m * tt + 2 - p) for tt, p in zip(t, xp.shape[2:])]
    xp = np.pad(xp, extra) if any(hi for _, hi in extra) else xp
    u = kernel_transform(w, m, spec.dtype, g)  # (P, G, Cog, Cg)
    c_out, cg = spec.out_shape[1], spec.w_shape[1]
    jobs = blocks(spec, m, params.block)
    images, rows = max((n1 - n0, i1 - i0) for n0, n1, i0, i1 in jobs)
    block_bytes = scratch_per_image(spec, m, "numpy") * images * rows // t[0]
    ensure_memory(spec, array_bytes(spec.out_shape, spec.dtype) + block_bytes * params.threads, "winograd")
    out = output_array(spec.out_shape, spec.dtype)

    def one(n0: int, n1: int, i0: int, i1: int) -> None:
        part = xp[n0:n1, :, m * i0:m * i1 + 2]  # (nb, C, rows, *rest)
        tiles = sliding_window_view(part, (a,) * nd, axis=tuple(range(2, 2 + nd)))  # (nb, C, *pos, *a)
        tiles = tiles[(slice(None), slice(None), *(slice(None, None, m),) * nd)]  # (nb, C, *t, *a)
        v = tiles
        for _ in range(nd):  # contract the first window axis, append its transform point axis
            v = np.tensordot(v, bt, axes=([2 + nd], [1]))
        nb, tb = n1 - n0, v.shape[2:2 + nd]
        ntiles = int(np.prod(tb))
        v = v.reshape(nb, g, cg, ntiles, a ** nd)  # (nb, G, Cg, T, P)
        v = v.transpose(4, 1, 2, 0, 3).reshape(a ** nd, g, cg, nb * ntiles)  # (P, G, Cg, nb*T)
        if cg == 1:  # depthwise: no sum over channels, a broadcast product
            prod = u * v  # (P, G, Cog, nb*T)
        else:
            prod = np.matmul(u, v)  # (P, G, Cog, nb*T)
        y = prod.reshape(*(a,) * nd, c_out, nb, *tb)  # (*a, C_out, nb, *t)
        for _ in range(nd):  # contract the first point axis, append the output axis
            y = np.tensordot(y, at, axes=([0], [1]))
        # (C_out, nb, *t, *m) -> (nb, C_out, t1, m1, t2, m2, ...)
        perm = (1, 0, *[ax for k in range(nd) for ax in (2 + k, 2 + nd + k)])
        y = y.transpose(perm).reshape(nb, c_out, *(tt * m for tt in tb))
        rows = min(m * i1, spec.out_shape[2]) - m * i0
        out[n0:n1, :, m * i0:m * i0 + rows] = y[(slice(None), slice(None), slice(0, rows),
                                                *(slice(0, o) for o in spec.out_shape[3:]))]

    _threads.run_parallel(one, jobs, params.threads)
    return out


def _run_jit(x: np.ndarray, w: np.ndarray, spec: ConvSpec, params: Params,
             out: np.ndarray | None = None) -> np.ndarray | None:
    """The compiled 2-D path, into ``out`` if given; None when ``x`` holds non-finite values.

    ``x`` and ``out`` may be strided views (a dilation phase): the kernels index them as they are.
    """
    from . import _winograd_jit as jit

    m, g = params.tile, spec.groups
    dt = spec.dtype
    if PAD_MODES[spec.padding_mode] == "constant" and spec.fillvalue == 0:
        strided_phase = out is not None and x.dtype == dt
        xs = x if strided_phase else np.ascontiguousarray(x, dtype=dt)
        (pt, _), (pl, _) = spec.pads
    else:
        xs, pt, pl = pad(x, spec), 0, 0
    cl = channels_last(spec, m)
    tw, dw, twp = tile_cols(spec, m)
    if cl and shares_chunks(spec, m):  # the weight is checked and transformed beside the first input transform
        packed = packed_gemm(spec)
        return _run_shared(xs, lambda: kernel_transform(w, m, dt, g, transposed=True, packed=packed, finite=True),
                           out, spec, params, pt, pl, (tw, dw, twp), packed)
    packed = cl and packed_gemm(spec)
    # (P, G, Cog, Cg), or (P, G, Cg, Cog) channels-last, or that packed (P, G, Cog/64, Cg, 64)
    u = kernel_transform(w, m, dt, g, transposed=cl, packed=packed, finite=True)
    if u is None:  # the weight holds NaN or inf
        return None
    if cl:
        return _run_fused(xs, u[:, 0], out, spec, params, pt, pl, (tw, dw, twp), packed)
    k = jit.constants(dt)
    to_v, from_m = jit.KERNELS[m]
    c_in, c_out, p = spec.x_shape[1], spec.out_shape[1], (m + 2) ** 2
    jobs = blocks(spec, m, params.block)
    width = max((n1 - n0) * (i1 - i0) * tw for n0, n1, i0, i1 in jobs)
    ensure_memory(spec, array_bytes(spec.out_shape, dt) + (c_in + c_out) * p * width * dt.itemsize, "winograd")
    out = output_array(spec.out_shape, dt) if out is None else out
    v_raw, m_raw = take_scratch(c_in * p * width * dt.itemsize), take_scratch(c_out * p * width * dt.itemsize)
    v_buf = v_raw[:c_in * p * width * dt.itemsize].view(dt)
    m_buf = m_raw[:c_out * p * width * dt.itemsize].view(dt)
    try:
        return _jit_blocks(xs, u, k, to_v, from_m, v_buf, m_buf, out, jobs, spec, params, pt, pl, (tw, dw, twp))
    finally:
        give_scratch(v_raw)
        give_scratch(m_raw)


def _jit_blocks(xs, u, k, to_v, from_m, v_buf, m_buf, out, jobs, spec, params, pt, pl, cols) -> np.ndarray | None:
    """Transform, multiply and transform back each block of work (see :func:`_run_jit`).

    ``cols = (tw, dw, twp)``: tiles per row, column dilation, tiles per row of one column phase.
    """
    tw, dw, twp = cols
    m, g = params.tile, spec.groups
    c_in, c_out, cg = spec.x_shape[1], spec.out_shape[1], spec.w_shape[1]
    cog, p = c_out // g, (m + 2) ** 2
    for n0, n1, i0, i1 in jobs:
        b = (n1 - n0) * (i1 - i0) * tw
        v = v_buf[:c_in * p * b].reshape(c_in, p, b)  # (C_in, P, B)
        mv = m_buf[:c_out * p * b].reshape(c_out, p, b)  # (C_out, P, B)
        top = m * i0 - pt  # first input row the block reads (negative: padding rows above the input)
        ok = _threads.run_parallel(to_v, [(xs, v, k, n0, n1, c0, c1, top, pl, i1 - i0, tw, dw, twp)
                                          for c0, c1 in _threads.split(0, c_in, params.threads)], params.threads)
        if not all(ok):
            return None
        vg = v.reshape(g, cg, p, b).transpose(2, 0, 1, 3)  # (P, G, Cg, B): strided 2-D slices BLAS takes as is
        mg = mv.reshape(g, cog, p, b).transpose(2, 0, 1, 3)  # (P, G, Cog, B)
        if cg == 1:  # depthwise: no sum over channels, a broadcast product
            np.multiply(u, vg, out=mg)
        else:
            np.matmul(u, vg, out=mg)
        _threads.run_parallel(from_m, [(mv, out, k, n0, n1, o0, o1, m * i0, i1 - i0, tw, dw, twp)
                                       for o0, o1 in _threads.split(0, c_out, params.threads)], params.threads)
    return out


def _cl_kernels(m: int, dtype: np.dtype) -> tuple[Callable, Callable, np.ndarray, np.ndarray]:
    """The channels-last kernels of F(``m``,3), input and output transform, and the constants each takes."""
    if m == 4:
        from . import _winograd_jit as jit

        k = jit.constants(dtype)
        return jit.input_f43_cl, jit.output_f43_cl, k, k
    from . import _winograd_f53_jit as jit53

    at, _, bt = TRANSFORMS[m]
    return jit53.input_f53_cl, jit53.output_f53_cl, bt.astype(dtype), at.astype(dtype)


def _run_fused(xs, ut, out, spec, params, pt, pl, cols, packed=False) -> np.ndarray | None:
    """The channels-last F(4,3) and F(5,3) path: each thread transforms, multiplies and transforms back its chunks.

    The tile rows of all images, ``r = n*th + i``, are split between the threads; each runs its
    rows in chunks of ``-params.block`` rows (``params.block`` images when positive) through its own
    ``V`` ``(P, B, C_in)`` and ``M = V @ U^T`` ``(P, B, C_out)``, which stay in its core's cache
    (:data:`FUSED_BYTES`). Measured on the resnet-3x3 layers against one GEMM per point over a
    whole block, both threads on each stage: 1.5-2x faster, as V and M no longer go to memory
    and back. The threads' GEMMs run at once, each on one BLAS thread (:func:`convdot._threads.blas_single`).
    ``cols = (tw, dw, twp)`` as in :func:`_jit_blocks`. Returns None when ``xs`` holds NaN or inf.
    """
    out = output_array(spec.out_shape, spec.dtype) if out is None else out
    th = tile_grid(spec, params.tile)[0]
    whole = (xs, out, pt, pl, th, spec.out_shape[0] * th, ALL_ROWS, ALL_ROWS)
    return out if _fused([whole], ut, spec, params, cols, packed) else None


def _fused(parts: list[tuple], ut: np.ndarray, spec: ConvSpec, params: Params, cols: tuple,
           packed: bool = False) -> bool:
    """:func:`_run_fused` of ``parts`` at once: one problem, or the row phases of a dilated one
    (shaped like ``spec`` but for their rows); False when an input held NaN/inf.

    A part is ``(xs, out, pt, pl, th, rows, x_rows, out_rows)``; ``x_rows`` and ``out_rows`` are
    ``(first, step, count)`` of the rows of ``xs`` and ``out`` it reads and writes (``(0, 1, -1)``:
    all), so a row phase runs on the whole contiguous arrays. The threads take chunks of tile rows
    as they finish one (:func:`convdot._threads.run_shared`), chunk ``j`` of every part before
    chunk ``j + 1``. Against fixed halves of the rows, in interleaved A/B runs on this machine's
    uneven cores: resnet-3x3-56 1.04-1.17x, dilated 0.99-1.15x, resnet-3x3-28 0.98x.
    """
    tw, dw, twp = cols
    c_in, c_out, threads, points = spec.x_shape[1], spec.out_shape[1], params.threads, (params.tile + 2) ** 2
    dt, (_, _, chunk, sizes) = spec.dtype, _chunks(spec, params, tw)
    to_v, from_m, k_in, k_out = _cl_kernels(params.tile, dt)
    identity = np.arange(points)  # M[p] is mv[p]
    longest = max(part[5] for part in parts)
    pieces = [(part, a, min(part[5], a + chunk)) for a in range(0, longest, chunk) for part in parts if a < part[5]]
    used = min(threads, len(pieces))
    ensure_memory(spec, array_bytes(spec.out_shape, dt) + sum(sizes) * dt.itemsize * used, "winograd")
    failed: list[bool] = []  # set by the thread that meets NaN/inf, so the others stop too
    if packed:
        from . import _gemm_jit

    def work(t: int, take: Callable[[], int]) -> bool:
        raw = take_scratch(sum(sizes) * dt.itemsize)
        try:
            flat = raw[:sum(sizes) * dt.itemsize].view(dt)
            v = flat[:sizes[0]].reshape(points, chunk * tw, c_in)
            mv = flat[sizes[0]:].reshape(points, chunk * tw, c_out)
            while (i := take()) < len(pieces) and not failed:
                (xs, out, pt, pl, th, _, x_rows, out_rows), a, b = pieces[i]
                if to_v(xs, v, k_in, a, b, a, 0, -pt, pl, th, tw, dw, twp, *x_rows):
                    failed.append(True)
                    return False
                if packed:
                    _gemm_jit.each_point(v, ut, mv, (b - a) * tw)
                else:
                    np.matmul(v[:, :(b - a) * tw], ut, out=mv[:, :(b - a) * tw])
                from_m(mv, identity, out, k_out, a, b, a, 0, 0, th, tw, dw, twp, *out_rows)
            return not failed
        finally:
            give_scratch(raw)

    with _threads.blas_single():
        return all(_threads.run_shared(work, used))


def _chunks(spec: ConvSpec, params: Params, tw: int) -> tuple[int, int, int, tuple[int, int]]:
    """Tile rows per image, in all and per chunk; elements of one chunk's ``V`` and ``M`` (when
    :func:`in_place`: ``V`` and each thread's one point of products)."""
    m = params.tile
    th, points = tile_grid(spec, m)[0], (m + 2) ** 2
    chunk = chunk_rows(spec, m, params.block)
    c_in, c_out = spec.x_shape[1], spec.out_shape[1]
    products = params.threads * chunk * tw * c_out if in_place(spec, m) else points * chunk * tw * c_out
    return th, spec.out_shape[0] * th, chunk, (points * chunk * tw * c_in, products)


def _call(t: int, fn: Callable[..., None], *args) -> None:
    """``fn(t, *args)``: a phase of :func:`convdot._threads.run_phases` whose jobs run different functions."""
    fn(t, *args)


def _run_shared(xs, transform, out, spec, params, pt, pl, cols, packed=False) -> np.ndarray | None:
    """:func:`_run_fused` for a large transformed kernel ``U``: the threads share each chunk, so
    that every chunk reads ``U`` once in all, not once per thread.

    Per chunk, one parallel region of three phases (:func:`convdot._threads.run_phases`): the
    threads transform the chunk's input together; then each takes the next transform point as it
    finishes one and multiplies ``M[p] = V[p] @ U[p]`` (all output channels: one large GEMM per
    point, so each point of ``U`` is read once), and they transform the products back together.
    ``transform()`` gives ``U`` as ``(P, 1, C_in, C_out)``, or None when the weight holds NaN or
    inf; it runs as a job of the first input phase, beside the input transform (resnet-3x3-14:
    checking the 2.4 MB weight against its copy takes 0.3-0.5 ms, the input transform 1 ms).
    With as many output channels as input (:func:`in_place`), the products go over the transformed
    input, so a chunk holds twice the tiles: each thread starts with one spare slot, writes
    ``M[p]`` there and takes ``V[p]``'s slot as its next spare, and the output transform finds
    ``M[p]`` through ``perm[p]`` (copying each ``M[p]`` back over ``V[p]`` instead moved 3.6 MB a
    call on resnet-3x3-14, 0.2-0.5 ms of the threads' time). Measured on
    resnet-3x3-14 against the threads splitting the output channels of chunks with separate ``V``
    and ``M``: 1.27-1.32x faster; taking points as they finish instead of 18 each, 1.05-1.10x
    (interleaved A/B); one region per chunk instead of one per phase, with the weight's check in
    the first, 6.6-6.8 -> 5.9-6.2 ms (median of calls 0.2 s apart).

    With ``packed`` (:func:`packed_gemm`), ``transform()`` gives ``U`` packed,
    ``(P, 1, C_out/64, C_in, 64)``, and the product phase is one job per thread: a compiled loop
    that takes points from a shared counter and keeps the spare-slot scheme itself
    (:func:`convdot.algorithms._gemm_jit.products`), so no thread waits for the GIL between
    points. resnet-3x3-14's 49 products: 1.70 ms against 2.1-2.7 with ``np.matmul`` per point.
    """
    tw, dw, twp = cols
    c_in, c_out, threads, points = spec.x_shape[1], spec.out_shape[1], params.threads, (params.tile + 2) ** 2
    dt, (th, rows, chunk, sizes) = spec.dtype, _chunks(spec, params, tw)
    to_v, from_m, k_in, k_out = _cl_kernels(params.tile, dt)
    ensure_memory(spec, array_bytes(spec.out_shape, dt) + sum(sizes) * dt.itemsize, "winograd")
    out = output_array(spec.out_shape, dt) if out is None else out
    raw = take_scratch(sum(sizes) * dt.itemsize)
    flat = raw[:sum(sizes) * dt.itemsize].view(dt)
    v = flat[:sizes[0]].reshape(points, chunk * tw, c_in)
    same = in_place(spec, params.tile)
    # M[p] is mv[perm[p]]: in V's slots and one spare per thread (in place), or an array of its own
    if same:
        mv = flat.reshape(points + threads, chunk * tw, c_out)
    else:
        mv = flat[sizes[0]:].reshape(points, chunk * tw, c_out)
    perm = np.arange(points)
    free = [0] * threads  # each thread's free slot: its spare, then the slot of the last point it multiplied
    ut: list[np.ndarray] = []  # U[:, 0], once the first phase has made it
    failed: list[bool] = []  # NaN or inf in the input or the weight: the later phases are skipped

    def weight(t: int) -> None:
        u = transform()
        if u is None:
            failed.append(True)
        else:
            ut.append(u[:, 0])

    def inputs(t: int, r0: int, r1: int, a: int) -> None:
        if to_v(xs, v, k_in, r0, r1, a, 0, -pt, pl, th, tw, dw, twp, *ALL_ROWS):
            failed.append(True)

    def product(t: int, p: int, nb: int) -> None:
        if failed:
            return
        if same:
            np.matmul(v[p, :nb], ut[0][p], out=mv[free[t], :nb])
            perm[p], free[t] = free[t], p
        else:
            np.matmul(v[p, :nb], ut[0][p], out=mv[p, :nb])

    def products(t: int, j: int, nb: int) -> None:  # job j of the packed GEMM: its own spare slot
        if not failed:
            _gemm_jit.products(v, ut[0], mv, nb, perm, points + j if same else -1, counter)

    def outputs(t: int, r0: int, r1: int, a: int) -> None:
        if not failed:
            from_m(mv, perm, out, k_out, r0, r1, a, 0, 0, th, tw, dw, twp, *ALL_ROWS)

    if packed:
        from . import _gemm_jit
    counter = np.zeros(1, np.int64)  # the next point the packed GEMM's jobs take

    try:
        with _threads.blas_single():
            for a in range(0, rows, chunk):
                b = min(rows, a + chunk)
                # pieces of rows, more than threads: the weight's job makes the first phase uneven
                parts = [(r0, r1, a) for r0, r1 in _threads.split(a, b, 2 * threads)]
                perm[:] = np.arange(points)
                free[:] = [points + t for t in range(threads)]
                first = ([(weight,)] if a == 0 else []) + [(inputs, *part) for part in parts]
                counter[0] = 0
                middle = (products, [(j, (b - a) * tw) for j in range(threads)]) if packed else \
                    (product, [(p, (b - a) * tw) for p in range(points)])
                _threads.run_phases([(_call, first), middle, (outputs, parts)], threads)
                if failed:
                    return None
    finally:
        give_scratch(raw)
    return out
