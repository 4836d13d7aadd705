"""The ``convdot`` command line: ``convdot demo | ...``.

Each subcommand lives in its own module under :mod:`convdot.commands` with ``add_parser`` and
``run``; this module only finds them, parses the arguments and turns user errors into one line on
stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from . import __version__, commands


class UsageError(Exception):
    """A problem with what the user gave us: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convdot",
        description="Convolution as CNNs and signal processing use it: every formulation, shown and compared.",
        epilog="Example: convdot demo",
    )
    parser.add_argument("--version", action="version", version=f"convdot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``convdot`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # `convdot demo | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, TypeError, OSError, MemoryError) as exc:
        print(f"convdot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"convdot {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    # run the imported module's main: as __main__ this file's UsageError is a second class, which
    # the commands (importing convdot.cli) never raise, so their usage errors became tracebacks
    from convdot.cli import main as _main

    sys.exit(_main())
