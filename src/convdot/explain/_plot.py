"""A matplotlib figure of a Trace, sized and lettered for a slide.

Panels, left to right: the input with the window's taps outlined (padding hatched), the kernel as
applied (after the kernel as given, when convolution flips it), the element-wise product, and the
sum -- or, for several input channels, a bar per channel sum. Values are written in the cells
whenever the grids are small enough to read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._fmt import num
from . import _text
from ._extras import require

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._trace import Trace

_ANNOTATE_MAX = 16  # grids up to this many cells per side get their values written in
_TAP_COLOR = "#e8590c"
_CROP_OVER = 24  # figures cut inputs larger than this (cells per side) to the window and its surroundings
_CROP_MARGIN = 4
_FEATURE = "figures (Trace.plot, convdot.animate, --format png)"


def check_plottable(t: Trace, what: str) -> None:
    """Figures show 1-D and 2-D real layers; say so for anything else."""
    if t.nd > 2:
        raise ValueError(f"{what}: figures show 1-D and 2-D layers; this one has {t.nd} spatial axes "
                         f"(print the trace instead)")
    if np.iscomplexobj(t.window) or np.iscomplexobj(t.kernel):
        raise ValueError(f"{what}: figures show real values; this trace is complex (print the trace instead)")


def as2d(a: np.ndarray) -> np.ndarray:
    """A 1-D array as one row; 2-D as it is."""
    return np.atleast_2d(np.asarray(a, dtype=np.float64))


def _norm(a: np.ndarray) -> tuple[str, float, float]:
    """A colour map and range: diverging around 0 when there are negatives, sequential otherwise."""
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo < 0:
        m = max(-lo, hi, 1e-12)
        return "coolwarm", -m, m
    return "cmap", min(lo, 0.0), hi if hi > min(lo, 0.0) else min(lo, 0.0) + 1.0


def draw_grid(ax: Axes, a: np.ndarray, *, cmap: str, origin: tuple[int, int] = (0, 0),
              pad_mask: np.ndarray | None = None, annotate: bool | None = None, fontsize: float | None = None,
              vrange: tuple[float, float] | None = None, blank_nan: bool = False) -> None:
    """Draw a 2-D array as coloured cells; cell (i, j) is centred at (j + origin[1], i + origin[0]).

    Small grids get their values written in; ``blank_nan`` leaves NaN cells empty (not yet computed).
    """
    a2 = as2d(a)
    kind, lo, hi = _norm(a2)
    if vrange is not None:
        lo, hi = vrange
    cm = "coolwarm" if kind == "coolwarm" else cmap
    rows, cols = a2.shape
    r0, c0 = origin
    extent = (c0 - 0.5, c0 + cols - 0.5, r0 + rows - 0.5, r0 - 0.5)
    ax.imshow(np.ma.masked_invalid(a2), cmap=cm, vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
    if pad_mask is not None and pad_mask.any():
        m = as2d(pad_mask)
        ax.imshow(np.where(m, 1.0, np.nan), cmap="Greys", vmin=0, vmax=3, alpha=0.55, extent=extent,
                  interpolation="nearest")
        mpatches = require("matplotlib.patches", _FEATURE)
        for i, j in zip(*np.nonzero(m)):
            ax.add_patch(mpatches.Rectangle((c0 + j - 0.5, r0 + i - 0.5), 1, 1, fill=False, hatch="//",
                                            edgecolor="#888888", linewidth=0))
    longest = max(len(num(v)) for v in a2.ravel())
    size = fontsize or float(min(22.0, 110 / max(rows, cols, 1) * min(1.0, 2.6 / longest)))
    if annotate is None:  # write the values in when they fit at a readable size
        annotate = max(rows, cols) <= _ANNOTATE_MAX and size >= 7.5
    if annotate:
        span = hi - lo if hi > lo else 1.0
        for i in range(rows):
            for j in range(cols):
                v = a2[i, j]
                if blank_nan and np.isnan(v):
                    continue
                level = (v - lo) / span
                dark = (level > 0.65 or level < 0.2) if cm == "coolwarm" else level > 0.6
                ax.text(c0 + j, r0 + i, num(v), ha="center", va="center", fontsize=size,
                        color="white" if dark and np.isfinite(v) else "black")
    ax.set_xticks(range(c0, c0 + cols) if cols <= 20 else ax.get_xticks())
    ax.set_yticks(range(r0, r0 + rows) if rows <= 20 else ax.get_yticks())
    ax.set_xlim(c0 - 0.5, c0 + cols - 0.5)
    ax.set_ylim(r0 + rows - 0.5, r0 - 0.5)
    ax.tick_params(labelsize=10, length=0)
    for s in ax.spines.values():
        s.set_visible(False)


def outline_taps(ax: Axes, t: Trace, *, color: str = _TAP_COLOR) -> list[Any]:
    """Outline each tap of the window on an input panel drawn in input coordinates; returns the patches."""
    mpatches = require("matplotlib.patches", _FEATURE)
    rows = t.taps[0] if t.nd == 2 else (0,)
    cols = t.taps[-1]
    patches = []
    if any(d > 1 for d in t.dilation) or len(rows) * len(cols) == 1:
        for r in rows:
            for c in cols:
                patches.append(ax.add_patch(mpatches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                                               edgecolor=color, linewidth=2.5)))
    patches.append(ax.add_patch(mpatches.Rectangle((cols[0] - 0.5, rows[0] - 0.5), cols[-1] - cols[0] + 1,
                                                   rows[-1] - rows[0] + 1, fill=False, edgecolor=color,
                                                   linewidth=4, linestyle="-" if all(d == 1 for d in t.dilation)
                                                   else "--")))
    return patches


def input_view(t: Trace, c: int, crop: bool) -> tuple[np.ndarray, tuple[int, int], bool]:
    """Channel ``c``'s padded input as 2-D, the input coordinate of its first cell, and whether it was cut.

    With ``crop``, an input larger than :data:`_CROP_OVER` cells on a side is cut to the window and
    :data:`_CROP_MARGIN` cells around it, so its values stay readable.
    """
    img = as2d(t.input[c])
    lo = [p[0] for p in t.pads]
    origin = [-lo[0], -lo[1]] if t.nd == 2 else [0, -lo[0]]
    taps = list(t.taps) if t.nd == 2 else [(0,), t.taps[0]]
    cut = False
    if crop:
        keep = []
        for a in range(2):
            n = img.shape[a]
            first, last = taps[a][0] - origin[a], taps[a][-1] - origin[a]  # padded coordinates
            if n > _CROP_OVER:
                keep.append(slice(max(0, first - _CROP_MARGIN), min(n, last + _CROP_MARGIN + 1)))
                cut = True
            else:
                keep.append(slice(0, n))
        img = img[keep[0], keep[1]]
        origin = [origin[0] + keep[0].start, origin[1] + keep[1].start]
    return img, (origin[0], origin[1]), cut


def input_panel(ax: Axes, t: Trace, c: int, *, crop: bool = False) -> bool:
    """Draw channel ``c``'s padded input in input coordinates, padding hatched; returns whether it was cut."""
    img, origin, cut = input_view(t, c, crop)
    sizes = t.input_shape if t.nd == 2 else (1, t.input_shape[0])
    r = np.arange(img.shape[0]) + origin[0]
    col = np.arange(img.shape[1]) + origin[1]
    outside = ((r < 0) | (r >= sizes[0]))[:, None] | ((col < 0) | (col >= sizes[1]))[None, :]
    draw_grid(ax, img, cmap="Blues", origin=origin, pad_mask=outside if outside.any() else None)
    return cut


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def new_figure(width: float, height: float, pyplot: bool) -> Figure:
    """A figure made through pyplot (so plt.show and Jupyter see it) or standalone (no global state)."""
    if pyplot:
        plt = require("matplotlib.pyplot", _FEATURE)
        return plt.figure(figsize=(width, height))
    mfig = require("matplotlib.figure", _FEATURE)
    return mfig.Figure(figsize=(width, height))


def _op(ax: Axes, symbol: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, symbol, ha="center", va="center", fontsize=30 if len(symbol) == 1 else 17,
            transform=ax.transAxes)


def _sum_panel(ax: Axes, t: Trace, c: int) -> None:
    ax.axis("off")
    n_ch = len(t.channels)
    p = t.product[c].ravel()
    if n_ch == 1:
        lines = []
        if p.size <= 16:
            terms = [_text.term(v) for v in p]
            per = 5
            rows = [" + ".join(terms[i:i + per]) for i in range(0, len(terms), per)]
            lines = [("  " if i else "") + r + (" +" if i < len(rows) - 1 else "") for i, r in enumerate(rows)]
        eq = "\n".join(lines)
        ax.text(0.02, 0.72, "sum of the products", fontsize=14, transform=ax.transAxes, va="center")
        if eq:
            ax.text(0.02, 0.5, eq, fontsize=13, transform=ax.transAxes, va="center", family="monospace")
        res = f"= {num(t.channel_sums[0])}"
        if t.bias is not None:
            res += f"\n+ bias {num(t.bias)} = {num(t.total)}"
        ax.text(0.02, 0.22, res, fontsize=30, transform=ax.transAxes, va="center", color="#1a7f37",
                fontweight="bold")
        return
    ax.axis("on")
    best = _text.top_channels(t, 10)
    vals = [float(np.real(t.channel_sums[i])) for i in best]
    labels = [str(t.channels[i]) for i in best]
    rest = np.delete(t.channel_sums, best)
    if rest.size:
        vals.append(float(np.real(rest.sum())))
        labels.append(f"other {rest.size}")
    if t.bias is not None:
        vals.append(float(np.real(t.bias)))
        labels.append("bias")
    y = np.arange(len(vals))
    ax.barh(y, vals, color=["#e8590c" if i == 0 else "#4c72b0" for i in range(len(vals))])
    ax.set_yticks(y, labels, fontsize=10)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_title(f"channel sums: total {num(t.total)}", fontsize=14)
    ax.tick_params(labelsize=10)


def figure(t: Trace, *, channel: int | None = None, pyplot: bool = False) -> Figure:
    """Build the explanation figure of ``t`` for one input channel (default: the top contributor)."""
    check_plottable(t, "plot")
    n_ch = len(t.channels)
    if channel is None:
        c = _text.top_channels(t, 1)[0]
    elif isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and -n_ch <= channel < n_ch:
        c = int(channel) % n_ch
    else:
        raise ValueError(f"plot: channel must be an int in [{-n_ch}, {n_ch - 1}] (an index into the trace's "
                         f"{n_ch} input channels), got {channel!r}")
    gridspec = require("matplotlib.gridspec", _FEATURE)
    img = input_view(t, c, crop=True)[0]
    k2 = as2d(t.kernel[c])
    in_w = 4.2 if img.shape[1] >= img.shape[0] else 4.2 * img.shape[1] / img.shape[0] + 0.8
    k_w = 3.0 * min(1.0, max(0.45, k2.shape[1] / max(k2.shape[0], 3)))
    panels: list[tuple[str, float]] = [("input", in_w), ("op", 0.5)]
    if t.flipped:
        panels += [("given", k_w), ("op", 0.9)]
    panels += [("kernel", k_w), ("op", 0.5), ("product", k_w), ("op", 0.5), ("sum", 3.4)]
    height = 4.6 if t.nd == 2 else 3.3
    fig = new_figure(sum(w for _, w in panels), height, pyplot)
    gs = gridspec.GridSpec(1, len(panels), figure=fig, width_ratios=[w for _, w in panels], wspace=0.08,
                           left=0.03, right=0.98, top=1 - 1.25 / height, bottom=0.35 / height)
    ops = iter(["\u00d7", "flip\n\u21bb", "=", "\u2192"] if t.flipped else ["\u00d7", "=", "\u2192"])
    chan = f", channel {t.channels[c]}" if n_ch > 1 else ""
    for i, (kind, _) in enumerate(panels):
        ax = fig.add_subplot(gs[0, i])
        if kind == "op":
            _op(ax, next(ops))
        elif kind == "input":
            cut = input_panel(ax, t, c, crop=True)
            outline_taps(ax, t)
            part = f" (part of {_shape(t.input_shape)})" if cut else ""
            ax.set_title(f"{t.names[0]}{chan}{part}, window outlined", fontsize=14)
        elif kind == "given":
            draw_grid(ax, as2d(t.weight[c]), cmap="Purples")
            ax.set_title(f"{t.names[1]} as given", fontsize=14)
        elif kind == "kernel":
            draw_grid(ax, k2, cmap="Purples")
            ax.set_title("kernel, flipped" if t.flipped else "kernel", fontsize=14)
        elif kind == "product":
            draw_grid(ax, as2d(t.product[c]), cmap="Oranges", pad_mask=as2d(t.padded))
            ax.set_title("element-wise product", fontsize=14)
        else:
            _sum_panel(ax, t, c)
    fig.suptitle(f"{t.call}:  output{_text.index_str(t.index)} = {num(t.total)}", fontsize=18, fontweight="bold",
                 y=1 - 0.12 / height, va="top")
    sub = ("convolution flips the kernel, then sums the element-wise product" if t.flipped else
           "cross-correlation (what a CNN layer computes): the sum of the element-wise product")
    sub += f" = np.dot of the flattened window and kernel = {num(t.dot)}" + (" (+ bias)" if t.bias is not None else "")
    if t.unflipped_total is not None:
        sub += f";  without the flip (as a CNN layer): {num(t.unflipped_total)}"
    fig.text(0.5, 1 - 0.55 / height, sub, ha="center", va="top", fontsize=12, color="#444444")
    return fig
