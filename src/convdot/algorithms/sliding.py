"""Sliding windows times kernel, summed: "the sum of the element-wise (Hadamard) product".

Two ways to evaluate the same sum, chosen by the problem's shape (:func:`uses_direct`):

- **windows** (many channels per group, the CNN layer): a strided view exposes every receptive
  field as an array shaped like the kernel; each output is ``(window * kernel).sum()``, done for a
  block of output rows at a time by one matrix multiply per group.
- **direct** (few channels per group: image filtering, depthwise layers): the sum is reordered to
  run over kernel taps outermost -- ``out += w[o, c, tap] * xpad[c, shifted by tap]`` -- so each
  step is one element-wise product of a shifted slice of the input with a scalar tap, accumulated
  over cache-sized blocks of output rows split across threads. No window is ever copied, and the
  arithmetic is still exactly the sum of element-wise products, which is why it lives here rather
  than in a method of its own. A 2-D kernel of rank 1 (``w = u v^T``, detected by SVD within
  rounding) is applied as two 1-D passes, ``kh + kw`` taps instead of ``kh * kw``. With numba
  installed (``convdot[fast]``) large 2-D problems run a compiled version of the same loop.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from .. import _threads
from .._spec import PAD_MODES, ConvSpec
from ._common import (
    array_bytes,
    ensure_memory,
    grouped,
    jit_available,
    output_array,
    pad,
    scratch_budget,
    tap_index,
    weight_rows,
    windows,
)

#: Most window data one block of the windows path copies (into the GEMM's layout).
_BLOCK_BYTES = 32 << 20
#: Output elements one NumPy block accumulates at once: the block, its product and its source stay in L2.
DIRECT_BLOCK_ELEMS = 1 << 15
#: The direct path runs when a group has at most this many (input, output) channel pairs; beyond,
#: each tap's product is too small a piece of work and the windows path's GEMM (BLAS) wins.
DIRECT_MAX_PAIRS = 16
#: The compiled kernel runs from this many multiply-adds (below, loading numba costs more than it saves).
JIT_MIN_MACS = 1 << 22
#: What one pass of the compiled kernel over an output row costs per output element (loading and
#: storing the row once), in multiply-adds. Fitted together with the planner's ``direct`` rate on the
#: machine of :data:`convdot.planner.MACHINE`, 2026-11-24: a 2048x2048 float64 image, 'same', dense
#: k x k kernels took 12, 19, 56 and 200 ms at k = 3, 7, 15 and 31 (one mac per tap alone is off by 2x).
JIT_PASS_MACS = 3.8


def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Hadamard product of each window with the kernel, summed; ``(N, C_out, *out)``."""
    return run_direct(x, w, spec) if uses_direct(spec) else run_windows(x, w, spec)


def unsupported(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> str | None:
    """Every configuration works."""
    return None


def uses_direct(spec: ConvSpec) -> bool:
    """True when :func:`run` takes the direct (tap-outermost) path: few channel pairs per group."""
    return spec.w_shape[1] * (spec.out_shape[1] // spec.groups) <= DIRECT_MAX_PAIRS


def cost(spec: ConvSpec) -> dict[str, float]:
    """What :func:`run` costs on ``spec``, for the planner's model.

    Returns
    -------
    dict
        ``macs`` multiply-adds actually performed (fewer than ``spec.macs`` for a separable kernel is
        not known without the weights, so this is the dense count), ``passes`` element-wise passes
        over an output block (NumPy direct path: two per tap and input channel), ``path`` 0 for
        windows, 1 for direct, ``jit`` 1 when the compiled kernel would run, and for the windows
        path ``blocks`` its blocks of output rows and ``narrow`` the smallest side of their GEMMs.
    """
    direct = uses_direct(spec)
    taps = math.prod(spec.kernel) * spec.w_shape[1]
    jit = direct and _jit_suits(spec, spec.macs)
    work = jit_work(spec, spec.kernel) if jit else float(spec.macs)
    blocks, narrow = 1.0, float("inf")
    if not direct:
        images, rows = windows_block(spec)
        blocks = float(-(-spec.out_shape[0] // images) * -(-spec.out_shape[2] // rows))
        columns = images * rows * math.prod(spec.out_shape[3:])
        narrow = float(min(columns, spec.out_shape[1] // spec.groups, taps))
    return {"macs": float(spec.macs), "passes": float(2 * taps if direct else 1), "path": float(direct),
            "jit": float(jit), "work": work, "blocks": blocks, "narrow": narrow}


def windows_block(spec: ConvSpec) -> tuple[int, int]:
    """``(images, rows)`` per block of the windows path: a block of windows (copied once into the
    GEMM's layout, its product held beside) within a third of the budget and :data:`_BLOCK_BYTES`;
    all images and as many output rows as fit, or fewer images when one row of all is too large."""
    cap = min(_BLOCK_BYTES, scratch_budget(spec, array_bytes((*spec.x_shape[:2], *spec.padded_shape), spec.dtype)) // 3)
    n = spec.x_shape[0]
    image_row = spec.x_shape[1] * math.prod(spec.out_shape[3:]) * math.prod(spec.kernel) * spec.dtype.itemsize
    if n * image_row <= cap:
        return n, max(1, cap // (n * image_row))
    return max(1, cap // max(image_row, 1)), 1


#: Largest zero-bordered scratch plane (bytes) of the compiled whole-plane 3x3 kernel: it and the
#: plane of sums beside it (as large) stay in L2.
PLANE_BYTES = 1 << 20

#: Pieces of planes per thread that the whole-plane kernels' threads take as they finish one: enough
#: to even out cores running at different speeds, few enough that a piece's call costs nothing.
PLANE_PIECES = 16


def uses_planes(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, ...],
                dilation: tuple[int, ...], pads: tuple[tuple[int, int], ...], out_sp: tuple[int, ...],
                dtype: np.dtype, threads: int) -> bool:
    """Whether the compiled direct sum runs whole planes with all nine 3x3 taps fused
    (:func:`~convdot.algorithms._direct_jit.planes3x3`): stride 1, small planes, and at least two
    planes per thread (the depthwise layers); else it runs row by row (large images).

    ``x_shape`` is ``(N, G, Cg, H, W)``, ``w_shape`` ``(G, Cog, Cg, kh, kw)``.
    """
    n, g, _, h, wi = x_shape
    (pt, _), (pl, _) = pads
    rows = max(h + pt, out_sp[0] + 2 * dilation[0])  # the scratch plane of planes3x3
    cols = max(wi + pl, out_sp[1] + 2 * dilation[1])
    return (tuple(w_shape[3:]) == (3, 3) and tuple(stride) == (1, 1) and n * g * w_shape[1] >= 2 * threads
            and rows * cols * np.dtype(dtype).itemsize <= PLANE_BYTES)


def uses_same_planes(x_shape: tuple[int, ...], dilation: tuple[int, ...], pads: tuple[tuple[int, int], ...],
                     out_sp: tuple[int, ...]) -> bool:
    """Whether the whole planes run without copies (:func:`~convdot.algorithms._direct_jit.planes3x3_same`):
    one input channel per group and 'same' padding, ``dilation`` on each side, around planes of at
    least ``2*dilation + 1`` on each axis; the caller checks the weights are finite.

    ``x_shape`` is ``(N, G, Cg, H, W)``.
    """
    h, wi = x_shape[3:]
    return (x_shape[2] == 1 and tuple(out_sp) == (h, wi)
            and all(lo == hi == d and n > 2 * d for (lo, hi), d, n in zip(pads, dilation, (h, wi))))


def jit_work(spec: ConvSpec, kernel: tuple[int, int]) -> float:
    """Work of the compiled 2-D kernel applying a ``kernel``-shaped filter over ``spec``'s outputs.

    Multiply-adds plus :data:`JIT_PASS_MACS` per output element for every pass over an output row:
    at row stride 1 the kernel adds four taps of a kernel row per pass, then three, then one at a
    time, and a 3x3 kernel all nine taps in one pass; at other strides one tap per pass.
    """
    kh, kw = kernel
    rows = math.prod(spec.out_shape) * spec.w_shape[1]  # output elements x input channels per group
    if spec.stride[-1] == 1 and (kh, kw) == (3, 3):
        return float(rows * (kh * kw + JIT_PASS_MACS))  # all nine taps in one pass per input channel
    passes = kw // 4 + (1 if kw % 4 == 3 else kw % 4) if spec.stride[-1] == 1 else kw
    return float(rows * kh * (kw + JIT_PASS_MACS * passes))


# --------------------------------------------------------------------------- windows path


def run_windows(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The windows path: every window of a block of output rows times the kernel, summed; per group.

    A block's windows are laid out as ``(G, C_in/G * K, positions)`` (the one copy) and multiplied
    by the kernel as ``(G, C_out/G, C_in/G * K)``: the weight's own layout, so it is never copied.
    ``np.einsum`` of the same sum copied the weight too (on N1 C256 14x14: 2.4 MB for 0.4 MB of
    input and output, 7.4x the bound). A weight of another dtype is converted whole when that
    fits a third of the budget, else a chunk of output channels at a time.
    """
    nd, g = spec.nd, spec.groups
    ensure_memory(spec, array_bytes(spec.x_shape, spec.dtype) + array_bytes(spec.out_shape, spec.dtype), "sliding")
    xp = pad(x, spec)
    win = grouped(windows(xp, spec), g)  # (N, G, Cg, *out, *k)
    n = spec.x_shape[0]
    share = scratch_budget(spec, array_bytes((*spec.x_shape[:2], *spec.padded_shape), spec.dtype)) // 3
    wr, chunk = weight_rows(w, spec, share)  # (G, Cog, Cg*K), converted whole or `chunk` channels at a time
    cog, depth = wr.shape[1:]
    out = output_array((n, g, cog, *spec.out_shape[2:]), spec.dtype)  # (N, G, Cog, *out)
    images, step = windows_block(spec)
    # windows (N, G, Cg, rows, *rest, *k) -> (G, Cg, *k, N, rows, *rest)
    order = (1, 2, *range(3 + nd, 3 + 2 * nd), 0, *range(3, 3 + nd))
    for n0, r in itertools.product(range(0, n, images), range(0, spec.out_shape[2], step)):
        block = np.ascontiguousarray(win[n0:n0 + images, :, :, r:r + step].transpose(order))
        cols = block.reshape(g, depth, -1)  # (G, Cg*K, n*P_blk)
        shape = block.shape[-nd - 1:]  # (n, rows, *rest)
        for o0 in range(0, cog, chunk):
            kernel = wr[:, o0:o0 + chunk].astype(spec.dtype, copy=False)  # (G, Co, Cg*K)
            prod = np.matmul(kernel, cols).reshape(g, kernel.shape[1], *shape)  # (G, Co, n, rows, *rest)
            out[n0:n0 + images, :, o0:o0 + chunk, r:r + step] = np.moveaxis(prod, 2, 0)
        del block, cols, prod  # freed before the next block is made: the budget holds one
    return out.reshape(spec.out_shape)


# --------------------------------------------------------------------------- direct path


def run_direct(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The direct path: tap-outermost accumulation of shifted slices; ``(N, C_out, *out)``."""
    g = spec.groups
    cog, cg = spec.out_shape[1] // g, spec.w_shape[1]
    ensure_memory(spec, array_bytes(spec.x_shape, spec.dtype) + array_bytes(spec.out_shape, spec.dtype), "sliding")
    wg = np.asarray(w, dtype=spec.dtype).reshape(g, cog, cg, *spec.kernel)  # (G, Cog, Cg, *k)
    jit = _jit_suits(spec, spec.macs)
    if jit and (_zero_padded(spec) or not any(lo or hi for lo, hi in spec.pads)):
        # the compiled kernel reads x itself and skips taps in the zero padding: no padded copy
        xg = grouped(np.ascontiguousarray(x, dtype=spec.dtype), g)  # (N, G, Cg, *spatial)
        pads = spec.pads
    else:
        xg = grouped(pad(x, spec), g)  # (N, G, Cg, *padded)
        pads = ((0, 0),) * spec.nd
    factors = separable_factors(wg, xg) if spec.nd == 2 and separable_pays(spec) else None
    if factors is None:
        out = accumulate(xg, wg, spec.stride, spec.dilation, pads, spec.out_shape[2:], jit=jit)
    else:
        (sh, sw), (dh, dw), (ph, pw) = spec.stride, spec.dilation, pads
        ho, wo = spec.out_shape[2:]
        u, v = factors  # (G, kh), (G, kw)
        # (N, G, 1, Ho, W): every column filtered along the rows by u
        cols = accumulate(xg, u.reshape(g, 1, 1, -1, 1), (sh, 1), (dh, 1), (ph, (0, 0)), (ho, xg.shape[-1]),
                          jit=jit)
        # (N, G, 1, Ho, Wo): then every row filtered by v
        out = accumulate(cols, v.reshape(g, 1, 1, 1, -1), (1, sw), (1, dw), ((0, 0), pw), (ho, wo), jit=jit)
    return out.reshape(spec.out_shape)


def _zero_padded(spec: ConvSpec) -> bool:
    """True when the padding is zeros (PyTorch's "zeros", or SciPy's boundary='fill' with fillvalue 0)."""
    return PAD_MODES[spec.padding_mode] == "constant" and spec.fillvalue == 0


def separable_factors(wg: np.ndarray, xg: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(u, v)`` of shapes ``(G, kh)``, ``(G, kw)`` with ``wg[g, 0, 0] == outer(u[g], v[g])``, or None.

    Only for real floating point with one input and one output channel per group, kernels where two
    passes save work, and finite data (two passes would put NaN/inf where the direct sum does not:
    ``inf * 0`` at a zero tap). Rank 1 means the second singular value is within rounding of zero:
    ``s[1] <= 8 * eps * max(kh, kw) * s[0]``, so the factored kernel differs from ``w`` by less than
    the direct sum's own rounding.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0]).reshape(1, 1, 1, 3, 3)  # Sobel
    >>> u, v = separable_factors(w, np.zeros((1, 1, 1, 5, 5)))
    >>> bool(np.allclose(np.outer(u[0], v[0]), w[0, 0, 0]))
    True
    """
    g, cog, cg, kh, kw = wg.shape
    if wg.dtype.kind != "f" or cog != 1 or cg != 1 or kh * kw <= kh + kw + 1 or not np.isfinite(wg).all():
        return None
    k2 = wg.reshape(g, kh, kw).astype(np.float64)  # (G, kh, kw)
    tol = 8 * np.finfo(wg.dtype).eps * max(kh, kw)
    if not _maybe_rank1(k2, tol):
        return None
    u, s, vt = np.linalg.svd(k2)  # (G, kh, kh), (G, min), (G, kw, kw)
    if not (s[:, 1] <= tol * s[:, 0]).all() or not np.isfinite(xg).all():
        return None
    return ((u[:, :, 0] * s[:, :1]).astype(wg.dtype), vt[:, 0, :].astype(wg.dtype))


#: What running a rank-1 kernel as two compiled passes costs beyond their :func:`jit_work`, per
#: output element, in multiply-adds: the full-size intermediate (fresh pages written, then read) and
#: the finiteness check of ``x``. Fitted 2026-11-30 on a 2048x2048 float64 image, 'same': two passes
#: lost at k = 5 (36 vs 26 ms), tied at 7 (41 vs 39), won from 9 (44 vs 46) to 15 (50 vs 102).
SEPARABLE_MACS = 60.0


def separable_work(spec: ConvSpec) -> float:
    """:func:`jit_work` of a rank-1 kernel run as a column pass, then a row pass, with their intermediate."""
    kh, kw = spec.kernel
    return jit_work(spec, (kh, 1)) + jit_work(spec, (1, kw)) + SEPARABLE_MACS * math.prod(spec.out_shape)


def separable_pays(spec: ConvSpec) -> bool:
    """Whether two 1-D passes beat the dense direct sum for a rank-1 kernel of ``spec``.

    Always on the NumPy path (``kh + kw`` passes instead of ``kh * kw``); for the compiled kernel
    when :func:`separable_work` is below :func:`jit_work` of the whole kernel (from about 9x9: a 3x3
    kernel's one fused pass took 13-15 ms on 2048x2048 float64, its two passes 40-43 ms).
    """
    if spec.nd != 2 or not _jit_suits(spec, spec.macs):
        return True
    return separable_work(spec) < jit_work(spec, spec.kernel)


def _maybe_rank1(k: np.ndarray, tol: float) -> bool:
    """False when some kernel of ``k`` (``(G, kh, kw)``) is clearly not rank 1; True may still be.

    One step of elimination with complete pivoting: ``k - k[:, q] k[p, :] / k[p, q]`` at the largest
    entry ``(p, q)`` is zero for a rank-1 kernel, and for one within ``s1 <= tol * s0`` its largest
    entry is a few times ``s1 <= tol * sqrt(kh * kw) * max|k|`` (measured: at most 0.85 of
    ``tol * max(kh, kw) * max|k|``). A residual 100 times that is out of reach of rank 1, so the
    batched SVD (0.5 ms for 64 depthwise 3x3 kernels, most of a small layer's planning) runs only
    for kernels that pass.
    """
    g, kh, kw = k.shape
    flat = np.abs(k).reshape(g, -1)
    at = flat.argmax(axis=1)
    p, q = np.divmod(at, kw)
    idx = np.arange(g)
    pivot = k[idx, p, q]  # (G,)
    big = flat[idx, at]
    if not big.all():
        return True  # an all-zero kernel: let the SVD decide
    resid = k - k[idx, :, q][:, :, None] * k[idx, p, :][:, None, :] / pivot[:, None, None]
    return bool((np.abs(resid).reshape(g, -1).max(axis=1) <= 100 * tol * max(kh, kw) * big).all())


def accumulate(xg: np.ndarray, wg: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...],
               pads: tuple[tuple[int, int], ...], out_sp: tuple[int, ...], *, jit: bool = False) -> np.ndarray:
    """``out[n, g, o, i] = sum_{c, t} wg[g, o, c, t] * xz[n, g, c, i*stride + t*dilation]``.

    Parameters
    ----------
    xg : ndarray of shape (N, G, Cg, *spatial)
        The input, channels split by group; ``xz`` is ``xg`` with ``pads`` zeros around it. Nonzero
        ``pads`` need ``jit`` (the NumPy loop takes an already padded ``xg``).
    wg : ndarray of shape (G, Cog, Cg, *k)
        The filters, split by group.
    stride, dilation : tuple of int
        Per spatial axis.
    pads : tuple of (int, int)
        Implicit zero padding ``(lo, hi)`` per spatial axis.
    out_sp : tuple of int
        Output spatial shape.
    jit : bool, default False
        Run the compiled kernel (2-D float32/float64 only; see :func:`jit_available`).

    Returns
    -------
    ndarray of shape (N, G, Cog, *out_sp)
        In ``xg``'s dtype.
    """
    n, g = xg.shape[:2]
    cog = wg.shape[1]
    threads = _threads.num_threads()
    if jit:
        from . import _direct_jit

        xc, wc = np.ascontiguousarray(xg), np.ascontiguousarray(wg)
        (sh, sw), (dh, dw) = stride, dilation
        (pt, _), (pl, _) = pads
        if uses_planes(xg.shape, wg.shape, stride, dilation, pads, out_sp, xg.dtype, threads):
            # the kernel writes every element: np.empty, not np.zeros (calloc maps fresh zero pages
            # on every call: 2.6 ms of page faults on a 26 MB output, a quarter of a depthwise layer)
            out = output_array((n, g, cog, *out_sp), xg.dtype)
            # finite weights only: this kernel leaves out the taps in the padding, where 0 * inf is NaN
            if uses_same_planes(xg.shape, dilation, pads, out_sp) and np.isfinite(wc).all():
                kernel, args = _direct_jit.planes3x3_same, (xc, wc, out, dh, dw)
            else:
                kernel, args = _direct_jit.planes3x3, (xc, wc, out, dh, dw, pt, pl)
            count = n * g * cog
            step = max(1, count // (PLANE_PIECES * threads))

            def planes(t: int, take: Callable[[], int]) -> None:
                while (a := take() * step) < count:
                    kernel(*args, a, min(count, a + step))

            _threads.run_shared(planes, threads)  # each thread takes the next planes as it finishes
            return out
        # the kernel zeroes each row before adding into it: np.zeros here mapped fresh zero pages on
        # every call, which the OS then faulted in and cleared (filter-k3, 32 MB: ~1000 faults)
        out = output_array((n, g, cog, *out_sp), xg.dtype)  # (N, G, Cog, *out)
        rows = n * g * cog * out_sp[0]
        jobs = [(xc, wc, out, sh, sw, dh, dw, pt, pl, a, b) for a, b in _threads.split(0, rows, 4 * threads)]
        _threads.run_parallel(_direct_jit.direct2d, jobs, threads)
        return out
    if any(lo or hi for lo, hi in pads):
        raise ValueError(f"accumulate: implicit padding {pads} needs jit=True; pad the input first")
    out = np.zeros((n, g, cog, *out_sp), dtype=xg.dtype)  # (N, G, Cog, *out)
    per_row = n * g * cog * math.prod(out_sp[1:])
    step = max(1, DIRECT_BLOCK_ELEMS // max(per_row, 1))
    jobs = [(xg, wg, out, stride, dilation, a, b, step) for a, b in _threads.split(0, out_sp[0], threads)]
    _threads.run_parallel(_accumulate_rows, jobs, threads)
    return out


def _accumulate_rows(xg: np.ndarray, wg: np.ndarray, out: np.ndarray, stride: tuple[int, ...],
                     dilation: tuple[int, ...], lo: int, hi: int, step: int) -> None:
    """Output rows ``lo:hi`` of :func:`accumulate`, ``step`` rows at a time (NumPy releases the GIL)."""
    nd = out.ndim - 3
    cg, k = wg.shape[2], wg.shape[3:]
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 and inf - inf are NaN, as in the direct sum
        _accumulate_block_rows(xg, wg, out, stride, dilation, lo, hi, step, nd, cg, k)


def _accumulate_block_rows(xg, wg, out, stride, dilation, lo, hi, step, nd, cg, k) -> None:
    for r0 in range(lo, hi, step):
        r1 = min(hi, r0 + step)
        acc = out[:, :, :, r0:r1]  # (N, G, Cog, rows, *rest), a view
        tmp = np.empty_like(acc)
        for c in range(cg):
            for tap in np.ndindex(*k):
                src = xg[(slice(None), slice(None), c, *tap_index(tap, stride, dilation, acc.shape[3:], r0))]
                coef = wg[(slice(None), slice(None), c, *tap)]  # (G, Cog)
                # (N, G, 1, rows, *rest) * (1, G, Cog, 1, ...) -> (N, G, Cog, rows, *rest)
                np.multiply(src[:, :, None], coef[(None, Ellipsis) + (None,) * nd], out=tmp)
                acc += tmp


def _jit_suits_dtype(dtype: np.dtype) -> bool:
    return dtype in (np.float32, np.float64) and jit_available()


def _jit_suits(spec: ConvSpec, macs: int) -> bool:
    return spec.nd == 2 and _jit_suits_dtype(spec.dtype) and macs >= JIT_MIN_MACS

