"""Parse every user argument once into a frozen :class:`ConvSpec`.

All user-facing validation lives here so that each rule has exactly one wording. The
algorithms receive a canonical problem -- ``x`` of shape ``(N, C_in, *spatial)``, ``w`` of
shape ``(C_out, C_in/groups, *k)``, explicit ``(lo, hi)`` pads -- and never parse anything.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Every formulation convdot implements, slowest and most literal first.
METHODS: tuple[str, ...] = ("reference", "sliding", "im2col", "fft", "winograd")

#: padding_mode names of the PyTorch dialect and the numpy.pad mode each one means.
PAD_MODES = {
    "zeros": "constant",
    "constant": "constant",  # SciPy's boundary='fill' with a fillvalue
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",  # SciPy's boundary='symm'
}


@dataclass(frozen=True)
class ConvSpec:
    """A canonical convolution problem: a strided, dilated, grouped cross-correlation.

    ``out[n, g*Cog + o, i] = sum_{c, k} xpad[n, g*Cg + c, i*stride + k*dilation] * w[g*Cog + o, c, k]``
    where ``xpad`` is ``x`` padded by ``pads`` with ``padding_mode``.
    """

    func: str  # the public function the user called, for messages
    x_shape: tuple[int, ...]  # (N, C_in, *spatial)
    w_shape: tuple[int, ...]  # (C_out, C_in/groups, *k)
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    groups: int
    padding_mode: str = "zeros"
    fillvalue: Any = 0
    dtype: np.dtype = field(default=np.dtype(np.float64))  # dtype the algorithms compute in
    out_shape: tuple[int, ...] = ()

    @property
    def nd(self) -> int:
        """Number of spatial axes."""
        return len(self.x_shape) - 2

    @property
    def kernel(self) -> tuple[int, ...]:
        """Spatial kernel shape."""
        return self.w_shape[2:]

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Spatial shape of ``x`` after padding."""
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.x_shape[2:], self.pads))

    @property
    def is_exact(self) -> bool:
        """True when the problem is integer and must be computed exactly."""
        return self.dtype.kind == "i"

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the direct sum (the work every method is measured by)."""
        n, c_in = self.x_shape[:2]
        return int(n * self.w_shape[0] * c_in // self.groups * np.prod(self.kernel) * np.prod(self.out_shape[2:]))


def out_size(n: int, k: int, stride: int, dilation: int, lo: int, hi: int) -> int:
    """Output length of one axis: ``floor((n + lo + hi - d*(k-1) - 1) / s) + 1``."""
    return (n + lo + hi - dilation * (k - 1) - 1) // stride + 1


def transposed_out_size(n: int, k: int, stride: int, dilation: int, lo: int, hi: int, output_padding: int) -> int:
    """Output length of one axis of a transposed convolution."""
    return (n - 1) * stride - lo - hi + dilation * (k - 1) + output_padding + 1


# --------------------------------------------------------------------------- arrays


def as_array(func: str, name: str, value: Any) -> np.ndarray:
    """Turn any array-like (lists, NumPy arrays, torch tensors) into a numeric ndarray."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, maybe requiring grad
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise TypeError(f"{func}: {name} must be a numeric array, could not convert it ({exc})") from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"{func}: {name} must be a numeric array (bool, int, float or complex), got dtype {arr.dtype}")
    return arr


def compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """The dtype convdot computes in: integers and bools exactly in int64, float16 in float32."""
    rt = np.result_type(*arrays)
    if rt.kind in "biu":
        return np.dtype(np.int64)
    if rt.kind == "f":
        return np.dtype(np.float64) if rt.itemsize >= 8 else np.dtype(np.float32)
    return np.dtype(np.complex128) if rt.itemsize >= 16 else np.dtype(np.complex64)


def result_dtype(*arrays: np.ndarray) -> np.dtype:
    """The dtype handed back to the user (float16 stays float16; integers become int64)."""
    rt = np.result_type(*arrays)
    return np.dtype(np.float16) if rt == np.float16 else compute_dtype(*arrays)


# --------------------------------------------------------------------------- scalars


def _int(func: str, name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{func}: {name} must be an int or a tuple of ints, got {value!r}")
    return operator.index(value)


def per_axis(func: str, name: str, value: Any, nd: int, minimum: int) -> tuple[int, ...]:
    """An int, or one int per spatial axis (a 1-tuple is broadcast, as in PyTorch)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        vals = tuple(_int(func, name, v) for v in value)
        if len(vals) == 1:
            vals = vals * nd
        if len(vals) != nd:
            raise ValueError(f"{func}: {name} must be an int or {nd} ints (one per spatial axis), got {tuple(value)!r}")
    elif isinstance(value, np.ndarray):
        return per_axis(func, name, value.tolist(), nd, minimum)
    else:
        vals = (_int(func, name, value),) * nd
    if any(v < minimum for v in vals):
        raise ValueError(f"{func}: {name} must be >= {minimum} on every axis, got {value!r}")
    return vals


def parse_padding(func: str, padding: Any, nd: int, kernel: Sequence[int], dilation: Sequence[int],
                  stride: Sequence[int], *, strings: bool = True) -> tuple[tuple[int, int], ...]:
    """int | one int or (lo, hi) pair per axis | "same" | "valid" -> explicit (lo, hi) per axis."""
    if isinstance(padding, str):
        if not strings:
            raise ValueError(f"{func}: padding must be an int, a tuple of ints or of (lo, hi) pairs, got {padding!r}")
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{func}: padding='same' is not supported for strided convolutions "
                                 f"(stride={tuple(stride)}), as in PyTorch; give explicit padding")
            totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"{func}: padding must be 'same', 'valid', an int or a tuple, got {padding!r}")
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if isinstance(padding, Sequence):
        items = list(padding)
        if len(items) == 1 and nd > 1:
            items = items * nd
        if len(items) != nd:
            raise ValueError(f"{func}: padding must be an int or {nd} entries (one int or (lo, hi) pair per "
                             f"spatial axis), got {tuple(padding)!r}")
        pads = []
        for item in items:
            if isinstance(item, Sequence) and not isinstance(item, str):
                if len(item) != 2:
                    raise ValueError(f"{func}: each padding pair must be (lo, hi), got {tuple(item)!r}")
                pads.append((_int(func, "padding", item[0]), _int(func, "padding", item[1])))
            else:
                p = _int(func, "padding", item)
                pads.append((p, p))
    else:
        p = _int(func, "padding", padding)
        pads = [(p, p)] * nd
    if any(v < 0 for pair in pads for v in pair):
        raise ValueError(f"{func}: padding must be >= 0, got {padding!r}")
    return tuple(pads)


def parse_method(func: str, method: Any, *, scipy: bool = False) -> str:
    """Validate ``method``: "auto" or a name in METHODS (plus "direct" in the SciPy dialect)."""
    allowed = ("auto", *METHODS) + (("direct",) if scipy else ())
    if not isinstance(method, str) or method not in allowed:
        raise ValueError(f"{func}: method must be one of {', '.join(map(repr, allowed))}, got {method!r}")
    return method


def check_shapes(spec: ConvSpec) -> None:
    """Reject problems whose output would be empty."""
    if any(o <= 0 for o in spec.out_shape[2:]):
        raise ValueError(
            f"{spec.func}: output size {tuple(spec.out_shape[2:])} is not positive: input spatial shape "
            f"{spec.x_shape[2:]} padded by {list(spec.pads)} is smaller than the dilated kernel "
            f"(kernel {spec.kernel}, dilation {spec.dilation})")


def parse_bare_layer(func: str, x: Any, weight: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Let a plain signal/image and kernel stand for a one-channel layer (explain's convenience).

    ``x`` and ``weight`` of the same rank 1 or 2 become ``(1, *n)`` and ``(1, 1, *k)``; an ``x``
    without a channel axis under a weight with one input channel becomes ``(1, *n)``; anything else
    is returned as it is, for :func:`parse_conv` to judge. The flag is True when both were bare.
    """
    xa = as_array(func, "x", x)
    wa = as_array(func, "weight", weight)
    if wa.ndim in (1, 2) and xa.ndim == wa.ndim:
        return xa[None], wa[None, None], True  # (1, *n), (1, 1, *k)
    if wa.ndim >= 3 and xa.ndim == wa.ndim - 2 and wa.shape[1] == 1:
        return xa[None], wa, False  # (1, *n): one channel, unbatched
    if xa.ndim in (1, 2) and wa.ndim in (1, 2):
        raise ValueError(f"{func}: a bare signal or image and its kernel must have the same number of dimensions, "
                         f"got x of shape {xa.shape} and weight of shape {wa.shape}")
    return xa, wa, False


def parse_flag(func: str, name: str, value: Any) -> bool:
    """A True/False option (``flip``, ``convolve``): a stray string or number is a mistake, not a truth value."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be True or False, got {value!r}")
    return bool(value)


def parse_index(func: str, index: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """One element of an output of ``shape``: an int per axis, negatives counting from the end as in NumPy.

    Leading axes of size 1 may be left out: ``(i, j)`` names an element of a ``(1, 1, H, W)`` output.
    """
    if isinstance(index, np.ndarray):
        index = index.tolist()
    if isinstance(index, numbers.Integral) and not isinstance(index, (bool, np.bool_)):
        index = (index,)
    if not isinstance(index, Sequence) or isinstance(index, str):
        raise TypeError(f"{func}: index must be an int or a tuple of ints, got {index!r}")
    idx = tuple(_int(func, "index", i) for i in index)
    skip = len(shape) - len(idx)
    if skip < 0 or any(n != 1 for n in shape[:skip]):
        raise ValueError(f"{func}: index {idx} must have {len(shape)} entries, one per axis of the output "
                         f"(shape {shape}; leading axes of size 1 may be left out)")
    full = (0,) * skip + idx
    for axis, (i, n) in enumerate(zip(full, shape)):
        if not -n <= i < n:
            raise ValueError(f"{func}: index {idx} is out of range for the output of shape {shape}: "
                             f"axis {axis} has size {n}, so its index must be in [{-n}, {n - 1}], got {i}")
    return tuple(i % n for i, n in zip(full, shape))


# --------------------------------------------------------------------------- PyTorch dialect


def _check_pad_mode(func: str, padding_mode: Any, x_spatial: Sequence[int], pads: Sequence[tuple[int, int]]) -> str:
    modes = ("zeros", "reflect", "replicate", "circular")
    if padding_mode not in modes:
        raise ValueError(f"{func}: padding_mode must be one of {', '.join(map(repr, modes))}, got {padding_mode!r}")
    for n, (lo, hi) in zip(x_spatial, pads):
        if padding_mode == "reflect" and max(lo, hi) >= n:
            raise ValueError(f"{func}: padding_mode='reflect' needs padding < input size on every axis, "
                             f"got padding {list(pads)} for spatial shape {tuple(x_spatial)}")
        if padding_mode == "circular" and max(lo, hi) > n:
            raise ValueError(f"{func}: padding_mode='circular' needs padding <= input size on every axis, "
                             f"got padding {list(pads)} for spatial shape {tuple(x_spatial)}")
    return padding_mode


def _conv_arrays(func: str, x: Any, weight: Any, bias: Any, nd: int | None, groups: Any, transposed: bool):
    x = as_array(func, "x", x)
    w = as_array(func, "weight", weight)
    wform = "(C_in, C_out/groups, *k)" if transposed else "(C_out, C_in/groups, *k)"
    inferred = ""
    if nd is None:
        if w.ndim < 3:
            raise ValueError(f"{func}: weight must have shape {wform} with at least one spatial axis, "
                             f"got shape {w.shape}")
        nd = w.ndim - 2
        inferred = f" for the {nd}-D convolution that weight of shape {w.shape} makes"
    elif w.ndim != nd + 2:
        raise ValueError(f"{func}: weight must be {nd + 2}-D {wform}, got shape {w.shape}")
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"{func}: x must be {nd + 2}-D (N, C_in, *spatial) or {nd + 1}-D unbatched (C_in, *spatial)"
                         f"{inferred}, got shape {x.shape}")
    batched = x.ndim == nd + 2
    x4 = x if batched else x[None]
    if w.size == 0:
        raise ValueError(f"{func}: weight is empty (shape {w.shape}); every axis of the kernel must be >= 1")
    groups = _int(func, "groups", groups)
    if groups < 1:
        raise ValueError(f"{func}: groups must be >= 1, got {groups}")
    b = None
    if bias is not None:
        b = as_array(func, "bias", bias)
    return x4, w, b, nd, batched, groups


def _check_bias(func: str, b: np.ndarray | None, c_out: int) -> None:
    if b is not None and b.shape != (c_out,):
        raise ValueError(f"{func}: bias must have shape ({c_out},) (one value per output channel), got shape {b.shape}")


@dataclass(frozen=True)
class Parsed:
    """What the dialect layers get back: canonical arrays and the spec."""

    x: np.ndarray  # (N, C_in, *spatial)
    w: np.ndarray  # (C_out, C_in/groups, *k), already transformed for transposed convolution
    bias: np.ndarray | None
    spec: ConvSpec
    batched: bool
    out_dtype: np.dtype
    crop: tuple[tuple[int, int], ...] | None = None  # (lo, hi) to crop off the output (transposed)
    input_dilation: tuple[int, ...] | None = None  # zeros inserted between inputs (transposed)


def parse_conv(func: str, x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: Any = 1, padding_mode: Any = "zeros", nd: int | None = None) -> Parsed:
    """Validate a PyTorch-dialect convolution and return its canonical form."""
    x4, w, b, nd, batched, groups = _conv_arrays(func, x, weight, bias, nd, groups, transposed=False)
    stride = per_axis(func, "stride", stride, nd, 1)
    dilation = per_axis(func, "dilation", dilation, nd, 1)
    c_in, c_out, cg = x4.shape[1], w.shape[0], w.shape[1]
    if c_in % groups:
        raise ValueError(f"{func}: groups={groups} must divide the {c_in} input channels of x (shape {x4.shape})")
    if c_out % groups:
        raise ValueError(f"{func}: groups={groups} must divide the {c_out} output channels of weight (shape {w.shape})")
    if cg * groups != c_in:
        raise ValueError(f"{func}: weight has {cg} input channels per group but x has {c_in} channels "
                         f"(groups={groups}); weight.shape[1] must be {c_in // groups}")
    _check_bias(func, b, c_out)
    pads = parse_padding(func, padding, nd, w.shape[2:], dilation, stride)
    padding_mode = _check_pad_mode(func, padding_mode, x4.shape[2:], pads)
    arrays = [x4, w] + ([b] if b is not None else [])
    spatial = tuple(out_size(n, k, s, d, lo, hi)
                    for n, k, s, d, (lo, hi) in zip(x4.shape[2:], w.shape[2:], stride, dilation, pads))
    spec = ConvSpec(func, x4.shape, w.shape, stride, dilation, pads, groups, padding_mode,
                    dtype=compute_dtype(*arrays), out_shape=(x4.shape[0], c_out, *spatial))
    check_shapes(spec)
    return Parsed(x4, w, b, spec, batched, result_dtype(*arrays))


def parse_conv_transpose(func: str, x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                         output_padding: Any = 0, groups: Any = 1, dilation: Any = 1,
                         nd: int | None = None) -> Parsed:
    """Validate a transposed convolution and express it as a forward one.

    A transposed convolution is the forward convolution of ``x`` with zeros inserted between its
    elements (``stride - 1`` per gap), padded by ``d*(k-1)`` on both sides (less the cropped
    ``lo``/``hi``, plus ``output_padding`` on the high side), with the kernel flipped and its
    in/out channel axes swapped within each group.
    """
    x4, w, b, nd, batched, groups = _conv_arrays(func, x, weight, bias, nd, groups, transposed=True)
    stride = per_axis(func, "stride", stride, nd, 1)
    dilation = per_axis(func, "dilation", dilation, nd, 1)
    output_padding = per_axis(func, "output_padding", output_padding, nd, 0)
    c_in = x4.shape[1]
    if w.shape[0] != c_in:
        raise ValueError(f"{func}: weight.shape[0]={w.shape[0]} must equal the {c_in} input channels of x "
                         f"(shape {x4.shape}); conv_transpose weight is (C_in, C_out/groups, *k)")
    if c_in % groups:
        raise ValueError(f"{func}: groups={groups} must divide the {c_in} input channels of x (shape {x4.shape})")
    c_out = w.shape[1] * groups
    _check_bias(func, b, c_out)
    pads = parse_padding(func, padding, nd, w.shape[2:], dilation, stride, strings=False)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"{func}: output_padding={tuple(output_padding)} must be smaller than either stride "
                             f"{tuple(stride)} or dilation {tuple(dilation)} on every axis")
    k = w.shape[2:]
    spatial = tuple(transposed_out_size(n, kk, s, d, lo, hi, op)
                    for n, kk, s, d, (lo, hi), op in zip(x4.shape[2:], k, stride, dilation, pads, output_padding))
    if any(o <= 0 for o in spatial):
        raise ValueError(f"{func}: output size {spatial} is not positive for input spatial shape {x4.shape[2:]}, "
                         f"kernel {k}, stride {stride}, padding {list(pads)}, dilation {dilation}")
    # (C_in, C_out/G, *k) -> (G, C_in/G, C_out/G, *k) -> (G, C_out/G, C_in/G, *k) -> (C_out, C_in/G, *k), flipped
    g_in = c_in // groups
    wf = w.reshape(groups, g_in, w.shape[1], *k).swapaxes(1, 2).reshape(c_out, g_in, *k)
    wf = wf[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    full = tuple(d * (kk - 1) for d, kk in zip(dilation, k))
    # Negative effective padding is a crop of the output (PyTorch's padding > d*(k-1)).
    eff = tuple((f - lo, f - hi + op) for f, (lo, hi), op in zip(full, pads, output_padding))
    crop = tuple((max(0, -a), max(0, -b_)) for a, b_ in eff)
    eff = tuple((max(0, a), max(0, b_)) for a, b_ in eff)
    dil_shape = tuple((n - 1) * s + 1 for n, s in zip(x4.shape[2:], stride))
    fwd = tuple(out_size(n, kk, 1, d, lo, hi) for n, kk, d, (lo, hi) in zip(dil_shape, k, dilation, eff))
    arrays = [x4, w] + ([b] if b is not None else [])
    spec = ConvSpec(func, (x4.shape[0], c_in, *dil_shape), wf.shape, (1,) * nd, dilation, eff, groups,
                    dtype=compute_dtype(*arrays), out_shape=(x4.shape[0], c_out, *fwd))
    check_shapes(spec)
    return Parsed(x4, wf, b, spec, batched, result_dtype(*arrays), crop=crop, input_dilation=stride)


# --------------------------------------------------------------------------- SciPy dialect

_BOUNDARIES = {"fill": "constant", "pad": "constant", "wrap": "circular", "circular": "circular",
               "symm": "symmetric", "symmetric": "symmetric"}
_MODES = ("full", "same", "valid")


def parse_signal(func: str, in1: Any, in2: Any, mode: Any, *, convolve: bool, boundary: Any = "fill",
                 fillvalue: Any = 0, two_d: bool = False) -> Parsed:
    """Validate a SciPy-dialect call and express it as a one-channel correlation.

    correlate conjugates ``in2`` (complex) and convolve flips it on every axis; the modes are
    padding choices on the full output: 'full' pads ``k-1``, 'same' crops it to ``in1``'s shape
    with SciPy's centring, 'valid' keeps what needs no padding (either input may be the larger).
    """
    a = as_array(func, "in1", in1)
    v = as_array(func, "in2", in2)
    if two_d and not (a.ndim == v.ndim == 2):
        raise ValueError(f"{func}: in1 and in2 must both be 2-D arrays, got shapes {a.shape} and {v.shape}")
    if a.ndim != v.ndim:
        raise ValueError(f"{func}: in1 and in2 must have the same number of dimensions, "
                         f"got shapes {a.shape} and {v.shape}")
    if mode not in _MODES:
        raise ValueError(f"{func}: mode must be 'full', 'same' or 'valid', got {mode!r}")
    if boundary not in _BOUNDARIES:
        raise ValueError(f"{func}: boundary must be 'fill', 'wrap' or 'symm', got {boundary!r}")
    if a.size == 0 or v.size == 0:
        raise ValueError(f"{func}: in1 (shape {a.shape}) and in2 (shape {v.shape}) must both be non-empty")
    if np.ndim(fillvalue) != 0:
        raise ValueError(f"{func}: fillvalue must be a scalar, got an array of shape {np.shape(fillvalue)}")
    if a.ndim == 0:  # scalars: a product, as in SciPy
        a, v = a.reshape(1), v.reshape(1)
    if mode == "valid":
        if not (all(n1 >= n2 for n1, n2 in zip(a.shape, v.shape)) or all(n2 >= n1 for n1, n2 in zip(a.shape, v.shape))):
            raise ValueError(f"{func}: for mode='valid' one input must be at least as large as the other in every "
                             f"dimension, got shapes {a.shape} and {v.shape}")
    swapped = mode == "valid" and any(n2 > n1 for n1, n2 in zip(a.shape, v.shape))
    if convolve:
        v = v[(slice(None, None, -1),) * v.ndim]
    elif two_d and swapped and (a.dtype.kind == "c" or v.dtype.kind == "c"):
        # SciPy's correlate2d undoes its input swap by reversing the output without conjugating it,
        # so for complex input it returns the conjugate of the correlation: conj(in1) with in2.
        a = np.conj(a)
    elif v.dtype.kind == "c":
        v = np.conj(v)
    pads = []
    for n1, n2 in zip(a.shape, v.shape):
        if mode == "full":
            pads.append((n2 - 1, n2 - 1))
        elif mode == "valid":
            pads.append((max(0, n2 - n1),) * 2)  # in2 larger: SciPy swaps the inputs
        else:
            # Output i is full-output index i + start; SciPy centres correlate2d on the flipped kernel.
            start = n2 // 2 if (two_d and not convolve) else (n2 - 1) // 2
            pads.append((n2 - 1 - start, start))
    # 'valid' pads only where SciPy swaps the inputs, and the swapped call reads no boundary.
    pmode = "constant" if mode == "valid" else _BOUNDARIES[boundary]
    fill = fillvalue if pmode == "constant" and mode != "valid" else 0
    x = a.reshape(1, 1, *a.shape)
    w = v.reshape(1, 1, *v.shape)
    nd = a.ndim
    # A Python scalar fillvalue is weak (NEP 50): 2.5 keeps float32 input float32.
    arrays = [x, w] + ([fill] if fill != 0 else [])
    spatial = tuple(out_size(n, k, 1, 1, lo, hi) for n, k, (lo, hi) in zip(a.shape, v.shape, pads))
    spec = ConvSpec(func, x.shape, w.shape, (1,) * nd, (1,) * nd, tuple(pads), 1, pmode, fill,
                    dtype=compute_dtype(*arrays), out_shape=(1, 1, *spatial))
    return Parsed(x, w, None, spec, True, result_dtype(*arrays))
