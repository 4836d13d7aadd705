"""Run a parsed problem: pick the method, compute, crop, add the bias, restore the user's layout."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np

from . import _threads, planner
from ._spec import Parsed
from .algorithms import ALGORITHMS, NonFiniteInput


@functools.cache
def _run_options(name: str) -> frozenset[str]:
    """The keyword-only options a method's ``run`` takes (Winograd's tile, block, backend, ...)."""
    params = inspect.signature(ALGORITHMS[name].run).parameters.values()
    return frozenset(p.name for p in params if p.kind is p.KEYWORD_ONLY)


def resolve(parsed: Parsed, method: str, *, defer_finite: bool = False) -> tuple[str, dict[str, Any]]:
    """Turn "auto"/"direct" into a method and the plan's options for it; check the method can run.

    With ``defer_finite``, the plan may leave the NaN/inf check to Winograd's compiled kernels
    (see :func:`convdot.planner.choose`).
    """
    spec = parsed.spec
    if method in ("auto", "direct"):
        plan = planner.choose(spec, parsed.x, parsed.w, direct_only=method == "direct", defer_finite=defer_finite)
        return plan.method, {k: v for k, v in plan.params.items() if k in _run_options(plan.method)}
    reason = ALGORITHMS[method].unsupported(spec, parsed.x, parsed.w)
    if reason:
        raise ValueError(f"{spec.func}: method={method!r} cannot run this problem: {reason}")
    return method, {}


def dilate_input(x: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Insert ``factor - 1`` zeros between neighbouring elements of every spatial axis."""
    if all(f == 1 for f in factors):
        return x
    shape = x.shape[:2] + tuple((n - 1) * f + 1 for n, f in zip(x.shape[2:], factors))
    out = np.zeros(shape, dtype=np.result_type(x.dtype, np.int8))
    out[(slice(None), slice(None), *(slice(None, None, f) for f in factors))] = x
    return out


def execute(parsed: Parsed, method: str, threads: int | None = None) -> np.ndarray:
    """Compute a parsed problem with ``method`` on ``threads`` of convdot's threads (None: the
    default, see :mod:`convdot._threads`) and return what the user asked for."""
    spec = parsed.spec
    with _threads.using(threads, func=spec.func):
        name, options = resolve(parsed, method, defer_finite=True)
        x = parsed.x if parsed.input_dilation is None else dilate_input(parsed.x, parsed.input_dilation)
        with np.errstate(invalid="ignore"):  # inf - inf and 0 * inf are NaN by definition, not a surprise
            try:
                out = ALGORITHMS[name].run(x, parsed.w, spec, **options)  # the plan's (or the tuned) parameters
            except NonFiniteInput:  # the kernels met NaN/inf the plan left to them: plan again, knowing
                name, options = resolve(parsed, method)
                out = ALGORITHMS[name].run(x, parsed.w, spec, **options)
    if parsed.crop is not None and any(lo or hi for lo, hi in parsed.crop):
        out = out[(slice(None), slice(None), *(slice(lo, o - hi) for (lo, hi), o in zip(parsed.crop, out.shape[2:])))]
    if parsed.bias is not None:
        out = out + parsed.bias.astype(spec.dtype).reshape(-1, *(1,) * spec.nd)  # (C_out, 1, ...)
    out = out.astype(parsed.out_dtype, copy=False)
    return out if parsed.batched else out[0]
