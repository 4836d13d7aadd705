"""``convdot demo``: answer "dot product or sum of element-wise products?" on the seed examples."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..demo import demo_text

#: What ``--figures DIR`` writes: the seed example's explanation figures and its animation.
FIGURES = ("seed_cnn_3.png", "seed_convolve_4.png", "seed_sliding.gif")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="answer the source question on its worked examples, then race every method on a CNN layer",
        description="Shows that one output of a CNN layer is the sum of an element-wise product, that this is "
                    "the dot product of the flattened window and kernel, that all windows are one matrix "
                    "multiply, and where convolution's kernel flip comes in.",
        epilog="Examples: convdot demo\n          convdot demo --figures slides/   (needs pip install convdot[plot])",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--figures", metavar="DIR",
                   help=f"also save the seed example's figures and animation in DIR ({', '.join(FIGURES)})")
    p.add_argument("--force", action="store_true", help="replace figures that already exist in DIR")
    return p


def save_figures(folder: str, *, force: bool) -> list[Path]:
    """Write the seed example's explanation figures (CNN value 3, convolution value 4) and GIF into ``folder``."""
    from .._io import write_atomic
    from ..demo import A3, B2, A, B
    from ..explain import animate, explain, explain2d
    from ..explain._extras import require
    from ..explain._plot import figure

    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--figures: {folder!r} is a file, not a directory")
    paths = [out / name for name in FIGURES]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                              "pass --force to replace")
    backend = require("matplotlib.backends.backend_agg", "convdot demo --figures")
    require("PIL.Image", "convdot demo --figures")
    out.mkdir(parents=True, exist_ok=True)
    for path, trace in zip(paths[:2], (explain(A3, B2, (0, 0)), explain2d(A3, B2, (0, 0), "valid"))):
        fig = figure(trace)
        backend.FigureCanvasAgg(fig)
        write_atomic(path, lambda fh, fig=fig: fig.savefig(fh, format="png", dpi=150), force=True)
    write_atomic(paths[2], lambda fh: animate(explain2d(A, B, (0, 0), "valid"), fh, fps=1.5), force=True)
    return paths


def run(args: argparse.Namespace) -> int:
    from ..cli import UsageError
    from ..explain._extras import MissingExtraError

    if args.figures:  # refuse before the long demo, not after it
        targets = [Path(args.figures) / name for name in FIGURES]
        if not args.force and any(p.exists() for p in targets):
            raise FileExistsError(f"--figures: {args.figures!r} already holds the figures; "
                                  "pass --force to replace them")
    print(demo_text())
    if args.figures:
        try:
            paths = save_figures(args.figures, force=args.force)
        except MissingExtraError as exc:
            raise UsageError(str(exc)) from None
        print("\nFigures for a slide:", *(f"  {p}" for p in paths), sep="\n")
        sys.stdout.flush()
    return 0
