"""The compiled float32 GEMM of Winograd's shared chunks against NumPy's product, and the
convolutions that run on it against `reference`."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convdot
from conftest import assert_close
from convdot import _threads
from convdot._spec import parse_conv
from convdot.algorithms import winograd

pytestmark = pytest.mark.skipif(not winograd.jit_available(), reason="numba (convdot[fast]) not installed")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVDOT_CACHE_DIR", str(tmp_path / "cache"))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 20), k=st.integers(0, 70), panels=st.integers(1, 2), strided=st.booleans(),
       seed=st.integers(0, 2**31))
def test_gemm_matches_the_float64_product(m, k, panels, strided, seed):
    """Every row count (whole blocks of six and each remainder), any depth, row-strided views."""
    from convdot.algorithms._gemm_jit import gemm, pack

    rng = np.random.default_rng(seed)
    n = 64 * panels
    a = rng.standard_normal((m, k + 3 * strided), dtype=np.float32)[:, :k]
    b = rng.standard_normal((k, n), dtype=np.float32)
    big = np.full((m, n + 10 * strided), -7.0, np.float32)
    c = big[:, :n]
    gemm(a, pack(b), c)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.all(np.abs(c - exact) <= 1e-6 * scale + 1e-30)
    assert np.all(big[:, n:] == -7.0)  # nothing written beside the view


def test_pack_wants_whole_panels():
    from convdot.algorithms._gemm_jit import pack

    with pytest.raises(ValueError, match="multiple of 64, got 96"):
        pack(np.ones((3, 96), np.float32))
    u = np.arange(2 * 5 * 128, dtype=np.float32).reshape(2, 5, 128)
    p = pack(u)
    assert p.shape == (2, 2, 5, 64) and p[1, 1, 3, 7] == u[1, 3, 64 + 7]


@pytest.mark.parametrize("in_place", [False, True])
def test_products_take_every_point_once_on_two_threads(in_place, rng):
    """Two jobs share the counter; in place, each writes into its spare slot and then into the slots
    of the points it consumed, and ``perm`` says where each product went."""
    from convdot.algorithms._gemm_jit import pack, products

    points, rows, k, n, threads = 25, 13, 64, 64, 2
    v0 = rng.standard_normal((points, rows, k)).astype(np.float32)
    u = rng.standard_normal((points, k, n)).astype(np.float32)
    if in_place:
        mv = np.empty((points + threads, rows, n), np.float32)
        mv[:points] = v0
        v = mv[:points]
    else:
        v, mv = v0.copy(), np.empty((points, rows, n), np.float32)
    perm, counter = np.arange(points), np.zeros(1, np.int64)
    with _threads.blas_single():
        _threads.run_phases([(lambda t, j: products(v, pack(u), mv, 11, perm, points + j if in_place else -1,
                                                    counter), [(j,) for j in range(threads)])], threads)
    assert counter[0] >= points
    assert sorted(perm) == sorted(set(perm)) and len(set(perm)) == points
    for p in range(points):
        a = v0[p, :11].astype(np.float64)
        assert_close(mv[perm[p], :11], a @ u[p], np.abs(a) @ np.abs(u[p]))


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("c_in, kwargs", [(64, {"padding": 1}), (32, {"padding": (2, 0), "dilation": (2, 1)}),
                                          (64, {"padding": 2, "dilation": 2}),
                                          (64, {"padding": 1, "padding_mode": "reflect"})])
@pytest.mark.parametrize("m", winograd.CL_TILES)
def test_channels_last_products_on_the_compiled_gemm_match_reference(packed, shared, c_in, kwargs, m, rng,
                                                                      monkeypatch):
    """Chunks of each thread's own, or shared (forced: a real one is seconds in the reference;
    products over the transformed input when C_in == C_out), multiplied by the compiled GEMM or by
    ``np.matmul``; a row dilation runs its phases through one call."""
    if shared:
        monkeypatch.setattr(winograd, "SPLIT_U_BYTES", 0)
    monkeypatch.setattr(winograd, "PACKED_GEMM", packed)
    x = rng.standard_normal((3, c_in, 13, 11)).astype(np.float32)
    w = rng.standard_normal((64, c_in, 3, 3)).astype(np.float32)
    spec = parse_conv("test", x, w, None, **kwargs).spec
    assert winograd.shares_chunks(spec, m) == shared and winograd.packed_gemm(spec) == packed
    out = winograd.run(x, w, spec, tile=m, backend="jit", block=-2, threads=2)
    scale = convdot.conv(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), method="im2col", **kwargs)
    assert_close(out, convdot.conv(x, w, method="reference", **kwargs), scale)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_compiled_gemm_places_non_finite_values(bad, shared, rng, monkeypatch):
    if shared:
        monkeypatch.setattr(winograd, "SPLIT_U_BYTES", 0)
    monkeypatch.setattr(winograd, "PACKED_GEMM", True)
    x = rng.standard_normal((2, 64, 10, 10)).astype(np.float32)
    x[1, 9, 4, 7] = bad
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    spec = parse_conv("test", x, w, None, padding=1).spec
    out = winograd.run(x, w, spec, tile=5, backend="jit", block=1, threads=2)
    ref = convdot.conv(x, w, padding=1, method="reference")
    np.testing.assert_array_equal(np.isfinite(out), np.isfinite(ref))


def test_the_compiled_gemm_is_for_float32_in_whole_panels():
    def spec(c_out, dtype=np.float32, groups=1):
        x, w = np.ones((1, 64, 8, 8), dtype), np.ones((c_out, 64 // groups, 3, 3), dtype)
        return parse_conv("t", x, w, None, padding=1, groups=groups).spec

    forced = winograd.PACKED_GEMM
    winograd.PACKED_GEMM = True
    try:
        assert winograd.packed_gemm(spec(128))
        assert not winograd.packed_gemm(spec(96))
        assert not winograd.packed_gemm(spec(128, np.float64))
        assert not winograd.packed_gemm(spec(128, groups=2))
    finally:
        winograd.PACKED_GEMM = forced
