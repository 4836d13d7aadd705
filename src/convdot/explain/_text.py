"""Plain-text rendering of a Trace: aligned grids side by side and the sums written out.

The sentence builders here are shared with the rich and HTML renderers, so every format says the
same thing in the same words.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._fmt import num, side_by_side

if TYPE_CHECKING:
    from ._trace import Trace

#: What a padding mode puts in the padding, for the legend.
_PAD_WORDS = {
    "zeros": "zero padding",
    "constant": "fill padding",
    "reflect": "reflect padding (mirror image, edge not repeated)",
    "replicate": "replicate padding (the edge value repeated)",
    "circular": "circular padding (the input wraps around)",
    "symmetric": "symmetric padding (mirror image, edge repeated)",
}
_MAX_TERMS = 27  # longest sum written out term by term
_MAX_VECTOR = 27  # longest flattened vector printed in full
_WIDTH = 100  # prose is wrapped to this width


def axis_names(nd: int) -> list[str]:
    """Names of the spatial axes, as a learner reads them."""
    return {1: ["positions"], 2: ["rows", "columns"], 3: ["depths", "rows", "columns"]}.get(
        nd, [f"axis {a}" for a in range(nd)])


def span(coords: Sequence[int]) -> str:
    """``0..2`` for consecutive coordinates, ``0..4 step 2`` when dilated, ``3`` for one."""
    if len(coords) == 1:
        return str(coords[0])
    step = coords[1] - coords[0]
    return f"{coords[0]}..{coords[-1]}" + ("" if step == 1 else f" step {step}")


def index_str(index: Sequence[int]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def channel_label(t: Trace, c: int) -> str:
    """How channel ``c`` of the trace (an index into ``t.channels``) is written in x's own indexing."""
    return f"channel {t.channels[c]}"


def headline(t: Trace) -> str:
    return f"{t.call}: output{index_str(t.index)} = {num(t.total)}"


def operation(t: Trace) -> str:
    kname = t.names[1]
    if t.flipped:
        s = (f"Convolution: {kname} is flipped on every axis (rotated 180 degrees) before it slides over "
             f"{t.names[0]}; a CNN layer does not flip.")
    else:
        s = f"Cross-correlation, what a CNN layer computes: {kname} slides over {t.names[0]} as it is, unflipped."
    if t.conjugated:
        s += f" Complex {kname} is conjugated first, as in scipy.signal.correlate."
    return s


def setup(t: Trace) -> str:
    """The layer's geometry in one line."""
    pads = [lo if lo == hi else (lo, hi) for lo, hi in t.pads]
    parts = [f"input {t.input_shape}"]
    if len(t.channels) > 1 or t.groups > 1:
        parts[0] += f" x {len(t.channels) * t.groups} channels"
    parts.append(f"kernel {t.kernel_shape}")
    geometry = [f"stride {_tuple(t.stride)}", f"padding {_tuple(pads)}", f"dilation {_tuple(t.dilation)}"]
    if t.groups > 1:
        geometry.append(f"groups {t.groups}")
    if any(lo or hi for lo, hi in t.pads):
        fill = f" with {num(t.fillvalue)}" if t.padding_mode == "constant" else ""
        geometry.append(_PAD_WORDS[t.padding_mode] + fill)
    return f"{', '.join(parts)}; {', '.join(geometry)} -> output {t.out_shape}"


def _tuple(v: Sequence) -> str:
    v = list(v)
    return str(v[0]) if all(x == v[0] for x in v) else "(" + ", ".join(map(str, v)) + ")"


def where(t: Trace) -> str:
    """Which part of the input the window covers."""
    axes = ", ".join(f"{name} {span(c)}" for name, c in zip(axis_names(t.nd), t.taps))
    who = t.names[0]
    extra = []
    if len(t.index) == t.nd + 2:  # the output has a batch axis
        extra.append(f"batch item {t.batch}")
    if len(t.channels) > 1 or t.groups > 1:
        grp = f" (group {t.group} of {t.groups})" if t.groups > 1 else ""
        extra.append(f"input channels {span(t.channels)}{grp}")
    return f"{who} {', '.join([*extra, axes])}"


def padding_note(t: Trace, limit: int = 4) -> str | None:
    """What the padding taps hold, or None when the window is all input."""
    if not t.padded.any():
        return None
    taps = list(zip(*np.nonzero(t.padded)))
    count = len(taps)
    head = f"(v) marks a tap in the padding ({count} of {t.padded.size}): {_PAD_WORDS[t.padding_mode]}"
    if t.padding_mode in ("zeros", "constant"):
        return head + f" gives it {num(t.fillvalue)}."
    copies = []
    for tap in taps[:limit]:
        at = tuple(t.taps[a][i] for a, i in enumerate(tap))
        src = tuple(int(v) for v in t.source[tap])
        copies.append(f"{t.names[0]}{index_str(at)} is {t.names[0]}{index_str(src)}")
    more = f", and {count - limit} more" if count > limit else ""
    return head + ": " + "; ".join(copies) + more + "."


def term(v: object) -> str:
    s = num(v)
    return f"({s})" if s.startswith("-") or "+" in s[1:] or "j" in s else s


def sum_line(t: Trace, c: int) -> str:
    """``1*1 + 1*0 + ... = 1 + 0 + ... = 3`` for channel ``c``, when short enough to read."""
    w, k, p = t.window[c].ravel(), t.kernel[c].ravel(), t.product[c].ravel()
    s = num(t.channel_sums[c])
    if p.size > _MAX_TERMS:
        return f"sum of the {p.size} products = {s}"
    return (" + ".join(f"{term(a)}*{term(b)}" for a, b in zip(w, k)) + " = "
            + " + ".join(term(v) for v in p) + f" = {s}")


def total_line(t: Trace) -> str | None:
    """How the per-channel sums and the bias make the total (None when there is only one sum)."""
    sums = t.channel_sums
    if sums.size == 1 and t.bias is None:
        return None
    if sums.size == 1:
        expr = num(sums[0])
    elif sums.size <= 8:
        expr = "channel sums " + " + ".join(term(v) for v in sums) + f" = {num(sums.sum())}"
    else:
        expr = f"the {sums.size} channel sums add up to {num(sums.sum())}"
    if t.bias is not None:
        expr += f", plus bias {term(t.bias)} = {num(t.total)}"
    return f"output{index_str(t.index)} = {expr}"


def vector(v: np.ndarray, full: bool) -> str:
    if full or v.size <= _MAX_VECTOR:
        return "[" + " ".join(num(a) for a in v) + "]"
    return "[" + " ".join(num(a) for a in v[:8]) + " ... " + " ".join(num(a) for a in v[-2:]) + f"]  ({v.size} values)"


def dot_lines(t: Trace, full: bool = False) -> list[str]:
    first = ("flattened: window.ravel()" if len(t.channels) == 1 else
             f"flattened (all {len(t.channels)} channels, channel-major): window.ravel()")
    lines = [f"{first} = {vector(t.x_col, full)}",
             " " * (len(first) - len("kernel.ravel()")) + f"kernel.ravel() = {vector(t.w_row, full)}",
             f"np.dot(window.ravel(), kernel.ravel()) = {num(t.dot)}"
             + (f", plus bias {term(t.bias)} = {num(t.total)}" if t.bias is not None else "")
             + ": the same number as the sum of the element-wise product"]
    if t.nd >= 2:
        lines.append("(np.dot of the two grids unflattened would be a matrix product -- a different thing.)")
    return lines


def im2col_line(t: Trace) -> str:
    (r, length), (_, cols) = t.w_row_shape, t.x_col_shape
    grp = f" of group {t.group} of {t.groups}" if t.groups > 1 else ""
    return (f"W_row ({r} x {length}) holds one flattened filter per output channel{grp}, X_col ({length} x {cols}) "
            f"one flattened window per output position; this element is row {t.row} of W_row times column "
            f"{t.column} of X_col:")


def im2col_value(t: Trace) -> str:
    return f"(W_row @ X_col)[{t.row}, {t.column}] = {num(t.dot)}"


def flip_note(t: Trace) -> str | None:
    if t.unflipped_total is None:
        return None
    other = "correlate2d, " if t.names[0] == "in1" else ""
    same = "the same number: the kernel is symmetric under the flip" if t.unflipped_total == t.total else (
        "a different number, because the kernel is not symmetric under a 180-degree rotation")
    return (f"Without the flip ({other}what a CNN layer computes) this window gives "
            f"{num(t.unflipped_total)}: {same}.")


def grid_lines(a: np.ndarray, marks: np.ndarray | None = None) -> list[str]:
    """A 1-D, 2-D or N-d array as right-aligned rows; N-d as labelled 2-D slices. Marked cells in parentheses."""
    a = np.asarray(a)
    m = np.zeros(a.shape, dtype=bool) if marks is None else np.broadcast_to(marks, a.shape)
    if a.ndim <= 2:
        a2, m2 = np.atleast_2d(a), np.atleast_2d(m)
        cells = [[f"({num(v)})" if mk else num(v) for v, mk in zip(row, mrow)] for row, mrow in zip(a2, m2)]
        width = max(len(c) for row in cells for c in row)
        return ["[" + " ".join(c.rjust(width) for c in row) + "]" for row in cells]
    lines: list[str] = []
    for lead in np.ndindex(*a.shape[:-2]):
        lines.append(f"[{', '.join(map(str, lead))}, :, :]")
        lines.extend(grid_lines(a[lead], m[lead]))
    return lines


def top_channels(t: Trace, top: int) -> list[int]:
    """Channel indices ordered by how much they contribute (largest |sum| first)."""
    return [int(c) for c in np.argsort(-np.abs(t.channel_sums), kind="stable")[:top]]


def top_products(t: Trace, top: int) -> list[tuple[int, ...]]:
    """(channel, *tap) of the largest products in size."""
    flat = np.argsort(-np.abs(t.product).ravel(), kind="stable")[:top]
    return [tuple(int(i) for i in np.unravel_index(f, t.product.shape)) for f in flat]


def product_term(t: Trace, ct: tuple[int, ...]) -> str:
    c, tap = ct[0], ct[1:]
    at = tuple(t.taps[a][i] for a, i in enumerate(tap))
    return (f"channel {t.channels[c]} at {index_str(at)}: {term(t.window[ct])} * {term(t.kernel[ct])} = "
            f"{num(t.product[ct])}")


def wrap(text: str) -> str:
    """Fill prose to the page width without breaking inside an index like ``x[-1, 0]``."""
    kept = re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace(" ", "\0"), text)
    return textwrap.fill(kept, width=_WIDTH, break_on_hyphens=False).replace("\0", " ")


def _section(title: str) -> list[str]:
    return ["", title, "-" * len(title)]


def render(t: Trace, *, full: bool = False, max_channels: int = 4, top: int = 5) -> str:
    """The whole explanation as plain text."""
    n_ch = len(t.channels)
    lines = [headline(t), wrap(operation(t)), setup(t)]
    if t.flipped:
        lines += _section(f"0. Flip {t.names[1]} (rotate it 180 degrees)")
        shown = range(n_ch) if (full or n_ch <= max_channels) else top_channels(t, 1)
        for c in shown:
            if n_ch > 1:
                lines.append(channel_label(t, c) + ":")
            lines.append(side_by_side([grid_lines(t.weight[c]), grid_lines(t.kernel[c])], ["->"],
                                      [f"{t.names[1]} as given", "flipped: the kernel as applied"]))
    lines += _section("1. The window times the kernel, element by element")
    lines.append(f"The window covers {where(t)}.")
    detailed = full or n_ch <= max_channels
    for c in (range(n_ch) if detailed else top_channels(t, 1)):
        if n_ch > 1:
            lines.append(channel_label(t, c) + ("" if detailed else f", the largest contributor of {n_ch}") + ":")
        lines.append(side_by_side([grid_lines(t.window[c], t.padded), grid_lines(t.kernel[c]),
                                   grid_lines(t.product[c], t.padded)], ["*", "="],
                                  ["window", "kernel", "element-wise product"]))
    note = padding_note(t)
    if note:
        lines.append(wrap(note))
    lines += _section("2. Their sum is the output element" if n_ch == 1 else
                      "2. Each channel's products add up; the channel sums add up to the output element")
    if detailed:
        for c in range(n_ch):
            lines.append(("" if n_ch == 1 else channel_label(t, c) + ": ") + sum_line(t, c))
    else:
        lines.append(f"{n_ch} input channels each give the sum of their {t.product[0].size} products; "
                     f"the {min(top, n_ch)} largest in size:")
        lines.append(f"{'channel':>9}  {'sum':>10}")
        for c in top_channels(t, top):
            lines.append(f"{t.channels[c]:>9}  {num(t.channel_sums[c]):>10}")
        rest = np.delete(t.channel_sums, top_channels(t, top))
        if rest.size:
            lines.append(f"{'the other ' + str(rest.size):>9}  {num(rest.sum()):>10}  (together)")
        lines.append("largest single products:")
        lines += ["  " + product_term(t, ct) for ct in top_products(t, top)]
        lines.append("(to see every channel's grids: trace.to_text(full=True), or convdot explain --full)")
    tl = total_line(t)
    if tl:
        lines.append(tl)
    lines += _section("3. The same number is the dot product of the flattened window and kernel")
    lines += dot_lines(t, full)
    lines += _section("4. All windows at once are one matrix multiply (im2col)")
    lines += [wrap(im2col_line(t)), im2col_value(t)]
    lines.append("")
    fn = flip_note(t)
    if fn:
        lines.append(wrap(fn))
    lines.append(f"output{index_str(t.index)} = {num(t.total)}")
    return "\n".join(lines)
