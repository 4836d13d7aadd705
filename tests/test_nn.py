"""The PyTorch dialect against torch.nn.functional, the independent oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import convdot
from conftest import assert_close
from strategies import conv_problems, padding_fits

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
OURS = {1: convdot.conv1d, 2: convdot.conv2d, 3: convdot.conv3d}
OURS_T = {1: convdot.conv_transpose1d, 2: convdot.conv_transpose2d, 3: convdot.conv_transpose3d}
TORCH_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def torch_conv(x, w, bias, padding, padding_mode="zeros", **kw):
    """torch's answer; asymmetric padding and padding modes through F.pad, as nn.ConvNd does."""
    nd = x.ndim - 2
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if bias is None else torch.from_numpy(bias)
    flat = [v for lo_hi in reversed(padding) for v in lo_hi]  # F.pad wants the last axis first
    tx = F.pad(tx, flat, mode=TORCH_PAD[padding_mode])
    return TORCH_CONV[nd](tx, tw, tb, padding=0, **kw).numpy()


def _scale(x, w, bias, kwargs, fn=convdot.conv):
    s = fn(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), method="im2col", **kwargs)
    return s if bias is None else s + np.abs(bias).reshape(-1, *[1] * (x.ndim - 2))


@given(problem=conv_problems(dtypes=("float64", "float32")),
       padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
       method=st.sampled_from(convdot.METHODS))
def test_conv_matches_torch(problem, padding_mode, method):
    x, w, bias, kwargs = problem
    nd = x.ndim - 2
    pads = kwargs["padding"]
    assume(padding_fits(padding_mode, pads, x.shape[2:]))
    try:
        ours = OURS[nd](x, w, bias, padding_mode=padding_mode, method=method, **kwargs)
    except ValueError as exc:
        assert "cannot run" in str(exc)
        return
    theirs = torch_conv(x, w, bias, pads, padding_mode, stride=kwargs["stride"], dilation=kwargs["dilation"],
                        groups=kwargs["groups"])
    assert ours.dtype == theirs.dtype
    assert_close(ours, theirs, _scale(x, w, bias, {**kwargs, "padding_mode": padding_mode}))


@given(problem=conv_problems(transposed=True, dtypes=("float64", "float32")), method=st.sampled_from(convdot.METHODS))
def test_conv_transpose_matches_torch(problem, method):
    x, w, bias, kwargs = problem
    nd = x.ndim - 2
    try:
        ours = OURS_T[nd](x, w, bias, method=method, **kwargs)
    except ValueError as exc:
        assert "cannot run" in str(exc)
        return
    tb = None if bias is None else torch.from_numpy(bias)
    theirs = TORCH_CONVT[nd](torch.from_numpy(x), torch.from_numpy(w), tb, **kwargs).numpy()
    assert_close(ours, theirs, _scale(x, w, bias, kwargs, convdot.conv_transpose))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # torch's own note
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_padding_same_matches_torch(nd, dilation, rng):
    x = rng.standard_normal((2, 3, *[6] * nd))
    w = rng.standard_normal((4, 3, *[2, 3, 4][:nd]))
    ours = OURS[nd](x, w, padding="same", dilation=dilation)
    theirs = TORCH_CONV[nd](torch.from_numpy(x), torch.from_numpy(w), padding="same", dilation=dilation).numpy()
    assert ours.shape == (x.shape[0], 4, *x.shape[2:])
    assert_close(ours, theirs, 10.0)


def test_unbatched_input_gives_unbatched_output(rng):
    x = rng.standard_normal((3, 7, 7))
    w = rng.standard_normal((5, 3, 3, 3))
    ours = convdot.conv2d(x, w, padding=1)
    theirs = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    assert ours.shape == (5, 7, 7)
    assert_close(ours, theirs, 10.0)
    out_t = convdot.conv_transpose2d(x, rng.standard_normal((3, 2, 3, 3)), stride=2)
    assert out_t.shape == (2, 15, 15)


def test_torch_tensors_are_accepted(rng):
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    ours = convdot.conv2d(x, w)
    assert isinstance(ours, np.ndarray)
    assert_close(ours, F.conv2d(x, w).detach().numpy(), 10.0)


def test_general_conv_infers_rank_from_weight(rng):
    x = rng.standard_normal((1, 2, 4, 5, 6))
    w = rng.standard_normal((3, 2, 2, 2, 2))
    assert_close(convdot.conv(x, w, stride=(1, 2, 1)),
                 F.conv3d(torch.from_numpy(x), torch.from_numpy(w), stride=(1, 2, 1)).numpy(), 10.0)


def test_complex_conv_matches_torch(rng):
    x = rng.standard_normal((1, 2, 6, 6)) + 1j * rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3)) + 1j * rng.standard_normal((3, 2, 3, 3))
    theirs = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    for method in convdot.METHODS:
        try:
            ours = convdot.conv2d(x, w, padding=1, method=method)
        except ValueError as exc:
            assert "cannot run" in str(exc)
            continue
        assert ours.dtype == np.complex128
        assert_close(ours, theirs, 20.0)
