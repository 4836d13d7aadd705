"""An animated GIF of the window sliding over the input while the output fills in.

Each frame is the trace of one output element (recorded as for :func:`convdot.explain`); frames are
drawn with matplotlib's Agg canvas (no display needed) and written by Pillow.
"""

from __future__ import annotations

import os
from numbers import Real
from typing import IO, Any

import numpy as np

from .._fmt import num
from .._io import write_atomic
from . import _plot, _text
from ._extras import require
from ._trace import Trace

_FEATURE = "convdot.animate (and --animate)"


def _frame_title(t: Trace) -> str:
    p = t.product.ravel()
    if p.size <= 9 and len(t.channels) == 1:
        expr = " + ".join(_text.term(v) for v in p) + f" = {num(t.channel_sums[0])}"
    else:
        expr = f"sum of {p.size} products = {num(t.channel_sums.sum())}"
    if t.bias is not None:
        expr += f", + bias = {num(t.total)}"
    return f"output{_text.index_str(t.index)} = {expr}"


def animate(trace: Trace, path: str | os.PathLike | IO[bytes], *, fps: float = 2.0, max_frames: int = 100,
            channel: int | None = None) -> int:
    """Write an animated GIF of the window sliding over the input while the output fills in.

    One frame per position of the output channel that ``trace``'s element belongs to, in reading
    order. Needs matplotlib and Pillow (``pip install convdot[plot]``).

    Parameters
    ----------
    trace : Trace
        Any element of the output to animate, from :func:`convdot.explain` or :func:`convdot.explain2d`.
    path : str, path-like or binary file
        Where to write the GIF; a file path is written atomically (temporary file, then renamed)
        and replaced if it exists.
    fps : float, default 2.0
        Frames per second.
    max_frames : int, default 100
        Refuse outputs with more positions than this (a GIF of thousands of frames helps nobody;
        explain a crop of the input instead).
    channel : int, optional
        Which of the trace's input channels to draw (an index into ``trace.channels``); by default
        the one contributing most to ``trace``'s element.

    Returns
    -------
    int
        The number of frames written.

    Notes
    -----
    Frame ``i`` shows ``output[..., p_i] = sum(window(p_i) * kernel)`` for the ``i``-th output
    position ``p_i``; the output panel shows every element computed so far.

    Examples
    --------
    >>> import io, convdot
    >>> A = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
    >>> trace = convdot.explain(A, [[1, 0, 1], [0, 1, 0], [1, 0, 1]], (0, 0))
    >>> convdot.animate(trace, io.BytesIO())  # one frame per output element of the 3x3 output
    9
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"animate: trace must be a Trace from convdot.explain or explain2d, got {type(trace).__name__}")
    if not isinstance(fps, Real) or isinstance(fps, bool) or not 0 < fps <= 50:
        raise ValueError(f"animate: fps must be a number in (0, 50], got {fps!r}")
    if not isinstance(max_frames, int) or isinstance(max_frames, bool) or max_frames < 1:
        raise ValueError(f"animate: max_frames must be an int >= 1, got {max_frames!r}")
    if not (isinstance(path, (str, os.PathLike)) or hasattr(path, "write")):
        raise TypeError(f"animate: path must be a file name or a binary file, got {type(path).__name__}")
    _plot.check_plottable(trace, "animate")
    out_sp = trace.x_col_shape[1]
    if out_sp > max_frames:
        raise ValueError(f"animate: the output has {out_sp} positions, more than max_frames={max_frames}; "
                         f"explain a crop of the input, or raise max_frames")
    n_ch = len(trace.channels)
    if channel is None:
        c = _text.top_channels(trace, 1)[0]
    elif isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and -n_ch <= channel < n_ch:
        c = int(channel) % n_ch
    else:
        raise ValueError(f"animate: channel must be an int in [{-n_ch}, {n_ch - 1}], got {channel!r}")
    image = require("PIL.Image", _FEATURE)
    frames = _frames(trace, c)
    durations = [int(1000 / fps)] * len(frames)
    durations[-1] *= 3  # hold the finished output

    def write(fh: IO[bytes]) -> None:
        pics = [image.fromarray(f) for f in frames]
        pics[0].save(fh, format="GIF", save_all=True, append_images=pics[1:], duration=durations, loop=0)

    if hasattr(path, "write"):
        write(path)  # type: ignore[arg-type]
    else:
        write_atomic(path, write, force=True)
    return len(frames)


def _frames(trace: Trace, c: int) -> list[np.ndarray]:
    """Render one RGB frame per output position of ``trace``'s output channel."""
    backend = require("matplotlib.backends.backend_agg", _FEATURE)
    gridspec = require("matplotlib.gridspec", _FEATURE)
    problem = trace._problem
    out_sp = problem.parsed.spec.out_shape[2:]
    positions = list(np.ndindex(*out_sp))
    lead = problem.lead
    traces = [problem.trace((trace.batch, trace.out_channel, *p)[lead:]) for p in positions]
    values = np.array([float(t.total) for t in traces])
    partial = np.full(out_sp if len(out_sp) == 2 else (1, out_sp[0]), np.nan)  # (H_out, W_out), 1-D as one row
    vrange = (min(values.min(), 0.0), max(values.max(), 0.0) if values.max() > min(values.min(), 0.0) else 1.0)
    img = _plot.as2d(trace.input[c])
    in_w = 4.2 if img.shape[1] >= img.shape[0] else 4.2 * img.shape[1] / img.shape[0] + 0.8
    height = 4.6 if trace.nd == 2 else 3.3
    fig = _plot.new_figure(in_w + 2.8 + 3.6 + 1.0, height, pyplot=False)
    backend.FigureCanvasAgg(fig)
    gs = gridspec.GridSpec(1, 5, figure=fig, width_ratios=[in_w, 0.5, 2.8, 0.5, 3.6], wspace=0.08,
                           left=0.04, right=0.98, top=1 - 1.1 / height, bottom=0.35 / height)
    ax_in, ax_k, ax_out = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 2]), fig.add_subplot(gs[0, 4])
    for i, sym in ((1, "\u00d7"), (3, "\u2192")):
        op = fig.add_subplot(gs[0, i])
        op.axis("off")
        op.text(0.5, 0.5, sym, ha="center", va="center", fontsize=28, transform=op.transAxes)
    _plot.input_panel(ax_in, trace, c)
    chan = f", channel {trace.channels[c]}" if len(trace.channels) > 1 else ""
    ax_in.set_title(f"{trace.names[0]}{chan}", fontsize=14)
    _plot.draw_grid(ax_k, _plot.as2d(trace.kernel[c]), cmap="Purples")
    ax_k.set_title("kernel, flipped" if trace.flipped else "kernel", fontsize=14)
    title = fig.suptitle("", fontsize=16, fontweight="bold", y=1 - 0.12 / height, va="top")
    fig.text(0.5, 1 - 0.55 / height, trace.call + (f" (input channel {trace.channels[c]} of {len(trace.channels)} "
                                                    "shown; the sum runs over all)" if len(trace.channels) > 1 else ""),
             ha="center", va="top", fontsize=12, color="#444444")
    frames = []
    patches: list[Any] = []
    for t, pos, v in zip(traces, positions, values):
        for p in patches:
            p.remove()
        patches = _plot.outline_taps(ax_in, t)
        partial[pos if len(out_sp) == 2 else (0, pos[0])] = v
        ax_out.clear()
        _plot.draw_grid(ax_out, partial, cmap="Greens", vrange=vrange, blank_nan=True)
        here = pos if len(out_sp) == 2 else (0, pos[0])
        mpatches = require("matplotlib.patches", _FEATURE)
        ax_out.add_patch(mpatches.Rectangle((here[1] - 0.5, here[0] - 0.5), 1, 1, fill=False,
                                            edgecolor=_plot._TAP_COLOR, linewidth=4))
        ax_out.set_title("output", fontsize=14)
        title.set_text(_frame_title(t))
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())  # (H, W, 3) RGB
    return frames
