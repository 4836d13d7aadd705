"""convdot: convolution as CNNs and signal processing use it, in every formulation.

One output of a convolution layer is the sum of the element-wise product of a window and the
kernel -- the dot product of the two flattened; all windows at once are one matrix multiply.
"""

from ._spec import METHODS
from .compare import Comparison, compare
from .explain import Trace, animate, explain, explain2d
from .grad import conv_backward, conv_backward1d, conv_backward2d, conv_backward3d
from .grad_explain import GradTrace, explain_grad
from .nn import (
    conv,
    conv1d,
    conv2d,
    conv3d,
    conv_transpose,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from .planner import Plan, plan
from .signal import convolve, convolve2d, correlate, correlate2d
from .tuning import tune

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "Comparison",
    "GradTrace",
    "Plan",
    "Trace",
    "__version__",
    "animate",
    "compare",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_backward",
    "conv_backward1d",
    "conv_backward2d",
    "conv_backward3d",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "explain",
    "explain2d",
    "explain_grad",
    "plan",
    "tune",
]
