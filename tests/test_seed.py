"""The source question's worked examples (shared/seeds), as acceptance tests."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.signal as ss

import convdot

A = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
B = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
A3 = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1]])
B2 = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]])


def _as(method, *arrays):
    """The seed's integer arrays, as floats for a method that refuses inexact integer sums."""
    exact = method in ("auto", "direct") or convdot.algorithms.ALGORITHMS[method].unsupported(
        convdot.plan(A3[None, None], B2[None, None]).spec, A3, B2) is None
    return arrays if exact else tuple(a.astype(np.float64) for a in arrays)


@pytest.mark.parametrize("method", ("auto", "direct", "fft", *convdot.METHODS))
def test_convolve2d_of_A_and_B_valid_is_the_answer_in_the_seed(method):
    expected = [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    a, b = _as(method, A, B)
    np.testing.assert_allclose(convdot.convolve2d(a, b, "valid", method=method), expected, atol=1e-12)
    np.testing.assert_allclose(convdot.convolve(a, b, "valid", method=method), expected, atol=1e-12)


@pytest.mark.parametrize("method", convdot.METHODS)
def test_cnn_layer_gives_3_the_sum_of_the_elementwise_product(method):
    assert (A3 * B2).sum() == 3
    assert np.dot(A3.ravel(), B2.ravel()) == 3
    a3, b2 = _as(method, A3, B2)
    assert convdot.conv2d(a3[None, None], b2[None, None], method=method)[0, 0, 0, 0] == pytest.approx(3)
    assert convdot.correlate2d(a3, b2, "valid", method=method)[0, 0] == pytest.approx(3)


@pytest.mark.parametrize("method", convdot.METHODS)
def test_convolution_flips_the_kernel_and_gives_4(method):
    out = convdot.convolve2d(*_as(method, A3, B2), "valid", method=method)
    np.testing.assert_allclose(out, [[4]], atol=1e-12)
    np.testing.assert_allclose(out, ss.convolve2d(A3, B2, "valid"), atol=1e-12)
    assert (A3 * B2[::-1, ::-1]).sum() == 4


def test_im2col_product_is_all_windows_at_once():
    x_col = np.lib.stride_tricks.sliding_window_view(A, (3, 3)).reshape(9, 9).T  # (9 taps, 9 windows)
    np.testing.assert_array_equal((B2.reshape(1, 9) @ x_col).reshape(3, 3), convdot.correlate2d(A, B2, "valid"))


def test_depth_sums_and_bias_and_pointwise():
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, size=(3, 4, 4))
    w = rng.integers(-3, 4, size=(2, 3, 4, 4))
    out = convdot.conv2d(x, w, bias=[10, 20])  # kernel as large as the input: a fully connected layer
    np.testing.assert_array_equal(out[:, 0, 0], w.reshape(2, -1) @ x.ravel() + [10, 20])
    pw = convdot.conv2d(x, w[:, :, :1, :1])  # 1x1: a dot product along depth at every pixel
    np.testing.assert_array_equal(pw, np.einsum("oc,chw->ohw", w[:, :, 0, 0], x))


def test_demo_runs_fast_and_answers_the_question():
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "convdot.cli", "demo"], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "sum of the element-wise product = 3" in text
    assert "np.dot(A3.ravel(), B2.ravel()) = 3" in text
    assert "convolve2d(A3, B2, 'valid') = [[4]]" in text
    assert "[4 3 4]" in text and "[2 4 3]" in text and "[2 3 4]" in text
    for m in convdot.METHODS:
        assert f"\n{m}" in text
    assert elapsed < 30  # generous: the budget is 5 s, this only catches a hang, not a slowdown
