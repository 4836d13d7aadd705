"""Shared test configuration: the one per-dtype tolerance table and small helpers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# One tolerance table for every comparison: (rtol, atol) relative to the scale of the sum
# (sum over taps of |x| * |w|), so they hold for any problem size.
TOL: dict[str, tuple[float, float]] = {
    "float16": (2e-2, 2e-2),
    "float32": (1e-5, 1e-5),
    "float64": (1e-12, 1e-12),
    "complex64": (1e-5, 1e-5),
    "complex128": (1e-12, 1e-12),
    "int64": (0.0, 0.0),
}

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("default", max_examples=40, **_COMMON)
# CI explores the same examples every run, so a landing never hangs on luck; "deep" is for hunting bugs.
settings.register_profile("ci", max_examples=40, derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("deep", max_examples=600, **_COMMON)
settings.load_profile(os.environ.get("CONVDOT_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


def assert_close(actual: np.ndarray, expected: np.ndarray, scale: np.ndarray | float = 1.0, dtype=None) -> None:
    """Compare with the tolerance of ``dtype`` (default: actual's), relative to ``scale``.

    ``scale`` is the magnitude the error is relative to (e.g. ``conv(|x|, |w|)``); NaN positions
    must match exactly and integers must be equal.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    name = np.dtype(dtype or actual.dtype).name
    rtol, atol = TOL[name]
    if rtol == 0 and atol == 0:
        np.testing.assert_array_equal(actual, expected)
        return
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg="NaN positions differ")
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite], expected[~finite], err_msg="inf values differ")
    err = np.abs(actual.astype(np.complex128)[finite] - expected.astype(np.complex128)[finite])
    bound = (atol + rtol * np.broadcast_to(np.abs(scale), expected.shape))[finite]
    bad = err > bound
    assert not bad.any(), f"max error {err.max():.3g} exceeds tolerance (worst at {np.argmax(err - bound)})"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
