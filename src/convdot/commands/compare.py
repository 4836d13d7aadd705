"""``convdot compare``: every method on one problem -- max error against the reference loop, and time."""

from __future__ import annotations

import argparse

from .._io import INPUT_HELP, add_input_options, add_layer_options, layer_options, read_layer

_EXAMPLES = """examples:
  convdot compare --input "1,1,1,0,0;0,1,1,1,0;0,0,1,1,1;0,0,1,1,0;0,1,1,0,0" --kernel "1,0,1;0,1,0;1,0,1"
  convdot compare -i x.npy -k w.npy --padding 1 --methods im2col,fft --repeat 5
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="run every method on one problem: max error vs the reference loop, and time",
        description="Run every convolution method convdot has on the same input and kernel and print, per "
                    "method, its largest difference from the reference loop and its best time. "
                    f"Inputs: {INPUT_HELP}.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_options(p)
    add_layer_options(p)
    p.add_argument("--methods", metavar="M,M", help="which methods to run, like im2col,fft (default: all)")
    p.add_argument("--repeat", metavar="N", default="3", help="time each method N times, keep the best (default 3)")
    return p


def run(args: argparse.Namespace) -> int:
    from .. import compare
    from .._io import parse_ints
    from ..explain._record import _flip

    x, w, _ = read_layer(args, "compare")
    if args.convolve and w.ndim >= 3:
        w = _flip(w)
    repeat = parse_ints(args.repeat, "--repeat")
    if len(repeat) != 1:
        raise ValueError(f"--repeat: expected one integer, got {args.repeat!r}")
    kw = layer_options(args)
    if args.methods:
        kw["methods"] = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    print(compare(x, w, repeat=repeat[0], **kw))
    return 0
