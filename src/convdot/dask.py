"""Convolutions of Dask arrays, lazily, chunk by chunk, with exactly the halo each chunk needs.

Every function here mirrors the in-memory function of the same name (SciPy dialect:
:func:`correlate`, :func:`convolve`, :func:`correlate2d`, :func:`convolve2d`; PyTorch dialect:
:func:`conv`, :func:`conv1d`/2d/3d, :func:`conv_transpose`/1d/2d/3d), takes a ``dask.array.Array``
(or any array, which is wrapped) and returns a ``dask.array.Array`` whose values are those of the
in-memory call. Nothing is computed until you ask: ``.compute()``, ``.to_zarr(...)``, or a
``dask.distributed.Client`` when one is active (the threaded scheduler otherwise).

How a spatial axis is cut
-------------------------
The arguments are parsed by the same parser as the in-memory call, which gives explicit ``(lo, hi)``
pads and a boundary mode. When the output is as large as the input (``mode="same"``, stride 1) one
``map_overlap`` on the input does it: every chunk gets a halo of ``max(lo, hi)`` from its neighbours,
a chunk at the array's edge pads that side itself (fill, mirror, edge copy), wrap-around comes from
dask's 'periodic' boundary, and the output chunks are the input's. Otherwise ('full'/'valid',
strides, halos longer than the axis) the padding becomes thin slabs glued onto the edge chunks
(copied from the array itself, so any pad width works), and each chunk is extended by an
asymmetric halo ``(left, right)`` whose total is the dilated kernel span less the stride,
``dilation*(k-1) + 1 - stride`` -- the least any cut can need; only the edge chunks change size,
and with a stride the cuts move onto multiples of it. Chunks smaller than the halo are merged first.

CNN layers are cut over the batch and over space like this; channel chunks of ``x`` each give a
partial sum of every output channel (``groups=1``) that is then added up, or, with groups, are
regrouped to whole groups and give their own output channels.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import numpy as np

try:
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("convdot.dask needs dask; install it with: pip install 'convdot[dask]'") from exc

from . import _threads
from ._run import execute
from ._spec import PAD_MODES, parse_conv, parse_conv_transpose, parse_method, parse_signal

__all__ = [
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
]


# --------------------------------------------------------------------------- inputs


def _as_dask(func: str, name: str, value: Any) -> da.Array:
    arr = value if isinstance(value, da.Array) else da.asarray(value)
    if any(np.isnan(c) for cs in arr.chunks for c in cs):
        raise ValueError(f"{func}: {name} has unknown chunk sizes {arr.chunks}; "
                         f"call {name}.compute_chunk_sizes() first")
    return arr


def _in_memory(value: Any) -> Any:
    """Kernels and biases are small: a dask one is computed, anything else passed on as it is."""
    return value.compute() if isinstance(value, da.Array) else value


def _stand_in(arr: da.Array) -> np.ndarray:
    """A zero-strided array with ``arr``'s shape and dtype: lets the in-memory parser check shapes for free."""
    return np.broadcast_to(np.zeros((), dtype=arr.dtype), arr.shape)


# --------------------------------------------------------------------------- cutting one axis


def plan_axis(chunks: tuple[int, ...], lo: int, hi: int, span: int, stride: int):
    """Where to cut one spatial axis, and the halo each piece needs.

    Parameters
    ----------
    chunks : tuple of int
        The input's chunk sizes along the axis (summing to its length ``n``).
    lo, hi : int
        Padding on the two sides.
    span : int
        The dilated kernel extent, ``dilation*(k-1) + 1``.
    stride : int

    Returns
    -------
    padded_chunks : tuple of int
        Chunks of the padded axis (length ``n + lo + hi``): the pads are glued onto the edge chunks,
        cuts sit where the input's did (moved onto the stride grid), none smaller than the halo.
    out_chunks : tuple of int
        The output's chunks along the axis, one per padded chunk.
    depth : (int, int)
        The halo taken from the left and right neighbours; their sum is ``max(span - stride, 0)``.

    Notes
    -----
    Output ``i`` reads padded positions ``i*stride .. i*stride + span - 1``. A piece starting at
    padded position ``beta*stride + left`` produces the outputs from ``beta`` on, so every cut
    must sit at ``left`` modulo ``stride``.

    Examples
    --------
    >>> from convdot.dask import plan_axis
    >>> plan_axis((4, 4, 4), 1, 1, 3, 1)  # 'same' with a 3-tap kernel: output chunks = input chunks
    ((5, 4, 5), (4, 4, 4), (1, 1))
    """
    n = sum(chunks)
    total = n + lo + hi
    length = (total - span) // stride + 1
    halo = max(span - stride, 0)
    left = min(lo, halo)
    right = halo - left
    smallest = max(left, right, 1)
    cuts: list[int] = []  # output index where each new piece starts
    start = 0
    for b in np.cumsum(chunks)[:-1]:
        beta = round((lo + int(b) - left) / stride)
        if beta < 1 or beta > length - 1 or (cuts and beta <= cuts[-1]):
            continue
        if beta * stride + left - start < smallest:
            continue
        cuts.append(beta)
        start = beta * stride + left
    while cuts and (total - (cuts[-1] * stride + left) < smallest):
        cuts.pop()
    bounds = [0, *(c * stride + left for c in cuts), total]
    outs = [0, *cuts, length]
    return (tuple(int(b - a) for a, b in itertools.pairwise(bounds)),
            tuple(int(b - a) for a, b in itertools.pairwise(outs)), (left, right))


def _pad_axis(x: da.Array, axis: int, lo: int, hi: int, mode: str, fill: Any) -> da.Array:
    """Glue the padding of one axis onto the array as slabs (lazily; copies of edge chunks or a constant)."""
    if not (lo or hi):
        return x
    parts = []
    n = x.shape[axis]
    src = None if mode == "constant" else np.pad(np.arange(n), (lo, hi), mode=mode)  # padded index -> source index
    for width, where in ((lo, slice(0, lo)), (None, None), (hi, slice(n + lo, n + lo + hi))):
        if width is None:
            parts.append(x)
        elif width:
            if src is None:
                shape = list(x.shape)
                shape[axis] = width
                chunks = list(x.chunks)
                chunks[axis] = (width,)
                parts.append(da.full(tuple(shape), fill, dtype=x.dtype, chunks=tuple(chunks)))
            else:
                parts.append(x[(slice(None),) * axis + (src[where],)])
    return da.concatenate(parts, axis=axis)


# --------------------------------------------------------------------------- one block


def _block(xb: np.ndarray, *, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], groups: int,
           method: str, func: str, bare: bool, crop: tuple[tuple[int, int], ...] | None = None,
           edge: tuple[str, Any, tuple[int, ...]] | None = None, threads: int | None = None,
           block_info: Any = None) -> np.ndarray:
    """An unpadded (valid) convolution of one halo-extended block, in the compute dtype.

    ``bare``: the block is spatial only (SciPy dialect), one image of one channel. ``edge``:
    ``(numpy.pad mode, fill value, halo per spatial axis)`` to pad on the sides where the block
    meets the array's edge (dask gave it no halo there). ``crop``: halo beyond what the window
    needs, per spatial axis, dropped before the sum.
    """
    nd = w.ndim - 2
    lead = xb.ndim - nd
    if edge is not None:
        mode, fill, halo = edge
        loc, num = block_info[0]["chunk-location"], block_info[0]["num-chunks"]
        width = [(0, 0)] * lead + [(h if loc[lead + i] == 0 else 0, h if loc[lead + i] == num[lead + i] - 1 else 0)
                                   for i, h in enumerate(halo)]
        if any(a or b for a, b in width):
            xb = np.pad(xb, width, mode=mode, **({"constant_values": fill} if mode == "constant" else {}))
    if crop is not None:
        xb = xb[(Ellipsis, *(slice(a, xb.shape[lead + i] - b) for i, (a, b) in enumerate(crop)))]
    p = parse_conv(func, xb[None, None] if bare else xb, w, None, stride, 0, dilation, groups)
    out = execute(p, method, threads)
    return out[0, 0] if bare else out


def _stuff(block: np.ndarray, factors: tuple[int, ...], block_info: Any = None) -> np.ndarray:
    """Zero-stuff one block for a transposed convolution: ``factor - 1`` zeros after every element
    (none after the array's last element)."""
    loc, num = block_info[0]["chunk-location"], block_info[0]["num-chunks"]
    nd = len(factors)
    shape = list(block.shape)
    for i, f in enumerate(factors):
        ax = block.ndim - nd + i
        last = loc[ax] == num[ax] - 1
        shape[ax] = block.shape[ax] * f - (f - 1 if last else 0)
    out = np.zeros(shape, dtype=block.dtype)
    out[(Ellipsis, *(slice(None, None, f) for f in factors))] = block
    return out


def _spatial_conv(x: da.Array, w: np.ndarray, pads, mode: str, fill: Any, stride, dilation, groups: int,
                  method: str, func: str, threads: int | None = None) -> da.Array:
    """``x`` (N, C, *spatial) -> (N, C_out, *out) for one channel piece, or, for a bare ``x`` (*spatial) and a
    one-channel ``w``, (*spatial) -> (*out). ``x`` is in the compute dtype."""
    lead = x.ndim - (w.ndim - 2)  # 2, or 0 for a bare image
    same = _same_size(x, w, pads, mode, fill, stride, dilation, groups, method, func, lead, threads)
    if same is not None:
        return same
    planned = [plan_axis(x.chunks[lead + i], lo, hi, d * (k - 1) + 1, s)
               for i, ((lo, hi), k, s, d) in enumerate(zip(pads, w.shape[2:], stride, dilation))]
    xp = x
    for i, (lo, hi) in enumerate(pads):
        xp = _pad_axis(xp, lead + i, lo, hi, mode, fill)
    xp = xp.rechunk((*x.chunks[:lead], *(pl[0] for pl in planned)))
    out_chunks = (x.chunks[0], (w.shape[0],))[:lead] + tuple(pl[1] for pl in planned)
    depth = {**dict.fromkeys(range(lead), 0), **{lead + i: pl[2] for i, pl in enumerate(planned)}}
    fn = functools.partial(_block, w=w, stride=tuple(stride), dilation=tuple(dilation), groups=groups, method=method,
                           func=func, bare=lead == 0, threads=threads)
    return da.map_overlap(fn, xp, depth=depth, boundary="none", trim=False, allow_rechunk=False, chunks=out_chunks,
                          dtype=w.dtype, meta=np.empty((0,) * x.ndim, dtype=w.dtype))


def _same_size(x: da.Array, w: np.ndarray, pads, mode: str, fill: Any, stride, dilation, groups: int, method: str,
               func: str, lead: int, threads: int | None = None) -> da.Array | None:
    """The common case in fewer tasks: output as large as the input (stride 1, ``lo + hi`` = the span less one).

    One ``map_overlap`` on the input itself with a symmetric halo of ``max(lo, hi)`` (one element more
    than needed on one side when the kernel is even, dropped in the block); the output chunks are the
    input's. Each block pads its own sides that meet the array's edge (they hold what the padding
    copies), except for wrap-around, which dask's 'periodic' boundary fetches from the far end. None
    when this does not apply (strides, 'full'/'valid' sizes, a halo longer than the axis).
    """
    spans = [d * (k - 1) for k, d in zip(w.shape[2:], dilation)]
    if any(s != 1 for s in stride) or any(lo + hi != sp for (lo, hi), sp in zip(pads, spans)):
        return None
    halo = [max(lo, hi) for lo, hi in pads]
    if any(h + (mode == "reflect") > n for h, n in zip(halo, x.shape[lead:])):
        return None
    from dask.array.overlap import ensure_minimum_chunksize

    # every chunk at least the halo (numpy's reflect, which skips the edge element, one more)
    least = [h + (mode == "reflect") if h else 0 for h in halo]
    x = x.rechunk((*x.chunks[:lead], *(ensure_minimum_chunksize(m, c) if m else c
                                       for m, c in zip(least, x.chunks[lead:]))))
    wrap = mode == "wrap"
    depth = {**dict.fromkeys(range(lead), 0), **{lead + i: h for i, h in enumerate(halo)}}
    boundary = {**dict.fromkeys(range(lead), "none"), **{lead + i: "periodic" if wrap else "none"
                                                        for i in range(len(halo))}}
    out_chunks = (x.chunks[0], (w.shape[0],))[:lead] + x.chunks[lead:]
    fn = functools.partial(_block, w=w, stride=tuple(stride), dilation=tuple(dilation), groups=groups, method=method,
                           func=func, bare=lead == 0, crop=tuple((h - lo, h - hi) for h, (lo, hi) in zip(halo, pads)),
                           edge=None if wrap else (mode, fill, tuple(halo)), threads=threads)
    return da.map_overlap(fn, x, depth=depth, boundary=boundary, trim=False, allow_rechunk=False, chunks=out_chunks,
                          dtype=w.dtype, meta=np.empty((0,) * x.ndim, dtype=w.dtype))


def _layer(x: da.Array, w: np.ndarray, pads, mode: str, fill: Any, stride, dilation, groups: int, method: str,
           func: str, threads: int | None = None) -> da.Array:
    """A canonical problem over dask: ``x`` (N, C_in, *spatial) -> (N, C_out, *out), compute dtype."""
    c_in = x.shape[1]
    cg = c_in // groups
    cog = w.shape[0] // groups
    if groups > 1 and any(c % cg for c in x.chunks[1]):
        # regroup channel chunks onto whole groups, about as many channels per chunk as before
        per = max(1, round(max(x.chunks[1]) / cg))
        x = x.rechunk({1: per * cg})
    pieces = []
    start = 0
    for c in x.chunks[1]:
        xc = x[:, start:start + c]
        if groups == 1:  # a partial sum of every output channel
            wc, gc = w[:, start:start + c], 1
        else:  # whole groups: their own output channels
            g0, g1 = start // cg, (start + c) // cg
            wc, gc = w[g0 * cog:g1 * cog], g1 - g0
        pieces.append(_spatial_conv(xc, np.ascontiguousarray(wc), pads, mode, fill, stride, dilation, gc, method, func,
                                    threads))
        start += c
    if len(pieces) == 1:
        return pieces[0]
    if groups == 1:
        return da.stack(pieces).sum(axis=0, dtype=w.dtype)  # a tree reduction over the channel chunks
    return da.concatenate(pieces, axis=1)


def _finish(out: da.Array, parsed, bias: np.ndarray | None, batched: bool) -> da.Array:
    spec = parsed.spec
    if bias is not None:
        out = out + bias.astype(spec.dtype).reshape(-1, *(1,) * spec.nd)  # (C_out, 1, ...)
    out = out.astype(parsed.out_dtype, copy=False)
    return out if batched else out[0]


# --------------------------------------------------------------------------- PyTorch dialect


def _conv(func: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
          padding_mode: Any, method: Any, nd: int | None, threads: int | None = None) -> da.Array:
    method = parse_method(func, method)
    _threads.num_threads(threads, func=func)  # a bad count fails now, not inside a task
    xd = _as_dask(func, "x", x)
    p = parse_conv(func, _stand_in(xd), _in_memory(weight), _in_memory(bias), stride, padding, dilation, groups,
                   padding_mode, nd=nd)
    spec = p.spec
    x4 = (xd if p.batched else xd[None]).astype(spec.dtype)  # (N, C_in, *spatial)
    w = np.asarray(p.w, dtype=spec.dtype)
    out = _layer(x4, w, spec.pads, PAD_MODES[spec.padding_mode], spec.fillvalue, spec.stride, spec.dilation,
                 spec.groups, method, func, threads)
    return _finish(out, p, p.bias, p.batched)


def _conv_transpose(func: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any,
                    groups: Any, dilation: Any, method: Any, nd: int | None, threads: int | None = None) -> da.Array:
    method = parse_method(func, method)
    _threads.num_threads(threads, func=func)  # a bad count fails now, not inside a task
    xd = _as_dask(func, "x", x)
    p = parse_conv_transpose(func, _stand_in(xd), _in_memory(weight), _in_memory(bias), stride, padding,
                             output_padding, groups, dilation, nd=nd)
    spec = p.spec
    x4 = (xd if p.batched else xd[None]).astype(spec.dtype)  # (N, C_in, *spatial)
    factors = tuple(p.input_dilation)
    if any(f > 1 for f in factors):
        # every element but the array's last gains f - 1 zeros after it
        chunks = (*x4.chunks[:2], *((*(c * f for c in cs[:-1]), (cs[-1] - 1) * f + 1)
                                    for cs, f in zip(x4.chunks[2:], factors)))
        x4 = x4.map_blocks(_stuff, factors, chunks=chunks, dtype=x4.dtype)
    w = np.asarray(p.w, dtype=spec.dtype)
    out = _layer(x4, w, spec.pads, "constant", 0, spec.stride, spec.dilation, spec.groups, method, func, threads)
    if any(lo or hi for lo, hi in p.crop):
        out = out[(slice(None), slice(None), *(slice(lo, n - hi) for (lo, hi), n in zip(p.crop, out.shape[2:])))]
    return _finish(out, p, p.bias, p.batched)


_CONV_DOC = """{summary}

    Parameters
    ----------
    x : dask.array.Array of shape (N, C_in, {sp}) or unbatched (C_in, {sp})
        Input, chunked any way (over the batch, channels and space); other arrays are wrapped.
    weight : array_like of shape (C_out, C_in/groups, {ks})
        Filters (held in memory and sent with every task).
    bias, stride, padding, dilation, groups, padding_mode, method, threads
        Exactly as for :func:`convdot.conv{n}`.

    Returns
    -------
    dask.array.Array of shape (N, C_out, {osp})
        Lazy; computing it gives the in-memory result. Batch and spatial chunks follow ``x``'s.

    Notes
    -----
    ``out[n, o, i] = bias[o] + sum_{{c, k}} xpad[n, g*C_in/G + c, i*stride + k*dilation] * weight[o, c, k]``.
    Each spatial chunk is extended by a halo of ``dilation*(k-1) + 1 - stride`` elements in total; channel
    chunks give partial sums that are added up (or, with groups, their own output channels).

    Examples
    --------
    {example}
"""


def conv(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
         groups: int = 1, *, padding_mode: str = "zeros", method: str = "auto",
           threads: int | None = None) -> da.Array:
    return _conv("conv", x, weight, bias, stride, padding, dilation, groups, padding_mode, method, None, threads)


def conv1d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, *, padding_mode: str = "zeros", method: str = "auto",
           threads: int | None = None) -> da.Array:
    return _conv("conv1d", x, weight, bias, stride, padding, dilation, groups, padding_mode, method, 1, threads)


def conv2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, *, padding_mode: str = "zeros", method: str = "auto",
           threads: int | None = None) -> da.Array:
    return _conv("conv2d", x, weight, bias, stride, padding, dilation, groups, padding_mode, method, 2, threads)


def conv3d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, *, padding_mode: str = "zeros", method: str = "auto",
           threads: int | None = None) -> da.Array:
    return _conv("conv3d", x, weight, bias, stride, padding, dilation, groups, padding_mode, method, 3, threads)


_CONV_EXAMPLE = """>>> import numpy as np, dask.array as da, convdot, convdot.dask
    >>> x = np.random.default_rng(0).standard_normal((4, 3, 32, 32))
    >>> w = np.random.default_rng(1).standard_normal((8, 3, 3, 3))
    >>> y = convdot.dask.conv{n}(da.from_array(x, chunks=(2, 3, 16, 16)), w, padding=1)
    >>> y.chunks[2:]
    ((16, 16), (16, 16))
    >>> np.allclose(y.compute(), convdot.conv{n}(x, w, padding=1))
    True"""
conv.__doc__ = _CONV_DOC.format(summary="A convolution layer of any spatial rank over a Dask array, lazily.",
                                sp="*spatial", ks="*k", osp="*out", n="", example=_CONV_EXAMPLE.format(n=""))
conv1d.__doc__ = _CONV_DOC.format(summary="A 1-D convolution layer over a Dask array, lazily.", sp="L", ks="kL",
                                  osp="L_out", n="1d", example=""">>> import numpy as np, convdot.dask
    >>> convdot.dask.conv1d(np.array([[[1., 2., 3., 4.]]]), np.array([[[1., 0., -1.]]])).compute()
    array([[[-2., -2.]]])""")
conv2d.__doc__ = _CONV_DOC.format(summary="A 2-D convolution layer over a Dask array, lazily.", sp="H, W",
                                  ks="kH, kW", osp="H_out, W_out", n="2d", example=_CONV_EXAMPLE.format(n="2d"))
conv3d.__doc__ = _CONV_DOC.format(summary="A 3-D convolution layer over a Dask array, lazily.", sp="D, H, W",
                                  ks="kD, kH, kW", osp="D_out, H_out, W_out", n="3d", example=""">>> import numpy as np
    >>> import dask.array as da, convdot.dask
    >>> y = convdot.dask.conv3d(da.ones((1, 2, 8, 8, 8), chunks=4), np.ones((4, 2, 3, 3, 3)), padding="same")
    >>> y.shape, float(y[0, 0, 4, 4, 4].compute())
    ((1, 4, 8, 8, 8), 54.0)""")

_TRANSPOSE_DOC = """{summary}

    Parameters
    ----------
    x : dask.array.Array of shape (N, C_in, {sp}) or unbatched (C_in, {sp})
    weight : array_like of shape (C_in, C_out/groups, {ks})
    bias, stride, padding, output_padding, groups, dilation, method, threads
        Exactly as for :func:`convdot.conv_transpose{n}`.

    Returns
    -------
    dask.array.Array of shape (N, C_out, {osp})
        Lazy; computing it gives the in-memory result.

    Notes
    -----
    Computed as the in-memory call computes it: the input zero-stuffed (chunk by chunk) and
    convolved with the flipped, channel-swapped kernel, each chunk with its halo.

    Examples
    --------
    {example}
"""


def conv_transpose(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                   groups: int = 1, dilation: Any = 1, *, method: str = "auto",
                   threads: int | None = None) -> da.Array:
    return _conv_transpose("conv_transpose", x, weight, bias, stride, padding, output_padding, groups, dilation,
                           method, None, threads)


def conv_transpose1d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *, method: str = "auto",
                     threads: int | None = None) -> da.Array:
    return _conv_transpose("conv_transpose1d", x, weight, bias, stride, padding, output_padding, groups, dilation,
                           method, 1, threads)


def conv_transpose2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *, method: str = "auto",
                     threads: int | None = None) -> da.Array:
    return _conv_transpose("conv_transpose2d", x, weight, bias, stride, padding, output_padding, groups, dilation,
                           method, 2, threads)


def conv_transpose3d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *, method: str = "auto",
                     threads: int | None = None) -> da.Array:
    return _conv_transpose("conv_transpose3d", x, weight, bias, stride, padding, output_padding, groups, dilation,
                           method, 3, threads)


_T_EXAMPLE = """>>> import numpy as np, dask.array as da, convdot.dask
    >>> x = da.from_array(np.array([[[1., 2., 3.]]]), chunks=(1, 1, 2))
    >>> convdot.dask.conv_transpose{n}(x, np.array([[[1., 1., 1.]]]), stride=2).compute()
    array([[[1., 1., 3., 2., 5., 3., 3.]]])"""
_T_SHAPE_EXAMPLE = """>>> import numpy as np, dask.array as da, convdot.dask
    >>> x = da.ones((1, 2, {sp}), chunks=(1, 2, {ch}))
    >>> y = convdot.dask.conv_transpose{n}(x, np.ones((2, 3, {ks})), stride=2)
    >>> y.shape, float(y.sum().compute())
    ((1, 3, {osp}), {total})"""
conv_transpose.__doc__ = _TRANSPOSE_DOC.format(
    summary="A transposed convolution of any rank over a Dask array.", sp="*spatial", ks="*k", osp="*out", n="",
    example=_T_EXAMPLE.format(n=""))
conv_transpose1d.__doc__ = _TRANSPOSE_DOC.format(summary="A 1-D transposed convolution over a Dask array.", sp="L",
                                                 ks="kL", osp="L_out", n="1d", example=_T_EXAMPLE.format(n="1d"))
conv_transpose2d.__doc__ = _TRANSPOSE_DOC.format(
    summary="A 2-D transposed convolution over a Dask array.", sp="H, W", ks="kH, kW", osp="H_out, W_out", n="2d",
    example=_T_SHAPE_EXAMPLE.format(n="2d", sp="6, 6", ch="3, 3", ks="3, 3", osp="13, 13", total=2 * 3 * 36 * 9.0))
conv_transpose3d.__doc__ = _TRANSPOSE_DOC.format(
    summary="A 3-D transposed convolution over a Dask array.", sp="D, H, W", ks="kD, kH, kW",
    osp="D_out, H_out, W_out", n="3d",
    example=_T_SHAPE_EXAMPLE.format(n="3d", sp="4, 4, 4", ch="2, 2, 2", ks="2, 2, 2", osp="8, 8, 8",
                                    total=2 * 3 * 64 * 8.0))


# --------------------------------------------------------------------------- SciPy dialect


def _signal(func: str, in1: Any, in2: Any, mode: Any, method: Any, convolve: bool, boundary: Any = "fill",
            fillvalue: Any = 0, two_d: bool = False, threads: int | None = None) -> da.Array:
    method = parse_method(func, method, scipy=True)
    _threads.num_threads(threads, func=func)  # a bad count fails now, not inside a task
    a = _as_dask(func, "in1", in1)
    p = parse_signal(func, _stand_in(a), _in_memory(in2), mode, convolve=convolve, boundary=boundary,
                     fillvalue=fillvalue, two_d=two_d)
    spec = p.spec
    xs = (a if a.ndim else a.reshape((1,))).astype(spec.dtype)  # (*n): one image, kept bare; a 0-d in1 is (1,)
    w = np.asarray(p.w, dtype=spec.dtype)  # (1, 1, *k)
    out = _spatial_conv(xs, w, spec.pads, PAD_MODES[spec.padding_mode], spec.fillvalue, spec.stride, spec.dilation,
                        1, method, func, threads).astype(p.out_dtype, copy=False)  # (*out)
    return out.reshape(()) if a.ndim == 0 else out


_SIGNAL_DOC = """{summary}

    Parameters
    ----------
    in1 : dask.array.Array of shape (*n)
        The (large) input, chunked any way; other arrays are wrapped.
    in2 : array_like of shape (*k)
        The kernel, held in memory.
    mode : {{"full", "valid", "same"}}, default "full"
        As in SciPy. In "same" the output chunks are ``in1``'s chunks; "full"/"valid" grow or
        shrink only the edge chunks.
    {extra}

    Returns
    -------
    dask.array.Array
        Lazy; computing it gives the in-memory result (same shape and dtype).

    Notes
    -----
    {notes} Each chunk reads a halo of ``k - 1`` elements per axis in total from its neighbours;
    boundary values (fill, wrap, symm) are taken from the array itself, so the edges match too.

    Examples
    --------
    {example}
"""
_METHOD = """method : str, default "auto"
        "auto", SciPy's "direct" or "fft", or any name in :data:`convdot.METHODS`, per chunk.
    threads : int, optional
        convdot's threads inside each task (default ``$CONVDOT_NUM_THREADS`` or every CPU; with a
        threaded Dask scheduler, 1 avoids running more threads than cores)."""
_BOUNDARY = """boundary : {"fill", "wrap", "symm"}, default "fill"
    fillvalue : scalar, default 0
    method : str, default "auto"
        "auto" or any name in :data:`convdot.METHODS`, per chunk.
    threads : int, optional
        convdot's threads inside each task (default ``$CONVDOT_NUM_THREADS`` or every CPU)."""


def correlate(in1: Any, in2: Any, mode: str = "full", method: str = "auto", *,
              threads: int | None = None) -> da.Array:
    return _signal("correlate", in1, in2, mode, method, convolve=False, threads=threads)


def convolve(in1: Any, in2: Any, mode: str = "full", method: str = "auto", *,
             threads: int | None = None) -> da.Array:
    return _signal("convolve", in1, in2, mode, method, convolve=True, threads=threads)


def correlate2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0, *,
                method: str = "auto", threads: int | None = None) -> da.Array:
    return _signal("correlate2d", in1, in2, mode, method, False, boundary, fillvalue, two_d=True, threads=threads)


def convolve2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0, *,
               method: str = "auto", threads: int | None = None) -> da.Array:
    return _signal("convolve2d", in1, in2, mode, method, True, boundary, fillvalue, two_d=True, threads=threads)


correlate.__doc__ = _SIGNAL_DOC.format(
    summary="Cross-correlate a Dask array with a kernel, as ``scipy.signal.correlate``, lazily.", extra=_METHOD,
    notes="``z[k] = sum_n in1[n + k] * conj(in2[n])``.", example=""">>> import numpy as np, dask.array as da
    >>> import convdot.dask
    >>> z = convdot.dask.correlate(da.arange(10., chunks=3), [1., 2., 1.], mode="same")
    >>> z.chunks
    ((3, 3, 3, 1),)
    >>> z.compute()
    array([ 1.,  4.,  8., 12., 16., 20., 24., 28., 32., 26.])""")
convolve.__doc__ = _SIGNAL_DOC.format(
    summary="Convolve a Dask array with a kernel, as ``scipy.signal.convolve``, lazily.", extra=_METHOD,
    notes="``z[k] = sum_n in1[n] * in2[k - n]``.", example=""">>> import dask.array as da, convdot.dask
    >>> convdot.dask.convolve(da.arange(6., chunks=2), [1., 0., -1.], mode="valid").compute()
    array([2., 2., 2., 2.])""")
correlate2d.__doc__ = _SIGNAL_DOC.format(
    summary="Cross-correlate a 2-D Dask array, as ``scipy.signal.correlate2d``, lazily.", extra=_BOUNDARY,
    notes="``z[i, j] = sum_{u, v} in1[i + u, j + v] * conj(in2[u, v])``.", example=""">>> import numpy as np
    >>> import dask.array as da, convdot, convdot.dask
    >>> img = np.random.default_rng(0).standard_normal((50, 60))
    >>> k = np.random.default_rng(1).standard_normal((7, 7))
    >>> z = convdot.dask.correlate2d(da.from_array(img, chunks=16), k, "same", boundary="wrap")
    >>> np.allclose(z.compute(), convdot.correlate2d(img, k, "same", boundary="wrap"))
    True""")
convolve2d.__doc__ = _SIGNAL_DOC.format(
    summary="Convolve a 2-D Dask array, as ``scipy.signal.convolve2d``, lazily.", extra=_BOUNDARY,
    notes="``z[i, j] = sum_{u, v} in1[u, v] * in2[i - u, j - v]``.", example=""">>> import numpy as np
    >>> import dask.array as da, convdot.dask
    >>> A = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
    >>> B = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    >>> convdot.dask.convolve2d(da.from_array(A, chunks=2), B, "valid").compute()
    array([[4, 3, 4],
           [2, 4, 3],
           [2, 3, 4]])""")
