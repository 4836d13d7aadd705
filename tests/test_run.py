"""What auto decides is what runs: the plan's parameters reach the method."""

from __future__ import annotations

import functools

import numpy as np

import convdot
from convdot import _run, planner
from convdot.algorithms import winograd


def test_auto_runs_the_plans_parameters_regression(monkeypatch, rng):
    """A tuned Winograd tile/block was reported by plan() but auto ran winograd with its own defaults."""
    x = rng.standard_normal((2, 4, 12, 12)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    real_choose, real_run, seen = planner.choose, winograd.run, {}

    def choose(spec, x_, w_, **kw):
        p = real_choose(spec, x_, w_, **kw)
        return planner.Plan("winograd", "test", spec, {"tile": 2, "block": 1, "threads": 1, "backend": "numpy"},
                            p.estimates, p.excluded, "tuned")

    @functools.wraps(real_run)  # keeps run's signature: the options it takes are read from it
    def run(*args, **kwargs):
        seen.update(kwargs)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(planner, "choose", choose)
    monkeypatch.setattr(winograd, "run", run)
    out = convdot.conv2d(x, w, padding=1)
    assert seen == {"tile": 2, "block": 1, "threads": 1, "backend": "numpy"}
    np.testing.assert_allclose(out, convdot.conv2d(x, w, padding=1, method="reference"), rtol=1e-4, atol=1e-4)
    assert _run.resolve(_parsed(x, w), "winograd") == ("winograd", {})  # a method named by the user: its defaults


def _parsed(x, w):
    from convdot._spec import parse_conv

    return parse_conv("conv2d", x, w, padding=1)
