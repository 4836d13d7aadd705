"""One module per formulation, all with one signature: ``run(x, w, spec) -> out``.

Each module also has ``unsupported(spec, x, w) -> str | None`` giving the reason it cannot
compute a problem, or None.
"""

from __future__ import annotations

from types import ModuleType

from . import fft, im2col, reference, sliding, winograd
from ._common import NonFiniteInput

__all__ = ["ALGORITHMS", "NonFiniteInput"]

ALGORITHMS: dict[str, ModuleType] = {
    "reference": reference,
    "sliding": sliding,
    "im2col": im2col,
    "fft": fft,
    "winograd": winograd,
}
