"""The speed paths inside the formulations, each against `reference` (its slow twin).

sliding: the windows (matmul) path, the direct tap-by-tap path in NumPy and compiled, separable
kernels as two 1-D passes; fft: whole-array and blocked (overlap-save) transforms; im2col: the
blocked column build and the plain GEMM for 1x1 kernels. Every path is forced on small problems
so hypothesis can reach it, whatever the planner would pick.
"""

from __future__ import annotations

import contextlib
import importlib.util

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convdot
from conftest import assert_close
from convdot import _threads
from convdot._spec import parse_conv
from convdot.algorithms import _fft_streamed, fft, im2col, sliding
from convdot.algorithms._common import JIT_ENV
from strategies import conv_problems

FLOATS = ("float32", "float64")
HAS_NUMBA = importlib.util.find_spec("numba") is not None


@contextlib.contextmanager
def _jit(flag: str):
    """Force sliding's compiled kernel on ("1", from the smallest problem) or off ("0")."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(JIT_ENV, flag)
        mp.setattr(sliding, "JIT_MIN_MACS", 0)
        yield


def _parsed(x, w, kwargs, padding_mode="zeros"):
    return parse_conv("test", x, w, None, padding_mode=padding_mode, **kwargs)


def _reference(x, w, kwargs, padding_mode="zeros"):
    return convdot.conv(x, w, padding_mode=padding_mode, method="reference", **kwargs)


def _scale(x, w, kwargs, padding_mode="zeros"):
    return convdot.conv(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), padding_mode=padding_mode,
                        method="im2col", **kwargs)


def _check(fn, x, w, kwargs, padding_mode="zeros"):
    p = _parsed(x, w, kwargs, padding_mode)
    out = fn(p.x, p.w, p.spec)
    assert out.shape == p.spec.out_shape and out.dtype == p.spec.dtype
    assert_close(out, _reference(x, w, kwargs, padding_mode), _scale(x, w, kwargs, padding_mode))


# --------------------------------------------------------------------------- sliding


@given(problem=conv_problems(), padding_mode=st.sampled_from(["zeros", "replicate"]))
def test_sliding_windows_path_matches_reference(problem, padding_mode):
    x, w, _, kwargs = problem
    _check(sliding.run_windows, x, w, kwargs, padding_mode)


@given(problem=conv_problems(), padding_mode=st.sampled_from(["zeros", "replicate"]))
def test_sliding_direct_numpy_path_matches_reference(problem, padding_mode):
    x, w, _, kwargs = problem
    with _jit("0"):
        _check(sliding.run_direct, x, w, kwargs, padding_mode)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba (convdot[fast]) is not installed")
@given(problem=conv_problems(nd=2, max_side=9), padding_mode=st.sampled_from(["zeros", "reflect"]))
def test_sliding_direct_compiled_path_matches_reference(problem, padding_mode):
    x, w, _, kwargs = problem
    pads = kwargs["padding"]
    if padding_mode == "reflect" and any(max(p) >= n for p, n in zip(pads, x.shape[2:])):
        padding_mode = "zeros"
    with _jit("1"):
        _check(sliding.run_direct, x, w, kwargs, padding_mode)


@st.composite
def separable_problems(draw):
    """A 2-D single-channel (or depthwise) problem whose kernels are outer products u v^T."""
    g = draw(st.sampled_from([1, 1, 3]))
    kh, kw = draw(st.integers(3, 6)), draw(st.integers(3, 6))
    dh = draw(st.integers(1, 2))
    h, wd = draw(st.integers(dh * (kh - 1) + 1, 12)), draw(st.integers(kw, 12))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    u, v = rng.standard_normal((g, kh)), rng.standard_normal((g, kw))
    w = np.einsum("gi,gj->gij", u, v).reshape(g, 1, kh, kw).astype(dtype)  # (G, 1, kh, kw)
    x = rng.standard_normal((draw(st.integers(1, 2)), g, h, wd)).astype(dtype)
    kwargs = {"stride": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
              "dilation": (dh, 1), "groups": g,
              "padding": ((draw(st.integers(0, 2)), draw(st.integers(0, 2))), (draw(st.integers(0, 3)), 0))}
    return x, w, kwargs


@pytest.mark.parametrize("jit", ["0", "1"] if HAS_NUMBA else ["0"])
@given(problem=separable_problems())
def test_separable_kernel_two_passes_match_reference(jit, problem):
    x, w, kwargs = problem
    g = kwargs["groups"]
    assert sliding.separable_factors(w.reshape(g, 1, 1, *w.shape[2:]), x) is not None
    with _jit(jit), pytest.MonkeyPatch.context() as mp:
        mp.setattr(sliding, "separable_pays", lambda spec: True)  # two passes even where one pays more
        _check(sliding.run_direct, x, w, kwargs)


def test_two_passes_only_where_they_pay():
    """Compiled: a 3x3 or 5x5 rank-1 kernel runs dense (one fused pass), a 15x15 one in two passes."""
    def spec(k):
        return parse_conv("t", np.zeros((1, 1, 512, 512)), np.zeros((1, 1, k, k)), None, padding=k // 2).spec

    with _jit("1"):
        assert not sliding.separable_pays(spec(3)) and not sliding.separable_pays(spec(5))
        assert sliding.separable_pays(spec(15))
    with _jit("0"):
        assert sliding.separable_pays(spec(3))  # NumPy: kh + kw passes instead of kh * kw


@pytest.mark.parametrize("shape", [(3, 3), (7, 7), (31, 31), (3, 31)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_rank1_screen_never_rejects_a_kernel_the_svd_accepts(shape, dtype, rng):
    """The cheap pivoted screen before the SVD only skips kernels that are clearly full rank."""
    kh, kw = shape
    tol = 8 * np.finfo(dtype).eps * max(kh, kw)
    for trial in range(100):
        u, v = rng.standard_normal(kh) * 10.0 ** rng.integers(-3, 4), rng.standard_normal(kw)
        u[rng.integers(kh)] *= 10.0 ** (4 * (trial % 2))  # sometimes one entry dominates
        k = np.outer(u, v)
        noise = rng.standard_normal(shape)
        k = k + noise * (rng.random() * tol * np.linalg.norm(k, 2) / np.linalg.norm(noise, 2))
        s = np.linalg.svd(k, compute_uv=False)
        if s[1] <= tol * s[0]:
            assert sliding._maybe_rank1(k[None], tol)
    assert not sliding._maybe_rank1(rng.standard_normal((4, kh, kw)), tol)


def test_separable_detection_rejects_full_rank_and_non_finite(rng):
    w = rng.standard_normal((1, 1, 1, 3, 3))
    assert sliding.separable_factors(w, np.zeros((1, 1, 1, 4, 4))) is None
    sobel = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0]).reshape(1, 1, 1, 3, 3)
    assert sliding.separable_factors(sobel, np.zeros((1, 1, 1, 4, 4))) is not None
    x = np.zeros((1, 1, 1, 4, 4))
    x[0, 0, 0, 1, 1] = np.inf
    assert sliding.separable_factors(sobel, x) is None  # inf * 0 must stay NaN where the direct sum puts it
    assert sliding.separable_factors(sobel.astype(np.int64), np.zeros((1, 1, 1, 4, 4), np.int64)) is None


@pytest.mark.parametrize("jit", ["0", "1"] if HAS_NUMBA else ["0"])
def test_direct_path_keeps_nan_and_inf_in_place(jit, rng):
    x = rng.standard_normal((1, 1, 12, 11))
    x[0, 0, 3, 4], x[0, 0, 8, 0], x[0, 0, 11, 10] = np.nan, np.inf, -np.inf
    w = np.outer([1.0, 0.0, 2.0], [1.0, -1.0, 0.5]).reshape(1, 1, 3, 3)  # separable, with a zero row
    kwargs = {"stride": 1, "dilation": 1, "groups": 1, "padding": 1}
    with _jit(jit):
        _check(sliding.run_direct, x, w, kwargs)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba (convdot[fast]) is not installed")
@given(data=st.data())
def test_whole_plane_3x3_kernel_matches_reference(data):
    """The depthwise kernel (every 3x3 tap fused, whole planes): dilation, uneven padding, channels,
    planes split over threads, NaN/inf in x, float32 and float64."""
    g, cg, cog = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    dil = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    pads = tuple((data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))) for _ in range(2))
    side = [data.draw(st.integers(max(1, 2 * d + 1 - lo - hi), 11)) for d, (lo, hi) in zip(dil, pads)]
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((data.draw(st.integers(2, 3)), g * cg, *side)).astype(dtype)
    if data.draw(st.booleans()):
        x.flat[rng.integers(x.size, size=2)] = (np.nan, np.inf)
    w = rng.standard_normal((g * cog, cg, 3, 3)).astype(dtype)
    kwargs = {"stride": 1, "dilation": dil, "groups": g, "padding": pads}
    threads = data.draw(st.integers(1, x.shape[0] * g * cog // 2))  # at least two planes per thread
    out_sp = _parsed(x, w, kwargs).spec.out_shape[2:]
    assert sliding.uses_planes((x.shape[0], g, cg, *side), (g, cog, cg, 3, 3), (1, 1), dil, pads, out_sp,
                               x.dtype, threads)
    with _jit("1"), _threads.using(threads):
        _check(sliding.run_direct, x, w, kwargs)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba (convdot[fast]) is not installed")
@given(data=st.data())
def test_same_padded_depthwise_planes_match_reference(data):
    """The copy-free depthwise kernel ('same' padding, one input channel per group): dilations on
    each axis, planes from 2*dilation + 1, several filters per group, NaN/inf in x, float32 and
    float64; an inf or NaN weight takes the copying kernel, where padding times inf is NaN."""
    g, cog = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    dil = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    side = [data.draw(st.integers(2 * d + 1, 12)) for d in dil]
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((data.draw(st.integers(2, 3)), g, *side)).astype(dtype)
    if data.draw(st.booleans()):
        x.flat[rng.integers(x.size, size=2)] = (np.nan, -np.inf)
    w = rng.standard_normal((g * cog, 1, 3, 3)).astype(dtype)
    if data.draw(st.integers(0, 4)) == 0:
        w.flat[rng.integers(w.size)] = data.draw(st.sampled_from([np.inf, np.nan]))
    kwargs = {"stride": 1, "dilation": dil, "groups": g, "padding": [(d, d) for d in dil]}
    pads = tuple((d, d) for d in dil)
    assert sliding.uses_same_planes((x.shape[0], g, 1, *side), dil, pads, tuple(side))
    threads = data.draw(st.integers(1, x.shape[0] * g * cog // 2))  # at least two planes per thread
    assert sliding.uses_planes((x.shape[0], g, 1, *side), (g, cog, 1, 3, 3), (1, 1), dil, pads, tuple(side),
                               x.dtype, threads)
    with _jit("1"), _threads.using(threads):
        _check(sliding.run_direct, x, w, kwargs)


def test_copy_free_planes_only_for_same_padding():
    assert sliding.uses_same_planes((8, 256, 1, 56, 56), (1, 1), ((1, 1), (1, 1)), (56, 56))  # depthwise
    assert not sliding.uses_same_planes((8, 256, 1, 56, 56), (1, 1), ((1, 0), (1, 1)), (55, 56))  # not 'same'
    assert not sliding.uses_same_planes((8, 128, 2, 56, 56), (1, 1), ((1, 1), (1, 1)), (56, 56))  # 2 channels
    assert not sliding.uses_same_planes((1, 4, 1, 4, 9), (2, 1), ((2, 2), (1, 1)), (4, 9))  # rows < 2d + 1


@pytest.mark.skipif(not HAS_NUMBA, reason="numba (convdot[fast]) is not installed")
@given(data=st.data())
def test_fused_3x3_rows_of_one_large_plane_match_reference(data):
    """The image-filter kernel: one plane (so row by row, not whole planes), a 3x3 kernel's nine
    taps fused per row where all three rows are inside, row strides, dilation, uneven padding."""
    cg = data.draw(st.integers(1, 3))
    dil = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride = (data.draw(st.integers(1, 2)), 1)
    pads = tuple((data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))) for _ in range(2))
    side = [data.draw(st.integers(max(1, 2 * d + 1 - lo - hi), 14)) for d, (lo, hi) in zip(dil, pads)]
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((1, cg, *side)).astype(dtype)
    if data.draw(st.booleans()):
        x.flat[rng.integers(x.size, size=2)] = (np.nan, -np.inf)
    w = rng.standard_normal((1, cg, 3, 3)).astype(dtype)
    kwargs = {"stride": stride, "dilation": dil, "groups": 1, "padding": pads}
    with _jit("1"):
        _check(sliding.run_direct, x, w, kwargs)


def test_whole_plane_kernel_is_for_many_small_planes():
    depthwise = ((8, 256, 1, 56, 56), (256, 1, 1, 3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), (56, 56))
    assert sliding.uses_planes(*depthwise, np.float32, 2)
    image = ((1, 1, 1, 2048, 2048), (1, 1, 1, 3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), (2048, 2048))
    assert not sliding.uses_planes(*image, np.float64, 2)  # one large plane: row by row, on every thread
    strided = ((8, 256, 1, 56, 56), (256, 1, 1, 3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), (28, 28))
    assert not sliding.uses_planes(*strided, np.float32, 2)


# --------------------------------------------------------------------------- fft


@given(problem=conv_problems(dtypes=("float32", "float64", "complex128")), data=st.data(),
       padding_mode=st.sampled_from(["zeros", "circular"]))
def test_fft_blocks_match_reference(problem, data, padding_mode):
    """Overlap-save with every block length, from one output per block to the whole array; with a
    budget so small that the kernel spectrum is made one output channel at a time (or one group's)
    and a batch is one block."""
    x, w, _, kwargs = problem
    if x.dtype.kind == "c":
        x = x + 1j * np.roll(x, 1)
    if padding_mode == "circular" and any(max(p) > n for p, n in zip(kwargs["padding"], x.shape[2:])):
        padding_mode = "zeros"
    spec = _parsed(x, w, kwargs, padding_mode).spec
    steps = tuple(s * data.draw(st.integers(1, 4)) for s in spec.stride)
    m = tuple(st_ + sp - 1 + data.draw(st.integers(0, 3)) for st_, sp in zip(steps, fft.span(spec)))
    with pytest.MonkeyPatch.context() as mp:
        if data.draw(st.booleans(), label="tight budget"):
            mp.setattr(fft, "scratch_budget", lambda spec, committed=0: 1)
        _check(lambda a, b, sp: fft.run_blocked(a, b, sp, (m, steps)), x, w, kwargs, padding_mode)


@given(problem=conv_problems(dtypes=("float32", "float64", "complex128", "int16")), data=st.data(),
       padding_mode=st.sampled_from(["zeros", "circular", "reflect"]))
def test_fft_streamed_blocks_match_reference(problem, data, padding_mode):
    """One channel pair per group (single-channel filters, depthwise layers): blocks streamed
    through each thread, a few per work item or one, copied from ``x`` with the padding filled in
    (or from the padded copy), NaN/inf included."""
    x, w, _, kwargs = problem
    c = x.shape[1]
    w = np.resize(w, (c, 1, *w.shape[2:]))  # depthwise: groups = channels, one filter each
    kwargs = {**kwargs, "groups": c}
    if x.dtype.kind == "c":
        x = x + 1j * np.roll(x, 1)
    if x.dtype.kind == "i":
        x, w = x // 256, w // 256  # small enough for an exactly rounded float64 transform
    elif data.draw(st.booleans(), label="non-finite"):
        x = x.copy()
        x.flat[data.draw(st.integers(0, x.size - 1))] = data.draw(st.sampled_from([np.nan, np.inf]))
    if padding_mode != "zeros" and any(max(p) >= n for p, n in zip(kwargs["padding"], x.shape[2:])):
        padding_mode = "zeros"
    spec = _parsed(x, w, kwargs, padding_mode).spec
    steps = tuple(s * data.draw(st.integers(1, 4)) for s in spec.stride)
    m = tuple(st_ + sp - 1 + data.draw(st.integers(0, 3)) for st_, sp in zip(steps, fft.span(spec)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fft, "STREAM_MIN_POINTS", 0)
        mp.setattr(_fft_streamed, "ITEM_POINTS", data.draw(st.integers(1, 256), label="points per item"))
        assert fft.streamed(spec, m)
        _check(lambda a, b, sp: fft.run_blocked(a, b, sp, (m, steps)), x, w, kwargs, padding_mode)


def test_fft_streamed_raises_on_nan_when_asked(monkeypatch):
    """``nonfinite="raise"`` (auto's deferred check) raises from the streamed path too."""
    x = np.ones((1, 1, 40, 40))
    x[0, 0, 39, 39] = np.nan
    spec = _parsed(x, np.ones((1, 1, 5, 5)), {"padding": 2}).spec
    monkeypatch.setattr(fft, "STREAM_MIN_POINTS", 0)
    assert fft.streamed(spec, (16, 16))
    with pytest.raises(convdot.algorithms.NonFiniteInput):
        fft.run_blocked(x, np.ones((1, 1, 5, 5)), spec, ((16, 16), (12, 12)), nonfinite="raise")


def test_fft_cost_counts_the_kernel_spectrum_made_in_chunks(monkeypatch):
    """With too little memory for the whole kernel spectrum, it is made per batch in chunks of output
    channels: the model counts those transforms and the chunks' small matrix products."""
    spec = _parsed(np.zeros((4, 16, 32, 32)), np.zeros((16, 16, 5, 5)), {"padding": 2}).spec
    chunked = fft.cost(spec)
    assert fft._batch(spec, fft.blocks(spec)[0])[2] < 16  # this layer's spectrum is made in chunks
    monkeypatch.setattr(fft, "scratch_budget", lambda spec, committed=0: 1 << 40)  # all of it at once
    whole = fft.cost(spec)
    assert fft._batch(spec, fft.blocks(spec)[0])[2] == 16
    assert chunked["fft"] > whole["fft"] and chunked["matrices"] > whole["matrices"]
    assert chunked["transforms"] > whole["transforms"]


def test_fft_picks_blocks_for_a_small_kernel_on_a_large_image():
    spec = _parsed(np.zeros((1, 1, 2048, 2048)), np.zeros((1, 1, 15, 15)), {"padding": 7}).spec
    m, step = fft.blocks(spec)
    assert all(mm < 2048 for mm in m) and all(mm >= s + 14 for mm, s in zip(m, step))
    whole = _parsed(np.zeros((1, 1, 64, 64)), np.zeros((1, 1, 31, 31)), {"padding": 15}).spec
    assert fft.blocks(whole)[0][0] >= 94  # kernel as large as the image: one block


@given(problem=conv_problems(nd=2, dtypes=("float64",)), data=st.data())
def test_fft_blocks_keep_nan_and_inf_in_place(problem, data):
    x, w, _, kwargs = problem
    x = x.copy()
    flat = x.reshape(-1)
    for i in data.draw(st.lists(st.integers(0, flat.size - 1), min_size=1, max_size=3)):
        flat[i] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    spec = _parsed(x, w, kwargs).spec
    steps = spec.stride
    m = tuple(s + sp - 1 for s, sp in zip(steps, fft.span(spec)))
    _check(lambda a, b, sp: fft.run_blocked(a, b, sp, (m, steps)), x, w, kwargs)


# --------------------------------------------------------------------------- im2col


@pytest.mark.parametrize("block_bytes", [1, 1 << 10, 1 << 22])
@given(problem=conv_problems(dtypes=("float32", "float64", "int16")))
def test_im2col_blocks_match_reference(block_bytes, problem):
    """From one output row per block (1 byte asks for the minimum) to whole batches per block."""
    x, w, _, kwargs = problem
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(im2col, "BLOCK_BYTES", block_bytes)
        mp.setattr(im2col, "channel_block", lambda spec, threads=None, **_: None)  # row blocks, however narrow
        p = _parsed(x, w, kwargs)
        out = im2col.run(p.x, p.w, p.spec)
    ref = _reference(x, w, kwargs)
    if ref.dtype.kind == "i":
        np.testing.assert_array_equal(out, ref)
    else:
        assert_close(out, ref, _scale(x, w, kwargs))


@pytest.mark.skipif(not HAS_NUMBA, reason="the compiled gather needs numba (convdot[fast])")
@pytest.mark.parametrize("fused_bytes", [1, 1 << 22])
@given(problem=conv_problems(nd=2, dtypes=("float32", "float64")), threads=st.integers(1, 3),
       padding_mode=st.sampled_from(["zeros", "replicate", "circular"]))
def test_im2col_compiled_gather_matches_reference(fused_bytes, problem, threads, padding_mode):
    """Each thread its own blocks, from one output row per block (1 byte asks for the minimum) to all."""
    x, w, _, kwargs = problem
    if padding_mode == "circular" and any(max(p) > n for p, n in zip(kwargs["padding"], x.shape[2:])):
        padding_mode = "zeros"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(im2col, "JIT_MIN_MACS", 0)
        mp.setattr(im2col, "FUSED_BYTES", fused_bytes)
        mp.setattr(im2col, "channel_block", lambda spec, threads=None, **_: None)  # row blocks, however narrow
        assert im2col.compiled(_parsed(x, w, kwargs, padding_mode).spec)
        with _threads.using(threads):
            _check(im2col.run, x, w, kwargs, padding_mode)


@pytest.mark.parametrize("fast", [False, pytest.param(True, marks=pytest.mark.skipif(
    not HAS_NUMBA, reason="the compiled gather needs numba (convdot[fast])"))])
@given(data=st.data(), padding_mode=st.sampled_from(["zeros", "reflect", "circular"]))
def test_im2col_channel_blocks_match_reference(fast, data, padding_mode):
    """The sum over input channels in blocks of any size, partial products of any number of output
    channels, added into the output (one group; the compiled gather for 2-D floats; a weight of
    another dtype converted a slice at a time)."""
    problems = conv_problems(nd=2, dtypes=FLOATS) if fast else conv_problems(dtypes=(*FLOATS, "int16"))
    x, w, _, kwargs = data.draw(problems, label="problem")
    if kwargs["groups"] != 1:  # one group: the weight for all input channels
        w = np.resize(w, (w.shape[0], x.shape[1], *w.shape[2:]))
        kwargs = {**kwargs, "groups": 1}
    if padding_mode != "zeros" and any(max(pads) >= n for pads, n in zip(kwargs["padding"], x.shape[2:])):
        padding_mode = "zeros"  # reflect and circular need padding smaller than the side
    if data.draw(st.booleans(), label="float32 weight"):  # with a float64 x: its slices converted
        w = w.astype(np.float32)
    p = _parsed(x, w, kwargs, padding_mode)
    channels = data.draw(st.integers(1, x.shape[1]), label="channels")
    outputs = data.draw(st.integers(1, w.shape[0]), label="outputs")
    strided = any(s != 1 for s in p.spec.stride)
    out = im2col._channel_blocks(p.x, im2col._w_row(p.w, p.spec), p.spec, strided, fast, (channels, outputs))
    ref = _reference(x, w, kwargs, padding_mode)
    if ref.dtype.kind == "i":
        np.testing.assert_array_equal(out, ref)
    else:
        assert out.shape == p.spec.out_shape and out.dtype == p.spec.dtype
        assert_close(out, ref, _scale(x, w, kwargs, padding_mode))


@pytest.mark.parametrize(("shape", "stride"), [((1, 256, 14, 14), 1), ((1, 512, 7, 7), 1), ((4, 512, 7, 7), 1),
                                               ((1, 256, 16, 16), 2), ((4, 512, 14, 14), 2)])
def test_im2col_blocks_channels_of_a_large_weight_on_small_images(shape, stride, rng, monkeypatch):
    """A batch-1 deep layer: row blocks within the memory bound would be 1-2 rows wide, so the input
    channels are blocked, within the bound; the result and the plan say so."""
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[1], shape[1], 3, 3)).astype(np.float32) / 30
    kwargs = {"padding": 1, "stride": stride}
    spec = _parsed(x, w, kwargs).spec
    threads = 2 if im2col.compiled(spec) else 1  # NumPy's tap copies run on one thread
    sizes = im2col.channel_block(spec, threads)
    assert sizes is not None
    channels, outputs = sizes
    assert channels >= 1
    assert channels < shape[1]  # more than one block: the sum over channels is split
    assert outputs >= 1
    assert outputs <= shape[1]
    blocked = []
    run_blocks = im2col._channel_blocks
    monkeypatch.setattr(im2col, "_channel_blocks", lambda *args: blocked.append(args[-1]) or run_blocks(*args))
    out = convdot.conv2d(x, w, method="im2col", threads=2, **kwargs)
    assert blocked == [sizes]
    expected = convdot.conv2d(x.astype(np.float64), w.astype(np.float64), method="sliding", **kwargs)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    io = x.nbytes + int(np.prod(spec.out_shape)) * 4
    peak = _peak(lambda: convdot.conv2d(x, w, method="im2col", threads=2, **kwargs))
    assert peak <= 2 * io + (64 << 10)
    text = str(convdot.plan(x, w, threads=2, **kwargs))  # im2col's line says how it blocks, chosen or not
    assert f"blocks of {channels} input channels added into the output" in text


@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), [
    ((8, 128, 28, 28), (256, 128, 3, 3), {"stride": 2, "padding": 1}),  # down-3x3: rows 196 positions wide
    ((8, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}),  # resnet-3x3-14: 98
    ((1, 3, 224, 224), (64, 3, 7, 7), {"stride": 2, "padding": 3}),  # stem-7x7
    ((1, 256, 14, 14), (256, 128, 3, 3), {"padding": 1, "groups": 2}),  # two groups
])
def test_im2col_keeps_row_blocks_that_are_wide_enough(x_shape, w_shape, kwargs):
    spec = _parsed(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32), kwargs).spec
    assert im2col.channel_block(spec, 2) is None


@pytest.mark.skipif(not HAS_NUMBA, reason="the compiled phase split needs numba (convdot[fast])")
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 12), st.integers(1, 12)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       pads=st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.tuples(st.integers(0, 3), st.integers(0, 3))),
       fill=st.sampled_from([0.0, 2.5]), dtype=st.sampled_from(FLOATS), threads=st.integers(1, 3),
       seed=st.integers(0, 99), data=st.data())
def test_compiled_phase_split_matches_numpy(shape, stride, pads, fill, dtype, threads, seed, data):
    """im2col's stride phases of the padded input, by the compiled kernel and by NumPy's strided copies,
    of all channels or a range of them, from an input in any memory order."""
    from dataclasses import replace

    x = np.random.default_rng(seed).standard_normal(shape)  # float64: the kernel casts to the compute dtype
    if data.draw(st.booleans(), label="fortran"):
        x = np.asfortranarray(x)  # read as it is, not copied
    c0 = data.draw(st.integers(0, shape[1] - 1), label="c0")
    channels = (c0, data.draw(st.integers(c0 + 1, shape[1]), label="c1"))
    spec = _parsed(x, np.zeros((1, shape[1], 1, 1)), {"stride": stride}).spec
    spec = replace(spec, pads=pads, padding_mode="constant", fillvalue=fill, dtype=np.dtype(dtype))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(im2col, "compiled", lambda spec: False)
        expected = im2col.phased(x, spec, channels)
        mp.setattr(im2col, "compiled", lambda spec: True)
        with _threads.using(threads):
            got = im2col.phased(x, spec, channels)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_im2col_gives_every_thread_a_block(rng):
    spec = _parsed(np.zeros((1, 3, 64, 64), np.float32), np.zeros((8, 3, 7, 7), np.float32),
                   {"stride": 2, "padding": 3}).spec
    images, rows = im2col._thread_block(spec, 0, 2)
    assert images == 1 and rows <= 16  # 32 output rows, two threads


@pytest.mark.skipif(not HAS_NUMBA, reason="the compiled gather needs numba (convdot[fast])")
def test_plan_says_how_im2col_builds_its_columns():
    x, w = np.zeros((1, 3, 224, 224), np.float32), np.zeros((64, 3, 7, 7), np.float32)  # the stem layer
    text = str(convdot.plan(x, w, stride=2, padding=3, threads=2))
    images, rows = im2col.column_block(_parsed(x, w, {"stride": 2, "padding": 3}).spec, 2)
    assert images == 1 and rows < 112
    assert f"compiled column gather, blocks of {rows} output rows, taken by the threads in turn" in text
    pointwise = str(convdot.plan(np.zeros((8, 256, 56, 56), np.float32), np.zeros((64, 256, 1, 1), np.float32)))
    assert "im2col (1x1 kernel: one GEMM on x itself, no columns" in pointwise and "column gather" not in pointwise


@given(problem=conv_problems(), data=st.data())
def test_im2col_pointwise_is_a_plain_gemm(problem, data):
    x, w, _, kwargs = problem
    w = w[(slice(None), slice(None), *(slice(0, 1),) * (w.ndim - 2))]  # 1x1
    kwargs = {**kwargs, "padding": 0, "dilation": 1}
    p = _parsed(x, w, kwargs)
    assert im2col.is_pointwise(p.spec)
    if data.draw(st.booleans()):
        x = np.asfortranarray(x)  # any memory order
    _check(im2col.run, x, w, kwargs)


def test_im2col_stride1_pointwise_reads_x_in_place(rng):
    """The 1x1 stride-1 GEMM makes no copy of a contiguous input: only the output is allocated."""
    import tracemalloc

    x = rng.standard_normal((2, 64, 32, 32))
    w = rng.standard_normal((8, 64, 1, 1))
    p = _parsed(x, w, {"padding": 0})
    tracemalloc.start()
    im2col.run(p.x, p.w, p.spec)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1.2 * 2 * 8 * 32 * 32 * 8  # the output, not the 1 MiB input


# --------------------------------------------------------------------------- memory


def _peak(fn) -> int:
    import tracemalloc

    from convdot.algorithms._common import clear_pool

    clear_pool()  # the output counts as a new allocation, not a block kept from an earlier call
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("method", "x_shape", "w_shape", "kwargs"), [
    ("im2col", (2, 16, 64, 64), (16, 16, 3, 3), {"padding": 1}),  # full columns would be 9x the input
    ("im2col", (1, 8, 96, 96), (8, 8, 5, 5), {"padding": 2, "dilation": 1}),
    ("sliding", (2, 16, 48, 48), (16, 16, 3, 3), {"padding": 1}),  # windows path, in blocks
    ("sliding", (1, 256, 8, 8), (256, 256, 3, 3), {"padding": 1}),  # a weight 9x the data: never copied
    ("sliding", (2, 64, 16, 16), (64, 16, 3, 3), {"padding": 1, "groups": 4}),
    ("sliding", (1, 1, 256, 256), (1, 1, 7, 7), {"padding": 3}),  # direct path
    ("fft", (1, 1, 512, 512), (1, 1, 15, 15), {"padding": 7}),  # overlap-save blocks
    ("fft", (1, 1, 1024, 1024), (1, 1, 31, 31), {"padding": 15}),  # streamed blocks, no padded copy
    ("fft", (2, 3, 256, 256), (3, 1, 25, 25), {"padding": 12, "groups": 3}),
    ("fft", (16, 8, 32, 32), (8, 8, 5, 5), {"padding": 2}),  # whole-array transforms in batches of images
    # kernel spectra 2.8x and 40x input + output: made a chunk of output channels at a time
    ("fft", (4, 16, 32, 32), (16, 16, 5, 5), {"padding": 2}),
    ("fft", (2, 64, 28, 28), (64, 64, 3, 3), {"padding": 1}),
    ("fft", (4, 64, 32, 32), (64, 16, 5, 5), {"padding": 2, "groups": 4}),  # chunks of one group's channels
    # one image's spectra alone outweigh the budget: its input channels are transformed in chunks too
    ("fft", (1, 128, 14, 14), (128, 128, 3, 3), {"padding": 1}),
    ("fft", (2, 32, 24, 24), (32, 8, 5, 5), {"padding": 2, "groups": 4}),
])
def test_peak_memory_stays_within_twice_input_plus_output(method, x_shape, w_shape, kwargs, rng):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    p = _parsed(x, w, kwargs)
    io = x.nbytes + int(np.prod(p.spec.out_shape)) * 8
    convdot.conv(x, w, method=method, **kwargs)  # a warm-up: loading compiled kernels allocates too
    peak = _peak(lambda: convdot.conv(x, w, method=method, **kwargs))
    assert peak <= 2 * io + (64 << 10), f"{method}: peak {peak} bytes > 2 x {io}"


@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), [
    ((2, 256, 8, 8), (256, 256, 3, 3), {"padding": 1}),  # converted weight 9x the data: in slices
    ((1, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}),  # channel blocks anyway (batch 1, deep)
    ((2, 512, 14, 14), (256, 512, 3, 3), {"padding": 1, "stride": 2}),
    ((1, 256, 7, 7), (1024, 256, 1, 1), {}),  # 1x1: output-channel chunks of the weight
    ((2, 256, 14, 14), (512, 256, 1, 1), {"stride": 2}),
    ((2, 64, 16, 16), (64, 16, 3, 3), {"padding": 1, "groups": 4}),  # grouped: converted whole
])
@pytest.mark.parametrize("method", ["im2col", "sliding"])
def test_a_weight_of_another_dtype_is_converted_within_the_bound(method, x_shape, w_shape, kwargs, rng):
    """A float32 weight with a float64 input is converted a slice at a time when converting it whole
    would break the bound (before: im2col 4.7-7.7x input + output on deep layers, sliding 13x)."""
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape).astype(np.float32)
    p = _parsed(x, w, kwargs)
    io = x.nbytes + int(np.prod(p.spec.out_shape)) * 8
    got = convdot.conv(x, w, method=method, **kwargs)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _reference(x, w.astype(np.float64), kwargs), rtol=1e-10, atol=1e-10)
    peak = _peak(lambda: convdot.conv(x, w, method=method, **kwargs))
    assert peak <= 2 * io + (64 << 10), f"{method}: peak {peak} bytes > 2 x {io}"


def test_a_problem_too_large_for_memory_is_a_memory_error(monkeypatch):
    from convdot.algorithms import _common

    monkeypatch.setattr(_common, "available_memory", lambda: 1 << 20)  # a machine with 1 MiB free
    monkeypatch.setattr(_common, "SMALL_NEED", 0)  # ask the OS even for these few MiB
    x = np.zeros((1, 4, 256, 256))
    w = np.zeros((4, 4, 3, 3))
    for method in ("sliding", "im2col", "fft"):
        with pytest.raises(MemoryError, match=r"conv2d: method='\w+' needs .* MiB .* only 1.0 MiB"):
            convdot.conv2d(x, w, method=method)


def test_outputs_reuse_freed_blocks_and_never_share_a_live_one(monkeypatch):
    """A method's output of 1 MiB or more comes from a block a dead output left; live outputs, and
    views that outlive their array, keep theirs; the pool holds at most POOL_BYTES."""
    import gc

    from convdot.algorithms import _common

    def at(a):  # no array inside an assert: pytest's rewriting would keep it alive
        return a.ctypes.data

    _common.clear_pool()
    shape = (2, 64, 64, 64)  # 4 MiB of float64
    a = _common.output_array(shape, np.float64)
    a_at, layout = at(a), (a.shape, a.dtype, a.flags.c_contiguous, a.flags.writeable)
    b = _common.output_array(shape, np.float64)
    b_at = at(b)
    assert b_at != a_at and layout == (shape, np.float64, True, True)
    assert a_at % _common.ALIGN == 0 and b_at % _common.ALIGN == 0  # whole cache lines
    del a
    gc.collect()
    c = _common.output_array(shape, np.float64)
    c_at = at(c)
    assert c_at == a_at  # the freed block, not a fresh one
    view = c[1]
    del c
    gc.collect()
    d = _common.output_array(shape, np.float64)
    d_at = at(d)
    assert d_at != a_at  # the view still holds its block
    small = _common.output_array((4, 4), np.float32)
    del small
    assert 16 * 4 not in _common._pool  # small outputs are plain np.empty
    block = (4 << 20) + _common.ALIGN  # room to start the array on a line
    monkeypatch.setattr(_common, "POOL_BYTES", block)
    _common.clear_pool()
    del b, d, view
    gc.collect()
    assert _common._pool_held[0] == block  # one of the three freed blocks kept: the cap


def test_pooled_outputs_are_right_however_they_are_reused(rng):
    """Back-to-back calls into recycled blocks give the same answers as fresh ones."""
    from convdot.algorithms import _common

    x = rng.standard_normal((2, 16, 96, 96))  # a 2.4 MB output: pooled
    w = rng.standard_normal((16, 16, 3, 3))
    _common.clear_pool()
    first = {m: convdot.conv2d(x, w, padding=1, method=m) for m in ("im2col", "sliding", "winograd", "fft")}
    for m, want in first.items():
        kept = want.copy()
        del want
        first[m] = None
        assert_close(convdot.conv2d(x, w, padding=1, method=m), kept, 1.0)
