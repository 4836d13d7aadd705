"""explain / explain2d: the recorded trace is the real output element, for every method and layer option."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convdot
from conftest import assert_close
from convdot._spec import parse_conv, parse_signal
from convdot.algorithms import ALGORITHMS
from strategies import conv_problems

A = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
B = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
A3 = A[:3, :3]
B2 = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]])


def _flip(w):
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]


def _runnable(x, w, bias, kwargs, padding_mode):
    p = parse_conv("test", x, w, bias, padding_mode=padding_mode, **kwargs)
    return [m for m in convdot.METHODS if ALGORITHMS[m].unsupported(p.spec, p.x, p.w) is None]


def _check_internal_consistency(t):
    """The recorded steps agree with each other: product, sums, dot product, im2col row and column."""
    np.testing.assert_array_equal(t.product, t.window * t.kernel)
    np.testing.assert_allclose(t.channel_sums, t.product.reshape(len(t.channels), -1).sum(axis=1))
    scale = float(np.abs(t.window.astype(np.complex128)).ravel() @ np.abs(t.kernel.astype(np.complex128)).ravel()) + 1
    assert abs(t.dot - t.channel_sums.sum()) <= 1e-12 * scale
    assert abs(t.total - (t.dot + (t.bias or 0))) <= 1e-12 * (scale + abs(t.bias or 0))
    np.testing.assert_array_equal(t.x_col, t.window.ravel())
    np.testing.assert_array_equal(t.w_row, t.kernel.ravel())
    assert t.x_col.size == t.w_row_shape[1] == t.x_col_shape[0]
    assert 0 <= t.row < t.w_row_shape[0] and 0 <= t.column < t.x_col_shape[1]


@settings(max_examples=40, deadline=None)
@given(problem=conv_problems(dtypes=("float32", "float64", "int16")),
       padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
       flip=st.booleans(), data=st.data())
def test_trace_total_is_the_output_element_for_every_method(problem, padding_mode, flip, data):
    x, w, bias, kwargs = problem
    spatial = x.shape[2:]
    if padding_mode == "reflect":  # reflect needs padding < size, circular <= size
        kwargs["padding"] = tuple((min(lo, n - 1), min(hi, n - 1)) for (lo, hi), n in zip(kwargs["padding"], spatial))
    elif padding_mode == "circular":
        kwargs["padding"] = tuple((min(lo, n), min(hi, n)) for (lo, hi), n in zip(kwargs["padding"], spatial))
    applied = _flip(w) if flip else w
    try:
        methods = _runnable(x, applied, bias, kwargs, padding_mode)
    except ValueError:  # the clamped padding made the output empty
        return
    ref = convdot.conv(x, applied, bias, padding_mode=padding_mode, method="reference", **kwargs)
    index = tuple(data.draw(st.integers(0, n - 1)) for n in ref.shape)
    t = convdot.explain(x, w, index, bias=bias, padding_mode=padding_mode, flip=flip, **kwargs)
    _check_internal_consistency(t)
    scale = convdot.conv(np.abs(x).astype(np.float64), np.abs(applied).astype(np.float64),
                         None if bias is None else np.abs(bias).astype(np.float64),
                         padding_mode=padding_mode, method="reference", **kwargs)[index] + 1
    for m in methods:
        out = convdot.conv(x, applied, bias, padding_mode=padding_mode, method=m, **kwargs)
        assert_close(np.asarray(t.total), np.asarray(out[index]), scale, dtype=out.dtype)
    # window values are the padded input, so the coordinates name where each came from
    xp = np.pad(x[t.batch], ((0, 0), *kwargs["padding"]),
                mode={"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[padding_mode])
    at = np.ix_(list(t.channels), *[[c + lo for c in taps] for taps, (lo, _) in zip(t.taps, kwargs["padding"])])
    np.testing.assert_array_equal(t.window, xp[at])


@settings(max_examples=40, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["full", "valid", "same"]),
       boundary=st.sampled_from(["fill", "wrap", "symm"]), convolve=st.booleans(),
       dtype=st.sampled_from(["float64", "int64", "complex128"]))
def test_explain2d_total_is_the_scipy_dialect_element(data, mode, boundary, convolve, dtype):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = (data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)))
    k = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    if mode == "valid" and not (all(a >= b for a, b in zip(n, k)) or all(b >= a for a, b in zip(n, k))):
        k = (min(k[0], n[0]), min(k[1], n[1]))
    in1 = rng.integers(-3, 4, n).astype(dtype)
    in2 = rng.integers(-3, 4, k).astype(dtype)
    if dtype == "complex128":
        in1 = in1 + 1j * rng.integers(-3, 4, n)
        in2 = in2 + 1j * rng.integers(-3, 4, k)
    fill = data.draw(st.sampled_from([0, 2]))
    func = convdot.convolve2d if convolve else convdot.correlate2d
    ref = func(in1, in2, mode, boundary, fill, method="reference")
    index = (data.draw(st.integers(0, ref.shape[0] - 1)), data.draw(st.integers(0, ref.shape[1] - 1)))
    t = convdot.explain2d(in1, in2, index, mode, boundary, fill, convolve=convolve)
    _check_internal_consistency(t)
    p = parse_signal("test", in1, in2, mode, convolve=convolve, boundary=boundary, fillvalue=fill, two_d=True)
    for m in [m for m in convdot.METHODS if ALGORITHMS[m].unsupported(p.spec, p.x, p.w) is None]:
        assert_close(np.asarray(t.total), np.asarray(func(in1, in2, mode, boundary, fill, method=m)[index]),
                     1 + np.abs(ref).max() * 10, dtype=ref.dtype)
    assert t.flipped == convolve
    if convolve:
        np.testing.assert_array_equal(t.kernel[0], np.asarray(in2)[::-1, ::-1])
        # without the flip: the same window times in2 as given (conjugated when complex, as correlate2d does)
        plain = np.conj(in2) if dtype == "complex128" else np.asarray(in2)
        assert t.unflipped_total == pytest.approx((t.window[0] * plain).sum())
        if mode == "full":  # full mode pads alike, so this is correlate2d's element at the same index
            correlated = convdot.correlate2d(in1, in2, mode, boundary, fill, method="reference")
            assert t.unflipped_total == pytest.approx(correlated[index])
    else:
        assert t.unflipped_total is None


def test_seed_cnn_value_is_3_and_convolution_is_4():
    t = convdot.explain(A3, B2, (0, 0))
    assert t.total == 3 and t.dot == 3 and not t.flipped
    np.testing.assert_array_equal(t.product[0], A3 * B2)
    t = convdot.explain2d(A3, B2, (0, 0), "valid")
    assert t.total == 4 and t.unflipped_total == 3 and t.flipped
    np.testing.assert_array_equal(t.kernel[0], B2[::-1, ::-1])
    assert convdot.explain(A3, B2, (0, 0), flip=True).total == 4


def test_seed_5x5_every_element():
    expected = np.array([[4, 3, 4], [2, 4, 3], [2, 3, 4]])
    t = convdot.explain2d(A, B, (0, 0), "valid")
    got = np.array([[t.at((i, j)).total for j in range(3)] for i in range(3)])
    np.testing.assert_array_equal(got, expected)


def test_index_forms():
    x = np.arange(2 * 3 * 5 * 5, dtype=float).reshape(2, 3, 5, 5)
    w = np.ones((4, 3, 3, 3))
    out = convdot.conv2d(x, w)
    assert convdot.explain(x, w, (1, 2, 0, 1)).total == out[1, 2, 0, 1]
    assert convdot.explain(x, w, (-1, -1, -1, -1)).total == out[-1, -1, -1, -1]
    assert convdot.explain(x[0], w, (2, 1, 1)).total == out[0, 2, 1, 1]  # unbatched: (C_out, H, W)
    one = convdot.explain(x[:1, :1], w[:1, :1], (1, 2))  # leading axes of size 1 may be left out
    assert one.index == (0, 0, 1, 2)
    bare = convdot.explain(A, B2[None, None], (0, 0))  # an image without a channel axis, 4-D weight
    assert bare.index == (0, 0, 0) and bare.total == 3
    sig = convdot.explain([1, 2, 3, 4], [1, -1], 2)  # 1-D signal and kernel
    assert sig.total == -1 and sig.index == (2,)


@pytest.mark.parametrize(("call", "exc", "pattern"), [
    (lambda: convdot.explain(A3, B2, (1, 0)), ValueError,
     r"explain: index \(1, 0\) is out of range for the output of shape \(1, 1\): axis 0 has size 1"),
    (lambda: convdot.explain(A3, B2, (0, 0, 0)), ValueError, r"explain: index \(0, 0, 0\) must have 2 entries"),
    (lambda: convdot.explain(A3, B2, "0,0"), TypeError, r"explain: index must be an int or a tuple of ints"),
    (lambda: convdot.explain(A3, B2, (0.5, 0)), TypeError, r"explain: index must be an int"),
    (lambda: convdot.explain(A3, B2, (0, 0), flip="yes"), TypeError, r"explain: flip must be True or False"),
    (lambda: convdot.explain(A3, np.ones((5, 5)), (0, 0)), ValueError,
     r"explain: output size \(-1, -1\) is not positive"),
    (lambda: convdot.explain(A3, [1, 0], (0, 0)), ValueError,
     r"explain: a bare signal or image and its kernel must have the same number of dimensions"),
    (lambda: convdot.explain(A3, B2, (0, 0), padding=5, padding_mode="reflect"), ValueError,
     r"explain: padding_mode='reflect' needs padding < input size"),
    (lambda: convdot.explain2d(A3, B2, (0, 3), "valid"), ValueError, r"explain2d: index \(0, 3\) is out of range"),
    (lambda: convdot.explain2d(A3, B2, (0, 0), "middle"), ValueError, r"explain2d: mode must be 'full', 'same'"),
    (lambda: convdot.explain2d(A3, B2, (0, 0), convolve=1), TypeError, r"explain2d: convolve must be True or False"),
    (lambda: convdot.explain2d(A3, np.ones((2, 4)), (0, 0), "valid"), ValueError,
     r"explain2d: for mode='valid' one input must be at least as large as the other"),
])
def test_bad_arguments_get_the_shared_wording(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_padding_taps_record_what_the_padding_mode_gave_them():
    x = np.arange(1, 10).reshape(3, 3)
    w = np.ones((3, 3), dtype=int)
    zeros = convdot.explain(x, w, (0, 0), padding=1)
    assert zeros.padded.sum() == 5 and (zeros.window[0][zeros.padded] == 0).all()
    assert (zeros.source[zeros.padded] == -1).all()
    refl = convdot.explain(x, w, (0, 0), padding=1, padding_mode="reflect")
    # x[-1, -1] reflects to x[1, 1] = 5, x[-1, 0] to x[1, 0] = 4
    assert refl.window[0, 0, 0] == 5 and tuple(refl.source[0, 0]) == (1, 1)
    assert refl.window[0, 0, 1] == 4 and tuple(refl.source[0, 1]) == (1, 0)
    circ = convdot.explain(x, w, (0, 0), padding=1, padding_mode="circular")
    assert circ.window[0, 0, 0] == 9 and tuple(circ.source[0, 0]) == (2, 2)
    rep = convdot.explain(x, w, (0, 0), padding=1, padding_mode="replicate")
    assert rep.window[0, 0, 0] == 1 and tuple(rep.source[0, 0]) == (0, 0)
    fill = convdot.explain2d(x, w, (0, 0), "full", "fill", 7)
    assert (fill.window[0][fill.padded] == 7).all() and fill.fillvalue == 7
    symm = convdot.explain2d(x, w, (0, 0), "full", "symm")
    assert symm.window[0, 0, 0] == x[1, 1]  # symmetric repeats the edge: x[-2] is x[1]
    # inside the input, the source of every tap is the tap itself
    inside = ~refl.padded
    coords = np.stack(np.meshgrid(*refl.taps, indexing="ij"), axis=-1)
    np.testing.assert_array_equal(refl.source[inside], coords[inside])


def test_strided_dilated_grouped_layers_show_channels_and_taps():
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, (1, 6, 9, 9))
    w = rng.integers(-2, 3, (6, 2, 3, 3))
    t = convdot.explain(x, w, (0, 3, 1, 2), stride=2, dilation=2, groups=3)
    assert t.group == 1 and t.channels == (2, 3)  # output channel 3 of 6 is in group 1 (input channels 2..3)
    assert t.taps == ((2, 4, 6), (4, 6, 8))  # row 1*2 + k*2, column 2*2 + k*2
    np.testing.assert_array_equal(t.window, x[0][np.ix_([2, 3], [2, 4, 6], [4, 6, 8])])
    assert t.row == 1 and t.w_row_shape == (2, 18) and t.x_col_shape == (18, 9) and t.column == 1 * 3 + 2
    assert t.total == convdot.conv2d(x, w, stride=2, dilation=2, groups=3)[0, 3, 1, 2]


def test_trace_is_read_only_and_frozen():
    t = convdot.explain(A3, B2, (0, 0))
    with pytest.raises(ValueError, match="read-only"):
        t.window[0, 0, 0] = 9
    with pytest.raises(AttributeError):
        t.total = 5


def test_inputs_are_not_modified():
    x = np.arange(25.0).reshape(5, 5)
    w = np.ones((3, 3))
    x0, w0 = x.copy(), w.copy()
    convdot.explain(x, w, (1, 1), padding=1, padding_mode="reflect", flip=True)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


def test_large_layer_is_explained_with_a_summary():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    t = convdot.explain(x, w, (0, 7, 30, 40), padding=1)
    assert t.total == pytest.approx(float(convdot.conv2d(x, w, padding=1)[0, 7, 30, 40]), rel=1e-4, abs=1e-4)
    text = str(t)
    assert len(text.splitlines()) < 50  # readable: a summary, not 64 grids
    assert "64 input channels" in text and "the other 59" in text and "(576 values)" in text
    full = t.to_text(full=True)
    assert all(f"channel {c}:" in full for c in range(64))
    assert len(full.splitlines()) > 64 * 4
