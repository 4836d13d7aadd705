"""The planner: a valid choice for every configuration, the rules it never breaks, a readable Plan."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convdot
from convdot import planner
from convdot._spec import METHODS, parse_conv
from convdot.algorithms import ALGORITHMS
from strategies import conv_problems


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never read or write the user's tuning cache."""
    monkeypatch.setenv("CONVDOT_CACHE_DIR", str(tmp_path / "cache"))


def _check(p, x, w, spec):
    assert p.method in METHODS
    assert ALGORITHMS[p.method].unsupported(spec, x, w) is None
    assert p.method not in p.excluded
    assert p.method in p.estimates
    assert set(p.estimates) | set(p.excluded) == set(METHODS)
    assert all(secs > 0 for secs, _ in p.estimates.values())
    assert p.params["threads"] >= 1


@settings(max_examples=50)
@given(problem=conv_problems(dtypes=("float32", "float64", "int8", "int16", "bool")),
       poison=st.sampled_from([None, np.nan, np.inf]), three=st.booleans())
def test_choice_is_valid_for_every_configuration(problem, poison, three):
    x, w, bias, kwargs = problem
    if three:  # a 3-tap stride-1 kernel: Winograd becomes a candidate
        w = np.random.default_rng(0).standard_normal(w.shape[:2] + (3,) * (w.ndim - 2)).astype(w.dtype)
        kwargs = {**kwargs, "stride": 1, "dilation": 1,
                  "padding": tuple((lo + 1, hi + 1) for lo, hi in kwargs["padding"])}
    if poison is not None and x.dtype.kind == "f":
        x = x.copy()
        x.flat[len(x.flat) // 2] = poison
    parsed = parse_conv("test", x, w, bias, **kwargs)
    p = convdot.plan(x, w, bias, **kwargs)
    _check(p, parsed.x, parsed.w, parsed.spec)
    if x.dtype.kind in "biu":
        assert p.method in planner.DIRECT_METHODS
    if not np.isfinite(x).all():
        assert p.method not in planner.TRANSFORM_METHODS
        assert "NaN or inf" in p.excluded["fft"]
    out = convdot.conv(x, w, bias, **kwargs)  # auto runs what the plan says
    assert out.shape == convdot.conv(x, w, bias, method="im2col", **kwargs).shape


def test_direct_only_takes_a_direct_method():
    x = np.random.default_rng(0).standard_normal((1, 1, 64, 64))
    w = np.ones((1, 1, 15, 15))
    parsed = parse_conv("test", x, w, None)
    p = planner.choose(parsed.spec, parsed.x, parsed.w, direct_only=True)
    assert p.method in ("im2col", "sliding")
    assert "method='direct'" in p.excluded["fft"]


def test_large_kernel_goes_to_fft_and_resnet_layer_to_winograd():
    """The model's data, not a chain of ifs, picks these (stated machine, built-in rates)."""
    dense = np.random.default_rng(0).standard_normal((1, 1, 31, 31))  # not rank 1, unlike np.ones
    big = convdot.plan(np.ones((1, 1, 512, 512)), dense, padding=15)
    assert big.method == "fft", str(big)
    m, step = ALGORITHMS["fft"].blocks(big.spec)
    per_image = math.prod(-(-512 // s) for s in step)
    assert f"overlap-save blocks of {m[0]}x{m[1]} points, {per_image} per image" in str(big)
    assert ALGORITHMS["fft"].streamed(big.spec, m)  # one channel: blocks streamed, no padded copy
    assert "streamed through each thread's cache" in str(big) and "no padded copy" in str(big)
    # many channels on small images: the kernel spectrum is made a chunk of output channels at a time
    chunked = convdot.plan(np.ones((4, 16, 32, 32)), np.random.default_rng(1).standard_normal((16, 16, 5, 5)),
                           padding=2)
    assert "whole-array transforms of 36x36 points" in str(chunked)
    assert "kernel spectrum in chunks of" in str(chunked)
    layer = convdot.plan(np.ones((8, 64, 56, 56), np.float32), np.ones((64, 64, 3, 3), np.float32), padding=1)
    assert layer.method == "winograd", str(layer)
    assert layer.params["tile"] == 4
    # compiled: tile rows per thread's chunk (channels-last); NumPy: images per block
    assert layer.params["block"] < 0 if layer.params["backend"] == "jit" else layer.params["block"] >= 1
    if layer.params["backend"] == "jit":
        rows = -layer.params["block"]
        assert f"channels-last, chunks of {rows} tile rows (taken by the threads in turn)" in str(layer)


def test_a_separable_filter_is_costed_as_two_passes():
    g = np.exp(-np.linspace(-2, 2, 31) ** 2)
    img = np.random.default_rng(0).standard_normal((1, 1, 512, 512))
    sep = convdot.plan(img, np.outer(g, g)[None, None], padding=15)
    dense = convdot.plan(img, np.random.default_rng(1).standard_normal((1, 1, 31, 31)), padding=15)
    assert sep.estimates["sliding"][0] < dense.estimates["sliding"][0] / 5  # 62 taps instead of 961
    assert sep.estimates["fft"][0] == dense.estimates["fft"][0]


def test_choice_is_the_lowest_estimate():
    x = np.ones((2, 16, 20, 20), np.float32)
    w = np.ones((16, 16, 3, 3), np.float32)
    p = convdot.plan(x, w, padding=1)
    assert p.source == "model"
    assert p.method == min(p.estimates, key=lambda m: p.estimates[m][0])


def test_estimate_is_count_over_rate():
    rates = {"gemm": 1e11, "numpy": 1e10, "jit": 1e10}
    assert planner.estimate({"gemm": 2e11, "numpy": 1e10}, rates) == pytest.approx(3.0)
    assert planner.estimate({"gemm": 4e11}, rates) == pytest.approx(2 * planner.estimate({"gemm": 2e11}, rates))
    one = planner.estimate({"jit": 1e10}, rates, threads=1)
    assert one >= planner.estimate({"jit": 1e10}, rates, threads=64)


def test_cost_model_is_data_with_its_provenance():
    assert set(planner.COUNTS) == set(METHODS)
    assert planner.MACHINE["machine"] and planner.MACHINE["measured"]
    kinds = set(planner.MACHINE["rates"])
    spec = parse_conv("t", np.ones((2, 4, 9, 9)), np.ones((4, 4, 3, 3)), None, padding=1).spec
    for method, counts in planner.COUNTS.items():
        for params in planner.options(method, spec, 2):
            used = counts(spec, params)
            assert set(used) <= kinds, method
            assert all(v >= 0 for v in used.values())


def test_plan_prints_a_readable_report():
    p = convdot.plan(np.ones((2, 3, 16, 16), np.float32), np.ones((8, 3, 3, 3), np.float32), stride=2)
    text = str(p)
    assert f"method: {p.method}" in text
    assert "<- chosen" in text
    assert "winograd" in text and "not a candidate: winograd needs stride 1" in text
    for m in p.estimates:
        assert m in text
    assert "why: lowest estimated time" in text


def test_plan_keeps_its_interface():
    """_run.py, compare.py and `convdot plan` rely on these."""
    p = convdot.plan(np.ones((1, 2, 8, 8)), np.ones((2, 2, 3, 3)))
    assert isinstance(p, convdot.Plan)
    assert p.spec.func == "plan"
    assert isinstance(p.reason, str) and p.reason
    parsed = parse_conv("conv2d", np.ones((1, 2, 8, 8)), np.ones((2, 2, 3, 3)), None)
    assert planner.choose(parsed.spec, parsed.x, parsed.w).method in METHODS


def test_parameters_for_winograd_follow_the_model():
    spec = parse_conv("t", np.ones((4, 16, 12, 12), np.float32), np.ones((16, 16, 3, 3), np.float32), None,
                      padding=1).spec
    params = planner.parameters("winograd", spec, threads=1)
    assert params["tile"] in (2, 4, 5) and params["threads"] == 1 and params["backend"] in ("numpy", "jit")
    assert planner.parameters("im2col", spec, threads=2) == {"threads": 2}


def _compiled_winograd_layer():
    from convdot.algorithms import winograd

    if "jit" not in winograd.backends_for(parse_conv("t", np.ones((1, 1, 8, 8), np.float32),
                                                     np.ones((1, 1, 3, 3), np.float32), None).spec, 2):
        pytest.skip("numba (convdot[fast]) not installed")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 32, 40, 40)), rng.standard_normal((32, 32, 3, 3))
    return x.astype(np.float32), w.astype(np.float32)


def test_auto_keeps_a_plan_no_value_entered_and_reads_the_values_where_they_count():
    """A plan auto made without reading x or w is kept for the problem's next call; one that read
    them (a transform could win, so NaN/inf was checked) is made again, and sees NaN in new input."""
    x, w = np.ones((1, 3, 64, 64), np.float32), np.ones((8, 3, 7, 7), np.float32)  # im2col or sliding wins
    spec = parse_conv("t", x, w, None, stride=2, padding=3).spec
    first = planner.choose(spec, x, w, defer_finite=True)
    assert first.method not in planner.TRANSFORM_METHODS
    assert planner.choose(spec, x, w, defer_finite=True) is first
    assert planner.choose(spec, x, w, report=True) is not first  # convdot.plan() reports in full, always anew
    image = np.random.default_rng(0).standard_normal((1, 1, 512, 512))
    kernel = np.random.default_rng(1).standard_normal((1, 1, 31, 31))
    spec = parse_conv("t", image, kernel, None, padding=15).spec
    assert planner.choose(spec, image, kernel).method == "fft"
    image[0, 0, 100, 100] = np.nan
    assert planner.choose(spec, image, kernel).method not in planner.TRANSFORM_METHODS


def _fft_filter():
    """A float64 image and a 31x31 kernel: auto takes the FFT."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((1, 1, 256, 256)), rng.standard_normal((1, 1, 31, 31))


#: The transforms auto leaves the NaN/inf check to: their problem, where a bad value goes in x and
#: in w, the padding, a direct method to compare with and the tolerance.
DEFERRED = {
    "winograd": (_compiled_winograd_layer, (2, 7, 39, 0), (5, 3, 0, 2), 1, "reference", 1e-3),
    "fft": (_fft_filter, (0, 0, 100, 7), (0, 0, 3, 30), 15, "sliding", 1e-9),
}


@pytest.mark.parametrize("method", sorted(DEFERRED))
def test_auto_leaves_the_nan_check_to_a_transform_that_reads_every_value(method, monkeypatch):
    make, _, _, padding, direct, atol = DEFERRED[method]
    x, w = make()
    assert convdot.plan(x, w, padding=padding).method == method
    scanned = []
    real = planner._all_finite
    monkeypatch.setattr(planner, "_all_finite", lambda a: scanned.append(a.size) or real(a))
    out = convdot.conv2d(x, w, padding=padding)
    assert x.size not in scanned and w.size not in scanned  # the transform reads every value anyway
    np.testing.assert_allclose(out, convdot.conv2d(x, w, padding=padding, method=direct), atol=atol)
    assert "nonfinite" not in convdot.plan(x, w, padding=padding).params  # what a user is shown is checked in full


@pytest.mark.parametrize(("method", "bad", "where"), [
    ("winograd", np.nan, "x"), ("winograd", np.inf, "x"), ("winograd", np.nan, "w"), ("winograd", -np.inf, "w"),
    ("fft", np.nan, "x"), ("fft", -np.inf, "w"),
])
def test_nan_found_by_a_transform_sends_auto_back_to_a_direct_method(method, bad, where, monkeypatch):
    make, at_x, at_w, padding, direct, atol = DEFERRED[method]
    x, w = make()
    if where == "x":
        x[at_x] = bad
    else:
        w[at_w] = bad
    calls = []
    module = ALGORITHMS[method]
    real = module.run

    @functools.wraps(real)  # keeps run's signature: execute() passes only the options it names
    def run(*a, **k):
        calls.append(k.get("nonfinite"))
        return real(*a, **k)

    monkeypatch.setattr(module, "run", run)
    out = convdot.conv2d(x, w, padding=padding)
    assert calls == ["raise"]  # tried once, abandoned before any output or transform, never rerun as a transform
    ref = convdot.conv2d(x, w, padding=padding, method=direct)
    np.testing.assert_array_equal(np.isfinite(out), np.isfinite(ref))
    np.testing.assert_allclose(np.nan_to_num(out, posinf=0, neginf=0), np.nan_to_num(ref, posinf=0, neginf=0),
                               atol=atol)
    assert convdot.plan(x, w, padding=padding).method != method
