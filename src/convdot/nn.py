"""PyTorch dialect: ``torch.nn.functional.conv*`` semantics on NumPy arrays.

Each function parses its arguments into a :class:`~convdot._spec.ConvSpec`, runs one method
and adds the bias. The layer computes cross-correlation (no kernel flip), as PyTorch does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._dispatch import dask_aware
from ._run import execute
from ._spec import parse_conv, parse_conv_transpose, parse_method

_CONV_DOC = """{summary}

    Parameters
    ----------
    x : array_like of shape (N, C_in, {sp}) or unbatched (C_in, {sp})
        Input; any array-like (NumPy array, list, torch tensor).
    weight : array_like of shape (C_out, C_in/groups, {ks})
        Filters.
    bias : array_like of shape (C_out,), optional
        Added to every output position of each output channel.
    stride, dilation : int or tuple of ints, default 1
        Step between windows and spacing between kernel taps, per spatial axis.
    padding : int, tuple, "same" or "valid", default 0
        Implicit padding: one int for all axes, one int or ``(lo, hi)`` pair per axis
        (asymmetric padding, which PyTorch lacks), or PyTorch's "same" (stride 1 only) / "valid".
    groups : int, default 1
        Input and output channels are split into ``groups`` independent convolutions.
    padding_mode : {{"zeros", "reflect", "replicate", "circular"}}, default "zeros"
        What the padding holds, as in ``torch.nn.Conv{n}d``.
    method : str, default "auto"
        "auto" or one of :data:`convdot.METHODS`.
    threads : int, optional
        Threads for convdot's own loops (compiled kernels, blocks of work); default
        ``$CONVDOT_NUM_THREADS`` or every CPU. The BLAS inside matrix multiplies keeps its own
        setting (``OPENBLAS_NUM_THREADS`` and friends).

    Returns
    -------
    ndarray of shape (N, C_out, {osp}) (or (C_out, {osp}) for unbatched x)
        float32 for float32 input, float64 for float64, complex kept; integer and bool inputs are
        summed exactly in int64.

    Notes
    -----
    ``out[n, o, i] = bias[o] + sum_{{c, k}} xpad[n, g*C_in/G + c, i*stride + k*dilation] * weight[o, c, k]``
    with ``g = o // (C_out/G)``: one output is the sum of the element-wise product of a window and
    its filter -- the dot product of the two flattened. Output size per axis:
    ``floor((n + lo + hi - dilation*(k-1) - 1) / stride) + 1``.

    Examples
    --------
    {example}
"""


@dask_aware
def conv(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
         groups: int = 1, *, padding_mode: str = "zeros", method: str = "auto",
         threads: int | None = None) -> np.ndarray:
    p = parse_conv("conv", x, weight, bias, stride, padding, dilation, groups, padding_mode)
    return execute(p, parse_method("conv", method), threads)


@dask_aware
def conv1d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, *, padding_mode: str = "zeros", method: str = "auto",
         threads: int | None = None) -> np.ndarray:
    p = parse_conv("conv1d", x, weight, bias, stride, padding, dilation, groups, padding_mode, nd=1)
    return execute(p, parse_method("conv1d", method), threads)


@dask_aware
def conv2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, *, padding_mode: str = "zeros", method: str = "auto",
         threads: int | None = None) -> np.ndarray:
    p = parse_conv("conv2d", x, weight, bias, stride, padding, dilation, groups, padding_mode, nd=2)
    return execute(p, parse_method("conv2d", method), threads)


@dask_aware
def conv3d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, *, padding_mode: str = "zeros", method: str = "auto",
         threads: int | None = None) -> np.ndarray:
    p = parse_conv("conv3d", x, weight, bias, stride, padding, dilation, groups, padding_mode, nd=3)
    return execute(p, parse_method("conv3d", method), threads)


conv.__doc__ = _CONV_DOC.format(
    summary="Convolution layer of any spatial rank (the rank is ``weight.ndim - 2``), as torch.nn.functional.",
    sp="*spatial", ks="*k", osp="*out", n="N", example=""">>> import numpy as np, convdot
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> convdot.conv(x, np.ones((1, 1, 2, 2)), stride=2)
    array([[[[10., 18.],
             [42., 50.]]]])""")
conv1d.__doc__ = _CONV_DOC.format(
    summary="1-D convolution layer, as ``torch.nn.functional.conv1d``.", sp="L", ks="kL", osp="L_out", n="1",
    example=""">>> import numpy as np, convdot
    >>> convdot.conv1d(np.array([[[1., 2., 3., 4.]]]), np.array([[[1., 0., -1.]]]))
    array([[[-2., -2.]]])""")
conv2d.__doc__ = _CONV_DOC.format(
    summary="2-D convolution layer, as ``torch.nn.functional.conv2d``.", sp="H, W", ks="kH, kW", osp="H_out, W_out",
    n="2", example=""">>> import numpy as np, convdot
    >>> A3 = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    >>> B2 = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]])
    >>> convdot.conv2d(A3[None, None], B2[None, None])  # sum of the element-wise product
    array([[[[3]]]])""")
conv3d.__doc__ = _CONV_DOC.format(
    summary="3-D convolution layer, as ``torch.nn.functional.conv3d``.", sp="D, H, W", ks="kD, kH, kW",
    osp="D_out, H_out, W_out", n="3", example=""">>> import numpy as np, convdot
    >>> convdot.conv3d(np.ones((1, 2, 3, 3, 3)), np.ones((4, 2, 3, 3, 3))).shape
    (1, 4, 1, 1, 1)""")

_TRANSPOSE_DOC = """{summary}

    Parameters
    ----------
    x : array_like of shape (N, C_in, {sp}) or unbatched (C_in, {sp})
        Input.
    weight : array_like of shape (C_in, C_out/groups, {ks})
        Filters, laid out as in PyTorch's ``ConvTranspose``.
    bias : array_like of shape (C_out,), optional
    stride, dilation : int or tuple of ints, default 1
    padding : int, tuple of ints or of (lo, hi) pairs, default 0
        How much is cropped from each side of the full transposed output.
    output_padding : int or tuple of ints, default 0
        Extra size on the high side of each axis; smaller than stride or dilation.
    groups : int, default 1
    method : str, default "auto"
    threads : int, optional
        Threads for convdot's own loops (compiled kernels, blocks of work); default
        ``$CONVDOT_NUM_THREADS`` or every CPU. The BLAS inside matrix multiplies keeps its own
        setting (``OPENBLAS_NUM_THREADS`` and friends).

    Returns
    -------
    ndarray of shape (N, C_out, {osp})
        Output size per axis: ``(n-1)*stride - lo - hi + dilation*(k-1) + output_padding + 1``.

    Notes
    -----
    The gradient of ``conv`` with respect to its input: each input element scatters
    ``x[n, c, i] * weight[c, o, k]`` to output position ``i*stride + k*dilation - lo``. Computed as a
    forward correlation of the zero-stuffed input with the flipped, channel-swapped kernel.

    Examples
    --------
    {example}
"""


@dask_aware
def conv_transpose(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                   output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *, method: str = "auto",
                   threads: int | None = None) -> np.ndarray:
    p = parse_conv_transpose("conv_transpose", x, weight, bias, stride, padding, output_padding, groups, dilation)
    return execute(p, parse_method("conv_transpose", method), threads)


@dask_aware
def conv_transpose1d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *,
                     method: str = "auto", threads: int | None = None) -> np.ndarray:
    p = parse_conv_transpose("conv_transpose1d", x, weight, bias, stride, padding, output_padding, groups, dilation,
                             nd=1)
    return execute(p, parse_method("conv_transpose1d", method), threads)


@dask_aware
def conv_transpose2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *,
                     method: str = "auto", threads: int | None = None) -> np.ndarray:
    p = parse_conv_transpose("conv_transpose2d", x, weight, bias, stride, padding, output_padding, groups, dilation,
                             nd=2)
    return execute(p, parse_method("conv_transpose2d", method), threads)


@dask_aware
def conv_transpose3d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *,
                     method: str = "auto", threads: int | None = None) -> np.ndarray:
    p = parse_conv_transpose("conv_transpose3d", x, weight, bias, stride, padding, output_padding, groups, dilation,
                             nd=3)
    return execute(p, parse_method("conv_transpose3d", method), threads)


conv_transpose.__doc__ = _TRANSPOSE_DOC.format(
    summary="Transposed convolution of any spatial rank, as torch.nn.functional.conv_transpose*.",
    sp="*spatial", ks="*k", osp="*out", example=""">>> import numpy as np, convdot
    >>> convdot.conv_transpose(np.array([[[1., 2.]]]), np.array([[[1., 1., 1.]]]), stride=2)
    array([[[1., 1., 3., 2., 2.]]])""")
conv_transpose1d.__doc__ = _TRANSPOSE_DOC.format(
    summary="1-D transposed convolution, as ``torch.nn.functional.conv_transpose1d``.", sp="L", ks="kL", osp="L_out",
    example=""">>> import numpy as np, convdot
    >>> convdot.conv_transpose1d(np.array([[[1., 2.]]]), np.array([[[1., 10.]]]))
    array([[[ 1., 12., 20.]]])""")
conv_transpose2d.__doc__ = _TRANSPOSE_DOC.format(
    summary="2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.", sp="H, W", ks="kH, kW",
    osp="H_out, W_out", example=""">>> import numpy as np, convdot
    >>> convdot.conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 3, 2, 2)), stride=2).shape
    (1, 3, 4, 4)""")
conv_transpose3d.__doc__ = _TRANSPOSE_DOC.format(
    summary="3-D transposed convolution, as ``torch.nn.functional.conv_transpose3d``.", sp="D, H, W",
    ks="kD, kH, kW", osp="D_out, H_out, W_out", example=""">>> import numpy as np, convdot
    >>> convdot.conv_transpose3d(np.ones((1, 2, 2, 2, 2)), np.ones((2, 1, 2, 2, 2))).shape
    (1, 1, 3, 3, 3)""")
