"""Winograd F(2,3)/F(4,3) against `reference`, its float32 error bound, its refusals, its kernel cache."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convdot
from conftest import TOL, assert_close
from convdot._spec import parse_conv
from convdot.algorithms import winograd
from convdot.algorithms._common import scratch_budget

BACKENDS = ["numpy"] + (["jit"] if winograd.jit_available() else [])


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never read or write the user's tuning cache."""
    monkeypatch.setenv("CONVDOT_CACHE_DIR", str(tmp_path / "cache"))


def _scale(x, w, **kw):
    """conv(|x|, |w|) in float64: what each output's rounding error is relative to."""
    return convdot.conv(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), method="im2col", **kw)


@pytest.mark.parametrize("m", winograd.TILES)
def test_transforms_compute_correlation_exactly(m):
    """A^T [(G g) * (B^T d)] is the correlation of d with g, in exact rational arithmetic."""
    at, g_mat, bt = ([[Fraction(v).limit_denominator(1000) for v in row] for row in t] for t in winograd.TRANSFORMS[m])
    rng = np.random.default_rng(m)
    for _ in range(20):
        d = [Fraction(int(v)) for v in rng.integers(-9, 10, m + 2)]
        g = [Fraction(int(v)) for v in rng.integers(-9, 10, 3)]
        u = [sum(r[k] * g[k] for k in range(3)) for r in g_mat]
        v = [sum(r[k] * d[k] for k in range(m + 2)) for r in bt]
        y = [sum(r[p] * u[p] * v[p] for p in range(m + 2)) for r in at]
        assert y == [sum(d[i + k] * g[k] for k in range(3)) for i in range(m)]


@st.composite
def winograd_problems(draw, dtypes=("float32", "float64")):
    """A random 3-tap stride-1 problem with its method parameters."""
    nd = draw(st.sampled_from([1, 2, 2, 2, 3]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 3)) if nd == 3 else draw(st.sampled_from([1, 2, 3, 8, 9]))
    cog = draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    hi = 5 if nd == 3 else 13
    spatial = tuple(draw(st.integers(1, hi)) for _ in range(nd))
    dilation = draw(st.sampled_from([1, 1, 1, 2, 3])) if nd < 3 else 1
    span = 2 * dilation + 1
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    if any(s + lo + h < span for s, (lo, h) in zip(spatial, pads)):
        pads = tuple((lo + span - 1, h) for lo, h in pads)
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "circular", "replicate"]))
    if mode == "reflect":
        pads = tuple((min(lo, s - 1), min(h, s - 1)) for s, (lo, h) in zip(spatial, pads))
        if any(s + lo + h < span for s, (lo, h) in zip(spatial, pads)):
            mode, pads = "zeros", tuple((lo + span - 1, h) for lo, h in pads)
    if mode == "circular":
        pads = tuple((min(lo, s), min(h, s)) for s, (lo, h) in zip(spatial, pads))
        if any(s + lo + h < span for s, (lo, h) in zip(spatial, pads)):
            mode, pads = "zeros", tuple((lo + span - 1, h) for lo, h in pads)
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, cg * groups, *spatial))
    w = rng.standard_normal((cog * groups, cg, *(3,) * nd))
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(x.shape)
        w = w + 1j * rng.standard_normal(w.shape)
    kw = {"padding": pads, "groups": groups, "padding_mode": mode, "dilation": dilation}
    spec = parse_conv("test", x.astype(dtype), w.astype(dtype), None, **kw).spec
    tile = draw(st.sampled_from(winograd.tiles_for(spec)))
    backend = draw(st.sampled_from([b for b in BACKENDS if b in winograd.backends_for(spec, tile)]))
    block = draw(st.sampled_from([1, 2, -1, -2]))
    threads = draw(st.sampled_from([1, 2]))
    return x.astype(dtype), w.astype(dtype), kw, spec, {"tile": tile, "backend": backend, "block": block,
                                                        "threads": threads}


@settings(max_examples=60)
@given(problem=winograd_problems(dtypes=("float32", "float64", "complex64", "complex128")))
def test_winograd_matches_reference(problem):
    x, w, kw, spec, params = problem
    out = winograd.run(x, w, spec, **params)
    ref = convdot.conv(x, w, method="reference", **kw)
    assert out.dtype == ref.dtype == spec.dtype
    assert_close(out, ref, _scale(x, w, **kw))


@settings(max_examples=30)
@given(problem=winograd_problems())
def test_method_winograd_through_conv(problem):
    """method='winograd' through the public call, with the planner's parameters."""
    x, w, kw, _, _ = problem
    assert_close(convdot.conv(x, w, method="winograd", **kw), convdot.conv(x, w, method="reference", **kw),
                 _scale(x, w, **kw))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m", winograd.TILES)
def test_float32_error_bound(m, backend, rng):
    """F(m,3) in float32 stays inside the float32 tolerance wherever tiles_for allows it.

    F(4,3) and F(5,3) are allowed from F43_MIN_CHANNELS input channels per group; the measured
    max |error| / conv(|x|, |w|) quoted in the module docstring is asserted here with margin.
    (F(5,3) has compiled kernels only channels-last: 16 filters.)
    """
    cg = winograd.F43_MIN_CHANNELS if m >= 4 else 1
    x = rng.standard_normal((2, cg, 30, 30)).astype(np.float32)
    w = rng.standard_normal((16, cg, 3, 3)).astype(np.float32)
    spec = parse_conv("test", x, w, None, padding=1).spec
    assert m in winograd.tiles_for(spec)
    if backend not in winograd.backends_for(spec, m):
        spec = parse_conv("test", x := np.repeat(x, 2, axis=1), w := np.repeat(w, 2, axis=1), None, padding=1).spec
    out = winograd.run(x, w, spec, tile=m, backend=backend, block=1, threads=1)
    ref = convdot.conv(x, w, padding=1, method="reference").astype(np.float64)
    scale = _scale(x, w, padding=1)
    rel = float(np.max(np.abs(out - ref) / scale))
    # the module docstring measured 6.8e-7 (F(2,3), 1 channel), 3.7e-6 (F(4,3), 8) and 4.5e-6 (F(5,3), 8)
    assert rel < {2: 3e-6, 4: 6e-6, 5: 7e-6}[m]
    assert_close(out, ref, scale, dtype="float32")


def test_f43_needs_channels_in_float32_not_in_float64():
    few = parse_conv("t", np.ones((1, 1, 8, 8), np.float32), np.ones((1, 1, 3, 3), np.float32)).spec
    many = parse_conv("t", np.ones((1, 8, 8, 8), np.float32), np.ones((1, 8, 3, 3), np.float32)).spec
    f64 = parse_conv("t", np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3))).spec
    assert winograd.tiles_for(few) == (2,)
    assert winograd.tiles_for(many) == (2, 4, 5)
    assert winograd.tiles_for(f64) == (2, 4, 5)
    with pytest.raises(ValueError, match="tile must be one of"):
        winograd.run(np.ones((1, 1, 8, 8), np.float32), np.ones((1, 1, 3, 3), np.float32), few, tile=4)


@pytest.mark.parametrize(("kwargs", "w_shape", "dtype", "words"), [
    ({"stride": 2}, (2, 2, 3, 3), "float32", "stride 1"),
    ({}, (2, 2, 5, 5), "float32", "at most 3 taps"),
    ({}, (2, 2, 3, 4), "float64", "at most 3 taps"),
    ({}, (2, 2, 3, 3), "int16", "exactly"),
])
def test_unsupported_configurations_are_refused_clearly(kwargs, w_shape, dtype, words):
    x = np.ones((1, 2, 9, 9), dtype)
    w = np.ones(w_shape, dtype)
    spec = parse_conv("conv2d", x, w, None, **kwargs).spec
    assert words in winograd.unsupported(spec, x, w)
    with pytest.raises(ValueError, match=f"method='winograd' cannot run this problem: .*{words}"):
        convdot.conv2d(x, w, method="winograd", **kwargs)
    assert convdot.plan(x, w, **kwargs).method != "winograd"


@pytest.mark.filterwarnings("error::RuntimeWarning")  # inf * 0 in the weight's transform is not warned about
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_land_where_the_direct_sum_puts_them(backend, bad, rng):
    x = rng.standard_normal((2, 8, 12, 11)).astype(np.float32)
    x[0, 3, 5, 6] = bad
    x[1, 0, 0, 0] = np.nan
    w = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    spec = parse_conv("test", x, w, None, padding=1).spec
    for m in (m for m in winograd.tiles_for(spec) if backend in winograd.backends_for(spec, m)):
        out = winograd.run(x, w, spec, tile=m, backend=backend, block=1, threads=2)
        ref = convdot.conv(x, w, padding=1, method="reference")
        with np.errstate(invalid="ignore"):  # assert_close subtracts inf from inf before masking it
            assert_close(out, ref, _scale(np.nan_to_num(x, posinf=0, neginf=0), w, padding=1))
    w[1, 2, 1, 1] = np.inf
    out = winograd.run(x, w, spec, backend=backend, block=2, threads=1, tile=2)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(convdot.conv(x, w, padding=1, method="reference")))


@pytest.mark.skipif("jit" not in BACKENDS, reason="numba (convdot[fast]) not installed")
def test_compiled_and_numpy_backends_agree_on_odd_layouts(rng):
    """Non-contiguous input, float64, odd sizes, asymmetric and large padding, row blocks."""
    x = rng.standard_normal((3, 10, 17, 23)).transpose(0, 1, 3, 2)[:, ::2]  # (3, 5, 23, 17), a strided view
    w = rng.standard_normal((4, 5, 3, 3))
    spec = parse_conv("test", x, w, None, padding=((4, 0), (1, 3))).spec
    for m in (m for m in winograd.TILES if "jit" in winograd.backends_for(spec, m)):  # F(5,3) runs channels-last
        a = winograd.run(x, w, spec, tile=m, backend="numpy", block=2, threads=1)
        for block in (1, 3, -1, -3):
            b = winograd.run(x, w, spec, tile=m, backend="jit", block=block, threads=2)
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif("jit" not in BACKENDS, reason="numba (convdot[fast]) not installed")
@pytest.mark.parametrize("dilation", [(1, 2), (2, 3), (3, 2), (2, 5)])
def test_compiled_kernels_take_the_column_dilation(dilation, rng):
    """The dilated jit path splits only the rows into phases; every column phase's tiles share one row."""
    x = rng.standard_normal((2, 12, 19, 26)).transpose(0, 1, 3, 2)[:, ::2]  # (2, 6, 26, 19), a strided view
    w = rng.standard_normal((4, 3, 3, 3))
    spec = parse_conv("test", x, w, None, padding=((3, 1), (2, 5)), dilation=dilation, groups=2).spec
    ref = convdot.conv(x, w, padding=((3, 1), (2, 5)), dilation=dilation, groups=2, method="reference")
    for m in (m for m in winograd.TILES if "jit" in winograd.backends_for(spec, m)):
        for block in (1, 2, -1):
            out = winograd.run(x, w, spec, tile=m, backend="jit", block=block, threads=2)
            np.testing.assert_allclose(out, ref, rtol=1e-11, atol=1e-11)


@st.composite
def channels_last_problems(draw):
    """A 2-D problem the compiled kernels run channels-last: F(4,3) or F(5,3), groups=1, >= 16 channels each way."""
    lo = winograd.CHANNELS_LAST_MIN
    c_in = draw(st.integers(lo, lo + 4))
    c_out = c_in if draw(st.booleans()) else draw(st.integers(lo, lo + 4))  # equal: shared chunks go in place
    n = draw(st.integers(1, 3))
    spatial = (draw(st.integers(1, 14)), draw(st.integers(1, 14)))
    dilation = (draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2])))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    pads = tuple((lo_ + max(0, 2 * d + 1 - s - lo_ - hi), hi) for s, d, (lo_, hi) in zip(spatial, dilation, pads))
    mode = draw(st.sampled_from(["zeros", "zeros", "zeros", "replicate"]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c_in, *spatial)).astype(dtype)
    if draw(st.booleans()):  # a strided view, as a dilation phase or a user's slice is
        x = np.repeat(x, 2, axis=3)[..., ::2]
    w = rng.standard_normal((c_out, c_in, 3, 3)).astype(dtype)
    kw = {"padding": pads, "dilation": dilation, "padding_mode": mode}
    return x, w, kw, draw(st.sampled_from([1, 2, -1, -2])), draw(st.sampled_from([1, 2])), \
        draw(st.sampled_from(winograd.CL_TILES))


@pytest.mark.skipif("jit" not in BACKENDS, reason="numba (convdot[fast]) not installed")
@pytest.mark.parametrize("shared", [False, True])
@settings(max_examples=30)
@given(problem=channels_last_problems())
def test_channels_last_kernels_match_reference(shared, problem):
    """Each thread its own chunks; ``shared``: a large transformed kernel, whose chunks the threads
    share, splitting the transform points, the products written over the transformed input when
    there are as many output channels as input (forced here: a real one takes seconds in the reference)."""
    x, w, kw, block, threads, m = problem
    spec = parse_conv("test", x, w, None, **kw).spec
    real = winograd.SPLIT_U_BYTES
    winograd.SPLIT_U_BYTES = 0 if shared else real
    try:
        assert winograd.channels_last(spec, m) and winograd.shares_chunks(spec, m) == shared
        out = winograd.run(x, w, spec, tile=m, backend="jit", block=block, threads=threads + shared)
    finally:
        winograd.SPLIT_U_BYTES = real
    assert_close(out, convdot.conv(x, w, method="reference", **kw), _scale(x, w, **kw))


def test_nonfinite_option_is_checked(rng):
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((2, 2, 3, 3))
    spec = parse_conv("test", x, w, None, padding=1).spec
    with pytest.raises(ValueError, match="winograd nonfinite must be 'fixup' or 'raise', got 'ignore'"):
        winograd.run(x, w, spec, nonfinite="ignore")
    x[0, 1, 2, 3] = np.nan
    with pytest.raises(convdot.algorithms.NonFiniteInput):
        winograd.run(x, w, spec, nonfinite="raise", backend="numpy", tile=2, block=1)


@pytest.mark.skipif("jit" not in BACKENDS, reason="numba (convdot[fast]) not installed")
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("m", winograd.CL_TILES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_channels_last_kernels_place_non_finite_values(bad, m, rng):
    x = rng.standard_normal((2, 16, 9, 10)).astype(np.float32)
    x[1, 7, 4, 9] = bad
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    spec = parse_conv("test", x, w, None, padding=1).spec
    out = winograd.run(x, w, spec, tile=m, backend="jit", block=1, threads=2)
    ref = convdot.conv(x, w, padding=1, method="reference")
    np.testing.assert_array_equal(np.isfinite(out), np.isfinite(ref))
    with np.errstate(invalid="ignore"):
        assert_close(out, ref, _scale(np.nan_to_num(x, posinf=0), w, padding=1))
    # a weight edited in place after its transform was cached (finite): the entry made anew says it
    # is not, with x finite too, and the compiled path hands over to the direct sums (or raises)
    x[1, 7, 4, 9] = 0
    w[5, 3, 0, 2] = bad
    out = winograd.run(x, w, spec, tile=m, backend="jit", block=1, threads=2)
    ref = convdot.conv(x, w, padding=1, method="reference")
    assert not np.isfinite(ref).all()
    np.testing.assert_array_equal(np.isfinite(out), np.isfinite(ref))
    with pytest.raises(convdot.algorithms.NonFiniteInput):
        winograd.run(x, w, spec, tile=m, backend="jit", block=1, threads=2, nonfinite="raise")


def test_channels_last_only_with_many_channels_and_no_groups():
    def spec(c_in, c_out, groups=1):
        x, w = np.ones((1, c_in, 8, 8), np.float32), np.ones((c_out, c_in // groups, 3, 3), np.float32)
        return parse_conv("t", x, w, None, padding=1, groups=groups).spec

    assert winograd.channels_last(spec(16, 16), 4) and winograd.channels_last(spec(16, 16), 5)
    assert not winograd.channels_last(spec(16, 16), 2)
    assert winograd.backends_for(spec(8, 64), 5) == ("numpy",)  # F(5,3) compiles channels-last only
    assert not winograd.channels_last(spec(8, 64), 4)
    assert not winograd.channels_last(spec(64, 8), 4)
    assert not winograd.channels_last(spec(64, 64, groups=2), 4)


def test_dilation_phases_cover_the_output_once():
    spec = parse_conv("t", np.ones((1, 1, 11, 9)), np.ones((1, 1, 3, 3)), None, dilation=(3, 2), padding=(2, 1)).spec
    seen = np.zeros(spec.out_shape[2:], int)
    for sel, _, sub in winograd.dilation_phases(spec):
        assert sub.dilation == (1, 1) and sub.out_shape[2:] == seen[sel].shape
        assert all(x + lo + hi - 2 == o for x, (lo, hi), o in zip(sub.x_shape[2:], sub.pads, sub.out_shape[2:]))
        seen[sel] += 1
    assert (seen == 1).all()


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
@pytest.mark.parametrize("kernel", [(3, 2), (1, 3), (2, 1), (1, 1)])
def test_smaller_kernels_are_zero_extended(kernel, mode, rng):
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((3, 4, *kernel))
    kw = {"padding": ((1, 0), (2, 1)), "padding_mode": mode}
    ref = convdot.conv2d(x, w, method="reference", **kw)
    for backend in BACKENDS:
        spec = parse_conv("test", x, w, None, **kw).spec
        out = winograd.run(x, w, spec, tile=4, backend=backend, block=1, threads=1)
        assert_close(out, ref, _scale(x, w, **kw))
    x[1, 2, 8, 7] = np.nan  # reached by no window of a (3, 2) kernel... but by the zero-extended one
    with np.errstate(invalid="ignore"):
        assert_close(convdot.conv2d(x, w, method="winograd", **kw), convdot.conv2d(x, w, method="reference", **kw),
                     _scale(np.nan_to_num(x), w, **kw))


def test_rows_of_one_image_in_blocks_match_whole_images(rng):
    x = rng.standard_normal((1, 3, 40, 9))
    w = rng.standard_normal((2, 3, 3, 3))
    spec = parse_conv("test", x, w, None, padding=1).spec
    whole = winograd.run(x, w, spec, tile=2, backend="numpy", block=1, threads=1)
    assert winograd.blocks(spec, 2, -3)[:2] == [(0, 1, 0, 3), (0, 1, 3, 6)]
    for backend in BACKENDS:
        np.testing.assert_allclose(winograd.run(x, w, spec, tile=2, backend=backend, block=-3, threads=2), whole,
                                   rtol=1e-12, atol=1e-12)


def test_default_block_bounds_the_transformed_tiles():
    spec = parse_conv("t", np.broadcast_to(np.float32(1), (32, 128, 28, 28)), np.ones((128, 128, 3, 3), np.float32),
                      None, padding=1).spec
    block = winograd.default_block(spec, 2)
    assert 0 < block <= 32
    assert block * winograd.scratch_per_image(spec, 2, "jit") <= winograd.BLOCK_BYTES
    # channels-last: tile rows per thread's chunk, whose tiles and products fit in FUSED_BYTES
    assert winograd.channels_last(spec, 4)
    rows = -winograd.default_block(spec, 4, "jit", 2)
    per_row = winograd.scratch_per_image(spec, 4, "jit") // winograd.tile_grid(spec, 4)[0]
    assert rows >= 1 and rows * per_row <= winograd.FUSED_BYTES < (rows + 1) * per_row
    # a large transformed kernel (9.4 MB): one chunk at a time, shared, within the memory budget; the
    # products go over V, so a row holds V and each of the 2 threads' products of one point
    r14 = parse_conv("t", np.broadcast_to(np.float32(1), (8, 256, 14, 14)), np.ones((256, 256, 3, 3), np.float32),
                     None, padding=1).spec
    assert winograd.shares_chunks(r14, 4) and not winograd.shares_chunks(spec, 4) and winograd.in_place(r14, 4)
    for m, points, tiles in ((4, 36, 4), (5, 49, 3)):
        rows = -winograd.default_block(r14, m, "jit", 2)
        per_row, fixed = winograd._fused_bytes(r14, m, 2)
        assert per_row == (points + 2) * tiles * 256 * 4
        assert rows * per_row + 2 * fixed <= scratch_budget(r14) < (rows + 1) * per_row + 2 * fixed
    assert winograd.chunk_rows(r14, 5, -rows) == 8 * 3  # F(5,3): the whole batch in one chunk
    image = np.broadcast_to(np.float32(1), (1, 64, 2048, 2048))  # a 1 GiB shape, no memory
    big = parse_conv("t", image, np.ones((64, 64, 3, 3), np.float32), None, padding=1).spec
    assert winograd.default_block(big, 4) < 0  # one image does not fit: blocks of tile rows


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), [
    ((2, 16, 64, 64), (16, 16, 3, 3), {"padding": 1}),
    ((1, 8, 96, 96), (8, 8, 3, 3), {"padding": 1}),
    ((8, 32, 20, 20), (32, 32, 3, 3), {"padding": 1}),
    ((8, 32, 20, 20), (32, 32, 3, 3), {"padding": 3, "dilation": 3}),  # split into 9 phases
    ((2, 16, 128, 128), (16, 16, 3, 3), {"padding": 2}),  # margins wider than 'same', recomputed directly
])
def test_peak_memory_stays_within_twice_input_plus_output(backend, x_shape, w_shape, kwargs, rng):
    import tracemalloc

    from convdot.algorithms._common import clear_pool

    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    spec = parse_conv("t", x, w, None, **kwargs).spec
    io = x.nbytes + int(np.prod(spec.out_shape)) * 8
    for m in (m for m in winograd.tiles_for(spec) if backend in winograd.backends_for(spec, m)):
        block = winograd.default_block(spec, m, backend, 2)
        winograd.run(x, w, spec, tile=m, backend=backend, block=block, threads=2)  # compile, warm the pool
        winograd.clear_cache()  # count the kernel transform and the scratch buffers too
        clear_pool()  # and the output
        tracemalloc.start()
        try:
            winograd.run(x, w, spec, tile=m, backend=backend, block=block, threads=2)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= 2 * io + (64 << 10), f"F({m},3) {backend}: peak {peak} bytes > 2 x {io}"  # + Python objects


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", [{"padding": 3, "dilation": 3}, {"padding": (2, 3), "dilation": (2, 3)}])
def test_a_dilated_block_takes_no_more_scratch_than_its_phases_were_given(backend, kwargs, rng, monkeypatch):
    """A block of b images runs b * phases images of every phase, each phase's tiles rounded up on
    their own: the scratch it takes stays within what default_block counted for it."""
    x, w = rng.standard_normal((8, 32, 20, 20)), rng.standard_normal((32, 32, 3, 3))
    spec = parse_conv("t", x, w, None, **kwargs).spec
    block = winograd.default_block(spec, 2, backend, 2)
    taken = []

    def take(nbytes):
        taken.append(nbytes)
        return np.empty(nbytes, np.uint8)

    monkeypatch.setattr(winograd, "take_scratch", take)
    winograd.run(x, w, spec, tile=2, backend=backend, block=block, threads=1)
    if backend == "jit":  # one V and one M per phase, in turn
        assert 0 < max(taken) * 2 <= block * winograd._phased_per_image(spec, 2, backend)
    assert block * winograd._phased_per_image(spec, 2, backend) <= scratch_budget(spec)


@pytest.mark.parametrize("copy_from", [winograd.COPY_WEIGHTS_FROM, 0])  # the CRC-32 of small weights; a copy
def test_kernel_transform_is_cached_and_notices_in_place_edits(copy_from, rng, monkeypatch):
    monkeypatch.setattr(winograd, "COPY_WEIGHTS_FROM", copy_from)
    winograd.clear_cache()
    x = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)
    w = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    u1 = winograd.kernel_transform(w, 4, np.dtype(np.float32), 1)
    assert winograd.kernel_transform(w, 4, np.dtype(np.float32), 1) is u1  # a hit
    assert winograd.kernel_transform(w.copy(), 4, np.dtype(np.float32), 1) is not u1  # another array
    spec = parse_conv("test", x, w, None, padding=1).spec
    before = winograd.run(x, w, spec, tile=4, backend="numpy", block=1, threads=1)
    w[2, 5, 1, 1] += 3.0  # edited in place: same id, new content
    after = winograd.run(x, w, spec, tile=4, backend="numpy", block=1, threads=1)
    assert not np.allclose(before, after)
    assert_close(after, convdot.conv(x, w, padding=1, method="reference"), _scale(x, w, padding=1))
    u2 = winograd.kernel_transform(w, 4, np.dtype(np.float32), 1)
    w[0, 0, 0, 0], w[3, 7, 2, 2] = w[3, 7, 2, 2], w[0, 0, 0, 0]  # two values swapped: the sums are the same
    assert winograd.kernel_transform(w, 4, np.dtype(np.float32), 1) is not u2
    for _ in range(winograd._KERNEL_CACHE_ENTRIES + 5):
        winograd.kernel_transform(rng.standard_normal((2, 2, 3, 3)), 2, np.dtype(np.float64), 1)
    assert len(winograd._cache) <= winograd._KERNEL_CACHE_ENTRIES


@pytest.mark.skipif("jit" not in BACKENDS, reason="numba (convdot[fast]) not installed")
def test_a_14x14_layer_takes_f53_in_one_chunk_within_the_memory_bound(rng):
    """resnet-3x3-14's shape: F(5,3) tiles 14x14 with 3x3 tiles of 5 (F(4,3) needs 4x4 of 4), and the
    whole batch is one shared chunk, its products over the transformed input, within 2 x (input +
    output) besides the cached transformed kernel."""
    import tracemalloc

    from convdot import planner
    from convdot.algorithms._common import clear_pool, clear_scratch

    x = rng.standard_normal((8, 256, 14, 14), dtype=np.float32)
    w = rng.standard_normal((256, 256, 3, 3), dtype=np.float32)
    spec = parse_conv("t", x, w, None, padding=1).spec
    params = planner.parameters("winograd", spec, threads=2)
    assert params["tile"] == 5 and params["backend"] == "jit"
    assert winograd.in_place(spec, 5) and winograd.chunk_rows(spec, 5, params["block"]) == 8 * 3
    out = winograd.run(x, w, spec, **params)
    assert_close(out, convdot.conv(x, w, padding=1, method="im2col").astype(np.float64), _scale(x, w, padding=1))
    clear_scratch()  # the scratch counts, the transformed kernel (cached, 12.8 MB) does not
    clear_pool()
    tracemalloc.start()
    try:
        winograd.run(x, w, spec, **params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 2 * (x.nbytes + out.nbytes)


@pytest.mark.parametrize("kernel", [(1, 1), (2, 3)])
def test_a_short_kernel_is_extended_once_and_its_transform_kept(kernel, rng):
    """A kernel of fewer than 3 taps is extended to 3 once: the extended array, and so its
    transform, are kept between calls (made anew each call, a 1x1 layer peaked at 4.6-25.7x
    input + output), and an edit in place is still seen."""
    import tracemalloc

    from convdot.algorithms._common import clear_pool

    winograd.clear_cache()
    x = rng.standard_normal((2, 128, 28, 28)).astype(np.float32)  # large enough for the compiled kernels
    w = rng.standard_normal((256, 128, *kernel)).astype(np.float32)
    kwargs = {"padding": tuple(k // 2 for k in kernel)}
    spec = parse_conv("t", x, w, None, **kwargs).spec
    first = convdot.conv(x, w, method="winograd", **kwargs)
    clear_pool()
    tracemalloc.start()
    try:
        again = convdot.conv(x, w, method="winograd", **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(again, first)
    io = x.nbytes + int(np.prod(spec.out_shape)) * 4
    assert peak <= 2 * io + (64 << 10), f"peak {peak} bytes > 2 x {io}"
    w[5, 7, 0, 0] += 3.0  # edited in place: same array, new content
    assert_close(convdot.conv(x, w, method="winograd", **kwargs),
                 convdot.conv(x, w, method="reference", **kwargs), _scale(x, w, **kwargs))


def test_threads_give_identical_results(rng, monkeypatch):
    x = rng.standard_normal((4, 8, 16, 16)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    spec = parse_conv("test", x, w, None, padding=1).spec
    for backend in BACKENDS:
        one = winograd.run(x, w, spec, tile=4, backend=backend, block=1, threads=1)
        two = winograd.run(x, w, spec, tile=4, backend=backend, block=1, threads=2)
        np.testing.assert_array_equal(one, two)
    monkeypatch.setenv("CONVDOT_NUM_THREADS", "1")
    assert convdot.plan(x, w, padding=1).params["threads"] == 1
    assert convdot.plan(x, w, padding=1, threads=2).params["threads"] == 2
    monkeypatch.setenv("CONVDOT_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="CONVDOT_NUM_THREADS must be a positive integer, got 'lots'"):
        convdot.conv(x, w, padding=1, method="winograd")
    monkeypatch.delenv("CONVDOT_NUM_THREADS")
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        convdot.plan(x, w, threads=0)
    from convdot import _threads

    with _threads.using(1):  # what a call-level threads= knob sets
        assert convdot.plan(x, w, padding=1).params["threads"] == 1
        assert _threads.num_threads(3) == 3
    assert _threads.num_threads() == _threads.available_cpus()


def test_compare_includes_winograd(rng):
    c = convdot.compare(rng.standard_normal((1, 8, 9, 9)), rng.standard_normal((4, 8, 3, 3)), padding=1, repeat=1)
    assert c["winograd"].max_abs_error < 1e-10
    c = convdot.compare(rng.standard_normal((1, 2, 9, 9)), rng.standard_normal((4, 2, 3, 3)), stride=2, repeat=1)
    assert c["winograd"].seconds is None and "stride 1" in c["winograd"].note


def test_demo_does_not_load_numba():
    """`convdot demo` must stay fast on a fresh machine: the compiled kernels are for large problems only."""
    code = "import sys, convdot.demo; convdot.demo.demo_text(); print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_tolerance_table_is_the_shared_one():
    assert TOL["float32"] == (1e-5, 1e-5)  # the error bound above is stated against this entry


@pytest.mark.skipif("jit" not in BACKENDS, reason="numba (convdot[fast]) not installed")
def test_prefetch_compiles_to_a_prefetch_and_changes_nothing():
    """The kernels' prefetch hint is an instruction that reads nothing into the result: on a strided
    row (its lines found by the row's stride) the function's value is the plain sum, and on x86-64
    the machine code holds a prefetch."""
    import platform

    from numba import njit

    from convdot.algorithms._prefetch_jit import prefetch_read

    @njit
    def hinted_sum(a):
        row = a[1]
        for i in range(0, row.size + 64, 4):  # past the end too: a prefetch never faults
            prefetch_read(row, i)
        return row.sum()

    a = np.arange(400.0).reshape(4, 100)[:, ::3]
    assert hinted_sum(a) == a[1].sum()
    if platform.machine() in ("x86_64", "AMD64"):
        asm = hinted_sum.inspect_asm(hinted_sum.signatures[0])
        assert "prefetcht0" in asm
