"""Which method ``method="auto"`` takes for a problem, and why.

For now a rule on the problem's shape, dtype and values (the speed work replaces it with a
measured cost model): exact integer sums and non-finite inputs take a direct method; large kernels
at stride 1 take the FFT, whose cost does not grow with the kernel; everything else takes im2col,
whose GEMM runs at BLAS speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._spec import ConvSpec

#: Kernel volume from which the FFT beats im2col at stride 1 (2 cores, NumPy/OpenBLAS, 2026-11-24).
FFT_MIN_TAPS = 64


@dataclass(frozen=True)
class Plan:
    """The method ``auto`` chose for a problem, and the reason in words."""

    method: str
    reason: str
    spec: ConvSpec

    def __str__(self) -> str:
        return f"{self.spec.func}: method={self.method!r} ({self.reason})"


def choose(spec: ConvSpec, x: np.ndarray, w: np.ndarray, *, direct_only: bool = False) -> Plan:
    """Pick a method for ``spec`` (``direct_only`` for SciPy's method='direct')."""
    taps = int(np.prod(spec.kernel))
    if direct_only:
        return Plan("im2col", "method='direct': the direct sum, as one matrix multiply per block", spec)
    if spec.is_exact:
        return Plan("im2col", "integer input: summed exactly in int64 by the direct method", spec)
    if not (np.isfinite(x).all() and np.isfinite(w).all()):
        return Plan("im2col", "input holds NaN or inf: a transform would spread them, the direct sum keeps them in place", spec)
    if all(s == 1 for s in spec.stride) and taps >= FFT_MIN_TAPS:
        return Plan("fft", f"stride 1 and a kernel of {taps} taps >= {FFT_MIN_TAPS}: the FFT's cost does not grow with the kernel", spec)
    return Plan("im2col", f"kernel of {taps} taps{'' if all(s == 1 for s in spec.stride) else ' with stride'}: "
                "windows as columns and one GEMM at BLAS speed", spec)


def plan(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
         groups: int = 1, *, padding_mode: str = "zeros") -> Plan:
    """Which method ``conv(..., method="auto")`` would take for this call, and why.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, padding_mode
        Exactly as for :func:`convdot.conv`.

    Returns
    -------
    Plan
        ``plan.method`` is the method chosen, ``plan.reason`` says why.

    Examples
    --------
    >>> import numpy as np, convdot
    >>> convdot.plan(np.ones((1, 3, 32, 32)), np.ones((8, 3, 3, 3))).method
    'im2col'
    """
    from ._spec import parse_conv

    p = parse_conv("plan", x, weight, bias, stride, padding, dilation, groups, padding_mode)
    return choose(p.spec, p.x, p.w)
