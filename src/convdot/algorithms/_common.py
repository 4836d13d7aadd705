"""Pieces every formulation shares: padding, the window view, direct sums at chosen outputs."""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import os
import threading
import weakref
from dataclasses import replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._spec import PAD_MODES, ConvSpec

#: Set to "0" to never use the compiled (numba) kernels, e.g. to compare them with the NumPy paths.
JIT_ENV = "CONVDOT_JIT"


def jit_available() -> bool:
    """True when numba is installed and compiled kernels are not disabled (``CONVDOT_JIT=0``)."""
    return os.environ.get(JIT_ENV, "1") != "0" and _numba_installed()


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


class NonFiniteInput(Exception):
    """NaN or inf met by a method asked to raise (``nonfinite="raise"``), before writing any output.

    A signal for ``auto`` to plan again, never seen by users (the class name says what, not "Error").
    """


def phase_cut(phase: int, step: int, lo: int, n: int, length: int) -> tuple[int, int, int]:
    """Where phase ``phase`` of a padded axis (every ``step``-th element from ``phase``) meets ``x``.

    The axis is ``lo`` padding elements, then ``n`` of ``x``; the phase is cut to ``length``
    elements. Returns ``(before, first, count)``: the phase's elements in the low padding, the
    index in ``x`` of its first element inside ``x``, and how many of its elements are in ``x``.
    """
    before = max(0, -(-(lo - phase) // step))
    first = phase + step * before - lo
    return before, first, max(0, min(len(range(first, n, step)), length - before))


def pad(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``x`` cast to the compute dtype and padded by ``spec.pads`` with ``spec.padding_mode``.

    Returns a new array (never a view of the user's input) of shape ``(N, C, *spec.padded_shape)``.
    """
    x = np.asarray(x, dtype=spec.dtype)
    width = ((0, 0), (0, 0), *spec.pads)
    if not any(lo or hi for lo, hi in spec.pads):
        return np.array(x, dtype=spec.dtype, copy=True, order="C")
    mode = PAD_MODES[spec.padding_mode]
    if mode == "constant":  # a filled array and one copy into it: a third faster than np.pad here
        out = np.full((*x.shape[:2], *spec.padded_shape), spec.fillvalue, dtype=spec.dtype)
        out[(slice(None), slice(None), *(slice(lo, lo + n) for (lo, _), n in zip(spec.pads, x.shape[2:])))] = x
        return out
    return np.pad(x, width, mode=mode)


def windows(xp: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """A read-only strided view of every receptive field of the padded input.

    Returns shape ``(N, C, *out, *k)``: ``view[n, c, i, k] == xp[n, c, i*stride + k*dilation]``.
    """
    nd = spec.nd
    span = tuple(d * (k - 1) + 1 for d, k in zip(spec.dilation, spec.kernel))
    v = sliding_window_view(xp, span, axis=tuple(range(2, 2 + nd)))  # (N, C, *positions, *span)
    out = spec.out_shape[2:]
    sel = (slice(None), slice(None))
    sel += tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, spec.stride))
    sel += tuple(slice(None, None, d) for d in spec.dilation)
    return v[sel]


def tap_index(tap: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
              out_sp: tuple[int, ...], first: int = 0) -> tuple[slice, ...]:
    """Spatial slices of the padded input that kernel tap ``tap`` multiplies, for a block of outputs.

    The block is output rows ``first : first + out_sp[0]`` (first spatial axis) and all of the
    other axes; element ``i`` of the slice is ``xpad[(first + i)*stride + tap*dilation]``.
    """
    index = []
    for axis, (t, s, d, o) in enumerate(zip(tap, stride, dilation, out_sp)):
        start = t * d + (first * s if axis == 0 else 0)
        index.append(slice(start, start + (o - 1) * s + 1, s))
    return tuple(index)


def grouped(a: np.ndarray, groups: int) -> np.ndarray:
    """Split the channel axis (axis 1) into ``(groups, C/groups)``."""
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, *a.shape[2:])


def accumulate_dtype(dtype: np.dtype) -> np.dtype:
    """A wider dtype for oracle sums: float32 -> float64, complex64 -> complex128."""
    if dtype.kind == "c":
        return np.dtype(np.complex128)
    return np.dtype(np.int64) if dtype.kind == "i" else np.dtype(np.float64)


def direct_at(xp: np.ndarray, w: np.ndarray, spec: ConvSpec, index: tuple[np.ndarray, ...]) -> np.ndarray:
    """The direct sum at chosen output elements (used to restore non-finite outputs).

    ``index`` is a tuple of integer arrays ``(n, o, *i)`` as from ``np.nonzero``; returns one value
    per element, each the dot product of its receptive field with its filter.
    """
    n, o = index[0], index[1]
    g = o // (spec.w_shape[0] // spec.groups)
    win = windows(xp, spec)  # (N, C, *out, *k)
    win = grouped(win, spec.groups)  # (N, G, Cg, *out, *k)
    fields = win[(n, g, slice(None), *index[2:])]  # (E, Cg, *k)
    filt = w[o]  # (E, Cg, *k)
    e = len(n)
    return np.einsum("ek,ek->e", fields.reshape(e, -1), filt.reshape(e, -1))


def finite_fixup(out: np.ndarray, xp: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Put NaN/inf exactly where the direct sum has them, after a transform-based method.

    A transform (FFT, Winograd) spreads one NaN over many outputs. The outputs whose receptive
    field holds a non-finite input are recomputed directly; ``x`` and ``w`` must already have been
    computed with their non-finite entries replaced by zeros; ``xp`` is the padded input *with*
    its non-finite entries.
    """
    from . import sliding  # the window sum of the mask marks every output a non-finite input reaches

    if out.dtype.kind not in "fc":
        return out
    bad_x = ~np.isfinite(xp)
    if not np.isfinite(w).all():
        touched = np.ones(out.shape, dtype=bool)
    elif bad_x.any():
        mask = bad_x.astype(np.float64)
        ones = np.ones(spec.w_shape, dtype=np.float64)
        mspec = replace(spec, pads=((0, 0),) * spec.nd, dtype=np.dtype(np.float64), padding_mode="zeros",
                        x_shape=mask.shape)
        touched = sliding.run(mask, ones, mspec) > 0
    else:
        return out
    idx = np.nonzero(touched)
    if len(idx[0]):  # none when the non-finite inputs sit where no output reads (between strides)
        out[idx] = direct_at(xp, w, spec, idx)
    return out


# --------------------------------------------------------------------------- memory

#: Peak extra memory of a method, as a multiple of its input plus output bytes (the budget chunking keeps to).
MEMORY_FACTOR = 2

#: Scratch never shrinks below this (one block must hold at least one row of work), whatever the budget.
MIN_BLOCK_BYTES = 1 << 16


def array_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of an array of ``shape`` and ``dtype``."""
    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize  # math.prod: np.prod costs 4 us a call


def io_bytes(spec: ConvSpec) -> int:
    """Input plus output bytes of ``spec`` in its compute dtype (what memory budgets are measured against)."""
    return array_bytes(spec.x_shape, spec.dtype) + array_bytes(spec.out_shape, spec.dtype)


def scratch_budget(spec: ConvSpec, committed: int = 0) -> int:
    """Bytes a method may use for blocks, once the output and ``committed`` bytes (padded copy...) exist.

    The whole call stays within ``MEMORY_FACTOR * (input + output)`` bytes of new allocations
    (the output included), never below :data:`MIN_BLOCK_BYTES`.
    """
    out = array_bytes(spec.out_shape, spec.dtype)
    # 5% of the budget is left to the caller (planner checks, bias, dtype casts)
    return max(MIN_BLOCK_BYTES, int(0.95 * MEMORY_FACTOR * io_bytes(spec)) - out - committed)


def weight_rows(w: np.ndarray, spec: ConvSpec, share: int) -> tuple[np.ndarray, int]:
    """``W_row`` ``(G, C_out/G, C_in/G * K)`` for GEMMs in the compute dtype, and how many output
    channels (of every group) to convert at a time.

    The weight's own array (a view) when it has the compute dtype; converted whole when the copy
    takes at most ``share`` bytes; else as it is, to be converted the returned number of output
    channels at a time, each within ``share``: a weight larger than the data is never copied whole
    (float64 ``x`` with a float32 weight on N4 C512 14x14 peaked at 4.7x input + output when it was).
    """
    g = spec.groups
    rows = np.asarray(w).reshape(g, spec.w_shape[0] // g, -1)
    item = spec.dtype.itemsize
    if rows.dtype == spec.dtype:
        return rows, rows.shape[1]
    if rows.size * item <= share:
        return rows.astype(spec.dtype), rows.shape[1]
    return rows, max(1, share // (g * rows.shape[2] * item))


#: Freed outputs of at least :data:`POOL_MIN_BYTES` are kept for the next output of the same size,
#: up to this many bytes in all. A fresh output's pages are mapped and zeroed by the OS on first
#: touch; glibc hands a freed block back without that, unless something else (another library's
#: allocator) has made it return the memory to the OS in between: right after a torch call, the
#: depthwise layer's 26 MB output took 630 page faults and 3-4 ms of its 4 ms.
POOL_BYTES = 256 << 20
POOL_MIN_BYTES = 1 << 20
#: Pooled outputs start on a cache line, so that the kernels can write whole lines past the caches
#: (see :mod:`convdot.algorithms._stream_jit`).
ALIGN = 64

_pool: dict[int, list[np.ndarray]] = {}
_pool_held = [0]  # bytes kept, in a list so the finalizers can change it
_pool_lock = threading.Lock()


def output_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` for a method's output, from a kept block when one of its size is free.

    The array is a view of a 1-D byte block; when the array and every view of it are gone, the
    block goes back to the pool (while the pool holds under :data:`POOL_BYTES`). It is writeable,
    C-contiguous and starts on a 64-byte line (:data:`ALIGN`), but does not own its data
    (``flags.owndata`` is False).
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < POOL_MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    with _pool_lock:
        free = _pool.get(nbytes + ALIGN)
        block = free.pop() if free else None
        if block is not None:
            _pool_held[0] -= block.nbytes
    if block is None:
        block = np.empty(nbytes + ALIGN, dtype=np.uint8)
    # Views of an ndarray name the array owning the memory as their base, so a finalizer on `out`
    # could run while a view of it lives. Every view does keep this ctypes wrapper alive: the block
    # goes back only when the wrapper dies.
    holder = (ctypes.c_char * nbytes).from_buffer(block, -block.ctypes.data % ALIGN)
    weakref.finalize(holder, _keep, block).atexit = False
    return np.frombuffer(holder, dtype=dtype, count=math.prod(shape)).reshape(shape)


def _keep(block: np.ndarray) -> None:
    with _pool_lock:
        if _pool_held[0] + block.nbytes <= POOL_BYTES:
            _pool.setdefault(block.nbytes, []).append(block)
            _pool_held[0] += block.nbytes


def even_part(total: int, most: int) -> int:
    """The size of the fewest near-equal parts of ``total`` that are at most ``most`` (at least 1)."""
    parts = -(-total // max(1, min(total, most)))
    return -(-total // parts)


def clear_pool() -> None:
    """Let go of every kept output block."""
    with _pool_lock:
        _pool.clear()
        _pool_held[0] = 0


#: Scratch buffers kept between calls (bytes): a fresh 10 MB buffer costs its page faults on
#: every call, which is a fifth of a ResNet layer's time.
SCRATCH_KEEP = 64 << 20
_spare: list[np.ndarray] = []


def take_scratch(nbytes: int) -> np.ndarray:
    """A scratch buffer of at least ``nbytes`` bytes (uint8), reused from an earlier call when one fits.

    Hand it back with :func:`give_scratch` when done (in a ``finally``), or let it go.
    """
    with _pool_lock:
        for i, buf in enumerate(_spare):  # sorted by size: the first that fits is the smallest
            if buf.nbytes >= nbytes:
                return _spare.pop(i)
    return np.empty(nbytes, dtype=np.uint8)


def give_scratch(buf: np.ndarray) -> None:
    """Keep ``buf`` for a later call, within :data:`SCRATCH_KEEP` bytes (smallest dropped first)."""
    with _pool_lock:
        _spare.append(buf)
        _spare.sort(key=lambda b: b.nbytes)
        while sum(b.nbytes for b in _spare) > SCRATCH_KEEP:
            _spare.pop(0)


def clear_scratch() -> None:
    """Let go of every kept scratch buffer."""
    with _pool_lock:
        _spare.clear()


def available_memory() -> int | None:
    """Bytes the OS can still hand out without swapping (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


#: Below this many bytes :func:`ensure_memory` does not ask the OS (reading /proc/meminfo costs
#: 0.1-0.2 ms, a tenth of a small layer).
SMALL_NEED = 64 << 20


def ensure_memory(spec: ConvSpec, need: int, method: str) -> None:
    """Raise MemoryError, naming the sizes, when ``need`` bytes cannot be had.

    Called before the output and the first block are allocated, so a problem that cannot fit fails
    with a message instead of being killed by the OS once the pages are touched.
    """
    if need < SMALL_NEED:
        return
    avail = available_memory()
    if avail is not None and need > avail:
        raise MemoryError(
            f"{spec.func}: method={method!r} needs {_gib(need)} (output {spec.out_shape} in {spec.dtype}, "
            f"{_gib(array_bytes(spec.out_shape, spec.dtype))}, plus working blocks) but only {_gib(avail)} "
            "is available; split the batch or the image, or use convdot.dask")
