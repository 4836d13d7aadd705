"""dtypes, exact integers, NaN/inf placement, memory layouts: the numeric contract."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss

import convdot
from conftest import assert_close


@pytest.mark.parametrize("dtype, expected", [("float32", "float32"), ("float64", "float64"),
                                             ("complex64", "complex64"), ("complex128", "complex128"),
                                             ("float16", "float16"), ("int8", "int64"), ("uint16", "int64"),
                                             ("int32", "int64"), ("bool", "int64")])
@pytest.mark.parametrize("method", convdot.METHODS)
def test_output_dtype(dtype, expected, method, rng):
    x = (rng.standard_normal((1, 2, 5, 5)) * 3).astype(dtype)
    w = (rng.standard_normal((2, 2, 3, 3)) * 3).astype(dtype)
    try:
        assert convdot.conv2d(x, w, method=method).dtype == expected
        assert convdot.correlate2d(x[0, 0], w[0, 0], method=method).dtype == expected
    except ValueError as exc:
        assert "cannot run" in str(exc)


@pytest.mark.parametrize("method", convdot.METHODS)
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_integer_extremes_are_exact(dtype, method):
    """int8 * int8 sums overflow int8 and int16; convdot sums exactly in int64."""
    lo = np.iinfo(dtype).min
    x = np.full((1, 3, 6, 6), lo, dtype=dtype)
    w = np.full((2, 3, 3, 3), lo, dtype=dtype)
    exact = 27 * int(lo) * int(lo)  # every output: 3 channels x 9 taps of lo*lo
    try:
        out = convdot.conv2d(x, w, method=method)
    except ValueError as exc:
        assert "cannot run" in str(exc)
        return
    assert out.dtype == np.int64
    assert (out == exact).all(), out.ravel()[:4]
    full = convdot.correlate2d(x[0, 0], w[0, 0], method=method)
    assert full[2, 2] == 9 * int(lo) * int(lo)
    # SciPy wraps around in the input type: the reason for this rule
    assert ss.correlate2d(x[0, 0], w[0, 0])[2, 2] != full[2, 2]


def _nan_problem(rng):
    x = rng.standard_normal((2, 3, 9, 9))
    x[0, 1, 4, 4] = np.nan
    x[1, 0, 0, 8] = np.inf
    x[1, 2, 6, 1] = -np.inf
    w = rng.standard_normal((4, 3, 3, 3))
    return x, w


@pytest.mark.parametrize("method", convdot.METHODS)
@pytest.mark.parametrize("kwargs", [{}, {"padding": 1}, {"stride": 2, "padding": (1, 2)}, {"dilation": 2},
                                    {"groups": 1, "padding": 2, "padding_mode": "reflect"}])
def test_nonfinite_stay_where_the_direct_sum_puts_them(method, kwargs, rng):
    x, w = _nan_problem(rng)
    ref = convdot.conv2d(x, w, method="reference", **kwargs)
    with np.errstate(invalid="ignore"):
        try:
            out = convdot.conv2d(x, w, method=method, **kwargs)
        except ValueError as exc:
            assert "cannot run" in str(exc)
            return
    assert np.isnan(ref).any() and np.isinf(ref).any()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(out), np.isposinf(ref))
    np.testing.assert_array_equal(np.isneginf(out), np.isneginf(ref))
    fin = np.isfinite(ref)
    assert_close(out[fin], ref[fin], 30.0)


def test_nonfinite_weight_poisons_every_window(rng):
    x = rng.standard_normal((1, 1, 6, 6))
    w = np.ones((1, 1, 3, 3))
    w[0, 0, 1, 1] = np.inf
    for method in convdot.METHODS:
        with np.errstate(invalid="ignore"):
            try:
                out = convdot.conv2d(x, w, padding=1, method=method)
            except ValueError:
                continue
        ref = convdot.conv2d(x, w, padding=1, method="reference")
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))


def test_auto_never_takes_a_transform_for_nonfinite_input(rng):
    x = rng.standard_normal((1, 1, 64, 64))
    w = rng.standard_normal((1, 1, 11, 11))
    assert convdot.plan(x, w).method == "fft"  # large kernel: the FFT when the input is finite
    x[0, 0, 10, 10] = np.nan
    assert convdot.plan(x, w).method not in ("fft", "winograd")
    out = convdot.conv2d(x, w)
    assert np.isnan(out).sum() == 11 * 11


@pytest.mark.parametrize("method", convdot.METHODS)
def test_inputs_are_not_modified_and_any_layout_works(method, rng):
    base = rng.standard_normal((2, 6, 10, 12))
    x = np.asfortranarray(base)[:, ::2, 1:, ::-1]  # Fortran order, strided, reversed view
    w = np.asfortranarray(rng.standard_normal((4, 3, 3, 3)))
    x_before, w_before = x.copy(), w.copy()
    out = convdot.conv2d(x, w, padding=(1, 0), method=method)
    expected = convdot.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w), padding=(1, 0), method="reference")
    assert_close(out, expected, 50.0)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)
    assert not np.shares_memory(out, x)


@pytest.mark.parametrize("method", [m for m in convdot.METHODS if m != "winograd"])  # winograd: 3-tap kernels only
def test_size_one_axes(method):
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    w = np.ones((1, 1, 1, 1))
    assert_close(convdot.conv2d(x, w, method=method), x, 5.0)
    assert_close(convdot.correlate([2.0], [3.0], method=method), np.array([6.0]), 6.0)
