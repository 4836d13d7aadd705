"""Hypothesis strategies for convolution problems (shared by the core tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

FLOATS = ("float32", "float64")


@st.composite
def conv_problems(draw, nd=None, max_side: int = 7, transposed: bool = False, dtypes=FLOATS):
    """A random valid PyTorch-dialect problem: arrays and keyword arguments."""
    nd = nd or draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    span = [d * (kk - 1) + 1 for d, kk in zip(dilation, k)]
    if transposed:
        spatial = tuple(draw(st.integers(1, max_side - 2)) for _ in range(nd))
    else:
        spatial = tuple(draw(st.integers(max(1, s - lo - hi), max(max_side, s))) for s, (lo, hi) in zip(span, pads))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if transposed:
        w_shape = (cin, cout // groups, *k)
    else:
        w_shape = (cout, cin // groups, *k)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, size=(n, cin, *spatial), endpoint=True, dtype=dtype)
        w = rng.integers(info.min, info.max, size=w_shape, endpoint=True, dtype=dtype)
    else:
        x = rng.standard_normal((n, cin, *spatial)).astype(dtype)
        w = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(cout).astype(dtype) if draw(st.booleans()) and np.dtype(dtype).kind == "f" else None
    kwargs = {"stride": stride, "dilation": dilation, "groups": groups}
    if transposed:
        kwargs["padding"] = tuple(min(p, d * (kk - 1)) for (p, _), d, kk in zip(pads, dilation, k))
        kwargs["output_padding"] = tuple(draw(st.integers(0, max(0, max(s, d) - 1))) for s, d in zip(stride, dilation))
        sizes = [(n_ - 1) * s - 2 * p + d * (kk - 1) + op + 1 for n_, s, p, d, kk, op in
                 zip(spatial, stride, kwargs["padding"], dilation, k, kwargs["output_padding"])]
        assume(all(v > 0 for v in sizes))
    else:
        kwargs["padding"] = pads
    return x, w, bias, kwargs


def padding_fits(padding_mode, pads, spatial) -> bool:
    """Whether ``pads`` are legal for ``padding_mode`` (as in PyTorch: reflect < size, circular <= size)."""
    if padding_mode == "reflect":
        return all(max(p) < n for p, n in zip(pads, spatial))
    if padding_mode == "circular":
        return all(max(p) <= n for p, n in zip(pads, spatial))
    return True
