"""Gradients of a convolution layer, each computed as a convolution.

For ``out = conv(x, weight, bias)`` and the gradient ``grad_out`` of a loss with respect to ``out``:

- ``grad_x`` is a *transposed convolution* of ``grad_out`` with the same weight (stride and
  dilation kept, the forward padding cropped off again, ``output_padding`` restoring the input
  positions the last stride skipped). With a padding mode other than zeros, the gradient reaches
  the padded input and is folded back onto the elements the padding copied (the adjoint of the pad).
- ``grad_weight`` is a *correlation* of the padded input with ``grad_out``, batch and channel axes
  swapped: the batch becomes the summed axis, the forward dilation becomes the stride and the
  forward stride becomes the dilation.
- ``grad_bias`` is ``grad_out`` summed over the batch and every spatial axis.

Both convolutions go through the same parser, planner and methods as the forward calls, so
``method=`` chooses the formulation exactly as it does there. Under ``method="auto"``, grad_weight
is instead one GEMM per group, ``grad_out (C_out/G, N*P) @ columns (N*P, C_in/G*K)``, over chunks
of the batch: the correlation's "kernel" is a whole output map, which no method runs fast, and the
chunks keep the scratch within half of ``input + grad_out`` (N32 C128 28x28 3x3: 240 -> 62 ms, peak
3x -> 0.4x of input + output).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _threads
from ._run import execute
from ._spec import (
    PAD_MODES,
    as_array,
    compute_dtype,
    parse_conv,
    parse_conv_transpose,
    parse_method,
    result_dtype,
)
from .algorithms._common import pad, windows

_NEEDS = ("x", "weight", "bias")


def _parse_need(func: str, need: Any) -> frozenset[str]:
    names = (need,) if isinstance(need, str) else need
    if not isinstance(names, Iterable):
        raise TypeError(f"{func}: need must be a name or a tuple of names from {_NEEDS}, got {need!r}")
    names = tuple(names)
    bad = [n for n in names if n not in _NEEDS]
    if bad:
        raise ValueError(f"{func}: need may only name {', '.join(map(repr, _NEEDS))}, got {need!r}")
    return frozenset(names)


def fold_padding(grad_padded: np.ndarray, pads: tuple[tuple[int, int], ...], padding_mode: str) -> np.ndarray:
    """The adjoint of padding: add each padded element's gradient onto the element it copies.

    Parameters
    ----------
    grad_padded : ndarray of shape (N, C, *padded)
        Gradient with respect to the padded input.
    pads : tuple of (lo, hi) pairs, one per spatial axis
    padding_mode : {"zeros", "reflect", "replicate", "circular"}

    Returns
    -------
    ndarray of shape (N, C, *spatial)
        ``grad_x[j] = sum of grad_padded[p] over every padded position p holding a copy of x[j]``;
        for zeros the padding holds no copies and is simply cropped.

    Notes
    -----
    Padding is applied axis after axis, each a map ``p -> src(p)`` given by ``numpy.pad`` of the
    indices ``0..n-1``; the adjoint runs the axes in the same way, so corners fold correctly.

    Examples
    --------
    >>> import numpy as np
    >>> from convdot.grad import fold_padding
    >>> fold_padding(np.arange(6.).reshape(1, 1, 6), ((1, 2),), "circular")  # [a b c] -> [c | a b c | a b]
    array([[[5., 7., 3.]]])
    """
    out = grad_padded
    for ax, (lo, hi) in enumerate(pads, start=2):
        if not (lo or hi):
            continue
        n = out.shape[ax] - lo - hi
        lead = (slice(None),) * ax
        folded = np.array(out[(*lead, slice(lo, lo + n))], copy=True)  # the interior maps onto itself
        if padding_mode != "zeros":
            src = np.pad(np.arange(n), (lo, hi), mode=PAD_MODES[padding_mode])  # padded index -> source index
            edges = np.r_[0:lo, lo + n:lo + n + hi]
            np.add.at(folded, (*lead, src[edges]), out[(*lead, edges)])
        out = folded
    return out


def _backward(func: str, grad_out: Any, x: Any, weight: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
              padding_mode: Any, need: Any, method: Any, nd: int | None, threads: int | None = None):
    with _threads.using(threads, func=func):
        return _gradients(func, grad_out, x, weight, stride, padding, dilation, groups, padding_mode, need, method, nd)


def _gradients(func: str, grad_out: Any, x: Any, weight: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
               padding_mode: Any, need: Any, method: Any, nd: int | None):
    method = parse_method(func, method)
    wanted = _parse_need(func, need)
    p = parse_conv(func, x, weight, None, stride, padding, dilation, groups, padding_mode, nd=nd)
    spec = p.spec
    g = as_array(func, "grad_out", grad_out)
    expected = spec.out_shape if p.batched else spec.out_shape[1:]
    if g.shape != expected:
        form = "(N, C_out, *out)" if p.batched else "(C_out, *out)"
        raise ValueError(f"{func}: grad_out must have the shape {form} = {expected} of the forward output for x of "
                         f"shape {tuple(np.shape(x))} and weight of shape {spec.w_shape}, got shape {g.shape}")
    g4 = g if p.batched else g[None]  # (N, C_out, *out)
    out_dtype = result_dtype(g4, p.x, p.w)
    ct = compute_dtype(g4, p.x, p.w)  # one compute dtype for both convolutions, whatever mix came in
    g4, w, xs = (a.astype(ct, copy=False) for a in (g4, p.w, p.x))
    if ct.kind == "c":  # gradients of a real loss: conjugate the other factor, as torch.autograd does
        w, xs = np.conj(w), np.conj(xs)
    nsp = spec.nd
    gx = gw = gb = None

    if "x" in wanted:
        # conv_transpose's weight (C_in', C_out'/G, *k) is the forward weight (C_out, C_in/G, *k) as it is.
        zeros = spec.padding_mode == "zeros"
        pads = spec.pads if zeros else ((0, 0),) * nsp  # zeros: crop the padding in the transposed conv itself
        target = spec.x_shape[2:] if zeros else spec.padded_shape
        full = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in
                zip(spec.out_shape[2:], spec.stride, spec.dilation, spec.kernel)]
        # output_padding: the padded positions after the last window, which the stride skipped (< stride)
        opad = tuple(t + lo + hi - f for t, (lo, hi), f in zip(target, pads, full))
        pt = parse_conv_transpose(f"{func} (grad_x)", g4, w, None, spec.stride, pads, opad, spec.groups, spec.dilation)
        gx = execute(pt, method)  # (N, C_in, *target)
        if not zeros:
            gx = fold_padding(gx, spec.pads, spec.padding_mode)
        gx = gx.astype(out_dtype, copy=False)
        gx = gx if p.batched else gx[0]

    if "weight" in wanted:
        if method == "auto" and _columns_fit(spec, xs, g4):
            gw = _grad_weight_gemm(xs, g4, spec).astype(out_dtype, copy=False)
        else:
            gw = _grad_weight_conv(func, xs, g4, spec, method).astype(out_dtype)  # (C_out, Cg, *k)

    if "bias" in wanted:
        gb = g4.sum(axis=(0, *range(2, 2 + nsp))).astype(out_dtype, copy=False)  # (C_out,)
    return gx, gw, gb


def _grad_weight_conv(func: str, xs: np.ndarray, g4: np.ndarray, spec: Any, method: str) -> np.ndarray:
    """grad_weight as a correlation with grad_out as the filters, through the planner; ``(C_out, Cg, *k)``."""
    n, c_in = spec.x_shape[:2]
    groups, nsp = spec.groups, spec.nd
    cg = c_in // groups
    # x (N, C_in, *sp) -> (N, G, Cg, *sp) -> (Cg, G, N, *sp) -> (Cg, G*N, *sp): channels become the batch
    xt = xs.reshape(n, groups, cg, *spec.x_shape[2:]).transpose(2, 1, 0, *range(3, 3 + nsp))
    xt = xt.reshape(cg, groups * n, *spec.x_shape[2:])
    gt = g4.swapaxes(0, 1)  # (C_out, N, *out): grad_out as filters over the batch
    pw = parse_conv(f"{func} (grad_weight)", xt, gt, None, spec.dilation, spec.pads, spec.stride, groups,
                    spec.padding_mode)
    corr = execute(pw, method)  # (Cg, C_out, *k'), k' >= k: taps past the last window the stride skipped
    corr = corr[(slice(None), slice(None), *(slice(0, k) for k in spec.kernel))]
    return corr.swapaxes(0, 1)  # (C_out, Cg, *k)


def _column_bytes(spec: Any, itemsize: int) -> int:
    """Scratch of :func:`_grad_weight_gemm` per image: its padded input, columns and grad_out copy."""
    c_in, c_out = spec.x_shape[1], spec.out_shape[1]
    p = math.prod(spec.out_shape[2:])
    return (c_in * (math.prod(spec.padded_shape) + math.prod(spec.kernel) * p) + c_out * p) * itemsize


def _columns_fit(spec: Any, xs: np.ndarray, g4: np.ndarray) -> bool:
    """Whether one image's columns fit in half of ``input + grad_out`` (else the planner's correlation runs)."""
    return _column_bytes(spec, xs.dtype.itemsize) <= (xs.nbytes + g4.nbytes) // 2


def _grad_weight_gemm(xs: np.ndarray, g4: np.ndarray, spec: Any) -> np.ndarray:
    """grad_weight as one GEMM per group, ``grad_out (Cog, n*P) @ columns (n*P, Cg*K)``, summed over batch chunks.

    Chunks of images keep the scratch (padded input, columns, grad_out copy) within half of
    ``input + grad_out``; the sum over the batch is accumulated in the compute dtype.
    Returns shape ``(C_out, Cg, *k)``.
    """
    n, c_in = spec.x_shape[:2]
    nd, groups = spec.nd, spec.groups
    cg, cog = c_in // groups, spec.out_shape[1] // groups
    out_sp, kernel = spec.out_shape[2:], spec.kernel
    p, taps = math.prod(out_sp), math.prod(kernel)
    step = max(1, ((xs.nbytes + g4.nbytes) // 2) // _column_bytes(spec, xs.dtype.itemsize))
    gw = np.zeros((groups, cog, cg * taps), dtype=xs.dtype)  # (G, Cog, Cg*K)
    for n0 in range(0, n, step):
        win = windows(pad(xs[n0:n0 + step], spec), spec)  # (b, C_in, *out, *k), a view
        b = win.shape[0]
        win = win.reshape(b, groups, cg, *out_sp, *kernel)  # (b, G, Cg, *out, *k)
        # (b, G, Cg, *out, *k) -> (G, Cg, *k, b, *out) -> (G, Cg*K, b*P): the columns, one copy that
        # reads the input's rows in order
        cols = win.transpose(1, 2, *range(3 + nd, 3 + 2 * nd), 0, *range(3, 3 + nd)).reshape(groups, cg * taps, b * p)
        # (b, C_out, *out) -> (G, Cog, b, P) -> (G, Cog, b*P)
        go = g4[n0:n0 + b].reshape(b, groups, cog, p).transpose(1, 2, 0, 3).reshape(groups, cog, b * p)
        gw += np.matmul(go, cols.transpose(0, 2, 1))  # (G, Cog, b*P) @ (G, b*P, Cg*K) -> (G, Cog, Cg*K)
    return gw.reshape(spec.out_shape[1], cg, *kernel)  # (G, Cog, Cg*K) -> (C_out, Cg, *k)


_DOC = """{summary}

    Parameters
    ----------
    grad_out : array_like of shape (N, C_out, {osp}) or unbatched (C_out, {osp})
        Gradient of the loss with respect to the forward output; must have the forward output's shape.
    x : array_like of shape (N, C_in, {sp}) or unbatched (C_in, {sp})
        The forward input.
    weight : array_like of shape (C_out, C_in/groups, {ks})
        The forward filters.
    stride, padding, dilation, groups, padding_mode
        Exactly as given to the forward :func:`convdot.conv{n}` (padding may be "same", "valid", an
        int, or one int or ``(lo, hi)`` pair per axis).
    need : tuple of {{"x", "weight", "bias"}}, default all three
        Which gradients to compute; the others are returned as None.
    method : str, default "auto"
        "auto" or one of :data:`convdot.METHODS`, used for both convolutions.
    threads : int, optional
        Threads for convdot's own loops (default ``$CONVDOT_NUM_THREADS`` or every CPU); the BLAS
        keeps its own setting.

    Returns
    -------
    grad_x : ndarray shaped like x, or None
        A transposed convolution of ``grad_out`` with ``weight``.
    grad_weight : ndarray of shape (C_out, C_in/groups, {ks}), or None
        A correlation of the padded input with ``grad_out`` over the batch.
    grad_bias : ndarray of shape (C_out,), or None
        ``grad_out`` summed over the batch and spatial axes.

    Notes
    -----
    With ``out[n, o, i] = sum_{{c, k}} xpad[n, g*C_in/G + c, i*stride + k*dilation] * weight[o, c, k]``:
    ``grad_xpad[n, g*C_in/G + c, p] = sum_{{o, i, k : i*stride + k*dilation = p}} grad_out[n, o, i] * weight[o, c, k]``
    (a transposed convolution, then folded back onto ``x`` through the padding) and
    ``grad_weight[o, c, k] = sum_{{n, i}} grad_out[n, o, i] * xpad[n, g*C_in/G + c, i*stride + k*dilation]``
    (a correlation in which dilation and stride swap roles). Complex inputs follow torch.autograd:
    the gradient of a real loss, with the other factor conjugated. Dtypes follow the forward call.

    Examples
    --------
    {example}
"""


def conv_backward(grad_out: Any, x: Any, weight: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                  groups: int = 1, padding_mode: str = "zeros", need: Any = _NEEDS, method: str = "auto",
                  threads: int | None = None):
    return _backward("conv_backward", grad_out, x, weight, stride, padding, dilation, groups, padding_mode, need,
                     method, None, threads)


def conv_backward1d(grad_out: Any, x: Any, weight: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                    groups: int = 1, padding_mode: str = "zeros", need: Any = _NEEDS, method: str = "auto",
                    threads: int | None = None):
    return _backward("conv_backward1d", grad_out, x, weight, stride, padding, dilation, groups, padding_mode, need,
                     method, 1, threads)


def conv_backward2d(grad_out: Any, x: Any, weight: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                    groups: int = 1, padding_mode: str = "zeros", need: Any = _NEEDS, method: str = "auto",
                    threads: int | None = None):
    return _backward("conv_backward2d", grad_out, x, weight, stride, padding, dilation, groups, padding_mode, need,
                     method, 2, threads)


def conv_backward3d(grad_out: Any, x: Any, weight: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                    groups: int = 1, padding_mode: str = "zeros", need: Any = _NEEDS, method: str = "auto",
                    threads: int | None = None):
    return _backward("conv_backward3d", grad_out, x, weight, stride, padding, dilation, groups, padding_mode, need,
                     method, 3, threads)


conv_backward.__doc__ = _DOC.format(
    summary="Gradients of a convolution layer of any spatial rank (``weight.ndim - 2``), each as a convolution.",
    osp="*out", sp="*spatial", ks="*k", n="", example=""">>> import numpy as np, convdot
    >>> x = np.array([[[1., 2., 3., 4.]]])
    >>> w = np.array([[[1., 10.]]])
    >>> gx, gw, gb = convdot.conv_backward(np.ones((1, 1, 3)), x, w)
    >>> gx  # each input receives the weights of the windows it sits in
    array([[[ 1., 11., 11., 10.]]])
    >>> gw  # each tap receives the inputs it met
    array([[[6., 9.]]])
    >>> gb
    array([3.])""")
conv_backward1d.__doc__ = _DOC.format(
    summary="Gradients of a 1-D convolution layer (``torch.nn.functional.conv1d``), each as a convolution.",
    osp="L_out", sp="L", ks="kL", n="1d", example=""">>> import numpy as np, convdot
    >>> gx, gw, gb = convdot.conv_backward1d(np.ones((1, 1, 2)), np.arange(5.)[None, None], np.ones((1, 1, 3)),
    ...                                      stride=2)
    >>> gx
    array([[[1., 1., 2., 1., 1.]]])
    >>> gw
    array([[[2., 4., 6.]]])""")
conv_backward2d.__doc__ = _DOC.format(
    summary="Gradients of a 2-D convolution layer (``torch.nn.functional.conv2d``), each as a convolution.",
    osp="H_out, W_out", sp="H, W", ks="kH, kW", n="2d", example=""">>> import numpy as np, convdot
    >>> x = np.ones((2, 3, 8, 8)); w = np.ones((4, 3, 3, 3))
    >>> gx, gw, gb = convdot.conv_backward2d(np.ones((2, 4, 8, 8)), x, w, padding="same", padding_mode="reflect")
    >>> gx.shape, gw.shape, gb.shape
    ((2, 3, 8, 8), (4, 3, 3, 3), (4,))
    >>> float(gx.sum()) == 2 * 4 * 8 * 8 * 27  # every product reaches x, through the reflection too
    True""")
conv_backward3d.__doc__ = _DOC.format(
    summary="Gradients of a 3-D convolution layer (``torch.nn.functional.conv3d``), each as a convolution.",
    osp="D_out, H_out, W_out", sp="D, H, W", ks="kD, kH, kW", n="3d", example=""">>> import numpy as np, convdot
    >>> _, gw, _ = convdot.conv_backward3d(np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 3, 3, 3)), np.ones((1, 1, 2, 2, 2)),
    ...                                    need=("weight",))
    >>> gw.shape, float(gw.sum())
    ((1, 1, 2, 2, 2), 64.0)""")
