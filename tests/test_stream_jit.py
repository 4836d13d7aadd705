"""Large Winograd outputs written past the caches: the block transpose that feeds the streaming
stores, and whole convolutions whose output goes that way, against an independent oracle."""

from __future__ import annotations

import platform
import re

import numpy as np
import pytest

import convdot
from conftest import assert_close
from convdot._spec import parse_conv
from convdot.algorithms import _common, winograd

pytestmark = pytest.mark.skipif(not winograd.jit_available(), reason="numba (convdot[fast]) not installed")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVDOT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_transpose_stream_writes_one_transposed_block(dtype):
    from numba import njit

    from convdot.algorithms._stream_jit import store_fence, transpose_stream

    @njit
    def block(src, s0, so, dst, d0, do):
        transpose_stream(src, s0, so, dst, d0, do)
        store_fence()

    size = 64 // np.dtype(dtype).itemsize
    src = np.arange(1.0, 1601.0).reshape(40, 40) * (1 + 1j if np.dtype(dtype).kind == "c" else 1)
    src = src.astype(dtype)
    raw = np.zeros(40 * 48 * src.itemsize + 64, np.uint8)  # dst on a 64-byte line, rows of 48: whole lines
    first = -raw.ctypes.data % 64
    dst = raw[first:first + 40 * 48 * src.itemsize].view(dtype).reshape(40, 48)
    rows = np.array([5, 9, 17, 18, 20, 30, 31, 39, 1, 2, 3, 4, 6, 7, 8, 10][:size])  # any rows of src
    block(src, 2, rows * 40, dst, 3 * 48 + 16, np.arange(size) * 48)
    np.testing.assert_array_equal(dst[3:3 + size, 16:16 + size], src[rows, 2:2 + size].T)
    assert np.count_nonzero(dst) == size * size  # nothing else written
    if platform.machine() in ("x86_64", "AMD64"):
        asm = block.inspect_asm(block.signatures[0])
        assert re.search(r"\tv?movnt", asm) and "sfence" in asm


@pytest.mark.parametrize("m", winograd.CL_TILES)
@pytest.mark.parametrize("dtype, c", [(np.float32, 64), (np.float64, 32)])
def test_large_outputs_streamed_match_the_oracle_and_the_cached_path(m, dtype, c, rng, monkeypatch):
    """A 4 MiB output (the streaming threshold) on a 64-byte line is written by the streaming
    stores; misaligned (the pool told to align to 1 byte), the same values by plain stores."""
    from convdot.algorithms._stream_jit import STREAM_BYTES

    x = rng.standard_normal((1, c, 128, 128)).astype(dtype)
    w = rng.standard_normal((c, c, 3, 3)).astype(dtype)
    spec = parse_conv("test", x, w, None, padding=1).spec
    assert winograd.channels_last(spec, m)
    _common.clear_pool()
    out = winograd.run(x, w, spec, tile=m, backend="jit", block=-3, threads=2)
    assert out.nbytes >= STREAM_BYTES and out.ctypes.data % 64 == 0
    exact = convdot.conv(x.astype(np.float64), w.astype(np.float64), padding=1, method="im2col")
    scale = convdot.conv(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), padding=1, method="im2col")
    assert_close(out, exact, scale)
    monkeypatch.setattr(_common, "ALIGN", 1)
    _common.clear_pool()
    plain = winograd.run(x, w, spec, tile=m, backend="jit", block=-3, threads=2)
    if plain.ctypes.data % 64:  # numpy's own alignment (16 here) leaves the lines split
        np.testing.assert_array_equal(plain, out)
    _common.clear_pool()
