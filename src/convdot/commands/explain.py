"""``convdot explain``: how one output element is computed, as text, colour, HTML, a figure or a GIF."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import IO

from .._io import (
    INPUT_HELP,
    add_input_options,
    add_layer_options,
    layer_options,
    parse_ints,
    parse_matrix,
    read_array,
    write_atomic,
)

_EXAMPLES = """examples:
  convdot explain --input "1,1,1;0,1,1;0,0,1" --kernel "1,0,0;0,1,0;1,0,1" --index 0,0
      one output of a CNN layer: the sum of the element-wise product (3)
  convdot explain --input "1,1,1;0,1,1;0,0,1" --kernel "1,0,0;0,1,0;1,0,1" --index 0,0 --convolve
      mathematical convolution flips the kernel first (4)
  convdot explain -i image.png -k edge.csv --index 10,12 --padding 1 --format png --output slide.png
  convdot explain -i A.npy -k B.npy --index 0,0 --mode valid --convolve --animate sliding.gif
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "explain",
        help="show how one output element is computed: window, kernel, product, sum, dot product, im2col",
        description="Explain one output element of a convolution step by step: the window of the input "
                    "(padding taps marked), the kernel as applied, their element-wise product, the sum -- and "
                    f"that this is the dot product of the flattened window and kernel. Inputs: {INPUT_HELP}.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_options(p)
    p.add_argument("--index", required=True, metavar="I,J",
                   help="the output element, like 0,0 (negative counts from the end: --index=-1,0)")
    add_layer_options(p)
    s = p.add_argument_group("scipy.signal.convolve2d / correlate2d options (instead of the layer options)")
    s.add_argument("--mode", choices=("full", "valid", "same"),
                   help="explain convolve2d (with --convolve) or correlate2d with this output mode")
    s.add_argument("--boundary", choices=("fill", "wrap", "symm"), help="what lies outside the input (default fill)")
    s.add_argument("--fillvalue", metavar="V", help="the value of boundary=fill (default 0)")
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=("text", "rich", "html", "png"),
                   help="text (default), rich (colour terminal), html (a page), png (a figure; needs --output); "
                        "by default taken from --output's suffix")
    o.add_argument("--full", action="store_true", help="show every input channel's grids, however many")
    o.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of the terminal")
    o.add_argument("--animate", metavar="GIF", help="also write an animated GIF of the window sliding over the input")
    o.add_argument("--fps", type=float, default=2.0, help="frames per second of the GIF (default 2)")
    o.add_argument("--force", action="store_true", help="replace --output / --animate files that already exist")
    return p


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower() if args.output else ""
    return {".png": "png", ".html": "html", ".htm": "html"}.get(suffix, "text")


def _trace(args: argparse.Namespace):
    from .. import explain, explain2d
    from ..cli import UsageError

    index = parse_ints(args.index, "--index")
    scipy = args.mode is not None or args.boundary is not None or args.fillvalue is not None
    layer = layer_options(args)
    if scipy:
        if layer:
            given = ", ".join("--" + k.replace("_", "-") for k in layer)
            raise UsageError(f"--mode/--boundary/--fillvalue explain scipy.signal's convolve2d/correlate2d, "
                             f"which has no {given}; use one or the other")
        in1 = read_array(args.input, "--input")
        in2 = read_array(args.kernel, "--kernel")
        fill = 0 if args.fillvalue is None else parse_matrix(args.fillvalue, "--fillvalue")
        if getattr(fill, "ndim", 0) > 0:
            if fill.size != 1:
                raise ValueError(f"--fillvalue: expected one number, got {args.fillvalue!r}")
            fill = fill.reshape(()).item()
        return explain2d(in1, in2, index, args.mode or "full", args.boundary or "fill", fill, convolve=args.convolve)
    x = read_array(args.input, "--input")
    w = read_array(args.kernel, "--kernel")
    return explain(x, w, index, flip=args.convolve, **layer)


def run(args: argparse.Namespace) -> int:
    from ..cli import UsageError
    from ..explain._extras import MissingExtraError

    fmt = _format(args)
    if fmt == "png" and not args.output:
        raise UsageError("--format png draws a figure: give --output FILE.png")
    targets = [t for t in (args.output, args.animate) if t]
    if len(targets) == 2 and Path(targets[0]).resolve() == Path(targets[1]).resolve():
        raise UsageError("--output and --animate must be different files")
    for t in targets:
        if Path(t).exists() and not args.force:
            raise FileExistsError(f"{t!r} already exists; pass --force to replace it")
    if not 0 < args.fps <= 50:
        raise UsageError(f"--fps must be in (0, 50], got {args.fps}")
    trace = _trace(args)
    try:
        if args.output:
            write_atomic(args.output, lambda fh: _write(trace, fmt, args.full, fh), force=args.force)
            print(f"convdot explain: wrote {args.output} ({fmt})", file=sys.stderr)
        else:
            _print(trace, fmt, args.full)
        if args.animate:
            from ..explain import animate

            frames = []
            write_atomic(args.animate, lambda fh: frames.append(animate(trace, fh, fps=args.fps)), force=args.force)
            print(f"convdot explain: wrote {args.animate} ({frames[0]} frames)", file=sys.stderr)
    except MissingExtraError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _html_page(trace, full: bool) -> str:
    from html import escape

    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{escape(trace.call)}: output{escape(str(list(trace.index)))}</title></head>\n<body>\n"
            + trace.to_html(full=full) + "\n</body></html>\n")


def _write(trace, fmt: str, full: bool, fh: IO[bytes]) -> None:
    if fmt == "png":
        from ..explain._extras import require
        from ..explain._plot import figure

        backend = require("matplotlib.backends.backend_agg", "figures (--format png)")
        fig = figure(trace, pyplot=False)
        backend.FigureCanvasAgg(fig)
        fig.savefig(fh, format="png", dpi=150)
        return
    if fmt == "html":
        text = _html_page(trace, full)
    elif fmt == "rich":
        from ..explain._rich import render

        text = render(trace, full=full, color=True)
    else:
        text = trace.to_text(full=full) + "\n"
    fh.write(text.encode("utf-8"))


def _print(trace, fmt: str, full: bool) -> None:
    try:
        _print_to_stdout(trace, fmt, full)
    except BrokenPipeError:  # `convdot explain ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again


def _print_to_stdout(trace, fmt: str, full: bool) -> None:
    if fmt == "rich":
        from ..explain._extras import require
        from ..explain._rich import _renderable

        console = require("rich.console", "coloured terminal output (--format rich)")
        console.Console(highlight=False).print(_renderable(trace, full=full, max_channels=4, top=5))
    elif fmt == "html":
        print(_html_page(trace, full), end="")
    else:
        print(trace.to_text(full=full))
