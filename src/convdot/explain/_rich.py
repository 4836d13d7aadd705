"""Coloured terminal rendering of a Trace with ``rich``: window, kernel and product in colour.

The words are the text renderer's; colour marks what they refer to: the window in cyan, the
kernel in magenta, padding taps dimmed, non-zero products bold, the result in green.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from .._fmt import num
from . import _text
from ._extras import require

if TYPE_CHECKING:
    from ._trace import Trace

_WINDOW, _KERNEL, _PRODUCT, _PAD, _RESULT = "cyan", "magenta", "yellow", "dim", "bold green"


def _grid(a: np.ndarray, style: str, marks: np.ndarray | None = None, strong_nonzero: bool = False) -> Any:
    """A 1-D/2-D array (N-d as slices) as a rich Text block, one row per line."""
    text = require("rich.text", "coloured terminal output (--format rich)")
    a = np.asarray(a)
    m = np.zeros(a.shape, dtype=bool) if marks is None else np.broadcast_to(marks, a.shape)
    if a.ndim > 2:
        out = text.Text()
        for lead in np.ndindex(*a.shape[:-2]):
            out.append(f"[{', '.join(map(str, lead))}, :, :]\n", style="dim")
            out.append(_grid(a[lead], style, m[lead], strong_nonzero))
            out.append("\n")
        out.rstrip()
        return out
    a2, m2 = np.atleast_2d(a), np.atleast_2d(m)
    cells = [[f"({num(v)})" if mk else num(v) for v, mk in zip(row, mrow)] for row, mrow in zip(a2, m2)]
    width = max(len(c) for row in cells for c in row)
    out = text.Text()
    for r, row in enumerate(cells):
        out.append("[")
        for c, cell in enumerate(row):
            st = f"{style} {_PAD}" if m2[r, c] else style
            if strong_nonzero and a2[r, c] != 0:
                st += " bold"
            out.append(cell.rjust(width), style=st)
            if c < len(row) - 1:
                out.append(" ")
        out.append("]" + ("\n" if r < len(cells) - 1 else ""))
    return out


def _side(blocks: list[Any], ops: list[str], titles: list[str]) -> Any:
    table = require("rich.table", "coloured terminal output (--format rich)")
    text = require("rich.text", "coloured terminal output (--format rich)")
    grid = table.Table.grid(padding=(0, 1))
    for _ in range(2 * len(blocks) - 1):
        grid.add_column(vertical="middle")
    row_t, row_b = [], []
    for i, (b, title) in enumerate(zip(blocks, titles)):
        row_t.append(title)
        row_b.append(b)
        if i < len(blocks) - 1:
            row_t.append("")
            row_b.append(text.Text(ops[i]))
    grid.add_row(*(text.Text(s, style="italic") for s in row_t))
    grid.add_row(*row_b)
    return grid


def _rule(title: str) -> Any:
    rule = require("rich.rule", "coloured terminal output (--format rich)")
    text = require("rich.text", "coloured terminal output (--format rich)")
    return rule.Rule(text.Text(title, style="bold"), align="left")


def renderable(t: Trace) -> Any:
    """A rich renderable (``rich.print(trace)`` or ``Console().print(trace)``)."""
    return _renderable(t, full=False, max_channels=4, top=5)


def _renderable(t: Trace, *, full: bool, max_channels: int, top: int) -> Any:
    console = require("rich.console", "coloured terminal output (--format rich)")
    text = require("rich.text", "coloured terminal output (--format rich)")
    parts: list[Any] = []
    head = text.Text()
    head.append(t.call, style="bold")
    head.append(f": output{_text.index_str(t.index)} = ")
    head.append(num(t.total), style=_RESULT)
    parts += [head, text.Text(_text.operation(t)), text.Text(_text.setup(t), style="dim")]
    n_ch = len(t.channels)
    detailed = full or n_ch <= max_channels
    shown = list(range(n_ch)) if detailed else _text.top_channels(t, 1)
    if t.flipped:
        parts.append(_rule(f"0. Flip {t.names[1]} (rotate it 180 degrees)"))
        for c in shown:
            parts.append(_side([_grid(t.weight[c], _KERNEL), _grid(t.kernel[c], _KERNEL)], ["->"],
                               [f"{t.names[1]} as given", "flipped: as applied"]))
    parts.append(_rule("1. The window times the kernel, element by element"))
    parts.append(text.Text(f"The window covers {_text.where(t)}."))
    for c in shown:
        if n_ch > 1:
            label = _text.channel_label(t, c) + ("" if detailed else f", the largest contributor of {n_ch}")
            parts.append(text.Text(label + ":", style="bold"))
        parts.append(_side([_grid(t.window[c], _WINDOW, t.padded), _grid(t.kernel[c], _KERNEL),
                            _grid(t.product[c], _PRODUCT, t.padded, strong_nonzero=True)],
                           ["*", "="], ["window", "kernel", "element-wise product"]))
    note = _text.padding_note(t)
    if note:
        parts.append(text.Text(note, style="dim"))
    parts.append(_rule("2. Their sum is the output element" if n_ch == 1 else
                       "2. Each channel's products add up; the channel sums add up to the output element"))
    if detailed:
        for c in range(n_ch):
            parts.append(text.Text(("" if n_ch == 1 else _text.channel_label(t, c) + ": ") + _text.sum_line(t, c)))
    else:
        table = require("rich.table", "coloured terminal output (--format rich)")
        parts.append(text.Text(f"{n_ch} input channels each give the sum of their {t.product[0].size} products; "
                               f"the {min(top, n_ch)} largest in size:"))
        tab = table.Table()
        tab.add_column("channel", justify="right")
        tab.add_column("sum", justify="right", style=_PRODUCT)
        for c in _text.top_channels(t, top):
            tab.add_row(text.Text(str(t.channels[c])), text.Text(num(t.channel_sums[c])))
        rest = np.delete(t.channel_sums, _text.top_channels(t, top))
        if rest.size:
            tab.add_row(text.Text(f"the other {rest.size} (together)"), text.Text(num(rest.sum())))
        parts.append(tab)
        parts.append(text.Text("largest single products:\n" + "\n".join(
            "  " + _text.product_term(t, ct) for ct in _text.top_products(t, top))))
    tl = _text.total_line(t)
    if tl:
        parts.append(text.Text(tl))
    parts.append(_rule("3. The same number is the dot product of the flattened window and kernel"))
    parts.append(text.Text("\n".join(_text.dot_lines(t, full))))
    parts.append(_rule("4. All windows at once are one matrix multiply (im2col)"))
    parts.append(text.Text(_text.im2col_line(t) + " " + _text.im2col_value(t)))
    fn = _text.flip_note(t)
    if fn:
        parts.append(text.Text(fn, style="italic"))
    last = text.Text(f"output{_text.index_str(t.index)} = ")
    last.append(num(t.total), style=_RESULT)
    parts.append(last)
    return console.Group(*parts)


def render(t: Trace, *, full: bool = False, max_channels: int = 4, top: int = 5, color: bool = True,
           width: int = 110) -> str:
    """The rich rendering as a string, with ANSI colour codes unless ``color=False``."""
    console = require("rich.console", "coloured terminal output (--format rich)")
    buf = io.StringIO()
    out = console.Console(file=buf, force_terminal=color, no_color=not color, width=width,
                          color_system="standard" if color else None, highlight=False)
    out.print(_renderable(t, full=full, max_channels=max_channels, top=top))
    return buf.getvalue()
