"""Show the work: how one output element of a convolution is computed, in text, HTML, figures and GIFs.

:func:`explain` (PyTorch dialect) and :func:`explain2d` (SciPy dialect) record a :class:`Trace`
while computing the element; the renderers only read it. matplotlib, rich and Pillow are optional
(``pip install convdot[plot]``).
"""

from ._animate import animate
from ._record import explain, explain2d
from ._trace import Trace

__all__ = ["Trace", "animate", "explain", "explain2d"]
