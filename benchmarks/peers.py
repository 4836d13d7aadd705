"""Peer libraries run on the same arrays as convdot; each adapter returns a zero-argument callable.

A missing library raises :class:`Unavailable` ("not installed"); the harness records it and goes on.
Outputs come back as NumPy arrays in convdot's layout so they can be compared element by element.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

Thunk = Callable[[], object]


class Unavailable(Exception):
    """A peer that cannot run here; ``status`` is "not installed" or "skipped", the message says why."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _module(name: str, package: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise Unavailable("not installed", f"{package} is not installed (pip install convdot[bench])") from None


def version(name: str) -> str | None:
    """Installed version of a peer module, or None."""
    try:
        return str(importlib.import_module(name).__version__)
    except Exception:  # any import failure means "not there" for the report
        return None


# --------------------------------------------------------------------------- PyTorch


def torch_conv2d(x: np.ndarray, w: np.ndarray, **kw) -> Thunk:
    """``torch.nn.functional.conv2d`` on tensors sharing memory with ``x`` and ``w``."""
    torch = _module("torch", "torch")
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)

    def run():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, **kw).numpy()

    return run


def torch_backward(grad_out: np.ndarray, x: np.ndarray, w: np.ndarray, *, stride=1, padding=0, dilation=1,
                   groups=1) -> Thunk:
    """The kernel torch.autograd runs for conv2d's backward: ``aten.convolution_backward`` -> (grad_x, grad_w)."""
    torch = _module("torch", "torch")
    tg, tx, tw = torch.from_numpy(grad_out), torch.from_numpy(x), torch.from_numpy(w)
    def pair(v):
        return [v, v] if isinstance(v, int) else list(v)

    def run():
        with torch.no_grad():
            gx, gw, _ = torch.ops.aten.convolution_backward(tg, tx, tw, None, pair(stride), pair(padding),
                                                            pair(dilation), False, [0, 0], groups,
                                                            [True, True, False])
        return gx.numpy(), gw.numpy()

    return run


# --------------------------------------------------------------------------- SciPy


def scipy_correlate2d(img: np.ndarray, k: np.ndarray) -> Thunk:
    """``scipy.signal.correlate2d(img, k, 'same')``: the direct sum in compiled loops."""
    signal = _module("scipy.signal", "scipy")
    return lambda: signal.correlate2d(img, k, "same")


def scipy_fftconvolve(img: np.ndarray, k: np.ndarray) -> Thunk:
    """``scipy.signal.fftconvolve`` with the flipped kernel (a correlation), mode 'same'."""
    signal = _module("scipy.signal", "scipy")
    flipped = np.ascontiguousarray(k[::-1, ::-1])
    return lambda: signal.fftconvolve(img, flipped, "same")


def scipy_oaconvolve(img: np.ndarray, k: np.ndarray) -> Thunk:
    """``scipy.signal.oaconvolve`` (overlap-add) with the flipped kernel, mode 'same'."""
    signal = _module("scipy.signal", "scipy")
    flipped = np.ascontiguousarray(k[::-1, ::-1])
    return lambda: signal.oaconvolve(img, flipped, "same")


def scipy_ndimage(img: np.ndarray, k: np.ndarray) -> Thunk:
    """``scipy.ndimage.correlate(img, k, mode='constant')`` (zero boundary, centred like 'same' for odd k)."""
    ndimage = _module("scipy.ndimage", "scipy")
    return lambda: ndimage.correlate(img, k, mode="constant", cval=0.0)


# --------------------------------------------------------------------------- OpenCV


def cv2_filter2d(img: np.ndarray, k: np.ndarray) -> Thunk:
    """``cv2.filter2D`` on float32 copies (its fast path), zero border; a correlation like 'same' for odd k."""
    cv2 = _module("cv2", "opencv-python-headless")
    if k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise Unavailable("skipped", "cv2.filter2D centres even kernels differently from 'same'")
    img32, k32 = img.astype(np.float32), k.astype(np.float32)
    return lambda: cv2.filter2D(img32, -1, k32, borderType=cv2.BORDER_CONSTANT)
