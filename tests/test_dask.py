"""convdot.dask against the in-memory functions, on random shapes and chunkings, and on a real cluster."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convdot

da = pytest.importorskip("dask.array")
cd = pytest.importorskip("convdot.dask")

from conftest import assert_close  # noqa: E402
from strategies import conv_problems, padding_fits  # noqa: E402


@st.composite
def chunkings(draw, shape, leading=()):
    """Irregular chunks for every axis; often smaller than any halo."""
    out = list(leading)
    for n in shape[len(leading):]:
        cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=min(4, n - 1)))) if n > 1 else []
        bounds = [0, *cuts, n]
        out.append(tuple(b - a for a, b in itertools.pairwise(bounds)))
    return tuple(out)


def check_same(got, want, scale=None):
    """A dask result equals the in-memory one: exactly for integers, within TOL for floats.

    Both sides may have gone through an FFT (auto picks it for small filters too), over different
    blocks: its rounding scales with the largest output, not with each output's own ``scale``
    (an output whose window held only zeros came out as 1e-12 on one side, 3e-13 on the other).
    """
    assert isinstance(got, da.Array)
    value = got.compute()
    assert value.shape == want.shape and value.dtype == want.dtype
    if want.dtype.kind in "iub":
        np.testing.assert_array_equal(value, want)
    else:
        local = np.abs(want) + 1 if scale is None else np.abs(scale)
        assert_close(value, want, local + (local.max() if local.size else 0))


@settings(max_examples=60)
@given(data=st.data(), nd=st.integers(1, 3), mode=st.sampled_from(["full", "same", "valid"]),
       flip=st.booleans(), kind=st.sampled_from(["int8", "float64", "complex128"]))
def test_signal_matches_in_memory(data, nd, mode, flip, kind):
    n = tuple(data.draw(st.integers(1, 12 if nd < 3 else 6)) for _ in range(nd))
    k = tuple(data.draw(st.integers(1, 7 if nd < 3 else 3)) for _ in range(nd))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a, b = (rng.integers(-100, 100, s).astype(kind) + (1j * rng.standard_normal(s) if kind[0] == "c" else 0)
            for s in (n, k))
    ours, theirs = (cd.convolve, convdot.convolve) if flip else (cd.correlate, convdot.correlate)
    chunks = data.draw(chunkings(n))
    try:
        want = theirs(a, b, mode)
    except ValueError as exc:  # 'valid' with neither input the larger: the same refusal
        with pytest.raises(ValueError, match=str(exc).replace("(", r"\(").replace(")", r"\)")):
            ours(da.from_array(a, chunks=chunks), b, mode)
        return
    scale = theirs(np.abs(a), np.abs(b), mode)
    check_same(ours(da.from_array(a, chunks=chunks), b, mode), want, scale)


@settings(max_examples=60)
@given(data=st.data(), mode=st.sampled_from(["full", "same", "valid"]), flip=st.booleans(),
       boundary=st.sampled_from(["fill", "wrap", "symm"]), fill=st.integers(-3, 3))
def test_2d_boundaries_match_in_memory(data, mode, flip, boundary, fill):
    n = (data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)))
    k = (data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)))  # larger than the image too: wraps many times
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a, b = rng.integers(-100, 100, n), rng.integers(-100, 100, k)
    ours, theirs = (cd.convolve2d, convdot.convolve2d) if flip else (cd.correlate2d, convdot.correlate2d)
    assume(mode != "valid" or (a.shape[0] - b.shape[0]) * (a.shape[1] - b.shape[1]) >= 0)
    want = theirs(a, b, mode, boundary, fill)
    check_same(ours(da.from_array(a, chunks=data.draw(chunkings(n))), b, mode, boundary, fill), want)


MODES = ("zeros", "reflect", "replicate", "circular")


@settings(max_examples=60)
@given(data=st.data(), problem=conv_problems(dtypes=("int8", "float64")), padding_mode=st.sampled_from(MODES),
       unbatched=st.booleans())
def test_conv_matches_in_memory(data, problem, padding_mode, unbatched):
    x, w, bias, kw = problem
    assume(padding_fits(padding_mode, kw["padding"], x.shape[2:]))
    if unbatched:
        x = x[0]
    want = convdot.conv(x, w, bias, padding_mode=padding_mode, **kw)
    chunks = data.draw(chunkings(x.shape))  # batch, channel and spatial chunks
    got = cd.conv(da.from_array(x, chunks=chunks), w, bias, padding_mode=padding_mode, **kw)
    scale = convdot.conv(np.abs(x).astype(float), np.abs(w).astype(float), padding_mode=padding_mode, **kw)
    check_same(got, want, scale + (0 if bias is None else np.abs(bias).reshape(-1, *[1] * (w.ndim - 2))))


@settings(max_examples=40)
@given(data=st.data(), problem=conv_problems(transposed=True, dtypes=("int8", "float64")))
def test_conv_transpose_matches_in_memory(data, problem):
    x, w, bias, kw = problem
    want = convdot.conv_transpose(x, w, bias, **kw)
    got = cd.conv_transpose(da.from_array(x, chunks=data.draw(chunkings(x.shape))), w, bias, **kw)
    scale = convdot.conv_transpose(np.abs(x).astype(float), np.abs(w).astype(float), **kw)
    check_same(got, want, scale + (0 if bias is None else np.abs(bias).reshape(-1, *[1] * (w.ndim - 2))))


def test_same_mode_keeps_the_input_chunks():
    x = da.ones((100, 90), chunks=(30, 25))
    for fn in (cd.correlate, cd.convolve):
        assert fn(x, np.ones((7, 4)), "same").chunks == x.chunks
    y = cd.conv2d(da.ones((4, 3, 64, 64), chunks=(1, 3, 16, 16)), np.ones((8, 3, 5, 5)), padding="same", dilation=2)
    assert y.chunks == ((1, 1, 1, 1), (8,), (16,) * 4, (16,) * 4)


def test_results_are_lazy():
    """Building the result reads nothing: every block of this input raises when computed."""
    def boom(block):
        raise RuntimeError("computed too early")

    x = da.zeros((40, 40), chunks=10).map_blocks(boom, dtype=float)
    y = cd.correlate2d(x, np.ones((3, 3)), "full", boundary="symm")
    z = cd.conv2d(x[None, None], np.ones((2, 1, 3, 3)), stride=2, padding=((1, 0), (0, 2)), padding_mode="reflect")
    assert y.shape == (42, 42) and z.shape == (1, 2, 20, 20)
    with pytest.raises(RuntimeError, match="computed too early"):
        y.compute()


def test_channel_chunks_are_summed_once():
    rng = np.random.default_rng(0)
    x, w = rng.integers(-50, 50, (2, 12, 9, 9)), rng.integers(-50, 50, (5, 12, 3, 3))
    got = cd.conv2d(da.from_array(x, chunks=(1, (5, 4, 3), 4, 9)), w, padding=1)
    np.testing.assert_array_equal(got.compute(), convdot.conv2d(x, w, padding=1))


def test_bad_arguments_give_the_in_memory_message():
    x = da.ones((1, 8, 5, 5), chunks=2)
    with pytest.raises(ValueError, match=r"conv2d: groups=3 must divide the 8 input channels of x \(shape \(1, 8, 5"):
        cd.conv2d(x, np.ones((3, 1, 3, 3)), groups=3)
    with pytest.raises(ValueError, match="correlate2d: boundary must be 'fill', 'wrap' or 'symm'"):
        cd.correlate2d(x[0, 0], np.ones((3, 3)), boundary="mirror")
    unknown = x[0, 0][x[0, 0, :, 0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        cd.correlate(unknown, np.ones((3, 3)))


def test_import_convdot_does_not_import_dask():
    code = "import sys, convdot; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_doc_examples_run():
    import doctest

    result = doctest.testmod(cd, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0


# --------------------------------------------------------------------------- a real cluster


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=50)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_local_cluster_filters_an_array(client):
    rng = np.random.default_rng(3)
    img = rng.integers(-1000, 1000, (300, 260))
    k = rng.integers(-9, 9, (7, 5))
    y = cd.correlate2d(da.from_array(img, chunks=(64, 70)), k, "same", boundary="wrap")
    got = client.compute(y).result()  # runs on the two worker processes
    np.testing.assert_array_equal(got, convdot.correlate2d(img, k, "same", boundary="wrap"))
    assert len(client.scheduler_info()["workers"]) == 2


def test_killed_worker_is_retried_and_output_is_exact(client):
    rng = np.random.default_rng(4)
    img = rng.integers(-1000, 1000, (128, 128))
    k = rng.integers(-9, 9, (5, 5))
    # the 'reference' loops make each of the 16 chunks take a while, so a worker dies with work in hand
    y = cd.correlate2d(da.from_array(img, chunks=32), k, "same", boundary="symm", method="reference")
    future = client.compute(y)
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 20
    while not client.processing() or not any(client.processing().values()):
        assert time.monotonic() < deadline, "no task started"
        time.sleep(0.05)
    victim = next(addr for addr, tasks in client.processing().items() if tasks)
    os.kill(pids[victim], signal.SIGKILL)
    got = future.result(timeout=60)
    assert victim not in client.scheduler_info()["workers"]  # that process really died
    np.testing.assert_array_equal(got, convdot.correlate2d(img, k, "same", boundary="symm"))
