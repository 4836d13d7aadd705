"""numba's on-disk cache knows a compiled function only by the source of the file that defines it
(numba 0.68 hashes that file's text), yet the kernels compile in functions and intrinsics from
other ``_*_jit`` modules. A module that does so carries a stamp line hashing those modules, so
that changing one changes the importer's text too and its stale cache is not loaded (after an
upgrade, say, that left the old cache files beside the new sources). This test keeps the stamps
current; its message gives the line to paste."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import convdot.algorithms

HERE = Path(convdot.algorithms.__file__).parent
PREFIX = "# numba cache stamp of the compiled-in modules:"
IMPORT = re.compile(r"^from \.(_\w+_jit) import", re.M)


def _text(name: str) -> str:
    """A module's source without its stamp line (so stamps can be computed in one pass)."""
    return "".join(line for line in (HERE / f"{name}.py").read_text().splitlines(True) if not line.startswith(PREFIX))


def _deps(name: str) -> set[str]:
    """The ``_*_jit`` modules ``name`` imports, directly or through another."""
    seen: set[str] = set()
    todo = IMPORT.findall(_text(name))
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(IMPORT.findall(_text(dep)))
    return seen


def test_every_compiled_in_module_is_in_the_importers_stamp():
    stale = []
    for path in sorted(HERE.glob("_*_jit.py")):
        deps = _deps(path.stem)
        lines = [line for line in path.read_text().splitlines() if line.startswith(PREFIX)]
        if not deps:
            assert not lines, f"{path.name} imports no _*_jit module: drop its stamp line"
            continue
        digest = hashlib.sha256("".join(d + _text(d) for d in sorted(deps)).encode()).hexdigest()[:16]
        want = f"{PREFIX} {digest} ({', '.join(sorted(deps))})"
        if lines != [want]:
            stale.append(f"{path.name}: {want}")
    assert not stale, "update the stamp lines (under the imports):\n" + "\n".join(stale)
