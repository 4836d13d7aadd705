"""``convdot plan``: which method ``method="auto"`` takes for a problem, and why."""

from __future__ import annotations

import argparse

from .._io import INPUT_HELP, add_input_options, add_layer_options, layer_options, read_layer

_EXAMPLES = """examples:
  convdot plan --input "1,1,1;0,1,1;0,0,1" --kernel "1,0,0;0,1,0;1,0,1"
  convdot plan -i x.npy -k w.npy --padding 1 --stride 2
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "plan",
        help='which method method="auto" takes for a problem, and why',
        description='Print the plan convdot.plan makes for this input and kernel: the method method="auto" '
                    f"would run, and the reason. Inputs: {INPUT_HELP}.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_options(p)
    add_layer_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from .. import plan
    from ..explain._record import _flip

    x, w, _ = read_layer(args, "plan")
    if args.convolve and w.ndim >= 3:
        w = _flip(w)
    print(plan(x, w, **layer_options(args)))
    return 0
