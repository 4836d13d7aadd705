"""conv_backward against torch.autograd, against finite differences, and a layer trained by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convdot
from conftest import assert_close
from strategies import conv_problems, padding_fits

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
MODES = ("zeros", "reflect", "replicate", "circular")


def torch_grads(g, x, w, pads, padding_mode, stride, dilation, groups):
    """torch.autograd's (grad_x, grad_weight, grad_bias) for the layer nn.ConvNd would build."""
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.zeros(w.shape[0], dtype=tw.dtype, requires_grad=True)
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]  # F.pad wants the last axis first
    out = TORCH_CONV[x.ndim - 2](F.pad(tx, flat, mode=TORCH_PAD[padding_mode]), tw, tb, stride=stride,
                                 dilation=dilation, groups=groups)
    out.backward(torch.from_numpy(g))
    return tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


def scales(g, x, w, **kw):
    """The magnitude each gradient's error is relative to: the same sums over absolute values."""
    return convdot.conv_backward(np.abs(g), np.abs(x), np.abs(w), method="im2col", **kw)


@settings(max_examples=60)
@given(problem=conv_problems(dtypes=("float64",)), padding_mode=st.sampled_from(MODES),
       method=st.sampled_from(convdot.METHODS), unbatched=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv_backward_matches_torch_autograd(problem, padding_mode, method, unbatched, seed):
    x, w, _, kw = problem
    pads = kw["padding"]
    assume(padding_fits(padding_mode, pads, x.shape[2:]))
    if unbatched:
        x = x[0]
    out = convdot.conv(x, w, padding_mode=padding_mode, **kw)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    if unbatched:
        tgx, tgw, tgb = torch_grads(g[None], x[None], w, pads, padding_mode, kw["stride"], kw["dilation"], kw["groups"])
        want = (tgx[0], tgw, tgb)
    else:
        want = torch_grads(g, x, w, pads, padding_mode, kw["stride"], kw["dilation"], kw["groups"])
    try:
        got = convdot.conv_backward(g, x, w, padding_mode=padding_mode, method=method, **kw)
    except ValueError as exc:
        assert "cannot run" in str(exc)
        return
    scale = scales(g, x, w, padding_mode=padding_mode, **kw)
    for name, ours, theirs, s in zip(("grad_x", "grad_weight", "grad_bias"), got, want, scale):
        assert ours.dtype == np.float64, name
        assert ours.shape == theirs.shape, name
        assert_close(ours, theirs, s)


@settings(max_examples=25)
@given(problem=conv_problems(nd=2, dtypes=("float32",)), padding_mode=st.sampled_from(MODES))
def test_conv_backward_float32_matches_torch(problem, padding_mode):
    x, w, _, kw = problem
    assume(padding_fits(padding_mode, kw["padding"], x.shape[2:]))
    g = np.ones(convdot.conv(x, w, padding_mode=padding_mode, **kw).shape, dtype=np.float32)
    got = convdot.conv_backward2d(g, x, w, padding_mode=padding_mode, **kw)
    want = torch_grads(g, x, w, kw["padding"], padding_mode, kw["stride"], kw["dilation"], kw["groups"])
    scale = scales(g, x, w, padding_mode=padding_mode, **kw)
    for ours, theirs, s in zip(got, want, scale):
        assert ours.dtype == np.float32
        assert_close(ours, theirs, s)


@settings(max_examples=40, deadline=None)
@given(problem=conv_problems(dtypes=("float64",)), padding_mode=st.sampled_from(MODES), seed=st.integers(0, 2**32 - 1))
def test_grad_weight_as_chunked_gemm_matches_torch(problem, padding_mode, seed):
    """backward-3x3 computed grad_weight as a correlation with grad_out as a 28x28 'kernel': peak extra
    memory 3.08x (input + output). auto now runs it as a GEMM over batch chunks; same numbers as torch."""
    from convdot import grad
    from convdot._spec import parse_conv

    x, w, _, kw = problem
    assume(padding_fits(padding_mode, kw["padding"], x.shape[2:]))
    g = np.random.default_rng(seed).standard_normal(convdot.conv(x, w, padding_mode=padding_mode, **kw).shape)
    spec = parse_conv("t", x, w, None, kw["stride"], kw["padding"], kw["dilation"], kw["groups"], padding_mode).spec
    ours = grad._grad_weight_gemm(x, g, spec)
    want = torch_grads(g, x, w, kw["padding"], padding_mode, kw["stride"], kw["dilation"], kw["groups"])[1]
    assert_close(ours, want, scales(g, x, w, padding_mode=padding_mode, **kw)[1])


def test_grad_weight_stays_within_twice_input_plus_grad_out(rng):
    import tracemalloc

    from convdot.algorithms._common import clear_pool

    x = rng.standard_normal((16, 32, 14, 14)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    g = rng.standard_normal((16, 32, 14, 14)).astype(np.float32)
    clear_pool()  # every output allocated during the call counts
    tracemalloc.start()
    try:
        _, gw, _ = convdot.conv_backward2d(g, x, w, padding=1, need=("weight",))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 2 * (x.nbytes + g.nbytes)
    want = torch_grads(g, x, w, ((1, 1), (1, 1)), "zeros", 1, 1, 1)[1]
    assert_close(gw, want, scales(g, x, w, padding=1)[1])


def jacobian_transpose_apply(f, shape, g):
    """``J^T g`` of a linear map ``f``, built column by column from unit inputs (no torch, no convdot gradient).

    For a linear map the central difference ``(f(a + e) - f(a - e)) / 2`` is exact at any step, so this is a
    finite-difference gradient of ``sum(f(a) * g)`` without truncation error.
    """
    out = np.zeros(int(np.prod(shape)))
    base = np.zeros(shape)
    for j in range(out.size):
        e = np.zeros(out.size)
        e[j] = 1.0
        plus, minus = f(base + e.reshape(shape)), f(base - e.reshape(shape))
        out[j] = np.sum((plus - minus) / 2 * g)
    return out.reshape(shape)


@settings(max_examples=30)
@given(problem=conv_problems(max_side=5, dtypes=("float64",)), padding_mode=st.sampled_from(MODES),
       seed=st.integers(0, 2**32 - 1))
def test_conv_backward_matches_finite_differences(problem, padding_mode, seed):
    x, w, _, kw = problem
    assume(x.size <= 160 and w.size <= 60)
    assume(padding_fits(padding_mode, kw["padding"], x.shape[2:]))
    forward = dict(padding_mode=padding_mode, method="reference", **kw)
    out = convdot.conv(x, w, **forward)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    gx, gw, gb = convdot.conv_backward(g, x, w, padding_mode=padding_mode, **kw)
    fd_x = jacobian_transpose_apply(lambda a: convdot.conv(a, w, **forward), x.shape, g)
    fd_w = jacobian_transpose_apply(lambda a: convdot.conv(x, a, **forward), w.shape, g)
    fd_b = jacobian_transpose_apply(lambda b: convdot.conv(x, w, b, **forward) - out, (w.shape[0],), g)
    sx, sw, sb = scales(g, x, w, padding_mode=padding_mode, **kw)
    assert_close(gx, fd_x, sx)
    assert_close(gw, fd_w, sw)
    assert_close(gb, fd_b, sb)


def test_complex_gradients_follow_torch_conjugate_convention(rng):
    x = rng.standard_normal((2, 4, 7)) + 1j * rng.standard_normal((2, 4, 7))
    w = rng.standard_normal((6, 2, 3)) + 1j * rng.standard_normal((6, 2, 3))
    g = rng.standard_normal((2, 6, 3)) + 1j * rng.standard_normal((2, 6, 3))
    kw = {"stride": 2, "padding": ((1, 0),), "dilation": 1, "groups": 2}
    got = convdot.conv_backward1d(g, x, w, **kw)
    want = torch_grads(g, x, w, ((1, 0),), "zeros", 2, 1, 2)
    for ours, theirs in zip(got, want):
        assert ours.dtype == np.complex128
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_integer_gradients_are_exact():
    big = 2**40  # products overflow nothing in int64 but lose bits in float64 sums of many terms
    x = np.full((1, 1, 6), big + 1, dtype=np.int64)
    w = np.array([[[3, -5]]], dtype=np.int64)
    g = np.array([[[7, 11, 13, 17, 19]]], dtype=np.int64)
    gx, gw, gb = convdot.conv_backward1d(g, x, w)
    assert gx.dtype == gw.dtype == gb.dtype == np.int64
    assert gx.tolist() == [[[21, 33 - 35, 39 - 55, 51 - 65, 57 - 85, -95]]]
    assert gw.tolist() == [[[(big + 1) * 67, (big + 1) * 67]]]
    assert gb.tolist() == [67]


@pytest.mark.parametrize("padding", ["same", "valid", 2, ((0, 3), (2, 1))])
def test_string_and_pair_padding(padding, rng):
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 2, 3))
    g = rng.standard_normal(convdot.conv2d(x, w, padding=padding).shape)
    pads = {"same": ((0, 1), (1, 1)), "valid": ((0, 0),) * 2, 2: ((2, 2),) * 2}.get(padding, padding)
    got = convdot.conv_backward2d(g, x, w, padding=padding)
    want = torch_grads(g, x, w, pads, "zeros", 1, 1, 1)
    for ours, theirs in zip(got, want):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_need_selects_gradients(rng):
    x, w = rng.standard_normal((1, 2, 5)), rng.standard_normal((3, 2, 2))
    g = rng.standard_normal((1, 3, 4))
    gx, gw, gb = convdot.conv_backward(g, x, w, need=("weight",))
    assert gx is None and gb is None and gw.shape == w.shape
    gx, gw, gb = convdot.conv_backward(g, x, w, need="x")
    assert gw is None and gx.shape == x.shape


def test_training_a_layer_by_hand_gives_torchs_numbers(rng):
    """Five SGD steps of conv -> MSE with convdot's gradients land on torch's weights."""
    x = rng.standard_normal((4, 3, 9, 9))
    target = rng.standard_normal((4, 5, 5, 4))
    w0, b0 = 0.3 * rng.standard_normal((5, 3, 3, 4)), 0.1 * rng.standard_normal(5)
    kw = {"stride": 2, "padding": ((1, 1), (0, 2)), "padding_mode": "reflect"}
    lr = 0.05

    w, b = w0.copy(), b0.copy()
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    tx = torch.from_numpy(x)
    for _ in range(5):
        out = convdot.conv2d(x, w, b, **kw)
        _, gw, gb = convdot.conv_backward2d(2 * (out - target) / out.size, x, w, **kw)
        w, b = w - lr * gw, b - lr * gb

        tout = F.conv2d(F.pad(tx, [0, 2, 1, 1], mode="reflect"), tw, tb, stride=2)
        loss = ((tout - torch.from_numpy(target)) ** 2).mean()
        tw.grad = tb.grad = None
        loss.backward()
        with torch.no_grad():
            tw -= lr * tw.grad
            tb -= lr * tb.grad
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b, tb.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_grad_out_shape_is_checked_against_the_forward_output():
    x, w = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv_backward2d: grad_out must have the shape \(N, C_out, \*out\) = "
                                         r"\(2, 4, 6, 6\) of the forward output .* got shape \(2, 4, 8, 8\)"):
        convdot.conv_backward2d(np.ones((2, 4, 8, 8)), x, w)
    with pytest.raises(ValueError, match=r"grad_out must have the shape \(C_out, \*out\) = \(4, 6, 6\)"):
        convdot.conv_backward2d(np.ones((4, 6, 5)), x[0], w)


@pytest.mark.parametrize(("kwargs", "err", "message"), [
    ({"need": ("x", "input")}, ValueError, "conv_backward: need may only name 'x', 'weight', 'bias'"),
    ({"need": 3}, TypeError, "conv_backward: need must be a name or a tuple of names"),
    ({"method": "magic"}, ValueError, "conv_backward: method must be one of"),
    ({"groups": 2}, ValueError, "conv_backward: groups=2 must divide the 3 input channels"),
    ({"padding": 9, "padding_mode": "reflect"}, ValueError, "conv_backward: padding_mode='reflect' needs padding"),
])
def test_bad_arguments_name_the_rule(kwargs, err, message):
    with pytest.raises(err, match=message.replace("(", r"\(").replace(")", r"\)")):
        convdot.conv_backward(np.ones((1, 4, 6, 6)), np.ones((1, 3, 8, 8)), np.ones((4, 3, 3, 3)), **kwargs)
