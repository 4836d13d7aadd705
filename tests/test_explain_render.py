"""Renderers of a Trace: text snapshots of the seed examples, HTML, rich, figures and GIFs (headless)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # headless: no display needed for figures

import io
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

import convdot
from convdot._fmt import num
from convdot.explain import _plot, _rich
from convdot.explain._extras import MissingExtraError

A = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
B = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
A3 = A[:3, :3]
B2 = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]])

SEED_CNN_3 = """\
conv2d(x, weight): output[0, 0] = 3
Cross-correlation, what a CNN layer computes: weight slides over x as it is, unflipped.
input (3, 3), kernel (3, 3); stride 1, padding 0, dilation 1 -> output (1, 1)

1. The window times the kernel, element by element
--------------------------------------------------
The window covers x rows 0..2, columns 0..2.
window    kernel    element-wise product
[1 1 1]   [1 0 0]   [1 0 0]
[0 1 1] * [0 1 0] = [0 1 0]
[0 0 1]   [1 0 1]   [0 0 1]

2. Their sum is the output element
----------------------------------
1*1 + 1*0 + 1*0 + 0*0 + 1*1 + 1*0 + 0*1 + 0*0 + 1*1 = 1 + 0 + 0 + 0 + 1 + 0 + 0 + 0 + 1 = 3

3. The same number is the dot product of the flattened window and kernel
------------------------------------------------------------------------
flattened: window.ravel() = [1 1 1 0 1 1 0 0 1]
           kernel.ravel() = [1 0 0 0 1 0 1 0 1]
np.dot(window.ravel(), kernel.ravel()) = 3: the same number as the sum of the element-wise product
(np.dot of the two grids unflattened would be a matrix product -- a different thing.)

4. All windows at once are one matrix multiply (im2col)
-------------------------------------------------------
W_row (1 x 9) holds one flattened filter per output channel, X_col (9 x 1) one flattened window per
output position; this element is row 0 of W_row times column 0 of X_col:
(W_row @ X_col)[0, 0] = 3

output[0, 0] = 3
"""

SEED_CONVOLVE_4 = """\
convolve2d(in1, in2, mode='valid'): output[0, 0] = 4
Convolution: in2 is flipped on every axis (rotated 180 degrees) before it slides over in1; a CNN
layer does not flip.
input (3, 3), kernel (3, 3); stride 1, padding 0, dilation 1 -> output (1, 1)

0. Flip in2 (rotate it 180 degrees)
-----------------------------------
in2 as given    flipped: the kernel as applied
[1 0 0]         [1 0 1]
[0 1 0]      -> [0 1 0]
[1 0 1]         [0 0 1]

1. The window times the kernel, element by element
--------------------------------------------------
The window covers in1 rows 0..2, columns 0..2.
window    kernel    element-wise product
[1 1 1]   [1 0 1]   [1 0 1]
[0 1 1] * [0 1 0] = [0 1 0]
[0 0 1]   [0 0 1]   [0 0 1]

2. Their sum is the output element
----------------------------------
1*1 + 1*0 + 1*1 + 0*0 + 1*1 + 1*0 + 0*0 + 0*0 + 1*1 = 1 + 0 + 1 + 0 + 1 + 0 + 0 + 0 + 1 = 4

3. The same number is the dot product of the flattened window and kernel
------------------------------------------------------------------------
flattened: window.ravel() = [1 1 1 0 1 1 0 0 1]
           kernel.ravel() = [1 0 1 0 1 0 0 0 1]
np.dot(window.ravel(), kernel.ravel()) = 4: the same number as the sum of the element-wise product
(np.dot of the two grids unflattened would be a matrix product -- a different thing.)

4. All windows at once are one matrix multiply (im2col)
-------------------------------------------------------
W_row (1 x 9) holds one flattened filter per output channel, X_col (9 x 1) one flattened window per
output position; this element is row 0 of W_row times column 0 of X_col:
(W_row @ X_col)[0, 0] = 4

Without the flip (correlate2d, what a CNN layer computes) this window gives 3: a different number,
because the kernel is not symmetric under a 180-degree rotation.
output[0, 0] = 4
"""


def test_text_snapshot_seed_cnn_value_3():
    assert str(convdot.explain(A3, B2, (0, 0))) + "\n" == SEED_CNN_3


def test_text_snapshot_seed_convolution_value_4():
    assert str(convdot.explain2d(A3, B2, (0, 0), "valid")) + "\n" == SEED_CONVOLVE_4


def test_repr_is_the_explanation():
    t = convdot.explain(A3, B2, (0, 0))
    assert repr(t) == str(t)


def test_text_marks_padding_and_names_where_reflected_values_come_from():
    t = convdot.explain(np.arange(1, 10).reshape(3, 3), np.ones((3, 3), dtype=int), (0, 0), padding=1,
                        padding_mode="reflect")
    text = str(t)
    assert "[(5) (4) (5)]" in text  # the top row of the window is padding: reflected row 1
    assert "x[-1, -1] is x[1, 1]" in text and "reflect padding" in text


def test_text_of_bias_and_channels():
    x = np.arange(2 * 4 * 4).reshape(2, 4, 4)
    w = np.ones((1, 2, 2, 2), dtype=int)
    t = convdot.explain(x, w, (0, 1, 1), bias=[-3])
    text = str(t)
    assert "channel 0:" in text and "channel 1:" in text
    assert f"channel sums {num(t.channel_sums[0])} + {num(t.channel_sums[1])}" in text
    assert f"plus bias (-3) = {num(t.total)}" in text


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.data: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ("br", "meta"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data):
        self.data.append(data.strip())


def _html_values(t, html):
    parser = _Collect()
    parser.feed(html)
    parser.close()
    assert parser.open == [], f"unclosed tags {parser.open}"
    cells = set(parser.data)
    text = " ".join(parser.data)
    for arr in (t.window, t.kernel, t.product, t.channel_sums):
        for v in np.asarray(arr).ravel():
            assert num(v) in cells or num(v) in text, f"{num(v)} missing"
    assert num(t.total) in cells
    if t.bias is not None:
        assert num(t.bias) in text
    return cells, text


@pytest.mark.parametrize("make", [
    lambda: convdot.explain(A3, B2, (0, 0)),
    lambda: convdot.explain2d(A3, B2, (0, 0), "valid"),
    lambda: convdot.explain(A, B2, (1, 2), padding=1, dilation=2, padding_mode="reflect"),
    lambda: convdot.explain(np.random.default_rng(0).standard_normal((1, 3, 6, 6)),
                            np.random.default_rng(1).standard_normal((2, 3, 3, 3)), (0, 1, 2, 3), bias=[0.5, -1.25]),
    lambda: convdot.explain([1, 2, 3, 4, 5], [1, 0, -1], (1,), padding=1),
])
def test_html_parses_and_contains_every_value(make):
    t = make()
    html = t._repr_html_()
    assert "<script" not in html and "<style" not in html  # self-contained, nothing leaks into a notebook
    _html_values(t, html)


def test_html_highlights_the_window_taps_in_the_input():
    t = convdot.explain(A, B2, (1, 2))
    html = t._repr_html_()
    assert html.count("background:#ffd95a") == 9  # the nine taps of the 3x3 window


def test_html_of_a_large_layer_is_a_summary_unless_full():
    rng = np.random.default_rng(0)
    t = convdot.explain(rng.standard_normal((1, 16, 40, 40)), rng.standard_normal((4, 16, 3, 3)), (0, 2, 20, 20))
    short, full = t._repr_html_(), t.to_html(full=True)
    assert len(short) < len(full) / 4
    _html_values(t, full)
    assert "the other 11 (together)" in short


def test_rich_rendering_has_the_values_and_colours():
    t = convdot.explain2d(A3, B2, (0, 0), "valid")
    plain = _rich.render(t, color=False)
    assert "output[0, 0] = 4" in plain and "1 + 0 + 1 + 0 + 1 + 0 + 0 + 0 + 1 = 4" in plain
    assert "\x1b[" not in plain
    coloured = _rich.render(t, color=True)
    assert "\x1b[" in coloured
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120)
    console.print(t)  # through Trace.__rich__
    assert "without the flip" in console.file.getvalue().lower()


def test_figure_is_drawn_headless_and_readable(tmp_path):
    t = convdot.explain2d(A3, B2, (0, 0), "valid")
    fig = _plot.figure(t)
    texts = [x.get_text() for ax in fig.axes for x in ax.texts] + [fig._suptitle.get_text()]
    assert any("= 4" in s for s in texts)
    assert len(fig.axes) == 9  # input, x, in2 given, flip, kernel, =, product, ->, sum
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buf.getvalue()) > 5000
    pf = convdot.explain(A, B2, (0, 1), padding=1, dilation=2).plot()  # through pyplot, as a user would
    import matplotlib.pyplot as plt

    assert plt.fignum_exists(pf.number)
    plt.close(pf)


def test_figure_of_channels_and_of_one_dimension():
    rng = np.random.default_rng(0)
    t = convdot.explain(rng.standard_normal((1, 12, 30, 30)), rng.standard_normal((2, 12, 3, 3)), (0, 1, 5, 5),
                        bias=[1.0, 2.0])
    fig = _plot.figure(t, channel=-1)
    assert any("channel 11 (part of 30x30)" in ax.get_title() for ax in fig.axes)  # cut to the window, readable
    bars = [ax for ax in fig.axes if ax.patches and "channel sums" in ax.get_title()]
    assert len(bars) == 1 and len(bars[0].patches) == 12  # 10 largest, "other 2", bias
    fig1 = _plot.figure(convdot.explain([1, 2, 3, 4, 5, 6], [1, 0, -1], (2,), padding=1))
    assert fig1.get_size_inches()[1] < fig.get_size_inches()[1]
    with pytest.raises(ValueError, match="plot: channel must be an int in \\[-12, 11\\]"):
        _plot.figure(t, channel=12)


def test_figures_refuse_what_they_cannot_show():
    t3 = convdot.explain(np.ones((1, 1, 3, 3, 3)), np.ones((1, 1, 2, 2, 2)), (0, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="plot: figures show 1-D and 2-D layers; this one has 3 spatial axes"):
        t3.plot()
    tc = convdot.explain2d(A3 + 1j, B2, (0, 0), "valid")
    with pytest.raises(ValueError, match="plot: figures show real values"):
        tc.plot()


def test_gif_has_one_frame_per_output_position(tmp_path):
    from PIL import Image

    t = convdot.explain(A, B, (0, 0))
    path = tmp_path / "slide.gif"
    assert convdot.animate(t, path, fps=4) == 9
    with Image.open(path) as im:
        assert im.n_frames == 9 and im.size[0] > 400
        assert im.info["loop"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["slide.gif"]  # no temp file left behind
    t1 = convdot.explain([0, 1, 2, 3, 4, 5], [1, -1], (0,), stride=2)  # 1-D, strided: 3 positions
    buf = io.BytesIO()
    assert convdot.animate(t1, buf) == 3
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.n_frames == 3


def test_gif_refuses_too_many_frames_and_bad_options():
    t = convdot.explain(np.zeros((20, 20)), np.ones((3, 3)), (0, 0))
    with pytest.raises(ValueError, match="animate: the output has 324 positions, more than max_frames=100"):
        convdot.animate(t, io.BytesIO())
    with pytest.raises(ValueError, match="animate: fps must be a number in"):
        convdot.animate(t, io.BytesIO(), fps=0)
    with pytest.raises(TypeError, match="animate: trace must be a Trace"):
        convdot.animate("trace", io.BytesIO())


def _hide(monkeypatch, top):
    """Make ``import top`` (and its submodules) fail, as if the package were not installed."""
    for name in list(sys.modules):
        if name == top or name.startswith(top + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, top, None)


@pytest.mark.parametrize(("top", "call", "package"), [
    ("matplotlib", lambda t: t.plot(), "matplotlib"),
    ("matplotlib", lambda t: convdot.animate(t, io.BytesIO()), "matplotlib"),
    ("PIL", lambda t: convdot.animate(t, io.BytesIO()), "Pillow"),
    ("rich", lambda t: _rich.render(t), "rich"),
])
def test_missing_extra_says_what_to_install(monkeypatch, top, call, package):
    t = convdot.explain(A3, B2, (0, 0))
    _hide(monkeypatch, top)
    expected = rf"needs {package}, which is not installed: pip install convdot\[plot\]"
    with pytest.raises(MissingExtraError, match=expected):
        call(t)
    assert "3" in str(t)  # text needs no extra
