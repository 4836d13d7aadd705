"""The :class:`Trace` of one output element: every number that went into it, as it was computed.

A Trace only holds data; the renderers (text, rich, HTML, matplotlib, GIF) only read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True, eq=False, repr=False)
class Trace:
    """How one output element of a convolution layer is computed, step by step.

    Made by :func:`convdot.explain` (PyTorch dialect) or :func:`convdot.explain2d` (SciPy
    dialect). ``str(trace)`` is a plain-text explanation; in Jupyter it renders as an HTML
    table; ``trace.plot()`` draws a figure; :func:`convdot.animate` slides the window over the
    whole input. Arrays are read-only; ``Cg`` is the number of input channels in the element's
    group and ``k`` the kernel's spatial shape.

    Attributes
    ----------
    call : str
        The convolution being explained, as Python (``"conv2d(x, weight, padding=1)"``).
    names : (str, str)
        What the input and kernel are called in that call (``("x", "weight")``, ``("in1", "in2")``).
    index : tuple of int
        The element, in the axes of the output the call returns.
    out_shape : tuple of int
        Shape of that output.
    batch, out_channel : int
        The element's batch item and output channel.
    position : tuple of int
        Its spatial position in the output.
    group, groups : int
        Its group and the number of groups.
    channels : tuple of int
        The input channels of ``x`` that take part (those of the element's group).
    input_shape : tuple of int
        Spatial shape of the input, before padding.
    stride, dilation : tuple of int
        Per spatial axis.
    pads : tuple of (int, int)
        ``(lo, hi)`` padding per spatial axis.
    padding_mode : str
        "zeros", "constant" (SciPy's fill), "reflect", "replicate", "circular" or "symmetric".
    fillvalue : scalar
        The value of constant padding.
    taps : tuple of tuple of int
        Per spatial axis, the input coordinate of each kernel tap (outside ``[0, n)`` in the padding).
    padded : ndarray of bool, shape (*k)
        True where a tap falls in the padding.
    source : ndarray of int, shape (*k, nd)
        The input coordinate each tap's value was taken from: the tap itself inside the input,
        the position the padding mode copied for reflect/replicate/circular/symmetric padding,
        and -1 where constant padding gave it the fill value.
    window : ndarray of shape (Cg, *k)
        The input under the kernel, padding included.
    weight : ndarray of shape (Cg, *k)
        The element's filter as given.
    kernel : ndarray of shape (Cg, *k)
        The filter as applied: ``weight`` flipped on every spatial axis when ``flipped``,
        conjugated when ``conjugated``.
    flipped, conjugated : bool
        Whether mathematical convolution flipped the kernel; whether complex correlation conjugated it.
    product : ndarray of shape (Cg, *k)
        ``window * kernel``, element by element.
    channel_sums : ndarray of shape (Cg,)
        The sum of ``product`` over each input channel's taps.
    bias : scalar or None
        The output channel's bias.
    total : scalar
        ``channel_sums.sum() + bias``: the output element.
    dot : scalar
        ``np.dot(x_col, w_row)``, the same sum as a dot product (bias not included).
    unflipped_total : scalar or None
        For a flipped kernel, what the same window gives without the flip (the other convention).
    w_row, x_col : ndarray of shape (Cg * prod(k),)
        The row of the im2col weight matrix and the column of the im2col input matrix whose
        product is this element: the flattened filter and the flattened window.
    row, column : int
        Their indices in ``W_row`` (shape ``w_row_shape``, one group) and ``X_col`` (shape
        ``x_col_shape``, one batch item and group).
    w_row_shape, x_col_shape : (int, int)
        Shapes of those matrices.
    input : ndarray of shape (Cg, *padded_shape)
        The padded input of the channels that take part (what the window slides over).
    dtype : numpy.dtype
        The dtype of the real output; the trace sums in float64/complex128/int64.
    """

    call: str
    names: tuple[str, str]
    index: tuple[int, ...]
    out_shape: tuple[int, ...]
    batch: int
    out_channel: int
    position: tuple[int, ...]
    group: int
    groups: int
    channels: tuple[int, ...]
    input_shape: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    padding_mode: str
    fillvalue: Any
    taps: tuple[tuple[int, ...], ...]
    padded: np.ndarray
    source: np.ndarray
    window: np.ndarray
    weight: np.ndarray
    kernel: np.ndarray
    flipped: bool
    conjugated: bool
    product: np.ndarray
    channel_sums: np.ndarray
    bias: Any
    total: Any
    dot: Any
    unflipped_total: Any
    w_row: np.ndarray
    x_col: np.ndarray
    row: int
    column: int
    w_row_shape: tuple[int, int]
    x_col_shape: tuple[int, int]
    input: np.ndarray
    dtype: np.dtype
    _problem: Any = field(default=None, repr=False)

    @property
    def nd(self) -> int:
        """Number of spatial axes."""
        return len(self.input_shape)

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """Spatial shape of the kernel."""
        return tuple(self.window.shape[1:])

    def at(self, index: Any) -> Trace:
        """The trace of another element of the same output.

        Examples
        --------
        >>> import convdot
        >>> A = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
        >>> convdot.explain2d(A, [[1, 0, 1], [0, 1, 0], [1, 0, 1]], (0, 0), "valid").at((1, 0)).total
        2
        """
        return self._problem.trace(index)

    def to_text(self, *, full: bool = False, max_channels: int = 4, top: int = 5) -> str:
        """Plain-text explanation with aligned grids (what ``str(trace)`` gives).

        Parameters
        ----------
        full : bool, default False
            Show every input channel's grids and every entry of the flattened vectors, however many.
        max_channels : int, default 4
            With more input channels than this (and not ``full``), show a summary: per-channel
            sums of the ``top`` largest contributors and the largest single products.
        top : int, default 5
            How many channels and products the summary lists.
        """
        from ._text import render

        return render(self, full=full, max_channels=max_channels, top=top)

    def to_html(self, *, full: bool = False, max_channels: int = 4, top: int = 5) -> str:
        """A self-contained HTML explanation (what Jupyter shows); options as in :meth:`to_text`."""
        from ._html import render

        return render(self, full=full, max_channels=max_channels, top=top)

    def plot(self, *, channel: int | None = None) -> Figure:
        """A matplotlib figure: the input with the window outlined, the kernel, the product, the sum.

        Needs matplotlib (``pip install convdot[plot]``). Shows one input channel: ``channel`` (an
        index into :attr:`channels`) or, by default, the one contributing the most; with several
        channels a bar chart shows every channel's sum. 1-D and 2-D layers only.

        Returns
        -------
        matplotlib.figure.Figure
            Made with ``matplotlib.pyplot``, so ``plt.show()`` and Jupyter display it.
        """
        from ._plot import figure

        return figure(self, channel=channel, pyplot=True)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        return self.to_html()

    def __rich__(self) -> Any:
        from ._rich import renderable

        return renderable(self)
