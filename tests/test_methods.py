"""Every fast method has a slow twin: each formulation against `reference` over random problems."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

import convdot
from conftest import assert_close
from strategies import conv_problems

FAST = [m for m in convdot.METHODS if m != "reference"]


def _scale(x, w, bias, kwargs):
    """conv(|x|, |w|): the magnitude each output's rounding error is relative to."""
    return convdot.conv(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                        None if bias is None else np.abs(bias).astype(np.float64), method="im2col", **kwargs)


@pytest.mark.parametrize("method", FAST)
@given(problem=conv_problems())
def test_method_matches_reference(method, problem):
    x, w, bias, kwargs = problem
    p = convdot.plan(x, w, bias, **kwargs)
    reason = convdot.algorithms.ALGORITHMS[method].unsupported(p.spec, x, w)
    if reason:  # e.g. winograd on a non-3x3 kernel: it must refuse clearly
        with pytest.raises(ValueError, match=method):
            convdot.conv(x, w, bias, method=method, **kwargs)
        return
    out = convdot.conv(x, w, bias, method=method, **kwargs)
    ref = convdot.conv(x, w, bias, method="reference", **kwargs)
    assert out.dtype == x.dtype and ref.dtype == x.dtype
    assert_close(out, ref, _scale(x, w, bias, kwargs))


@pytest.mark.parametrize("method", convdot.METHODS)
@given(problem=conv_problems(transposed=True))
def test_transposed_method_matches_reference(method, problem):
    x, w, bias, kwargs = problem
    try:
        out = convdot.conv_transpose(x, w, bias, method=method, **kwargs)
    except ValueError as exc:
        assert "cannot run" in str(exc)
        return
    ref = convdot.conv_transpose(x, w, bias, method="reference", **kwargs)
    scale = convdot.conv_transpose(np.abs(x).astype(float), np.abs(w).astype(float), method="im2col", **kwargs)
    assert_close(out, ref, scale + (0 if bias is None else np.abs(bias).reshape(-1, *[1] * (x.ndim - 2))))


@pytest.mark.parametrize("method", convdot.METHODS)
@given(problem=conv_problems(dtypes=("int8", "int16", "uint8", "bool")))
def test_integers_are_exact(method, problem):
    x, w, _, kwargs = problem
    expected = _exact(x, w, kwargs)
    try:
        out = convdot.conv(x, w, method=method, **kwargs)
    except ValueError as exc:
        assert "cannot run" in str(exc)
        return
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)


def _exact(x, w, kwargs):
    """The sum with Python integers (no overflow possible), through the window view."""
    from convdot._spec import parse_conv
    from convdot.algorithms._common import grouped, pad, windows

    p = parse_conv("test", x, w, None, **kwargs)
    win = grouped(windows(pad(x, p.spec), p.spec), p.spec.groups).astype(object)  # (N, G, Cg, *out, *k)
    g = p.spec.groups
    wg = w.astype(object).reshape(g, -1, *w.shape[1:])  # (G, Cog, Cg, *k)
    nd = x.ndim - 2
    out = np.tensordot(win, wg, axes=([2, *range(3 + nd, 3 + 2 * nd)], [2, *range(3, 3 + nd)]))  # (N,G,*out,G,Cog)
    out = np.stack([out[:, i, ..., i, :] for i in range(g)], axis=1)  # (N, G, *out, Cog)
    out = np.moveaxis(out, -1, 2).reshape(p.spec.out_shape)  # (N, C_out, *out)
    return out.astype(np.int64)
