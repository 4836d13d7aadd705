"""Plain-text layout shared by the demo and the explain renderers: aligned grids, side by side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def num(v: object) -> str:
    """A number as a learner would write it: ints without '.0', floats with 4 significant digits."""
    if isinstance(v, (complex, np.complexfloating)):
        return f"{complex(v):.4g}"
    f = float(v)  # type: ignore[arg-type]
    if np.isfinite(f) and f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.4g}"


def grid(a: np.ndarray) -> list[str]:
    """Rows of a 1-D or 2-D array as right-aligned text, in brackets."""
    a = np.atleast_2d(np.asarray(a))
    cells = [[num(v) for v in row] for row in a]
    width = max((len(c) for row in cells for c in row), default=1)
    return ["[" + " ".join(c.rjust(width) for c in row) + "]" for row in cells]


def side_by_side(blocks: Sequence[Sequence[str]], between: Sequence[str] = (), titles: Sequence[str] = ()) -> str:
    """Place text blocks next to each other, vertically centred; ``between[i]`` goes after block i."""
    height = max(len(b) for b in blocks)
    widths = [max((len(s) for s in b), default=0) for b in blocks]
    if titles:
        widths = [max(w, len(t)) for w, t in zip(widths, titles)]
    seps = list(between) + [""] * (len(blocks) - len(between))
    lines = []
    if titles:
        parts = []
        for i, t in enumerate(titles):
            parts.append(t.ljust(widths[i]))
            if i < len(blocks) - 1:
                parts.append(" " * (len(seps[i]) + 2))
        lines.append("".join(parts).rstrip())
    for r in range(height):
        parts = []
        for i, b in enumerate(blocks):
            top = (height - len(b)) // 2
            cell = b[r - top] if 0 <= r - top < len(b) else ""
            parts.append(cell.ljust(widths[i]))
            if i < len(blocks) - 1:
                mid = r == height // 2
                parts.append(f" {seps[i]} " if mid and seps[i] else " " * (len(seps[i]) + 2))
        lines.append("".join(parts).rstrip())
    return "\n".join(lines)
