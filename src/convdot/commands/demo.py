"""``convdot demo``: answer "dot product or sum of element-wise products?" on the seed examples."""

from __future__ import annotations

import argparse

from ..demo import demo_text


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="answer the source question on its worked examples, then race every method on a CNN layer",
        description="Shows that one output of a CNN layer is the sum of an element-wise product, that this is "
                    "the dot product of the flattened window and kernel, that all windows are one matrix "
                    "multiply, and where convolution's kernel flip comes in.",
        epilog="Example: convdot demo",
    )
    return p


def run(args: argparse.Namespace) -> int:
    print(demo_text())
    return 0
