"""The SciPy dialect against scipy.signal, the independent oracle."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import assume, given
from hypothesis import strategies as st

import convdot
from conftest import assert_close

MODES = ("full", "same", "valid")
SIGNAL_METHODS = ("auto", "direct", "fft", *convdot.METHODS)


@st.composite
def signal_pair(draw, nd=None, dtypes=("float64", "float32", "complex128", "int64")):
    nd = nd or draw(st.integers(1, 3))
    s1 = tuple(draw(st.integers(1, 7)) for _ in range(nd))
    s2 = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def make(shape):
        if dtype.kind == "i":
            return rng.integers(-50, 50, size=shape).astype(dtype)
        a = rng.standard_normal(shape)
        if dtype.kind == "c":
            a = a + 1j * rng.standard_normal(shape)
        return a.astype(dtype)

    return make(s1), make(s2)


def _valid_ok(a, b, mode):
    return mode != "valid" or all(x >= y for x, y in zip(a.shape, b.shape)) or all(
        y >= x for x, y in zip(a.shape, b.shape))


@pytest.mark.parametrize("name", ["correlate", "convolve"])
@given(pair=signal_pair(), mode=st.sampled_from(MODES), method=st.sampled_from(SIGNAL_METHODS))
def test_nd_matches_scipy(name, pair, mode, method):
    a, b = pair
    assume(_valid_ok(a, b, mode))
    theirs = getattr(ss, name)(a, b, mode=mode, method="direct")
    try:
        ours = getattr(convdot, name)(a, b, mode=mode, method=method)
    except ValueError as exc:
        assert "cannot run" in str(exc)
        return
    scale = ss.correlate(np.abs(a).astype(float), np.abs(b).astype(float), mode="full").max() + 1
    assert ours.shape == theirs.shape
    assert_close(ours, theirs.astype(ours.dtype), scale)


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@given(pair=signal_pair(nd=2), mode=st.sampled_from(MODES), boundary=st.sampled_from(["fill", "wrap", "symm"]),
       fillvalue=st.sampled_from([0, 0, 2.5]), method=st.sampled_from(convdot.METHODS))
def test_2d_matches_scipy(name, pair, mode, boundary, fillvalue, method):
    a, b = pair
    assume(_valid_ok(a, b, mode))
    if a.dtype.kind == "i":
        fillvalue = int(fillvalue)
    theirs = getattr(ss, name)(a, b, mode=mode, boundary=boundary, fillvalue=fillvalue)
    try:
        ours = getattr(convdot, name)(a, b, mode=mode, boundary=boundary, fillvalue=fillvalue, method=method)
    except ValueError as exc:
        assert "cannot run" in str(exc)
        return
    scale = (np.abs(a).max() + abs(fillvalue)) * np.abs(b).sum() + 1
    assert ours.shape == theirs.shape
    assert_close(ours, theirs.astype(ours.dtype), scale)


@pytest.mark.parametrize("name", ["correlate", "convolve"])
def test_scalar_inputs_multiply(name):
    assert getattr(convdot, name)(3.0, 2.0) == getattr(ss, name)(3.0, 2.0)
    assert np.ndim(getattr(convdot, name)(3.0, 2.0)) == 0


def test_complex_correlate_conjugates_in2():
    a = np.array([1 + 1j, 2, 3j])
    b = np.array([1j, 1])
    np.testing.assert_allclose(convdot.correlate(a, b), ss.correlate(a, b))
    np.testing.assert_allclose(convdot.correlate2d(a[None], b[None]), ss.correlate2d(a[None], b[None]))


def test_valid_with_larger_second_input_swaps_like_scipy():
    a = np.arange(3.0)
    b = np.arange(7.0) ** 2
    for name in ("correlate", "convolve"):
        np.testing.assert_allclose(getattr(convdot, name)(a, b, "valid"), getattr(ss, name)(a, b, "valid"))
    for name in ("correlate2d", "convolve2d"):
        np.testing.assert_allclose(getattr(convdot, name)(a[None], b[None], "valid"),
                                   getattr(ss, name)(a[None], b[None], "valid"))


def test_valid_swap_ignores_fillvalue_regression():
    """correlate2d(a, b, 'valid', fillvalue=2.5) with b larger gave [[-0.2497, 1.584]] instead of SciPy's
    [[0.0805, -0.0166]]: the padding standing in for SciPy's input swap was filled with fillvalue."""
    a = np.array([[0.12573022]])
    b = np.array([[-0.13210486, 0.64042265]])
    for name in ("correlate2d", "convolve2d"):
        np.testing.assert_allclose(getattr(convdot, name)(a, b, "valid", fillvalue=2.5),
                                   getattr(ss, name)(a, b, "valid", fillvalue=2.5))


def test_correlate2d_valid_swap_complex_matches_scipy_regression():
    """correlate2d(a, b, 'valid') with complex input and b larger gave the conjugate of SciPy's answer
    (max error 0.119): SciPy reverses its swapped output without conjugating it."""
    a = np.array([[0.12573022 - 0.13210486j]])
    b = np.array([[0.64042265 - 0.53566937j, 0.10490012 + 0.36159505j]])
    np.testing.assert_allclose(convdot.correlate2d(a, b, "valid"), ss.correlate2d(a, b, "valid"))
    np.testing.assert_allclose(convdot.correlate(a, b, "valid"), ss.correlate(a, b, "valid"))
