"""Run every method on one problem: how far each is from the reference, and how long it takes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._run import execute
from ._spec import METHODS, parse_conv
from .algorithms import ALGORITHMS


@dataclass(frozen=True)
class MethodResult:
    """One method's run: its max abs error against ``reference`` and its best time in seconds."""

    method: str
    max_abs_error: float | None  # None when the method cannot run the problem
    seconds: float | None
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """Every applicable method on one problem; ``str()`` prints a table."""

    results: tuple[MethodResult, ...]
    description: str

    def __iter__(self):
        return iter(self.results)

    def __getitem__(self, method: str) -> MethodResult:
        for r in self.results:
            if r.method == method:
                return r
        raise KeyError(method)

    def __str__(self) -> str:
        lines = [self.description, f"{'method':<10} {'max |error| vs reference':>26} {'time':>12}"]
        for r in self.results:
            if r.seconds is None:
                lines.append(f"{r.method:<10} {'cannot run: ' + r.note:>40}")
            else:
                lines.append(f"{r.method:<10} {r.max_abs_error:>26.3g} {r.seconds * 1e3:>9.2f} ms")
        return "\n".join(lines)


def compare(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
            groups: int = 1, *, padding_mode: str = "zeros", methods: tuple[str, ...] = METHODS,
            repeat: int = 3) -> Comparison:
    """Run ``conv`` with every method and compare each with ``reference``.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, padding_mode
        Exactly as for :func:`convdot.conv`.
    methods : tuple of str, default METHODS
        Which methods to run; ``reference`` is always run, as the oracle.
    repeat : int, default 3
        Each method is timed this many times; the best time is kept.

    Returns
    -------
    Comparison
        One :class:`MethodResult` per method, in ``methods`` order.

    Examples
    --------
    >>> import numpy as np, convdot
    >>> rng = np.random.default_rng(0)
    >>> c = convdot.compare(rng.normal(size=(1, 4, 8, 8)), rng.normal(size=(2, 4, 3, 3)))
    >>> c["im2col"].max_abs_error < 1e-12
    True
    """
    p = parse_conv("compare", x, weight, bias, stride, padding, dilation, groups, padding_mode)
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"compare: repeat must be an int >= 1, got {repeat!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"compare: methods must be names in {METHODS}, got {unknown}")
    ref = execute(p, "reference")
    results = []
    for m in methods:
        reason = ALGORITHMS[m].unsupported(p.spec, p.x, p.w)
        if reason:
            results.append(MethodResult(m, None, None, reason))
            continue
        best = np.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = execute(p, m)
            best = min(best, time.perf_counter() - t0)
        with np.errstate(invalid="ignore"):
            diff = np.abs(out.astype(np.complex128 if out.dtype.kind == "c" else np.float64) - ref)
        same_nonfinite = np.array_equal(np.isnan(out), np.isnan(ref))
        err = float(np.nanmax(diff)) if diff.size and not np.isnan(diff).all() else 0.0
        results.append(MethodResult(m, err if same_nonfinite else float("nan"), best,
                                    "" if same_nonfinite else "NaN positions differ"))
    s = p.spec
    desc = (f"conv: x {s.x_shape} {s.dtype}, weight {s.w_shape}, stride {s.stride}, padding {list(s.pads)}, "
            f"dilation {s.dilation}, groups {s.groups} -> {s.out_shape}")
    return Comparison(tuple(results), desc)
