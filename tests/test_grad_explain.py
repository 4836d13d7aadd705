"""explain_grad: the products listed for a gradient element add up to what conv_backward computes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convdot
from conftest import assert_close
from strategies import conv_problems, padding_fits

MODES = ("zeros", "reflect", "replicate", "circular")


@settings(max_examples=40)
@given(problem=conv_problems(max_side=5, dtypes=("int8", "float64")), padding_mode=st.sampled_from(MODES),
       wrt=st.sampled_from(["x", "weight", "bias"]), data=st.data())
def test_terms_sum_to_the_computed_gradient(problem, padding_mode, wrt, data):
    x, w, _, kw = problem
    assume(padding_fits(padding_mode, kw["padding"], x.shape[2:]))
    out_shape = convdot.conv(x, w, padding_mode=padding_mode, **kw).shape
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    g = rng.integers(-9, 9, out_shape).astype(x.dtype)
    grads = dict(zip(("x", "weight", "bias"), convdot.conv_backward(g, x, w, padding_mode=padding_mode, **kw)))
    target = grads[wrt]
    index = tuple(data.draw(st.integers(0, n - 1)) for n in target.shape)
    t = convdot.explain_grad(g, x, w, wrt, index, padding_mode=padding_mode, **kw)
    assert t.index == index
    assert_close(np.asarray(t.total), target[index], scale=np.abs(target).max() + 1, dtype=target.dtype)
    products = [term.product for term in t.terms]
    assert_close(np.sum(products), target[index], scale=np.abs(target).max() + 1, dtype=target.dtype)
    for term in t.terms:  # every listed pair really is grad_out times the named factor
        assert term.product == term.grad_out_value * (1 if term.other_index is None else term.other_value)
        assert g[term.grad_out_index] == term.grad_out_value


def test_reflect_padding_sends_copies_back():
    x = np.arange(1.0, 5.0)[None, None]  # [1 2 3 4], reflect-padded by 1: [2 | 1 2 3 4 | 3]
    w = np.array([[[1.0, 1.0, 1.0]]])
    g = np.ones((1, 1, 4))
    t = convdot.explain_grad(g, x, w, "x", (0, 0, 1), padding=1, padding_mode="reflect")
    # x[1] sits at padded 2 (taps from outputs 0, 1, 2) and is copied to padded 0 (tap 0 of output 0)
    assert len(t.terms) == 4 and sum(term.padded for term in t.terms) == 1
    assert t.total == convdot.conv_backward(g, x, w, padding=1, padding_mode="reflect")[0][0, 0, 1] == 4.0


def test_text_names_each_pair():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.ones((2, 1, 2, 2))
    g = np.arange(2 * 9.0).reshape(1, 2, 3, 3)
    text = str(convdot.explain_grad(g[0], x[0], w, "weight", (1, 0, 1, 0)))
    assert text.startswith("grad_weight[1, 0, 1, 0] = ")
    assert "grad_out[1, 0, 0] = 9  *  x[0, 1, 0] = 4  ->  36  (tap [1, 0])" in text


def test_bad_wrt_and_index():
    x, w, g = np.ones((1, 1, 5)), np.ones((1, 1, 2)), np.ones((1, 1, 4))
    with pytest.raises(ValueError, match="explain_grad: wrt must be one of 'x', 'weight', 'bias', got 'w'"):
        convdot.explain_grad(g, x, w, "w", 0)
    with pytest.raises(ValueError, match=r"explain_grad: index .* is out of range"):
        convdot.explain_grad(g, x, w, "bias", 3)
    with pytest.raises(ValueError, match=r"explain_grad: grad_out must have the shape \(1, 1, 4\)"):
        convdot.explain_grad(np.ones((1, 1, 5)), x, w, "x", (0, 0, 0))
