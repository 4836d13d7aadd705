"""Record a :class:`~convdot.explain.Trace` while computing one output element.

The arguments go through the same parse functions as ``conv``/``correlate2d``, and the window
comes from the same padding helper the algorithms use, so the trace shows exactly the values the
layer multiplies, padding included.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._spec import Parsed, as_array, parse_bare_layer, parse_conv, parse_flag, parse_index, parse_signal
from ..algorithms._common import accumulate_dtype, pad
from ._trace import Trace


def _flip(w: np.ndarray) -> np.ndarray:
    """``w`` reversed on every spatial axis (all but the first two)."""
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]


def _call(name: str, args: list[str], options: dict[str, Any], defaults: dict[str, Any]) -> str:
    shown = [f"{k}={v!r}" for k, v in options.items() if v is not None and not _same(v, defaults.get(k))]
    return f"{name}({', '.join(args + shown)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(np.asarray(a, dtype=object) == np.asarray(b, dtype=object))) and np.shape(a) == np.shape(b)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True, eq=False)
class _Problem:
    """One parsed convolution and how its output is indexed; records a Trace for any element."""

    func: str
    parsed: Parsed
    weight: np.ndarray  # (C_out, Cg, *k): the filters as the user gave them
    flipped: bool
    conjugated: bool
    lead: int  # leading canonical axes (N, C_out) the user's output does not have
    call: str
    names: tuple[str, str]
    alt_kernel: np.ndarray | None  # (C_out, Cg, *k): the other convention's kernel, for flipped traces
    _cache: dict = field(default_factory=dict)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.parsed.spec.out_shape[self.lead:]

    def padded(self, n: int) -> np.ndarray:
        """Batch item ``n`` of x, padded by the algorithms' own helper: ``(C_in, *padded)``, read-only."""
        if n not in self._cache:
            xp = pad(self.parsed.x[n:n + 1], self.parsed.spec)[0]  # (C_in, *padded)
            xp.flags.writeable = False
            self._cache[n] = xp
        return self._cache[n]

    def sources(self) -> np.ndarray:
        """Flat input index each padded position's value comes from (-1: the fill value); ``(*padded)``."""
        if "sources" not in self._cache:
            spec = self.parsed.spec
            flat = np.arange(int(np.prod(spec.x_shape[2:]))).reshape(1, 1, *spec.x_shape[2:])  # (1, 1, *spatial)
            self._cache["sources"] = pad(flat, replace(spec, dtype=np.dtype(np.int64), fillvalue=-1))[0, 0]
        return self._cache["sources"]

    def trace(self, index: Any) -> Trace:
        """Compute the element at ``index`` (in the user's output axes), recording every step."""
        idx = parse_index(self.func, index, self.out_shape)
        n, o, *pos = (0,) * self.lead + idx
        spec = self.parsed.spec
        nd, cg = spec.nd, spec.w_shape[1]
        cog = spec.w_shape[0] // spec.groups
        g = o // cog
        lo = [p[0] for p in spec.pads]
        # Padded coordinate of tap t on axis a: pos*stride + t*dilation; the input coordinate is that minus lo.
        at = [np.arange(k) * d + p * s for k, d, p, s in zip(spec.kernel, spec.dilation, pos, spec.stride)]
        taps = tuple(tuple(int(v - lo_a) for v in a) for a, lo_a in zip(at, lo))
        xp = self.padded(n)[g * cg:(g + 1) * cg]  # (Cg, *padded)
        acc = accumulate_dtype(spec.dtype)
        window = xp[np.ix_(np.arange(cg), *at)].astype(acc)  # (Cg, *k)
        kernel = np.asarray(self.parsed.w[o], dtype=acc)  # (Cg, *k), as applied
        product = window * kernel  # (Cg, *k)
        channel_sums = product.reshape(cg, -1).sum(axis=1)  # (Cg,)
        bias = None if self.parsed.bias is None else np.asarray(self.parsed.bias[o], dtype=acc)
        total = channel_sums.sum() + (bias if bias is not None else 0)
        x_col = window.reshape(-1)  # (Cg*K,): this element's column of X_col
        w_row = kernel.reshape(-1)  # (Cg*K,): its filter's row of W_row
        dot = np.dot(x_col, w_row)
        unflipped = None
        if self.alt_kernel is not None:
            unflipped = (window * self.alt_kernel[o]).sum() + (bias if bias is not None else 0)
        outside = [(v < 0) | (v >= size) for v, size in zip((np.array(t) for t in taps), spec.x_shape[2:])]
        padded = np.zeros(spec.kernel, dtype=bool)
        for a, mask in enumerate(outside):
            padded |= mask.reshape((-1,) + (1,) * (nd - 1 - a))  # broadcast axis a over (*k)
        flat_src = self.sources()[np.ix_(*at)]  # (*k)
        source = np.stack(np.unravel_index(np.maximum(flat_src, 0), spec.x_shape[2:]), axis=-1)  # (*k, nd)
        source[flat_src < 0] = -1
        out_sp = spec.out_shape[2:]
        arrays = dict(padded=padded, source=source, window=window, kernel=kernel, product=product,
                      channel_sums=channel_sums, w_row=w_row, x_col=x_col,
                      weight=np.asarray(self.weight[o]), input=xp)
        for a in arrays.values():
            a.flags.writeable = False
        return Trace(
            call=self.call, names=self.names, index=idx, out_shape=self.out_shape, batch=n, out_channel=o,
            position=tuple(pos), group=g, groups=spec.groups, channels=tuple(range(g * cg, (g + 1) * cg)),
            input_shape=tuple(spec.x_shape[2:]), stride=spec.stride, dilation=spec.dilation, pads=spec.pads,
            padding_mode=spec.padding_mode, fillvalue=_scalar(np.asarray(spec.fillvalue)), taps=taps,
            flipped=self.flipped, conjugated=self.conjugated,
            bias=None if bias is None else _scalar(bias), total=_scalar(total), dot=_scalar(dot),
            unflipped_total=None if unflipped is None else _scalar(unflipped),
            row=o - g * cog, column=int(np.ravel_multi_index(tuple(pos), out_sp)),
            w_row_shape=(cog, cg * int(np.prod(spec.kernel))),
            x_col_shape=(cg * int(np.prod(spec.kernel)), int(np.prod(out_sp))),
            dtype=self.parsed.out_dtype, _problem=self, **arrays)


def _scalar(v: np.ndarray) -> Any:
    """A NumPy scalar as the Python number it is (so a trace prints ``3``, not ``np.int64(3)``)."""
    return np.asarray(v).item()


def explain(x: Any, weight: Any, index: Any, *, bias: Any = None, stride: Any = 1, padding: Any = 0,
            dilation: Any = 1, groups: int = 1, padding_mode: str = "zeros", flip: bool = False) -> Trace:
    """How one output element of a convolution layer is computed (PyTorch dialect).

    Parameters
    ----------
    x : array_like of shape (N, C_in, *spatial) or (C_in, *spatial)
        Input, as for :func:`convdot.conv`. A 1-D or 2-D ``x`` with a ``weight`` of the same rank is
        a one-channel signal or image and its kernel.
    weight : array_like of shape (C_out, C_in/groups, *k), or (*k) with a bare ``x``
        Filters.
    index : int or tuple of int
        The output element, in the axes of the output ``conv`` returns for these inputs (just the
        spatial axes for a bare signal/image); negative values count from the end; leading axes of
        size 1 may be left out.
    bias, stride, padding, dilation, groups, padding_mode
        Exactly as for :func:`convdot.conv`.
    flip : bool, default False
        Flip the kernel on every spatial axis first: mathematical convolution instead of the
        cross-correlation CNN layers compute.

    Returns
    -------
    Trace
        The window (coordinates, padding taps and the values the padding mode gave them), the
        kernel as applied, the element-wise product, per-channel sums, bias and total, and the same
        total as a dot product and as one row of ``W_row`` times one column of ``X_col``.

    Notes
    -----
    ``out[n, o, i] = bias[o] + sum_{c, k} xpad[n, g*C_in/G + c, i*stride + k*dilation] * weight[o, c, k]``:
    the sum of the element-wise product of a window and a filter, which is the dot product of the
    two flattened. ``trace.total`` equals ``conv(x, weight, ...)[index]`` for every method.

    Examples
    --------
    >>> import convdot
    >>> A3 = [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    >>> B2 = [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    >>> convdot.explain(A3, B2, (0, 0)).total  # what a CNN layer computes
    3
    >>> convdot.explain(A3, B2, (0, 0), flip=True).total  # mathematical convolution
    4
    """
    func = "explain"
    flip = parse_flag(func, "flip", flip)
    xa, wa, bare = parse_bare_layer(func, x, weight)
    applied = _flip(wa) if flip and wa.ndim >= 3 else wa
    p = parse_conv(func, xa, applied, bias, stride, padding, dilation, groups, padding_mode)
    nd = p.spec.nd
    name = f"conv{nd}d" if nd <= 3 else "conv"
    wname = "weight" + (f"[..., {', '.join(['::-1'] * nd)}]" if flip else "")
    call = _call(name, ["x", wname] + (["bias"] if bias is not None else []),
                 dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode),
                 dict(stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"))
    lead = 2 if bare else (0 if p.batched else 1)
    problem = _Problem(func, p, wa, flip, False, lead, call, ("x", "weight"), wa if flip else None)
    return problem.trace(index)


def explain2d(in1: Any, in2: Any, index: Any, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0,
              convolve: bool = True) -> Trace:
    """How one output element of ``convolve2d`` / ``correlate2d`` is computed (SciPy dialect).

    Parameters
    ----------
    in1 : array_like of shape (H, W)
        The image.
    in2 : array_like of shape (kH, kW)
        The kernel.
    index : tuple of (int, int)
        The output element; negative values count from the end.
    mode, boundary, fillvalue
        Exactly as for :func:`convdot.convolve2d`.
    convolve : bool, default True
        True: ``convolve2d``, which flips ``in2`` (rotates it 180 degrees) before sliding it;
        False: ``correlate2d``, no flip -- what a CNN layer computes.

    Returns
    -------
    Trace
        As from :func:`convdot.explain`; for ``convolve=True`` it also holds ``in2`` as given and
        what the window would give without the flip.

    Notes
    -----
    ``convolve2d``: ``z[i, j] = sum_{u, v} in1[u, v] * in2[i - u, j - v]``, which is the
    correlation of ``in1`` with ``in2`` rotated 180 degrees. ``trace.total`` equals
    ``convolve2d(in1, in2, mode, boundary, fillvalue)[index]``.

    Examples
    --------
    >>> import convdot
    >>> A3 = [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    >>> B2 = [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    >>> t = convdot.explain2d(A3, B2, (0, 0), "valid")
    >>> t.total, t.unflipped_total  # convolve2d flips B2; a CNN layer would not
    (4, 3)
    """
    convolve = parse_flag("explain2d", "convolve", convolve)
    func = "explain2d"
    p = parse_signal(func, in1, in2, mode, convolve=convolve, boundary=boundary, fillvalue=fillvalue, two_d=True)
    v = as_array(func, "in2", in2)
    given = v.reshape(1, 1, *v.shape)  # (1, 1, kH, kW)
    name = "convolve2d" if convolve else "correlate2d"
    call = _call(name, ["in1", "in2"], dict(mode=mode, boundary=boundary, fillvalue=fillvalue),
                 dict(mode="full", boundary="fill", fillvalue=0))
    conjugated = not convolve and not np.array_equal(p.w.reshape(v.shape), v)  # complex correlation conjugates in2
    alt = (np.conj(given) if v.dtype.kind == "c" else given) if convolve else None
    problem = _Problem(func, p, given, convolve, conjugated, 2, call, ("in1", "in2"), alt)
    return problem.trace(index)
