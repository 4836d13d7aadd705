"""SciPy dialect: ``scipy.signal`` correlate/convolve semantics, computed by any convdot method.

Each call becomes a one-channel correlation (:func:`~convdot._spec.parse_signal`): convolve flips
``in2``, correlate conjugates it, and the mode is a choice of padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._dispatch import dask_aware
from ._run import execute
from ._spec import parse_method, parse_signal


def _signal(func: str, in1: Any, in2: Any, mode: str, method: str, convolve: bool, boundary: str = "fill",
            fillvalue: Any = 0, two_d: bool = False, threads: int | None = None) -> np.ndarray:
    p = parse_signal(func, in1, in2, mode, convolve=convolve, boundary=boundary, fillvalue=fillvalue, two_d=two_d)
    out = execute(p, parse_method(func, method, scipy=True), threads)[0, 0]  # (1, 1, *out) -> (*out)
    return out.reshape(()) if np.ndim(in1) == 0 else out


_DOC = """{summary}

    Parameters
    ----------
    in1 : array_like of shape (*n)
        First input.
    in2 : array_like of shape (*k), same number of dimensions as ``in1``
        Second input (the kernel).
    mode : {{"full", "valid", "same"}}, default "full"
        "full": every overlap, shape ``n + k - 1``; "valid": only full overlaps, shape
        ``|n - k| + 1`` (either input may be the larger, as in SciPy); "same": ``in1``'s shape,
        centred on the full output as SciPy centres it.
    {extra}

    Returns
    -------
    ndarray
        float32 for float32 input, float64 for float64, complex kept; integer and bool inputs are
        summed exactly in int64 (SciPy wraps around in the input's integer type).

    Notes
    -----
    {notes}

    Examples
    --------
    {example}
"""

_METHOD = """method : str, default "auto"
        "auto", SciPy's "direct" or "fft", or any name in :data:`convdot.METHODS`.
    threads : int, optional
        Threads for convdot's own loops (compiled kernels, blocks of work); default
        ``$CONVDOT_NUM_THREADS`` or every CPU. The BLAS inside matrix multiplies keeps its own setting."""
_BOUNDARY = """boundary : {"fill", "wrap", "symm"}, default "fill"
        What lies outside ``in1``: ``fillvalue``, a periodic copy, or its mirror image.
    fillvalue : scalar, default 0
        The value used with ``boundary="fill"``.
    method : str, default "auto"
        "auto" or any name in :data:`convdot.METHODS`.
    threads : int, optional
        Threads for convdot's own loops (compiled kernels, blocks of work); default
        ``$CONVDOT_NUM_THREADS`` or every CPU. The BLAS inside matrix multiplies keeps its own setting."""


@dask_aware
def correlate(in1: Any, in2: Any, mode: str = "full", method: str = "auto", *,
              threads: int | None = None) -> np.ndarray:
    return _signal("correlate", in1, in2, mode, method, convolve=False, threads=threads)


@dask_aware
def convolve(in1: Any, in2: Any, mode: str = "full", method: str = "auto", *,
             threads: int | None = None) -> np.ndarray:
    return _signal("convolve", in1, in2, mode, method, convolve=True, threads=threads)


@dask_aware
def correlate2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0, *,
                method: str = "auto", threads: int | None = None) -> np.ndarray:
    return _signal("correlate2d", in1, in2, mode, method, False, boundary, fillvalue, two_d=True, threads=threads)


@dask_aware
def convolve2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill", fillvalue: Any = 0, *,
               method: str = "auto", threads: int | None = None) -> np.ndarray:
    return _signal("convolve2d", in1, in2, mode, method, True, boundary, fillvalue, two_d=True, threads=threads)


_CORR_NOTE = "``z[k] = sum_n in1[n + k] * conj(in2[n])``: the sum of the element-wise product of a window with ``in2``."
_CONV_NOTE = ("``z[k] = sum_n in1[n] * in2[k - n]``: correlation with ``in2`` flipped on every axis, so it differs "
              "from what a CNN layer computes whenever the kernel is not symmetric.")
correlate.__doc__ = _DOC.format(summary="Cross-correlate two N-d arrays, as ``scipy.signal.correlate``.",
                                extra=_METHOD, notes=_CORR_NOTE, example=""">>> import convdot
    >>> convdot.correlate([1, 2, 3], [0, 1, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])""")
convolve.__doc__ = _DOC.format(summary="Convolve two N-d arrays, as ``scipy.signal.convolve``.",
                               extra=_METHOD, notes=_CONV_NOTE, example=""">>> import convdot
    >>> convdot.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])""")
correlate2d.__doc__ = _DOC.format(summary="Cross-correlate two 2-D arrays, as ``scipy.signal.correlate2d``.",
                                  extra=_BOUNDARY, notes=_CORR_NOTE, example=""">>> import convdot
    >>> A3 = [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    >>> convdot.correlate2d(A3, [[1, 0, 0], [0, 1, 0], [1, 0, 1]], "valid")  # what a CNN computes
    array([[3]])""")
convolve2d.__doc__ = _DOC.format(summary="Convolve two 2-D arrays, as ``scipy.signal.convolve2d``.",
                                 extra=_BOUNDARY, notes=_CONV_NOTE, example=""">>> import convdot
    >>> A3 = [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    >>> convdot.convolve2d(A3, [[1, 0, 0], [0, 1, 0], [1, 0, 1]], "valid")  # the kernel is flipped first
    array([[4]])""")
