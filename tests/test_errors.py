"""Every bad input gets one clear error naming the function, the argument, the rule and the values."""

from __future__ import annotations

import re

import numpy as np
import pytest

import convdot

X = np.zeros((1, 8, 5, 5))
W = np.zeros((4, 8, 3, 3))

CASES = [
    # (call, exception, message pattern)
    (lambda: convdot.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((2, 3, 3, 3))), ValueError,
     r"conv2d: weight has 3 input channels per group but x has 4 channels \(groups=1\)"),
    (lambda: convdot.conv2d(X, np.zeros((6, 8, 3, 3)), groups=3), ValueError,
     r"conv2d: groups=3 must divide the 8 input channels of x \(shape \(1, 8, 5, 5\)\)"),
    (lambda: convdot.conv2d(np.zeros((1, 6, 5, 5)), np.zeros((4, 2, 3, 3)), groups=3), ValueError,
     r"conv2d: groups=3 must divide the 4 output channels of weight"),
    (lambda: convdot.conv2d(X, np.zeros((4, 8, 3))), ValueError, r"conv2d: weight must be 4-D .*got shape \(4, 8, 3\)"),
    (lambda: convdot.conv1d(X, W), ValueError, r"conv1d: weight must be 3-D"),
    # conv() takes its rank from the weight: the message says which rank, and why
    (lambda: convdot.conv(X, np.zeros((4, 8, 3))), ValueError,
     r"conv: x must be 3-D .* for the 1-D convolution that weight of shape \(4, 8, 3\) makes, got shape"),
    (lambda: convdot.conv3d(np.zeros((5, 5)), np.zeros((1, 1, 1, 1, 1))), ValueError,
     r"conv3d: x must be 5-D \(N, C_in, \*spatial\) or 4-D unbatched"),
    (lambda: convdot.conv2d(X, W, stride=0), ValueError, r"conv2d: stride must be >= 1 on every axis, got 0"),
    (lambda: convdot.conv2d(X, W, dilation=(1, -1)), ValueError, r"conv2d: dilation must be >= 1"),
    (lambda: convdot.conv2d(X, W, padding=-1), ValueError, r"conv2d: padding must be >= 0, got -1"),
    (lambda: convdot.conv2d(X, W, padding=((0, -2), 1)), ValueError, r"conv2d: padding must be >= 0"),
    (lambda: convdot.conv2d(X, W, padding=(1, 2, 3)), ValueError, r"conv2d: padding must be an int or 2 entries"),
    (lambda: convdot.conv2d(X, W, padding="same", stride=2), ValueError,
     r"conv2d: padding='same' is not supported for strided convolutions"),
    (lambda: convdot.conv2d(X, W, padding="full"), ValueError, r"conv2d: padding must be 'same', 'valid'"),
    (lambda: convdot.conv2d(X, W, padding_mode="mirror"), ValueError, r"conv2d: padding_mode must be one of"),
    (lambda: convdot.conv2d(X, W, padding=5, padding_mode="reflect"), ValueError,
     r"conv2d: padding_mode='reflect' needs padding < input size"),
    (lambda: convdot.conv2d(X, W, method="winograd2"), ValueError, r"conv2d: method must be one of 'auto'"),
    (lambda: convdot.conv2d(X, W, method="direct"), ValueError, r"conv2d: method must be one of"),
    (lambda: convdot.conv2d(np.zeros((1, 8, 2, 2)), W), ValueError,
     r"conv2d: output size \(0, 0\) is not positive: input spatial shape \(2, 2\)"),
    (lambda: convdot.conv2d(np.array([[["a"]]]), np.zeros((1, 1, 1, 1))), TypeError,
     r"conv2d: x must be a numeric array .* got dtype <U1"),
    (lambda: convdot.conv2d(X.astype(object), W), TypeError, r"conv2d: x must be a numeric array .*object"),
    (lambda: convdot.conv2d(X, np.zeros((4, 8, 0, 3))), ValueError,
     r"conv2d: weight is empty \(shape \(4, 8, 0, 3\)\)"),
    (lambda: convdot.conv2d(X, W, bias=np.zeros(3)), ValueError, r"conv2d: bias must have shape \(4,\)"),
    (lambda: convdot.conv2d(X, W, stride=1.5), TypeError,
     r"conv2d: stride must be an int or a tuple of ints, got 1.5"),
    (lambda: convdot.conv2d(X, W, groups=0), ValueError, r"conv2d: groups must be >= 1, got 0"),
    (lambda: convdot.conv2d(X, W, groups="2"), TypeError, r"conv2d: groups must be an int"),
    (lambda: convdot.conv2d([[1, 2], [3]], W), TypeError, r"conv2d: x must be a numeric array, could not convert"),
    (lambda: convdot.conv_transpose2d(X, np.zeros((8, 2, 3, 3)), stride=2, output_padding=2), ValueError,
     r"conv_transpose2d: output_padding=\(2, 2\) must be smaller than either stride \(2, 2\) or dilation"),
    (lambda: convdot.conv_transpose2d(X, np.zeros((4, 2, 3, 3))), ValueError,
     r"conv_transpose2d: weight.shape\[0\]=4 must equal the 8 input channels of x"),
    (lambda: convdot.conv_transpose2d(X, np.zeros((8, 2, 3, 3)), padding="same"), ValueError,
     r"conv_transpose2d: padding must be an int"),
    (lambda: convdot.conv_transpose1d(np.zeros((1, 1, 1)), np.zeros((1, 1, 2)), padding=1), ValueError,
     r"conv_transpose1d: output size \(0,\) is not positive"),
    (lambda: convdot.conv(X, np.zeros((4, 8))), ValueError,
     r"conv: weight must have shape \(C_out, C_in/groups, \*k\)"),
    (lambda: convdot.correlate(np.zeros(3), np.zeros((2, 2))), ValueError,
     r"correlate: in1 and in2 must have the same number of dimensions, got shapes \(3,\) and \(2, 2\)"),
    (lambda: convdot.convolve(np.zeros((3, 2)), np.zeros((2, 3)), "valid"), ValueError,
     r"convolve: for mode='valid' one input must be at least as large as the other in every dimension"),
    (lambda: convdot.correlate(np.zeros(3), np.zeros(2), mode="circular"), ValueError,
     r"correlate: mode must be 'full', 'same' or 'valid', got 'circular'"),
    (lambda: convdot.correlate(np.zeros(3), np.zeros(2), method="slow"), ValueError,
     r"correlate: method must be one of 'auto', .*'direct'"),
    (lambda: convdot.correlate2d(np.zeros(3), np.zeros(2)), ValueError,
     r"correlate2d: in1 and in2 must both be 2-D arrays, got shapes \(3,\) and \(2,\)"),
    (lambda: convdot.convolve2d(np.zeros((3, 3)), np.zeros((2, 2)), boundary="reflect"), ValueError,
     r"convolve2d: boundary must be 'fill', 'wrap' or 'symm', got 'reflect'"),
    (lambda: convdot.convolve2d(np.zeros((3, 3)), np.zeros((2, 2)), fillvalue=[1, 2]), ValueError,
     r"convolve2d: fillvalue must be a scalar"),
    (lambda: convdot.convolve(np.zeros(3), np.zeros(0)), ValueError,
     r"convolve: in1 \(shape \(3,\)\) and in2 \(shape \(0,\)\) must both be non-empty"),
    (lambda: convdot.convolve(np.zeros(3), ["a"]), TypeError, r"convolve: in2 must be a numeric array"),
    (lambda: convdot.conv1d(np.full((1, 1, 4), 2**62, dtype=np.int64), np.full((1, 1, 2), 2**62, dtype=np.int64),
                            method="fft"), ValueError,
     r"conv1d: method='fft' cannot run this problem: integer inputs are too large"),
    (lambda: convdot.compare(X, W, repeat=0), ValueError, r"compare: repeat must be an int >= 1, got 0"),
    (lambda: convdot.compare(X, W, methods=("fast",)), ValueError, r"compare: methods must be names in"),
]


@pytest.mark.parametrize("call, exc, pattern", CASES, ids=[c[2][:40] for c in CASES])
def test_bad_input_message(call, exc, pattern):
    with pytest.raises(exc) as info:
        call()
    assert re.search(pattern, str(info.value)), str(info.value)
    # raised from the validation layer, not from deep inside NumPy
    tb = info.traceback[-1]
    assert "numpy" not in str(tb.path), f"raised inside NumPy: {tb.path}"


def test_winograd_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match=r"conv2d: method='winograd' cannot run this problem: .*stride"):
        convdot.conv2d(X, W, stride=2, method="winograd")
