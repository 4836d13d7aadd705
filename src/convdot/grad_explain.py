"""Explain one element of a convolution's gradient: which output gradients and inputs meet in it.

The backward pass of ``out = conv(x, weight, bias)`` sends every product of the forward sum back to
both its factors: the product ``xpad[n, c, i*stride + k*dilation] * weight[o, c, k]`` that went into
``out[n, o, i]`` gives ``grad_out[n, o, i] * weight[o, c, k]`` to that input element (through the
padding: a reflected or wrapped copy sends its share back to the element it copies) and
``grad_out[n, o, i] * xpad[...]`` to that weight tap. :func:`explain_grad` lists those terms for one
gradient element; their sum is the element :func:`convdot.conv_backward` computes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._spec import PAD_MODES, as_array, parse_conv, parse_index
from .algorithms._common import accumulate_dtype

_WRT = ("x", "weight", "bias")
_SHOWN = 24  # terms printed before "... and N more"


@dataclass(frozen=True)
class GradTerm:
    """One product that reaches the gradient element.

    ``grad_out[grad_out_index] * other[other_index]`` (``other`` is "weight" for grad_x, "x" for
    grad_weight, nothing for grad_bias), where ``tap`` is the kernel tap and ``padded`` says the
    input value was a copy made by the padding (or, for zeros, the padding itself).
    """

    grad_out_index: tuple[int, ...]
    grad_out_value: Any
    other_index: tuple[int, ...] | None
    other_value: Any
    tap: tuple[int, ...] | None
    padded: bool
    product: Any


@dataclass(frozen=True)
class GradTrace:
    """How one element of ``grad_x``, ``grad_weight`` or ``grad_bias`` is made.

    Attributes
    ----------
    wrt : {"x", "weight", "bias"}
        Which gradient.
    index : tuple of int
        The element, in that gradient's own axes (``x``'s, ``weight``'s or ``(C_out,)``).
    terms : tuple of GradTerm
        Every product that reaches it.
    total : scalar
        Their sum, accumulated in float64/complex128/int64: the gradient element.
    rule : str
        The sum in words.
    """

    wrt: str
    index: tuple[int, ...]
    terms: tuple[GradTerm, ...]
    total: Any
    rule: str

    def __str__(self) -> str:
        def idx(t: tuple[int, ...]) -> str:
            return "[" + ", ".join(map(str, t)) + "]"

        lines = [f"grad_{self.wrt}{idx(self.index)} = {_num(self.total)}: {len(self.terms)} products meet here",
                 f"  {self.rule}"]
        for t in self.terms[:_SHOWN]:
            left = f"grad_out{idx(t.grad_out_index)} = {_num(t.grad_out_value)}"
            if t.other_index is None:
                lines.append(f"  {left}")
                continue
            name = "weight" if self.wrt == "x" else "x"
            note = f"  (tap {idx(t.tap)}{', via the padding' if t.padded else ''})"
            lines.append(f"  {left}  *  {name}{idx(t.other_index)} = {_num(t.other_value)}  ->  "
                         f"{_num(t.product)}{note}")
        if len(self.terms) > _SHOWN:
            lines.append(f"  ... and {len(self.terms) - _SHOWN} more")
        return "\n".join(lines)


def _num(v: Any) -> str:
    """Six significant digits for floats, integers in full."""
    if isinstance(v, complex):
        return f"({v.real:.6g}{v.imag:+.6g}j)"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _sources(spec) -> list[np.ndarray]:
    """Per spatial axis: the input index each padded position holds (-1: zeros padding)."""
    out = []
    for n, (lo, hi) in zip(spec.x_shape[2:], spec.pads):
        if spec.padding_mode == "zeros":
            out.append(np.r_[np.full(lo, -1), np.arange(n), np.full(hi, -1)])
        else:
            out.append(np.pad(np.arange(n), (lo, hi), mode=PAD_MODES[spec.padding_mode]))
    return out


def explain_grad(grad_out: Any, x: Any, weight: Any, wrt: str, index: Any, *, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, padding_mode: str = "zeros") -> GradTrace:
    """Which output gradients and inputs meet in one element of a convolution's gradient.

    Parameters
    ----------
    grad_out : array_like of shape (N, C_out, *out) or unbatched (C_out, *out)
        Gradient of the loss with respect to the forward output.
    x : array_like of shape (N, C_in, *spatial) or unbatched (C_in, *spatial)
    weight : array_like of shape (C_out, C_in/groups, *k)
    wrt : {"x", "weight", "bias"}
        Which gradient the element belongs to.
    index : int or tuple of int
        The element, in the axes of ``x``, of ``weight`` or of the bias ``(C_out,)``.
    stride, padding, dilation, groups, padding_mode
        As for the forward :func:`convdot.conv`.

    Returns
    -------
    GradTrace
        Its ``terms`` list each ``(grad_out position, input position or weight tap)`` pair and its
        product; ``total`` is their sum, the element :func:`convdot.conv_backward` returns.

    Notes
    -----
    ``grad_weight[o, c, k] = sum_{n, i} grad_out[n, o, i] * xpad[n, g*C_in/G + c, i*stride + k*dilation]``;
    ``grad_x[n, c, j] = sum grad_out[n, o, i] * weight[o, c - g*C_in/G, k]`` over the ``(o, i, k)`` whose
    padded position ``i*stride + k*dilation`` holds ``x[n, c, j]`` (itself, or a copy the padding made);
    ``grad_bias[o] = sum_{n, i} grad_out[n, o, i]``. Complex factors are conjugated, as in
    :func:`convdot.conv_backward`.

    Examples
    --------
    >>> import numpy as np, convdot
    >>> x = np.array([[[1., 2., 3., 4.]]])
    >>> t = convdot.explain_grad(np.array([[[1., 10., 100.]]]), x, np.array([[[1., 2.]]]), "weight", (0, 0, 1))
    >>> t.total  # tap 1 met x[1], x[2], x[3] in the three outputs
    432.0
    >>> print(t)
    grad_weight[0, 0, 1] = 432: 3 products meet here
      sum over n, i of grad_out[n, o, i] * xpad[n, c, i*stride + k*dilation] (stride (1,), dilation (1,))
      grad_out[0, 0, 0] = 1  *  x[0, 0, 1] = 2  ->  2  (tap [1])
      grad_out[0, 0, 1] = 10  *  x[0, 0, 2] = 3  ->  30  (tap [1])
      grad_out[0, 0, 2] = 100  *  x[0, 0, 3] = 4  ->  400  (tap [1])
    """
    func = "explain_grad"
    if wrt not in _WRT:
        raise ValueError(f"{func}: wrt must be one of {', '.join(map(repr, _WRT))}, got {wrt!r}")
    p = parse_conv(func, x, weight, None, stride, padding, dilation, groups, padding_mode)
    spec = p.spec
    g = as_array(func, "grad_out", grad_out)
    expected = spec.out_shape if p.batched else spec.out_shape[1:]
    if g.shape != expected:
        raise ValueError(f"{func}: grad_out must have the shape {expected} of the forward output, got shape {g.shape}")
    g4 = g if p.batched else g[None]  # (N, C_out, *out)
    acc = accumulate_dtype(np.result_type(spec.dtype, g4.dtype, np.int8))
    conj = np.conj if acc.kind == "c" else (lambda v: v)
    cg = spec.w_shape[1]
    cog = spec.w_shape[0] // spec.groups
    n_batch = spec.x_shape[0]
    out_sp = spec.out_shape[2:]
    src = _sources(spec)
    user_x = (lambda n, c, pos: (n, c, *pos)) if p.batched else (lambda n, c, pos: (c, *pos))
    user_g = (lambda n, o, i: (n, o, *i)) if p.batched else (lambda n, o, i: (o, *i))

    def value(a: np.ndarray, at: tuple[int, ...]) -> Any:
        return np.asarray(a[at], dtype=acc).item()

    terms: list[GradTerm] = []
    if wrt == "bias":
        (o,) = parse_index(func, index, (spec.w_shape[0],))
        target = (o,)
        for n in range(n_batch):
            for i in itertools.product(*map(range, out_sp)):
                v = value(g4, (n, o, *i))
                terms.append(GradTerm(user_g(n, o, i), v, None, None, None, False, v))
        rule = "sum over n, i of grad_out[n, o, i]"
    elif wrt == "weight":
        o, c, *k = parse_index(func, index, spec.w_shape)
        target = (o, c, *k)
        ch = (o // cog) * cg + c
        for n in range(n_batch):
            for i in itertools.product(*map(range, out_sp)):
                padded_at = [ii * s + kk * d for ii, kk, s, d in zip(i, k, spec.stride, spec.dilation)]
                pos = tuple(int(s_[q]) for s_, q in zip(src, padded_at))
                via = any(q < lo or q >= lo + m for q, (lo, _), m in zip(padded_at, spec.pads, spec.x_shape[2:]))
                gv = value(g4, (n, o, *i))
                if any(v < 0 for v in pos):  # zeros padding: the factor is 0
                    outside = tuple(q - lo for q, (lo, _) in zip(padded_at, spec.pads))
                    terms.append(GradTerm(user_g(n, o, i), gv, user_x(n, ch, outside), 0, tuple(k), True, gv * 0))
                    continue
                xv = conj(value(p.x, (n, ch, *pos)))
                terms.append(GradTerm(user_g(n, o, i), gv, user_x(n, ch, pos), xv, tuple(k), via, gv * xv))
        rule = (f"sum over n, i of grad_out[n, o, i] * xpad[n, c, i*stride + k*dilation] "
                f"(stride {spec.stride}, dilation {spec.dilation})")
    else:
        target = parse_index(func, index, p.x.shape if p.batched else p.x.shape[1:])
        n, ch, *j = (0, *target) if not p.batched else target
        grp = ch // cg
        # every padded position holding x[..., j] (itself, or copies made by the padding), then every tap reaching it
        holders = [np.flatnonzero(s_ == jj) for s_, jj in zip(src, j)]
        for q in itertools.product(*holders):
            via = any(qq < lo or qq >= lo + m for qq, (lo, _), m in zip(q, spec.pads, spec.x_shape[2:]))
            for o in range(grp * cog, (grp + 1) * cog):
                for k in itertools.product(*map(range, spec.kernel)):
                    i = []
                    for qq, kk, s, d, m in zip(q, k, spec.stride, spec.dilation, out_sp):
                        r = qq - kk * d
                        if r < 0 or r % s or r // s >= m:
                            break
                        i.append(r // s)
                    else:
                        gv = value(g4, (n, o, *i))
                        wv = conj(value(p.w, (o, ch - grp * cg, *k)))
                        terms.append(GradTerm(user_g(n, o, tuple(i)), gv, (o, ch - grp * cg, *k), wv, tuple(k), via,
                                              gv * wv))
        rule = ("sum of grad_out[n, o, i] * weight[o, c, k] over every i*stride + k*dilation that holds this "
                "element (padding copies included)")
    total = np.asarray(sum((t.product for t in terms), np.zeros((), dtype=acc)), dtype=acc).item()
    return GradTrace(wrt, tuple(target), tuple(terms), total, rule)
