"""Overlap-save blocks streamed through each thread's cache, for one channel pair per group.

Single-channel filters and depthwise layers need no sum over channels, so a block's whole life,
copied out of the input, transformed, multiplied by its channel's kernel spectrum, transformed back
and its exact outputs written, fits in one core's cache. Each thread takes the next few blocks as
it finishes some (:func:`convdot._threads.run_shared`) and runs that life on one FFT worker, instead
of every stage running over a batch of blocks on all workers, whose spectra (9.5 MB for 18 blocks of
256x256 float64 points) went to memory and back between the stages. Blocks are copied straight from
the input, with the constant padding filled in, so the padded copy of the input is not made either.

Measured against the batched path (best of 7, interleaved, 2 threads), as old time / new time:
2048x2048 float64 with k = 15, 31, 63: 1.51x, 1.75x, 1.82x (k31: 77 ms against 136; SciPy's
fftconvolve took 270 ms beside them); the same with float32, stride 2, or 'reflect' padding: 1.46x,
1.56x, 1.31x; a 128^3 float32 volume, 9^3 kernel: 1.54x; N2 C8 128x128 9x9 depthwise: 1.56x; a
2^20-sample signal, 101 taps: 1.18x. Peak memory on the k31 filter: 0.57x input + output.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from .. import _threads
from .._spec import PAD_MODES, ConvSpec
from ._common import (
    NonFiniteInput,
    array_bytes,
    ensure_memory,
    finite_fixup,
    give_scratch,
    output_array,
    pad,
    take_scratch,
)

#: Transform points per work item: small blocks are transformed a few at a time, so each call does
#: enough work to hide its Python overhead while the item (about 32 bytes a point) stays in L2.
ITEM_POINTS = 1 << 16


def per_item(m: tuple[int, ...]) -> int:
    """Blocks of ``m`` points per work item (see :data:`ITEM_POINTS`)."""
    return max(1, ITEM_POINTS // math.prod(m))


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec, choice: tuple[tuple[int, ...], tuple[int, ...]],
        nonfinite: str = "fixup") -> np.ndarray:
    """Overlap-save of ``spec`` (one input and one output channel per group) with transform lengths
    ``M`` and output steps ``L`` per axis (``choice``, as :func:`convdot.algorithms.fft.run_blocked`)."""
    from .fft import _fft_dtype, _valid_len, kernel_spectrum

    m, step = choice
    nd, g = spec.nd, spec.groups
    n, c = spec.x_shape[:2]
    ft = _fft_dtype(spec)
    complex_ = ft.kind == "c"
    ctype = np.result_type(ft, np.complex64)  # the spectra's dtype
    wk = np.asarray(w)
    w_finite = wk.dtype.kind in "iub" or bool(np.isfinite(wk).all())
    if nonfinite == "raise" and not w_finite:
        raise NonFiniteInput(f"{spec.func}: x or weight holds NaN or inf")
    if not w_finite:
        wk = np.where(np.isfinite(wk), wk, 0)
    spectra = kernel_spectrum(wk, spec, m)  # (*F, G, 1, 1)
    fshape = spectra.shape[:nd]
    kf = np.ascontiguousarray(spectra.reshape(-1, g).T).reshape(g, *fshape)  # (G, *F): channel j's is kf[j]
    del spectra
    constant = PAD_MODES[spec.padding_mode] == "constant"
    nblk = tuple(-(-v // s) for v, s in zip(_valid_len(spec), step))
    per_image = math.prod(nblk)
    units = n * c * per_image
    per = min(units, per_item(m))
    items = -(-units // per)
    threads = min(_threads.num_threads(), items)
    keep = tuple(lst // s for lst, s in zip(step, spec.stride))  # outputs per block per axis
    item_bytes = per * math.prod(m) * ft.itemsize * (2 if complex_ else 3)  # the blocks, their spectra, outputs
    copy = 0 if constant else array_bytes((n, c, *spec.padded_shape), spec.dtype)  # the padded copy
    ensure_memory(spec, copy + array_bytes(spec.out_shape, spec.dtype) + item_bytes * threads, "fft")
    if constant:  # copy blocks from x, filling in the padding
        src, lows, fill = x, tuple(lo for lo, _ in spec.pads), spec.fillvalue
    else:  # reflections and wraps: from the padded copy
        src, lows, fill = pad(x, spec), (0,) * nd, 0
    sizes = src.shape[2:]
    out = output_array(spec.out_shape, spec.dtype)
    check = ft.kind in "fc" and src.dtype.kind in "fc"
    found: list[bool] = []  # NaN/inf met in some block

    def unit_of(u: int) -> tuple[int, int, tuple[int, ...]]:
        image_channel, b = divmod(u, per_image)
        return image_channel // c, image_channel % c, np.unravel_index(b, nblk)

    def gather(u: int, buf: np.ndarray) -> None:
        i, ch, b = unit_of(u)
        lo = [bi * s - low for bi, s, low in zip(b, step, lows)]  # first input index per axis
        have = [(max(0, a), min(size, a + mm)) for a, size, mm in zip(lo, sizes, m)]
        if any(a1 <= a0 for a0, a1 in have):
            buf.fill(fill)
            return
        if any(a0 > a or a1 < a + mm for (a0, a1), a, mm in zip(have, lo, m)):
            buf.fill(fill)
        buf[tuple(slice(a0 - a, a1 - a) for (a0, a1), a in zip(have, lo))] = \
            src[(i, ch, *(slice(a0, a1) for a0, a1 in have))]

    def scatter(u: int, y: np.ndarray) -> None:
        i, ch, b = unit_of(u)
        dst, part = [i, ch], []
        for bi, k, s, o in zip(b, keep, spec.stride, spec.out_shape[2:]):
            first = bi * k
            count = min(k, o - first)
            dst.append(slice(first, first + count))
            part.append(slice(0, (count - 1) * s + 1, s))
        block = y[tuple(part)]
        out[tuple(dst)] = np.rint(block) if spec.dtype.kind == "i" else block

    # per thread: the blocks, their spectra and the blocks transformed back. NumPy's FFTs write into
    # kept scratch (scipy.fft returned new arrays, whose pages the OS faulted in afresh for every
    # item: 5300 faults a call on the k15 filter, a tenth of its time)
    shapes = [((per, *m), ft), ((per, *m[:-1], m[-1] if complex_ else m[-1] // 2 + 1), ctype), ((per, *m), ft)]
    nbytes = [math.prod(shape) * dt.itemsize for shape, dt in shapes]
    starts = list(itertools.accumulate((-(-b // 64) * 64 for b in nbytes), initial=0))  # each 64-byte aligned

    def work(t: int, take: Callable[[], int]) -> None:
        raw = take_scratch(starts[-1])
        try:
            _work(take, *(raw[a:a + b].view(dt).reshape(shape) for a, b, (shape, dt) in zip(starts, nbytes, shapes)))
        finally:
            give_scratch(raw)

    def _work(take: Callable[[], int], buf: np.ndarray, spectra_buf: np.ndarray, y_buf: np.ndarray) -> None:
        axes = tuple(range(1, 1 + nd))
        while (j := take()) < items and not (found and nonfinite == "raise"):
            u0, u1 = j * per, min(units, (j + 1) * per)
            blocks = buf[:u1 - u0]
            for q, u in enumerate(range(u0, u1)):
                gather(u, blocks[q])
            if check and not np.isfinite(blocks).all():
                found.append(True)
                if nonfinite == "raise":
                    return
                blocks[~np.isfinite(blocks)] = 0
            sp, y = spectra_buf[:u1 - u0], y_buf[:u1 - u0]
            if complex_:
                np.fft.fftn(blocks, axes=axes, out=sp)
            else:
                np.fft.rfftn(blocks, axes=axes, out=sp)
            for q, u in enumerate(range(u0, u1)):
                sp[q] *= kf[(u // per_image) % c]
            if complex_:
                np.fft.ifftn(sp, axes=axes, out=y)
            else:
                np.fft.irfftn(sp, s=m, axes=axes, out=y)
            for q, u in enumerate(range(u0, u1)):
                scatter(u, y[q])

    _threads.run_shared(work, threads)
    if found and nonfinite == "raise":
        raise NonFiniteInput(f"{spec.func}: x or weight holds NaN or inf")
    if spec.dtype.kind == "i" or not (found or not w_finite):
        return out
    return finite_fixup(out, pad(x, spec), np.asarray(w, dtype=spec.dtype), spec)
