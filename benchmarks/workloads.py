"""The problems ``convdot bench`` runs: CNN layers, large-image filters and a backward pass.

Each builder makes its arrays once (seeded) and returns a :class:`Case`: how convdot computes it
(``auto`` or one method), which single methods are worth timing, and the peers, all on the same
arrays. ``quick`` sizes keep the whole table under a minute for CI smoke runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import convdot
from convdot.algorithms import ALGORITHMS

from . import peers

#: convdot methods timed one by one against ``auto`` (``reference`` is the loop oracle: too slow).
SINGLE_METHODS = ("sliding", "im2col", "fft", "winograd")


@dataclass
class Case:
    """One workload, ready to run."""

    name: str
    problem: str  # human description, e.g. "N8 C64->64 56x56, 3x3, s1 p1"
    dtype: str
    flops: float  # 2 x multiply-adds of the direct sum (every contestant is credited the same work)
    io_bytes: int  # input + output bytes (the memory budget is 2x this)
    convdot: Callable[[str], object]  # method ("auto" or a name) -> output (or tuple of outputs)
    methods: tuple[str, ...]  # single methods that can run it
    estimates: dict[str, float]  # the planner's seconds per method (to skip hopeless ones)
    peers: list[tuple[str, Callable[[], peers.Thunk]]] = field(default_factory=list)
    peer_tol: dict[str, float] = field(default_factory=dict)  # per-peer agreement tolerance overriding ``tol``
    auto_method: str = "auto"  # what the planner picks for it
    tol: float = 1e-4  # agreement: max |peer - convdot| / max |convdot|
    available: bool = True
    note: str = ""


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, name)))


def _estimates(x: np.ndarray, w: np.ndarray, **kw) -> tuple[tuple[str, ...], dict[str, float], str]:
    """Single methods that can run the problem, the planner's estimate for each, and its choice."""
    plan = convdot.plan(x, w, **kw)
    spec = plan.spec
    methods = tuple(m for m in SINGLE_METHODS if m in ALGORITHMS and ALGORITHMS[m].unsupported(spec, x, w) is None)
    est = {m: float(v[0]) for m, v in getattr(plan, "estimates", {}).items()}
    return methods, est, plan.method


def cnn(name: str, n: int, c_in: int, c_out: int, side: int, k: int, *, stride: int = 1, padding: int = 0,
        dilation: int = 1, groups: int = 1, quick: bool = False) -> Case:
    """A float32 conv2d layer against ``torch.nn.functional.conv2d``."""
    if quick:  # one image, a quarter of the channels, half the side
        n, side = 1, max(8, side // 2)
        c_in, c_out, groups = max(1, c_in // 4), max(1, c_out // 4), max(1, groups // 4)
    rng = _rng(name)
    x = rng.standard_normal((n, c_in, side, side)).astype(np.float32)
    w = (rng.standard_normal((c_out, c_in // groups, k, k)) / math.sqrt(c_in // groups * k * k)).astype(np.float32)
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    methods, est, auto = _estimates(x, w, **kw)
    spec = convdot.plan(x, w, **kw).spec
    desc = f"N{n} C{c_in}->{c_out} {side}x{side}, {k}x{k}, s{stride} p{padding}"
    desc += (f" d{dilation}" if dilation > 1 else "") + (f" g{groups}" if groups > 1 else "")
    io = (x.size + math.prod(spec.out_shape)) * 4
    return Case(name, desc, "float32", 2.0 * spec.macs, io,
                lambda method: convdot.conv2d(x, w, method=method, **kw), methods, est,
                [("torch F.conv2d", lambda: peers.torch_conv2d(x, w, **kw))], auto_method=auto)


def filter2d(name: str, side: int, k: int, *, quick: bool = False) -> Case:
    """A float64 image correlated with a random k x k kernel, mode 'same', against SciPy and OpenCV."""
    if quick:
        side = 512
    rng = _rng(name)
    img = rng.standard_normal((side, side))
    ker = rng.standard_normal((k, k)) / k
    methods, est, auto = _estimates(img[None, None], ker[None, None], padding=k // 2)
    peer_list = [("scipy.signal.correlate2d", lambda: peers.scipy_correlate2d(img, ker))] if k <= 7 else []
    peer_list += [("scipy.signal.fftconvolve", lambda: peers.scipy_fftconvolve(img, ker)),
                  ("scipy.signal.oaconvolve", lambda: peers.scipy_oaconvolve(img, ker)),
                  ("scipy.ndimage.correlate", lambda: peers.scipy_ndimage(img, ker)),
                  ("cv2.filter2D (float32)", lambda: peers.cv2_filter2d(img, ker))]
    return Case(name, f"{side}x{side} float64 image, {k}x{k} kernel, 'same'", "float64", 2.0 * side * side * k * k,
                2 * img.nbytes, lambda method: convdot.correlate2d(img, ker, "same", method=method), methods, est,
                peer_list, auto_method=auto, tol=1e-9, peer_tol={"cv2.filter2D (float32)": 1e-5})


def backward(name: str, *, quick: bool = False) -> Case:
    """resnet-3x3-28's gradients of input and weight, against the kernel torch.autograd runs."""
    n, c, side = (2, 32, 14) if quick else (32, 128, 28)
    rng = _rng(name)
    x = rng.standard_normal((n, c, side, side)).astype(np.float32)
    w = (rng.standard_normal((c, c, 3, 3)) / math.sqrt(c * 9)).astype(np.float32)
    g = rng.standard_normal((n, c, side, side)).astype(np.float32)
    desc = f"N{n} C{c}->{c} {side}x{side}, 3x3, s1 p1: grad_x and grad_w"
    fn = getattr(convdot, "conv_backward", None)
    macs = n * c * c * 9 * side * side
    if fn is None:
        return Case(name, desc, "float32", 4.0 * macs, 3 * x.nbytes, lambda method: None, (), {},
                    available=False, note="convdot.conv_backward is not available in this build")
    methods, est, _ = _estimates(x, w, padding=1)

    def ours(method):
        gx, gw, _ = fn(g, x, w, padding=1, need=("x", "weight"), method=method)
        return gx, gw

    return Case(name, desc, "float32", 4.0 * macs, 3 * x.nbytes + w.nbytes, ours, methods, est,
                [("torch autograd", lambda: peers.torch_backward(g, x, w, padding=1))],
                auto_method="auto (per gradient)")


#: Every workload of the table: name -> builder(quick) -> Case.
WORKLOADS: dict[str, Callable[[bool], Case]] = {
    "resnet-3x3-56": lambda q: cnn("resnet-3x3-56", 8, 64, 64, 56, 3, padding=1, quick=q),
    "resnet-3x3-28": lambda q: cnn("resnet-3x3-28", 32, 128, 128, 28, 3, padding=1, quick=q),
    "resnet-3x3-14": lambda q: cnn("resnet-3x3-14", 8, 256, 256, 14, 3, padding=1, quick=q),
    "stem-7x7": lambda q: cnn("stem-7x7", 1, 3, 64, 224, 7, stride=2, padding=3, quick=q),
    "pointwise": lambda q: cnn("pointwise", 8, 256, 64, 56, 1, quick=q),
    "down-3x3": lambda q: cnn("down-3x3", 8, 128, 256, 28, 3, stride=2, padding=1, quick=q),
    "depthwise": lambda q: cnn("depthwise", 8, 256, 256, 56, 3, padding=1, groups=256, quick=q),
    "dilated": lambda q: cnn("dilated", 8, 64, 64, 56, 3, padding=2, dilation=2, quick=q),
    "filter-k3": lambda q: filter2d("filter-k3", 2048, 3, quick=q),
    "filter-k7": lambda q: filter2d("filter-k7", 2048, 7, quick=q),
    "filter-k15": lambda q: filter2d("filter-k15", 2048, 15, quick=q),
    "filter-k31": lambda q: filter2d("filter-k31", 2048, 31, quick=q),
    "backward-3x3": lambda q: backward("backward-3x3", quick=q),
}

#: Workloads run only when asked for by name (they need extras and minutes).
OPTIONAL = ("dask-filter",)

#: Groups for the targets: CNN layers other than the ResNet 3x3 ones, and the image filters.
CNN_OTHER = ("stem-7x7", "pointwise", "down-3x3", "depthwise", "dilated")
FILTERS = ("filter-k3", "filter-k7", "filter-k15", "filter-k31")
