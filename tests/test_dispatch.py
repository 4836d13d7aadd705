"""The in-memory functions hand Dask arrays to convdot.dask and return Dask arrays."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import convdot

da = pytest.importorskip("dask.array")


def test_conv2d_of_a_dask_array_is_lazy_and_equal(rng):
    x = rng.standard_normal((4, 3, 20, 20))
    w = rng.standard_normal((5, 3, 3, 3))
    lazy = convdot.conv2d(da.from_array(x, chunks=(2, 3, 10, 10)), w, padding=1)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), convdot.conv2d(x, w, padding=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["correlate", "convolve", "correlate2d", "convolve2d"])
def test_signal_functions_dispatch(name, rng):
    a = rng.standard_normal((30, 17))
    b = rng.standard_normal((4, 3))
    lazy = getattr(convdot, name)(da.from_array(a, chunks=(8, 9)), b, mode="same")
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), getattr(convdot, name)(a, b, mode="same"), rtol=1e-12, atol=1e-12)


def test_import_convdot_does_not_import_dask():
    code = "import sys, numpy as np, convdot; convdot.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2))); " \
           "print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
