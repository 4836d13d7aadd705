"""Self-contained HTML rendering of a Trace, for Jupyter (``_repr_html_``) and ``--format html``.

Inline styles only (no <style> block leaking into a notebook), no scripts, no external files.
The input is drawn as a table with the window's taps highlighted; the words are the text renderer's.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

import numpy as np

from .._fmt import num
from . import _text

if TYPE_CHECKING:
    from ._trace import Trace

_MAX_SIDE = 16  # larger inputs are cropped to the window and this margin around it
_MARGIN = 2
_CELL = "border:1px solid #bbb;padding:2px 6px;text-align:right;font-family:monospace;min-width:1.6em"
_TAP = "background:#ffd95a;font-weight:bold"
_PAD = "background:#eeeeee;color:#777;font-style:italic"
_HEAD = "padding:2px 6px;color:#777;font-size:80%;text-align:center;font-family:monospace"
_KERNEL = "background:#f3d6f3"
_PRODUCT = "background:#fff1c2"
_RESULT = "color:#1a7f37;font-weight:bold"


def _cell(value: object, style: str) -> str:
    return f'<td style="{_CELL};{style}">{escape(num(value))}</td>'


def _table(a: np.ndarray, style: Callable[[tuple[int, ...]], str], rows: list[str] | None = None,
           cols: list[str] | None = None) -> str:
    """A 1-D or 2-D array as an HTML table; ``style(ij)`` gives each cell's inline style."""
    a2 = np.atleast_2d(a)
    out = ['<table style="border-collapse:collapse;margin:2px">']
    if cols is not None:
        out.append("<tr>" + (f'<td style="{_HEAD}"></td>' if rows is not None else "")
                   + "".join(f'<td style="{_HEAD}">{escape(c)}</td>' for c in cols) + "</tr>")
    for i, row in enumerate(a2):
        head = f'<td style="{_HEAD}">{escape(rows[i])}</td>' if rows is not None else ""
        out.append("<tr>" + head + "".join(_cell(v, style((i, j) if a.ndim > 1 else (j,))) for j, v in enumerate(row))
                   + "</tr>")
    out.append("</table>")
    return "".join(out)


def _grid(a: np.ndarray, base: str, marks: np.ndarray | None = None) -> str:
    """A kernel-shaped array (N-d as labelled 2-D slices); marked cells in the padding style."""
    a = np.asarray(a)
    m = np.zeros(a.shape, dtype=bool) if marks is None else np.broadcast_to(marks, a.shape)
    if a.ndim > 2:
        return "".join(f'<div style="{_HEAD}">[{", ".join(map(str, lead))}, :, :]</div>' + _grid(a[lead], base, m[lead])
                       for lead in np.ndindex(*a.shape[:-2]))
    return _table(a, lambda ij: f"{base};{_PAD}" if m[ij] else base)


def _input(t: Trace, c: int) -> str:
    """Channel ``c``'s padded input around the window, taps highlighted, axes labelled with input coordinates."""
    if t.nd > 2:
        return _grid(t.window[c], _TAP, t.padded)
    img = np.atleast_2d(t.input[c])  # (H_pad, W_pad), a 1-D input as one row
    lo = [p[0] for p in t.pads]
    taps = list(t.taps) if t.nd == 2 else [(0,), t.taps[0]]
    los = lo if t.nd == 2 else [0, lo[0]]
    sizes = list(t.input_shape) if t.nd == 2 else [1, t.input_shape[0]]
    ranges = []
    for ax in range(2):
        n_pad = img.shape[ax]
        first, last = taps[ax][0] + los[ax], taps[ax][-1] + los[ax]  # padded coordinates
        if n_pad > _MAX_SIDE:
            ranges.append(range(max(0, first - _MARGIN), min(n_pad, last + _MARGIN + 1)))
        else:
            ranges.append(range(n_pad))
    crop = img[np.ix_(ranges[0], ranges[1])]
    tap_sets = [{v + los[ax] for v in taps[ax]} for ax in range(2)]

    def style(ij: tuple[int, ...]) -> str:
        i, j = ranges[0][ij[0]], ranges[1][ij[1]]
        inside = 0 <= i - los[0] < sizes[0] and 0 <= j - los[1] < sizes[1]
        on_tap = i in tap_sets[0] and j in tap_sets[1]
        return ";".join(s for s, on in ((_PAD, not inside), (_TAP, on_tap)) if on)

    rows = [str(i - los[0]) for i in ranges[0]] if t.nd == 2 else None
    cols = [str(j - los[1]) for j in ranges[1]]
    return _table(crop, style, rows, cols)


def _side(blocks: list[str], ops: list[str], titles: list[str]) -> str:
    cells, heads = [], []
    for i, (b, title) in enumerate(zip(blocks, titles)):
        heads.append(f'<td style="{_HEAD};font-style:italic">{escape(title)}</td>')
        cells.append(f'<td style="vertical-align:middle;padding:0 4px">{b}</td>')
        if i < len(blocks) - 1:
            heads.append("<td></td>")
            cells.append(f'<td style="vertical-align:middle;font-size:140%;padding:0 6px">{escape(ops[i])}</td>')
    return f'<table style="border-collapse:collapse"><tr>{"".join(heads)}</tr><tr>{"".join(cells)}</tr></table>'


def _p(text: str, style: str = "") -> str:
    return f'<p style="margin:4px 0;{style}">{escape(text)}</p>'


def _h(text: str) -> str:
    return f'<div style="font-weight:bold;margin:10px 0 4px 0;border-bottom:1px solid #ccc">{escape(text)}</div>'


def render(t: Trace, *, full: bool = False, max_channels: int = 4, top: int = 5) -> str:
    """The explanation as one self-contained ``<div>``."""
    n_ch = len(t.channels)
    detailed = full or n_ch <= max_channels
    shown = list(range(n_ch)) if detailed else _text.top_channels(t, 1)
    out = ['<div class="convdot-trace" style="font-family:sans-serif;line-height:1.4">',
           f'<p style="margin:4px 0;font-size:115%"><code>{escape(t.call)}</code>: '
           f'output{escape(_text.index_str(t.index))} = <span style="{_RESULT}">{escape(num(t.total))}</span></p>',
           _p(_text.operation(t)), _p(_text.setup(t), "color:#666")]
    if t.flipped:
        out.append(_h(f"0. Flip {t.names[1]} (rotate it 180 degrees)"))
        for c in shown:
            out.append(_side([_grid(t.weight[c], _KERNEL), _grid(t.kernel[c], _KERNEL)], ["\u2192"],
                             [f"{t.names[1]} as given", "flipped: as applied"]))
    out.append(_h("1. The window times the kernel, element by element"))
    out.append(_p(f"The window covers {_text.where(t)}; its taps are highlighted."))
    for c in shown:
        if n_ch > 1:
            label = _text.channel_label(t, c) + ("" if detailed else f", the largest contributor of {n_ch}")
            out.append(_p(label + ":", "font-weight:bold"))
        out.append(_side([_input(t, c), _grid(t.kernel[c], _KERNEL), _grid(t.product[c], _PRODUCT, t.padded)],
                         ["\u00d7", "="], [f"{t.names[0]}, window highlighted", "kernel", "element-wise product"]))
    note = _text.padding_note(t)
    if note:
        out.append(_p(note.replace("(v) marks a tap in the padding", "Grey cells are padding; taps in it"),
                      "color:#666"))
    out.append(_h("2. Their sum is the output element" if n_ch == 1 else
                  "2. Each channel's products add up; the channel sums add up to the output element"))
    if detailed:
        for c in range(n_ch):
            out.append(_p(("" if n_ch == 1 else _text.channel_label(t, c) + ": ") + _text.sum_line(t, c),
                          "font-family:monospace"))
    else:
        out.append(_p(f"{n_ch} input channels each give the sum of their {t.product[0].size} products; "
                      f"the {min(top, n_ch)} largest in size:"))
        best = _text.top_channels(t, top)
        rest = np.delete(t.channel_sums, best)
        rows = "".join(f'<tr><td style="{_CELL}">{t.channels[c]}</td>{_cell(t.channel_sums[c], _PRODUCT)}</tr>'
                       for c in best)
        if rest.size:
            rows += f'<tr><td style="{_CELL}">the other {rest.size} (together)</td>{_cell(rest.sum(), "")}</tr>'
        out.append(f'<table style="border-collapse:collapse"><tr><td style="{_HEAD}">channel</td>'
                   f'<td style="{_HEAD}">sum</td></tr>{rows}</table>')
        out.append(_p("largest single products: " + "; ".join(_text.product_term(t, ct)
                                                              for ct in _text.top_products(t, top))))
    tl = _text.total_line(t)
    if tl:
        out.append(_p(tl, "font-family:monospace"))
    out.append(_h("3. The same number is the dot product of the flattened window and kernel"))
    out.append('<pre style="margin:4px 0">' + escape("\n".join(_text.dot_lines(t, full))) + "</pre>")
    out.append(_h("4. All windows at once are one matrix multiply (im2col)"))
    out.append(_p(_text.im2col_line(t) + " " + _text.im2col_value(t)))
    fn = _text.flip_note(t)
    if fn:
        out.append(_p(fn, "font-style:italic"))
    out.append(f'<p style="margin:4px 0">output{escape(_text.index_str(t.index))} = '
               f'<span style="{_RESULT}">{escape(num(t.total))}</span></p>')
    out.append("</div>")
    return "\n".join(out)
