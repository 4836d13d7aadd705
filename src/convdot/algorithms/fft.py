"""FFT: correlation as a pointwise product in the frequency domain, whole or in blocks.

For stride 1, ``corr[i] = sum_k x[i+k] w[k]`` is the inverse FFT of ``X * conj(FFT(conj(w)))``:
a circular correlation of length ``M`` equals the linear one at the outputs ``i < M - span + 1``,
since no tap wraps around there. The sum over input channels is a matrix multiply per frequency
(a plain product when each group has one input and one output channel). Strides subsample the
stride-1 result. Real inputs use real transforms (``rfftn``, half the spectrum) on
``CONVDOT_NUM_THREADS`` workers, float32 stays float32 and transform lengths are SciPy's
next fast sizes.

Blocks (overlap-save, the dual of overlap-add): when the kernel is much smaller than the input,
the stride-1 output is cut into blocks of ``L`` positions per axis; block ``j`` needs the input
``xpad[j*L : j*L + M]`` with ``M = L + span - 1``, and its first ``L`` circular outputs are exact.
Blocks overlap in the input instead of the output, so every output is written once (no
read-modify-write of overlapping tails, which overlap-add needs), the kernel spectrum is only
``M`` long, and blocks are transformed in batches whose size keeps the scratch within
``MEMORY_FACTOR * (input + output)`` bytes. :func:`blocks` picks ``M`` by the transform count per
output; the whole array is the special case of one block.

With one input and one output channel per group (single-channel filters, depthwise layers) and
blocks of at least :data:`STREAM_MIN_POINTS` points, each thread instead takes a few blocks at a
time through their whole life in its own cache (:mod:`._fft_streamed`): 1.3-1.8x faster on large
images and volumes, and no padded copy of the input.

Memory: the padded input and the output are held whole; blocks and images are batched so the rest
stays within the budget. The kernel spectrum (``C_out * C_in/G`` half-spectra of ``M`` points) is
held whole when it takes at most half the budget, else made for chunks of output channels, again
for every batch (:func:`_batch`): on layers with many channels and small images it outweighed the
data 3.5-230x (N2 C64 28x28 3x3 peaked at 22x input + output, 1.7x now). Where even one block of
every input channel outweighs the budget (one or two images of many channels: N1 C256 14x14 3x3,
N2 C32 24x24 5x5 groups=4 peaked at 2.2x), the input channels are transformed a chunk at a time too,
again for every chunk of output channels, whose products are summed over them
(:func:`_input_chunks`; 1.7x now). That costs transforms, and the planner gives such layers to
im2col or Winograd anyway (25-30x faster there).

Integers are transformed in float64 and rounded, which is exact while the estimated rounding
error stays far below 0.5 (checked by :func:`unsupported`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view

from .. import _threads
from .._spec import PAD_MODES, ConvSpec
from . import _fft_streamed
from ._common import (
    NonFiniteInput,
    array_bytes,
    ensure_memory,
    even_part,
    finite_fixup,
    output_array,
    pad,
    scratch_budget,
)

_EPS64 = float(np.finfo(np.float64).eps)

#: One plane of the kernel spectrum against one of the input's, in time: the kernel's are
#: transformed along strided axes, a few dozen at a time (:func:`kernel_spectrum`), 33-42 us each for
#: 72x72 and 32x144 points here, 6-9x the model's rate; it matters when they are made per batch.
KERNEL_PLANE_COST = 7.0

#: Smallest block transform length worth its per-call overhead.
MIN_BLOCK = 32
#: Fixed cost of one block (Python calls to copy it out), in flops of :func:`cost_simple`.
BLOCK_OVERHEAD = 2.0e5
#: An inverse real transform (``irfftn``, complex to real) over a batch of blocks, relative to the
#: forward one: 1.8-2.2x in scipy.fft's pocketfft on the machine of :data:`convdot.planner.MACHINE`
#: (2026-11-24; 2048x2048 float64 image, blocks of 128x256 and 256x256).
INVERSE_COST = 2.0
#: Blocks of at least this many points, with one channel pair per group, are streamed through each
#: thread's cache (:mod:`._fft_streamed`). Smaller ones are copied out and transformed in batches:
#: streamed one whole 64x64 image at a time, N8 C64 56x56 7x7 depthwise ran 0.72-0.81x as fast,
#: its per-block Python calls outweighing the transforms; from 144x144 points streaming was 1.0-1.8x.
STREAM_MIN_POINTS = 1 << 14


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec, *, nonfinite: str = "fixup") -> np.ndarray:
    """FFT correlation of the padded input with the (dilated) kernel; ``(N, C_out, *out)``.

    ``nonfinite="raise"``: raise :class:`~convdot.algorithms.NonFiniteInput` when ``x`` or ``w``
    holds NaN or inf (what ``auto`` asks for when it left that check to the FFT, which reads every
    value of the padded input anyway): before any transform, or, when the blocks are streamed, at
    the first block that holds one; ``"fixup"``: transform zeros in their place and put the direct
    sums back.
    """
    if nonfinite not in ("fixup", "raise"):
        raise ValueError(f"{spec.func}: fft nonfinite must be 'fixup' or 'raise', got {nonfinite!r}")
    return run_blocked(x, w, spec, blocks(spec), nonfinite=nonfinite)


def unsupported(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> str | None:
    """Integers too large for an exactly-rounded float64 transform."""
    if spec.dtype.kind != "i":
        return None
    xa = np.abs(np.asarray(x, dtype=np.float64))
    wa = np.abs(np.asarray(w, dtype=np.float64))
    size = float(np.prod([p + k for p, k in zip(spec.padded_shape, spec.kernel)]))
    est = _EPS64 * 8 * np.log2(size + 2) * np.sqrt((xa * xa).sum()) * np.sqrt((wa * wa).sum())
    if est > 0.05:
        return "integer inputs are too large to be computed exactly through a float64 FFT"
    return None


# --------------------------------------------------------------------------- block choice


def span(spec: ConvSpec) -> tuple[int, ...]:
    """Extent of the dilated kernel per axis: ``d*(k-1) + 1``."""
    return tuple(d * (k - 1) + 1 for d, k in zip(spec.dilation, spec.kernel))


def _valid_len(spec: ConvSpec) -> tuple[int, ...]:
    """Stride-1 outputs needed per axis: up to the last strided output."""
    return tuple((o - 1) * s + 1 for o, s in zip(spec.out_shape[2:], spec.stride))


def _candidates(span_a: int, padded: int, valid: int, stride: int, real: bool) -> list[tuple[int, int]]:
    """``(M, L)`` pairs for one axis: block transforms of a few sizes, and the whole axis."""
    whole = sfft.next_fast_len(padded, real=real)
    out = {(whole, -(-valid // stride) * stride)}  # one block covering every output
    m = max(MIN_BLOCK, 1 << (2 * span_a - 1).bit_length())
    while m < whole:
        step = (m - span_a + 1) // stride * stride  # a multiple of the stride, so blocks stay on the output grid
        if step >= stride:
            out.add((m, step))
        m *= 2
    return sorted(out)


def streamed(spec: ConvSpec, m: tuple[int, ...]) -> bool:
    """True when :func:`run_blocked` streams blocks of ``m`` points (see :data:`STREAM_MIN_POINTS`)."""
    return spec.w_shape[1] == 1 and spec.out_shape[1] == spec.groups and math.prod(m) >= STREAM_MIN_POINTS


def cost(spec: ConvSpec, choice: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> dict[str, float]:
    """Work of :func:`run` on ``spec`` with block lengths ``choice = (M, L)`` (default :func:`blocks`).

    Returns
    -------
    dict
        ``fft`` flops of all transforms (``2.5 M log2 M`` per real transform of ``M`` points, twice
        that for complex data, inverse real ones :data:`INVERSE_COST` times that, float64 not
        scaled), ``gemm`` flops of the per-frequency channel products, ``bytes`` moved by the
        element-wise passes (the extended input, spectra, block outputs, output writes, and new
        arrays' first touch), ``blocks`` how many blocks, ``transforms`` how many batched transform calls
        (and channel products), ``matrices`` how many small matrix products the per-frequency channel
        GEMMs hold. A kernel spectrum made in chunks (:func:`_batch`) is made again for every batch.
    """
    m, step = choice or blocks(spec)
    n, c = spec.x_shape[:2]
    c_out, cg = spec.out_shape[1], spec.w_shape[1]
    real = spec.dtype.kind != "c"
    nblocks = math.prod(-(-v // s) for v, s in zip(_valid_len(spec), step))
    points = math.prod(m)
    per = (2.5 if real else 5.0) * points * math.log2(max(points, 2))
    freqs = points // 2 + 1 if real else points
    inverse = INVERSE_COST if real else 1.0
    units, _, co, ci = _batch(spec, m)
    batches = max(1, -(-nblocks * n // units))
    g = spec.groups
    chunks = g * -(-(c_out // g) // co) if co < c_out // g else -(-c_out // co)
    parts_in = -(-cg // ci)  # input chunks per output chunk, each transformed again for every output chunk
    plain = cg == 1 and c_out == g  # one channel pair per group: a plain product, no GEMM
    # every chunk's groups (and input chunks) x frequencies
    matrices = 0 if plain else batches * freqs * max(g, chunks) * parts_in
    kernel_planes = KERNEL_PLANE_COST * c_out * cg * (batches if chunks > 1 else 1)
    inputs = n * c if parts_in == 1 else n * cg * chunks
    planes = nblocks * (inputs + inverse * n * c_out) + kernel_planes
    itemsize = 16 if spec.dtype.itemsize >= 8 or spec.dtype.kind == "i" else 8
    gemm = 8.0 * n * c_out * cg * freqs * nblocks
    # spectra: the input's written, the products' read and written
    moved = float(nblocks * (n * c + 2 * n * c_out) * freqs * itemsize)
    # the extended input (x read; written, checked for NaN/inf, first touched), the input spectra
    # (first touched), the blocks' outputs (written by the inverse transform, read back, first
    # touched) and the output (written, first touched): every new array is paged in once
    real_item = itemsize // 2 if real else itemsize
    ext = n * c * math.prod(_ext_shape(spec, m, step)) * real_item
    spectra = nblocks * n * c * freqs * itemsize
    blocks_out = nblocks * n * c_out * points * real_item
    out = math.prod(spec.out_shape) * spec.dtype.itemsize
    moved += float(math.prod(spec.x_shape) * spec.dtype.itemsize + 3 * ext + spectra + 3 * blocks_out + 2 * out)
    if streamed(spec, m):  # blocks copied from x (or the padded copy) and back, their spectra in cache
        units = nblocks * n * c
        padded = 0 if PAD_MODES[spec.padding_mode] == "constant" else 3 * ext
        return {"fft": per * planes, "gemm": 0.0, "blocks": float(units), "matrices": 0.0,
                "bytes": float(math.prod(spec.x_shape) * spec.dtype.itemsize + padded + units * points * real_item
                               + 2 * out),
                "transforms": float(-(-units // _fft_streamed.per_item(m)))}
    return {"fft": per * planes, "gemm": gemm, "bytes": moved, "blocks": float(nblocks),
            "transforms": float(batches * (2 if chunks == 1 else 1 + (1 + 2 * parts_in) * chunks)),
            "matrices": float(matrices)}


def describe(spec: ConvSpec) -> str:
    """The blocks and the kernel spectrum's chunks of :func:`run` on ``spec``, in words (for ``convdot plan``)."""
    m, step = blocks(spec)
    nblocks = math.prod(-(-v // s) for v, s in zip(_valid_len(spec), step))
    units, _, co, ci = _batch(spec, m)
    points = "x".join(str(n) for n in m)
    text = (f"whole-array transforms of {points} points" if nblocks == 1
            else f"overlap-save blocks of {points} points, {nblocks} per image")
    if streamed(spec, m):
        per = _fft_streamed.per_item(m)
        text += f", streamed through each thread's cache {per} block{'s' if per != 1 else ''} at a time"
        return text + (" (no padded copy of the input)" if PAD_MODES[spec.padding_mode] == "constant" else "")
    text += f", {units} block{'s' if units != 1 else ''} per batch"
    if co < spec.out_shape[1]:
        text += f", kernel spectrum in chunks of {co} output channel{'s' if co != 1 else ''} made for each batch"
    if ci < spec.w_shape[1]:
        text += f", {ci} input channel{'s' if ci != 1 else ''} transformed at a time"
    return text


def blocks(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Transform length ``M`` and output step ``L`` per axis with the least estimated work.

    Candidates per axis are powers of two from twice the kernel span and the whole padded axis;
    blocks win when the kernel is small against the input (fewer flops per output, spectra that
    stay in cache). Measured here (scipy.fft, float64, 2048x2048 image, k = 15 and 31): blocks of
    256 took 0.4-0.6x the time of the whole-array transform, whose 2160x2160 points fall out of
    L2, and blocks of 64 paid for their number in per-block calls; the model charges both.
    """
    real = spec.dtype.kind != "c"
    per_axis = [_candidates(sp, p, v, s, real)
                for sp, p, v, s in zip(span(spec), spec.padded_shape, _valid_len(spec), spec.stride)]
    best, best_cost = None, math.inf
    for combo in itertools.product(*per_axis):
        m = tuple(ml[0] for ml in combo)
        step = tuple(ml[1] for ml in combo)
        nblocks = math.prod(-(-v // s) for v, s in zip(_valid_len(spec), step))
        # transforms past 2**18 points leave L2 and slow down per flop; every block costs Python calls
        slow = 1.0 + 0.25 * max(0.0, math.log2(math.prod(m)) - 18)
        work = cost_simple(spec, m, step) * slow + BLOCK_OVERHEAD * nblocks * spec.x_shape[0]
        if work < best_cost:
            best, best_cost = (m, step), work
    return best


def cost_simple(spec: ConvSpec, m: tuple[int, ...], step: tuple[int, ...]) -> float:
    """Transform plus channel-product flops of one choice (what :func:`blocks` minimises)."""
    n, c = spec.x_shape[:2]
    c_out, cg = spec.out_shape[1], spec.w_shape[1]
    nblocks = math.prod(-(-v // s) for v, s in zip(_valid_len(spec), step))
    points = math.prod(m)
    transforms = (nblocks * n * (c + c_out) + c_out * cg) * 2.5 * points * math.log2(max(points, 2))
    return transforms + 4.0 * n * c_out * cg * points * nblocks


def _batch(spec: ConvSpec, m: tuple[int, ...]) -> tuple[int, int, int, int]:
    """How many (image, block) pairs one batch may hold within the memory budget, one pair's bytes,
    the output channels whose kernel spectrum is made and multiplied at a time, and the input
    channels transformed at a time (per group; all of them unless one block of every input channel
    outweighs the budget).

    The kernel spectrum is made whole when it takes at most half the budget; else for chunks of
    output channels (whole groups, or part of one group, see :func:`_parts`) within a third of it,
    made again for every batch: on N4 C16 32x32 5x5, a layer the planner gives the FFT, the whole spectrum was
    2.8x input + output.
    """
    c, c_out, cg = spec.x_shape[1], spec.out_shape[1], spec.w_shape[1]
    g = spec.groups
    cog = c_out // g
    ft = _fft_dtype(spec)
    points = math.prod(m)
    complex_item = 2 * ft.itemsize if ft.kind != "c" else ft.itemsize
    freqs = points // 2 + 1 if ft.kind != "c" else points
    budget = scratch_budget(spec, _ext_bytes(spec, m))
    per_output = cg * freqs * complex_item  # one output channel's kernel spectrum
    co = c_out
    if not (cg == 1 and cog == 1) and c_out * per_output > budget // 2:
        most = max(1, budget // 3 // per_output)  # output channels per chunk
        size = cog if g > 1 and most >= cog else 1  # whole groups, or channels of one group
        total = c_out if g == 1 or size > 1 else cog
        parts = -(-(total // size) // max(1, most // size))
        co = -(-(total // size) // parts) * size
    # one image's block: its input as the transform copies it, input spectrum and its transposed
    # copy, product spectrum and its copy, output block
    per_in = 2 * freqs * complex_item + points * ft.itemsize
    unit = (c + co) * per_in
    if (cg == 1 and cog == 1) or budget - co * per_output >= unit:
        return max(1, (budget - co * per_output) // max(unit, 1)), unit, co, cg
    # one block of every input channel is too large (one or two images of many channels): a third
    # each for the inputs, the outputs (their sum, product and its copy) and the kernel's chunk
    per_out = 3 * freqs * complex_item + points * ft.itemsize
    co = even_part(cog, budget // 3 // per_out)
    ci = even_part(cg, min(budget // 3 // per_in, budget // 3 // (co * freqs * complex_item)))
    unit = ci * per_in + co * per_out
    return max(1, (budget - ci * co * freqs * complex_item) // unit), unit, co, ci


# --------------------------------------------------------------------------- compute


def _fft_dtype(spec: ConvSpec) -> np.dtype:
    return np.dtype(np.float64) if spec.dtype.kind == "i" else spec.dtype


def _ext_shape(spec: ConvSpec, m: tuple[int, ...], step: tuple[int, ...]) -> tuple[int, ...]:
    """Padded input extended with zeros so that the last block's ``M`` inputs exist."""
    return tuple(max(p, (-(-v // s) - 1) * s + mm) for p, v, s, mm in zip(spec.padded_shape, _valid_len(spec), step, m))


def _ext_bytes(spec: ConvSpec, m: tuple[int, ...]) -> int:
    return array_bytes((*spec.x_shape[:2], *(max(p, mm) for p, mm in zip(spec.padded_shape, m))), _fft_dtype(spec))


def _extended_input(x: np.ndarray, spec: ConvSpec, ext: tuple[int, ...]) -> np.ndarray:
    """``x`` padded as ``spec`` says, then with zeros up to ``ext`` per axis; one new array."""
    ft = _fft_dtype(spec)
    if PAD_MODES[spec.padding_mode] == "constant":
        xe = np.zeros((*spec.x_shape[:2], *ext), dtype=ft)  # (N, C, *ext)
        fill = spec.fillvalue
        if fill != 0:
            xe[(Ellipsis, *(slice(0, p) for p in spec.padded_shape))] = fill
        xe[(Ellipsis, *(slice(lo, lo + n) for (lo, _), n in zip(spec.pads, spec.x_shape[2:])))] = x
        return xe
    xp = pad(x, spec)
    if tuple(ext) == spec.padded_shape:
        return xp.astype(ft, copy=False)
    xe = np.zeros((*spec.x_shape[:2], *ext), dtype=ft)
    xe[(Ellipsis, *(slice(0, p) for p in spec.padded_shape))] = xp
    del xp
    return xe


def kernel_spectrum(w: np.ndarray, spec: ConvSpec, m: tuple[int, ...], groups: int | None = None) -> np.ndarray:
    """``conj(FFT(conj(w_dilated)))`` of length ``m``, laid out ``(*F, G, Cg, Cog)`` for the channel GEMM.

    Frequencies come first so that ``spectrum.reshape(F, G, Cg, Cog).transpose(1, 0, 2, 3)`` is a
    stack of contiguous ``(Cg, Cog)`` matrices that ``np.matmul`` uses in place: the spectrum, often
    larger than the input for many-channel layers, exists once. Transformed axis by axis from the
    last, zero-padding each axis only when it is transformed, so the all-zero rows cost nothing on
    the first (real) axis. ``w`` may be a chunk of the output channels: of ``groups`` whole groups
    (default: the problem's), or of the only group.
    """
    ft = _fft_dtype(spec)
    nd, g = spec.nd, spec.groups if groups is None else groups
    wk = np.asarray(w, dtype=ft)
    c_out, cg = wk.shape[:2]
    if any(d != 1 for d in spec.dilation):
        wd = np.zeros(wk.shape[:2] + span(spec), dtype=ft)
        wd[(slice(None), slice(None), *(slice(None, None, d) for d in spec.dilation))] = wk
        wk = wd
    k = wk.shape[2:]
    # (C_out, Cg, *k) -> (G, Cog, Cg, *k) -> (*k, G, Cg, Cog)
    wk = np.ascontiguousarray(wk.reshape(g, c_out // g, cg, *k).transpose(*range(3, 3 + nd), 0, 2, 1))
    workers = _threads.num_threads()
    if ft.kind == "c":
        wf = sfft.fftn(np.conj(wk), s=m, axes=tuple(range(nd)), workers=workers)
    else:
        wf = sfft.rfft(wk, n=m[-1], axis=nd - 1, workers=workers)
        for axis in range(nd - 1):
            wf = sfft.fft(wf, n=m[axis], axis=axis, workers=workers)
    return np.conjugate(wf, out=wf)  # (*F, G, Cg, Cog)


def run_blocked(x: np.ndarray, w: np.ndarray, spec: ConvSpec, choice: tuple[tuple[int, ...], tuple[int, ...]],
                nonfinite: str = "fixup") -> np.ndarray:
    """Overlap-save with transform lengths ``M`` and output steps ``L`` per axis; ``(N, C_out, *out)``.

    ``L`` must be a multiple of the stride on every axis and ``M >= L + span - 1``; one block per
    axis (``M`` at least the padded length) is the plain whole-array FFT.
    """
    m, step = choice
    nd, g = spec.nd, spec.groups
    n, c_out = spec.out_shape[:2]
    cg, cog = spec.w_shape[1], c_out // g
    if streamed(spec, m):
        return _fft_streamed.run(x, w, spec, choice, nonfinite)
    ft = _fft_dtype(spec)
    complex_ = ft.kind == "c"
    nblk = tuple(-(-v // s) for v, s in zip(_valid_len(spec), step))
    ext = _ext_shape(spec, m, step)
    units, unit, co, ci = _batch(spec, m)
    rest, blocks_per_image = math.prod(nblk[1:]), math.prod(nblk)
    if units >= blocks_per_image:  # whole images per batch
        images, rows = min(n, units // blocks_per_image), nblk[0]
    else:  # one image at a time, whole rows of blocks
        images, rows = 1, max(1, units // max(rest, 1))
    need = array_bytes(ext, ft) * n * spec.x_shape[1] + array_bytes(spec.out_shape, spec.dtype) + unit * rest
    ensure_memory(spec, need, "fft")

    xe = _extended_input(x, spec, ext)  # (N, C, *ext)
    finite = bool(np.isfinite(xe).all())
    if not finite:
        xe[~np.isfinite(xe)] = 0
    wk = np.asarray(w)
    w_finite = wk.dtype.kind in "iub" or bool(np.isfinite(wk).all())
    if nonfinite == "raise" and not (finite and w_finite):
        raise NonFiniteInput(f"{spec.func}: x or weight holds NaN or inf")
    if not w_finite:
        wk = np.where(np.isfinite(wk), wk, 0)
    parts = _parts(spec, co)
    whole = kernel_spectrum(wk, spec, m) if len(parts) == 1 and ci == cg else None  # (*F, G, Cg, Cog)
    fshape = (*m[:-1], m[-1] if complex_ else m[-1] // 2 + 1)  # the kernel spectrum's frequencies
    nf = math.prod(fshape)
    plain = cg == 1 and cog == 1

    out = output_array(spec.out_shape, spec.dtype)  # (N, C_out, *out)
    view = sliding_window_view(xe, m, axis=tuple(range(2, 2 + nd)))  # (N, C, *positions, *M)
    starts = tuple(slice(0, b * s, s) for b, s in zip(nblk, step))
    view = view[(Ellipsis, *starts, *(slice(None),) * nd)]  # (N, C, *nblk, *M)
    for i0, r0 in itertools.product(range(0, n, images), range(0, nblk[0], rows)):
        chunk = view[i0:i0 + images, :, r0:r0 + rows]  # (n, C, b0, *nblk[1:], *M)
        ni, bshape = chunk.shape[0], chunk.shape[2:2 + nd]
        nb = math.prod(bshape)
        if ci < cg:
            _input_chunks(chunk, wk, out[i0:i0 + ni], spec, (m, step), parts, ci, r0)
            continue
        xf = _forward(chunk, spec)  # (n, C, *bshape, *F)
        if images >= n and rows >= nblk[0]:  # one batch: free the input before the products
            del chunk, view, xe
        xf = xf.reshape(ni, g, cg, nb, nf)  # (n, G, Cg, B, F)
        if plain:
            xf *= whole.reshape(nf, g).T[None, :, None, None, :]  # (1, G, 1, 1, F): one channel pair per group
            _inverse(xf.reshape(ni, c_out, *bshape, *fshape), out[i0:i0 + ni], spec, m, step, r0)
            continue
        xt = xf.transpose(1, 4, 0, 3, 2).reshape(g, nf, ni * nb, cg)  # (G, F, n*B, Cg)
        del xf
        for c0, c1 in parts:
            first, gk, ck = _chunk_groups(spec, c0, c1)
            wf = whole if whole is not None else kernel_spectrum(wk[c0:c1], spec, m, gk)  # (*F, gk, Cg, ck)
            wg = wf.reshape(nf, gk, cg, ck).transpose(1, 0, 2, 3)  # (gk, F, Cg, ck): a view, matrices contiguous
            yt = np.matmul(xt[first:first + gk], wg)  # (gk, F, n*B, ck)
            del wf, wg
            yf = np.ascontiguousarray(yt.reshape(gk, nf, ni, nb, ck).transpose(2, 0, 4, 3, 1))  # (n, gk, ck, B, F)
            del yt
            _inverse(yf.reshape(ni, c1 - c0, *bshape, *fshape), out[i0:i0 + ni, c0:c1], spec, m, step, r0)
    if spec.dtype.kind == "i":
        return out
    if finite and w_finite:
        return out
    return finite_fixup(out, pad(x, spec), np.asarray(w, dtype=spec.dtype), spec)


def _input_chunks(chunk: np.ndarray, wk: np.ndarray, out: np.ndarray, spec: ConvSpec, choice: tuple, parts: list,
                  ci: int, r0: int) -> None:
    """The products of one batch of blocks ``chunk`` ``(n, C, *bshape, *M)`` with ``ci`` input channels
    transformed at a time: for each range of output channels (within one group), the products of
    every input chunk summed, then transformed back into ``out`` ``(n, C_out, *out)``."""
    m, step = choice
    nd, cg, cog = spec.nd, spec.w_shape[1], spec.out_shape[1] // spec.groups
    ni, bshape = chunk.shape[0], chunk.shape[2:2 + nd]
    nb = math.prod(bshape)
    for o0, o1 in parts:
        first = o0 // cog * cg  # the group's first input channel
        total = None
        for a0, a1 in _threads.split(0, cg, -(-cg // ci)):
            xf = _forward(chunk[:, first + a0:first + a1], spec)  # (n, cc, *bshape, *F)
            fshape = xf.shape[-nd:]
            nf = math.prod(fshape)
            xt = xf.reshape(ni, a1 - a0, nb, nf).transpose(3, 0, 2, 1).reshape(nf, ni * nb, a1 - a0)  # (F, n*B, cc)
            del xf
            wf = kernel_spectrum(wk[o0:o1, a0:a1], spec, m, 1).reshape(nf, a1 - a0, o1 - o0)  # (F, cc, co)
            product = np.matmul(xt, wf)  # (F, n*B, co)
            del xt, wf
            if total is None:
                total = product
            else:
                total += product
            del product
        yf = np.ascontiguousarray(total.reshape(nf, ni, nb, o1 - o0).transpose(1, 3, 2, 0))  # (n, co, B, F)
        del total
        _inverse(yf.reshape(ni, o1 - o0, *bshape, *fshape), out[:, o0:o1], spec, m, step, r0)


def _parts(spec: ConvSpec, co: int) -> list[tuple[int, int]]:
    """Ranges of ``co`` output channels (see :func:`_batch`): whole groups when ``co`` is a multiple
    of a group's output channels, else parts of one group at a time, so each range is contiguous."""
    c_out, g = spec.out_shape[1], spec.groups
    cog = c_out // g
    if g == 1 or co % cog == 0:
        return [(c0, min(c_out, c0 + co)) for c0 in range(0, c_out, co)]
    return [(gi * cog + o0, gi * cog + min(cog, o0 + co)) for gi in range(g) for o0 in range(0, cog, co)]


def _chunk_groups(spec: ConvSpec, c0: int, c1: int) -> tuple[int, int, int]:
    """``(first group, groups, output channels per group)`` of the output channels ``c0:c1`` (:func:`_parts`)."""
    cog = spec.out_shape[1] // spec.groups
    if spec.groups == 1:
        return 0, 1, c1 - c0
    gk = max(1, (c1 - c0) // cog)
    return c0 // cog, gk, (c1 - c0) // gk


def _forward(blocks: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The spectra of ``blocks`` ``(n, C, *bshape, *M)`` over their last ``nd`` axes (real transforms for real data)."""
    axes = tuple(range(-spec.nd, 0))
    if _fft_dtype(spec).kind == "c":
        return sfft.fftn(blocks, axes=axes, workers=_threads.num_threads())
    return sfft.rfftn(blocks, axes=axes, workers=_threads.num_threads())


def _inverse(yf: np.ndarray, out: np.ndarray, spec: ConvSpec, m: tuple[int, ...], step: tuple[int, ...],
             r0: int) -> None:
    """Transform the products ``yf`` ``(n, C, *bshape, *F)`` back, over their own memory, and write
    their exact outputs into ``out`` ``(n, C, *out)`` (see :func:`_scatter`)."""
    axes = tuple(range(-spec.nd, 0))
    workers = _threads.num_threads()
    if _fft_dtype(spec).kind == "c":
        y = sfft.ifftn(yf, axes=axes, workers=workers, overwrite_x=True)
    else:
        y = sfft.irfftn(yf, s=m, axes=axes, workers=workers, overwrite_x=True)  # (n, C, *bshape, *M)
    del yf
    _scatter(out, y, spec, step, r0)


def _scatter(out: np.ndarray, y: np.ndarray, spec: ConvSpec, step: tuple[int, ...], r0: int) -> None:
    """Write the exact, on-grid outputs of blocks ``y`` (first block row ``r0``) into ``out``."""
    nd = spec.nd
    bshape = y.shape[2:2 + nd]
    keep = tuple(lst // s for lst, s in zip(step, spec.stride))  # outputs per block per axis
    for bidx in np.ndindex(*bshape):
        src = [slice(None), slice(None), *bidx]
        dst = [slice(None), slice(None)]
        for axis, (b, s, k, o) in enumerate(zip(bidx, spec.stride, keep, spec.out_shape[2:])):
            first = (b + (r0 if axis == 0 else 0)) * k
            count = min(k, o - first)
            src.append(slice(0, (count - 1) * s + 1, s))
            dst.append(slice(first, first + count))
        block = y[tuple(src)]
        if spec.dtype.kind == "i":
            out[tuple(dst)] = np.rint(block)
        else:
            out[tuple(dst)] = block
