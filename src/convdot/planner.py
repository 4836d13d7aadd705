"""Which method ``method="auto"`` takes for a problem, with what parameters, and why.

The cost model is data plus one function. :data:`COUNTS` says, for each method, how much of each
kind of work a problem takes (flops through a BLAS GEMM, flops in FFTs, bytes moved by NumPy
passes or by compiled kernels, Python-level calls); :data:`MACHINE` holds how fast this kind of
machine does each kind of work, measured on the machine and date it names; :func:`estimate` is
the sum of ``count / rate``. ``convdot tune`` re-measures the rates on the machine it runs on and,
for a given problem, times the candidates and caches the winner, which ``auto`` then takes over
the model's guess (see :mod:`convdot.tuning`).

Rules the model never overrides: integer inputs take an exact direct method; inputs holding NaN
or inf never take a transform (FFT, Winograd), which would spread them; a method whose
``unsupported()`` gives a reason is never chosen.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _threads
from ._spec import METHODS, ConvSpec
from .algorithms import ALGORITHMS

#: Per-machine rates, and where and when they were measured (``convdot tune`` replaces them with
#: this machine's own, cached). Units: ``gemm`` float32 flop/s in a large BLAS GEMM using every
#: CPU; ``fft`` flop/s of ``scipy.fft`` (5 n log2 n per complex transform of n points); ``numpy``
#: bytes/s an element-wise NumPy pass or copy moves; ``jit`` bytes/s the compiled Winograd
#: transforms read plus write using every CPU; ``direct`` work/s of the compiled direct kernel
#: (multiply-adds plus its per-row-pass cost, :func:`convdot.algorithms.sliding.jit_work`; fitted on
#: 2048x2048 float64 filters, k = 5..31); ``int`` integer multiply-adds/s of NumPy's non-BLAS loops;
#: ``calls`` Python-level NumPy calls per second; ``dram`` bytes/s read from main memory (weights,
#: cold in a network's forward pass);
#: ``cgemm`` real flop/s of the FFT's per-frequency complex channel products (batches of small
#: matrices, a few rows each: far below a large GEMM; 1.5e10 is what resnet-3x3-56 ran at).
#: ``dram`` is from the 2026-12-01 machine (an Intel Xeon KVM guest, 2 vCPUs, where the bench runs):
#: 8.2-8.6e9 in six runs of ``measure_rates``, against 1.4e10 on the first; with 1.4e10 the planner
#: chose Winograd for an N8 C512 7x7 layer, which re-reads its 37.7 MB transformed weight per chunk
#: (23.5 ms, against im2col's 15.5). ``direct`` is fitted there too, on 2048x2048 float64 filters
#: k = 5..31 (best of 5, 0.2 s apart), so that its estimates err as the FFT's do and the two cross
#: where the measured times cross: 8.5e10 on 2026-12-02 (the direct kernel, since 6.0e10 was fitted
#: on 2026-12-01, writes row pairs and no longer faults its output in: k = 13 26.5 ms, 15 32.4,
#: 17 39.4 against the streamed FFT's 35.2, 35.2, 33.6; at 6.0e10 the planner gave k = 13 and 15 to
#: the FFT). Its other rates measured there are not taken.
MACHINE: dict[str, Any] = {
    "machine": "AMD EPYC (Zen 3) KVM guest, 2 vCPUs, AVX2 (dram, direct: Intel Xeon KVM guest, 2 vCPUs, AVX-512); "
               "NumPy 2.4.6 + OpenBLAS 0.3.31, SciPy, numba 0.68",
    "measured": "2026-11-24 by convdot.tuning.measure_rates, best of several runs (shared machines); dram "
                "2026-12-01 likewise; direct 2026-12-02, fitted on the bench's filters (see above)",
    "rates": {
        "gemm": 1.8e11,
        "fft": 3.0e10,
        "numpy": 2.8e10,
        "jit": 1.2e10,
        "direct": 8.5e10,
        "int": 7.9e8,
        "calls": 7.9e5,
        "dram": 8.3e9,
        "cgemm": 1.5e10,
    },
}

#: Relative cost of a flop in each compute dtype (complex: 4 real multiplies per product).
DTYPE_FLOP_COST = {"float32": 1.0, "float64": 2.0, "complex64": 4.0, "complex128": 8.0, "int64": 1.0}

#: The copy of strided windows into the GEMM's layout (the windows path of sliding) against a plain
#: copy of the same bytes: measured 2.5x (stem-7x7) and 1.7x (down-3x3) the time of im2col's
#: tap-by-tap copies, with einsum; its estimates for the copy made since (2026-12-01) are within 5%
#: on stem-7x7, resnet-3x3-56/14 and dilated, and under by 1.6-1.7x on pointwise and down-3x3.
WINDOWS_GATHER = 2.5

#: Methods that evaluate the direct sum (SciPy's method='direct', and exact integer sums).
DIRECT_METHODS = ("im2col", "sliding", "reference")

#: Methods that go through a transform and so spread NaN/inf over many outputs.
TRANSFORM_METHODS = ("fft", "winograd")


# --------------------------------------------------------------------------- counts per method


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _gemm(spec: ConvSpec, flops: float) -> dict[str, float]:
    """GEMM flops in float32 units, or integer multiply-adds for exact problems."""
    if spec.is_exact:
        return {"int": flops / 2}
    return {"gemm": flops * DTYPE_FLOP_COST[spec.dtype.name]}


def _windows_bytes(spec: ConvSpec) -> float:  # the windows path of sliding
    """Bytes of every receptive field copied once: ``N * C * prod(out) * prod(k)`` elements."""
    n, c = spec.x_shape[:2]
    return float(n * c * _size(spec.out_shape[2:]) * _size(spec.kernel) * spec.dtype.itemsize)


def _io_bytes(spec: ConvSpec) -> float:
    return float((_size(spec.x_shape) + _size(spec.out_shape)) * spec.dtype.itemsize)


def counts_reference(spec: ConvSpec, params: dict) -> dict[str, float]:
    """One small matrix multiply per output position, kernel tap and group, in Python loops."""
    loops = _size(spec.out_shape[2:]) * _size(spec.kernel) * spec.groups
    return {"calls": 4.0 * loops, **_gemm(spec, 4.0 * spec.macs)}


def _wide(spec: ConvSpec) -> float:
    """2 for 64-bit floats (and integers computed in float64 by the FFT), else 1."""
    return 2.0 if spec.dtype.itemsize >= 8 and spec.dtype != np.complex64 else 1.0


def counts_im2col(spec: ConvSpec, params: dict) -> dict[str, float]:
    """Columns copied into blocks (none for an unpadded 1x1 stride-1 layer), one GEMM per block."""
    c = ALGORITHMS["im2col"].cost(spec, params.get("threads"))  # gemm flops, copy bytes, blocks, ...
    moved = _io_bytes(spec) + c["accumulate"]
    gemm = _gemm(spec, c["gemm"] * _narrow(c["narrow"]))
    if c["compiled"]:  # each thread gathers a block that stays in its cache for the GEMM
        return {"jit": c["copy"], "numpy": moved, "calls": 2.0 * c["blocks"], **gemm}
    # NumPy's tap copies: one a tap and block, about 4 calls' time each (strided, short rows), measured
    # 3.4-10.6 us on five float32/64 layers of 3-16 channels; the estimates were 0.3-0.7x the time
    taps = _size(spec.kernel)
    return {"numpy": 2 * c["copy"] + moved, "calls": (10.0 + 4.0 * taps) * c["blocks"], **gemm}


#: A GEMM whose smallest side is ``n`` costs ``1 + NARROW_GEMM / n`` times its flops at the model's
#: rate. Measured 2026-12-01 on an Intel Xeon KVM guest (2 vCPUs, OpenBLAS 0.3.31), a (256 x 2304)
#: weight times 7, 14, 28, 56, 112 and 196-1568 columns: 24, 38, 63, 88, 103 and 104-113 GFLOP/s on
#: one thread (45-210 on two).
NARROW_GEMM = 20.0


def _narrow(side: float) -> float:
    """The cost factor of a GEMM whose smallest side is ``side`` (see :data:`NARROW_GEMM`)."""
    return 1.0 + NARROW_GEMM / max(side, 1.0)


def counts_sliding(spec: ConvSpec, params: dict) -> dict[str, float]:
    """Windows path: the windows copied into a GEMM's layout, and the GEMM. Direct path: one pass per tap
    (``kh + kw`` taps instead of ``kh * kw`` when ``params["separable"]``: two 1-D passes)."""
    sliding = ALGORITHMS["sliding"]
    info = dict(sliding.cost(spec))  # macs, passes, path (1 direct), jit, work (compiled kernel)
    if info["path"] and params.get("separable"):
        kh, kw = spec.kernel
        info["macs"] *= (kh + kw) / (kh * kw)
        info["passes"] *= (kh + kw) / (kh * kw)
        if info["jit"]:  # a column pass (kh x 1) then a row pass (1 x kw)
            info["work"] = sliding.separable_work(spec)
    out_bytes = float(_size(spec.out_shape) * spec.dtype.itemsize)
    if info["path"]:
        if info["jit"]:
            return {"direct": info["work"] * _wide(spec), "numpy": _io_bytes(spec), "calls": 50.0}
        # each pass multiplies one shifted slice and adds it into a cache-sized block of outputs
        out_elems = float(_size(spec.out_shape))
        return {"numpy": 2 * info["passes"] * out_bytes + _io_bytes(spec),
                "calls": info["passes"] * max(1.0, out_elems / (1 << 15))}
    # a block: its windows copied, the GEMM, its product moved into the output (about 10 NumPy calls;
    # einsum's path search made it 50 before 2026-12-01)
    return {"numpy": 2 * WINDOWS_GATHER * _windows_bytes(spec) + _io_bytes(spec) + 2 * out_bytes,
            "calls": 10.0 * info["blocks"], **_gemm(spec, 2.0 * info["macs"] * _narrow(info["narrow"]))}


#: One small complex matrix product of the FFT's per-frequency channel GEMMs, in NumPy calls:
#: 0.36 us each on N8 C8 64x64 9x9 (2664 frequencies, 2-image batches, 3 output channels a chunk).
MATRIX_CALLS = 0.3


def counts_fft(spec: ConvSpec, params: dict) -> dict[str, float]:
    """Overlap-save blocks: real transforms of every block and filter, a complex GEMM per frequency."""
    c = ALGORITHMS["fft"].cost(spec)  # fft flops, gemm flops, bytes, blocks, transforms, matrices
    return {"fft": c["fft"] * _wide(spec), "cgemm": c["gemm"] * _wide(spec), "numpy": c["bytes"],
            "calls": 10.0 * (c["blocks"] + c["transforms"]) + MATRIX_CALLS * c["matrices"]}


#: How much slower than :data:`MACHINE`'s GEMM rate the planar Winograd GEMMs run (see counts_winograd).
PLANAR_GEMM_FACTOR = 2.0


def counts_winograd(spec: ConvSpec, params: dict) -> dict[str, float]:
    """Tiles transformed, one GEMM per transform point, products transformed back.

    With the compiled kernels, the input is read once and the transformed tiles written once
    (likewise back); the NumPy path's tensordots and transposes cost about 30 such passes.
    A dilated problem adds the copies that split it into dilation phases.
    """
    from .algorithms import winograd

    m = params.get("tile", 2)
    n, c = spec.x_shape[:2]
    c_out, cg = spec.out_shape[1], spec.w_shape[1]
    tiles = n * _size(winograd.tile_grid(spec, m))
    points = (m + 2) ** spec.nd
    item = spec.dtype.itemsize
    tx = float(tiles * points * (c + c_out) * item)  # transformed input + products
    if cg == 1:
        counts = {"numpy": 3.0 * tiles * points * c_out * item}
    else:
        counts = _gemm(spec, 2.0 * points * tiles * c_out * cg)
    # the transformed kernel, (m+2)**nd / 3**nd times the weight, is read from memory by every block
    nblocks = len(winograd.blocks(spec, m, params.get("block", 1)))
    fused = params.get("backend") == "jit" and winograd.channels_last(spec, m)
    if fused:  # every chunk reads it: the threads' own chunks, or the shared ones whose points they split
        threads = 1 if winograd.shares_chunks(spec, m) else max(1, params.get("threads", 1))
        rows = -(-n * winograd.tile_grid(spec, m)[0] // threads)
        nblocks = threads * -(-rows // winograd.chunk_rows(spec, m, params.get("block", 1)))
    counts["dram"] = float(points * c_out * cg * item * nblocks)
    if any(d != 1 for d in spec.dilation):  # each phase copied in and its output out
        counts["numpy"] = counts.get("numpy", 0.0) + 2.0 * _io_bytes(spec)
    if fused:  # the transformed tiles and products stay in the thread's cache
        counts["jit"] = _io_bytes(spec)
        counts["calls"] = (20.0 + points) * nblocks  # and a GEMM call per transform point
        # a GEMM of few tiles (rows) or channels runs below the GEMM rate (see NARROW_GEMM)
        tiles_per_chunk = winograd.chunk_rows(spec, m, params.get("block", 1)) * winograd.tile_grid(spec, m)[1]
        if "gemm" in counts:
            counts["gemm"] *= _narrow(min(tiles_per_chunk, cg, c_out // spec.groups))
    elif params.get("backend") == "jit":
        counts["jit"] = tx + _io_bytes(spec)
        counts["calls"] = 60.0 * nblocks
        # the planar GEMMs (tiles as the contiguous axis) ran at 65-95 GFLOP/s here, the model's
        # GEMM rate being 180: 1.5-2.4x slower than the channels-last path on 7 of 8 layers measured;
        # a block of few tiles slower still (N1 C128 28x28, F(2,3) blocks of 56 tiles: 2.6x the estimate)
        block_tiles = tiles / max(1, nblocks)
        if "gemm" in counts:
            counts["gemm"] *= PLANAR_GEMM_FACTOR * _narrow(min(block_tiles, cg, c_out // spec.groups))
    else:
        # tensordot over axes of a+2 points runs far below copy speed: fitted on this machine to
        # about 30 passes' worth of the transformed tiles, and 150 NumPy calls per block
        counts["numpy"] = counts.get("numpy", 0.0) + 30.0 * tx + 3.0 * _io_bytes(spec)
        counts["calls"] = 150.0 * len(winograd.blocks(spec, m, params.get("block", 1)))
    return counts


#: Work counts per method: ``COUNTS[method](spec, params) -> {kind: amount}``; kinds are the keys of
#: ``MACHINE["rates"]``.
COUNTS: dict[str, Callable[[ConvSpec, dict], dict[str, float]]] = {
    "reference": counts_reference,
    "sliding": counts_sliding,
    "im2col": counts_im2col,
    "fft": counts_fft,
    "winograd": counts_winograd,
}


def estimate(counts: dict[str, float], rates: dict[str, float], threads: int = 0) -> float:
    """Seconds a method takes: ``sum(count / rate)`` over its kinds of work.

    Rates are measured using every CPU; with fewer ``threads``, the rates of convdot's own
    parallel kernels (``jit``, ``direct``) shrink in proportion.
    """
    share = 1.0 if threads <= 0 else min(1.0, threads / _threads.available_cpus())
    total = 0.0
    for kind, amount in counts.items():
        rate = rates[kind] * (share if kind in ("jit", "direct") else 1.0)
        total += amount / rate
    return total


# --------------------------------------------------------------------------- options per method


def options(method: str, spec: ConvSpec, threads: int) -> list[dict[str, Any]]:
    """Parameter sets worth estimating for ``method`` (one, except Winograd's tile and back end)."""
    if method != "winograd":
        return [{"threads": threads}]
    from .algorithms import winograd

    return [{"tile": m, "block": winograd.default_block(spec, m, b, threads), "threads": threads, "backend": b}
            for m in winograd.tiles_for(spec) for b in winograd.backends_for(spec, m, auto=True)]


def rates(data: dict[str, Any] | None = None) -> dict[str, float]:
    """This machine's rates: measured by ``convdot tune`` when cached, else :data:`MACHINE`'s.

    ``data`` is the tuning cache as :func:`convdot.tuning.load` returns it (None: load it).
    """
    from . import tuning

    measured = tuning.cached_rates(data)
    return {**MACHINE["rates"], **(measured or {})}


def _best_option(method: str, spec: ConvSpec, threads: int, r: dict[str, float],
                 extra: tuple = ()) -> tuple[float, dict[str, Any]]:
    return _model(method, spec, threads, tuple(sorted(r.items())), _jit_state(), extra)


@functools.lru_cache(maxsize=256)
def _estimates(spec: ConvSpec, threads: int, methods: tuple[str, ...], r: tuple, jit: bool,
               facts: tuple) -> tuple[tuple[str, tuple[float, dict[str, Any]]], ...]:
    """Every method's cheapest parameters and estimate, memoized as a whole: ``auto`` asks on every
    call (with the tuning cache read once, planning the stem-7x7 layer went from 0.083 to 0.058 ms)."""
    extra = dict(facts)
    return tuple((m, _model(m, spec, threads, r, jit, extra.get(m, ()))) for m in methods)


def _jit_state() -> bool:
    from .algorithms import winograd

    return winograd.jit_available()


@functools.lru_cache(maxsize=1024)
def _model(method: str, spec: ConvSpec, threads: int, r: tuple, jit: bool,
           extra: tuple) -> tuple[float, dict[str, Any]]:
    """The cheapest parameters of ``method`` and their estimate (memoized: ``auto`` asks on every call).

    ``extra`` holds facts about the weights that the shapes do not tell (``("separable", True)``).
    """
    rates_ = dict(r)
    scored = [(estimate(COUNTS[method](spec, {**p, **dict(extra)}), rates_, threads), p)
              for p in options(method, spec, threads)]
    secs, params = min(scored, key=lambda item: item[0])
    return secs, dict(params)


def parameters(method: str, spec: ConvSpec, threads: int | None = None) -> dict[str, Any]:
    """The parameters ``method`` runs ``spec`` with: the tuned ones when cached, else the model's."""
    from . import tuning

    n = _threads.num_threads(threads, func=spec.func)
    tuned = tuning.lookup(spec, n)
    if tuned is not None and tuned.get("method") == method and _valid(method, spec, tuned.get("params", {})):
        return {**tuned["params"], "threads": n}
    return dict(_best_option(method, spec, n, rates())[1])


def _valid(method: str, spec: ConvSpec, params: dict) -> bool:
    """Whether cached parameters can still run (e.g. numba may have been uninstalled since)."""
    if method != "winograd":
        return True
    from .algorithms import winograd

    tile = params.get("tile")
    return tile in winograd.tiles_for(spec) and params.get("backend") in winograd.backends_for(spec, tile) \
        and isinstance(params.get("block"), int) and params["block"] != 0


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """The method ``auto`` chose for a problem, its parameters, every estimate, and why.

    Attributes
    ----------
    method : str
        The method chosen.
    reason : str
        Why, in words.
    spec : ConvSpec
        The canonical problem.
    params : dict
        How the method runs: ``threads``, and for Winograd ``tile`` (outputs per tile and axis),
        ``block`` (images per block; negative: tile rows per block) and ``backend``.
    estimates : dict
        Estimated seconds for every candidate method (with its best parameters).
    excluded : dict
        Methods that were not candidates, and why.
    source : str
        "model" (the cost model chose) or "tuned" (``convdot tune`` measured this problem here).
    """

    method: str
    reason: str
    spec: ConvSpec
    params: dict = field(default_factory=dict)
    estimates: dict = field(default_factory=dict)
    excluded: dict = field(default_factory=dict)
    source: str = "model"

    def __str__(self) -> str:
        s = self.spec
        lines = [f"{s.func}: x {s.x_shape} {s.dtype}, weight {s.w_shape}, stride {s.stride}, padding {list(s.pads)}, "
                 f"dilation {s.dilation}, groups {s.groups} -> {s.out_shape}",
                 f"method: {self.method} ({_describe(self.params, self.spec, self.method)})",
                 f"why: {self.reason}"]
        if self.estimates:
            from . import tuning

            origin = ("rates measured here by `convdot tune`" if tuning.cached_rates()
                      else f"built-in rates of {MACHINE['machine']}")
            lines.append(f"cost model estimates ({origin}):")
            for m, (secs, p) in sorted(self.estimates.items(), key=lambda kv: kv[1][0]):
                mark = "  <- chosen" if m == self.method else ""
                lines.append(f"  {m:<10} {_fmt_time(secs):>10}  {_describe(p, self.spec, m)}{mark}")
        for m, why in self.excluded.items():
            lines.append(f"  {m:<10} {'-':>10}  not a candidate: {why}")
        return "\n".join(lines)


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def _describe(params: dict, spec: ConvSpec | None = None, method: str | None = None) -> str:
    """The parameters in words; with ``spec``, how Winograd's channels-last kernels use ``block``
    and, for ``method`` im2col, how its columns are built, for the FFT its blocks."""
    parts = []
    im2col, ours = ALGORITHMS["im2col"], method == "im2col" and spec is not None
    fast = ours and im2col.compiled(spec)
    by_channels = ours and im2col.channel_block(spec, params.get("threads") if fast else 1)
    if ours and im2col.is_pointwise(spec):
        strided = any(s != 1 for s in spec.stride)
        parts.append("1x1 kernel: " + ("each block of images subsampled, then one GEMM" if strided
                                       else "one GEMM on x itself, no columns"))
    elif by_channels:
        channels, outputs = by_channels
        each = "" if outputs == spec.out_shape[1] else f", {outputs} output channels per GEMM"
        parts.append(f"{'compiled ' if fast else ''}column gather, blocks of {channels} input channels "
                     f"added into the output (the weight read once){each}")
    elif fast:
        images, rows = im2col.column_block(spec, params.get("threads"))
        size = f"{images} image{'s' if images != 1 else ''}" if rows == spec.out_shape[2] else f"{rows} output rows"
        parts.append(f"compiled column gather, blocks of {size}, taken by the threads in turn")
    if method == "fft" and spec is not None:
        parts.append(ALGORITHMS["fft"].describe(spec))
    if "tile" in params:
        parts.append(f"F({params['tile']},3) tiles")
    chunks = spec is not None and params.get("backend") == "jit" and "tile" in params \
        and ALGORITHMS["winograd"].channels_last(spec, params["tile"])
    if chunks:
        b = params.get("block", 1)
        wg = ALGORITHMS["winograd"]
        r = wg.chunk_rows(spec, params["tile"], b)  # at most all the tile rows there are
        rows = f"{b} image{'s' if b != 1 else ''}" if b > 0 else f"{r} tile row{'s' if r != 1 else ''}"
        share = ("shared by the threads, which take its transform points in turn"
                 + (", products written over the transformed input" if wg.in_place(spec, params["tile"]) else "")
                 if wg.shares_chunks(spec, params["tile"]) else "taken by the threads in turn")
        parts.append(f"channels-last, chunks of {rows} ({share})")
    elif "block" in params:
        b = params["block"]
        parts.append(f"{b} image{'s' if b != 1 else ''} per block" if b > 0
                     else f"{-b} tile row{'s' if b != -1 else ''} per block")
    if "backend" in params:
        parts.append("compiled kernels" if params["backend"] == "jit" else "NumPy transforms")
    if "threads" in params:
        parts.append(f"{params['threads']} thread{'s' if params['threads'] != 1 else ''}")
    return ", ".join(parts)


def _separable(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> bool:
    """Whether sliding's direct path would run this 2-D filter as two 1-D passes (a rank-1 kernel)."""
    sliding = ALGORITHMS["sliding"]
    factors = getattr(sliding, "separable_factors", None)
    uses_direct = getattr(sliding, "uses_direct", None)
    pays = getattr(sliding, "separable_pays", None)
    if spec.nd != 2 or factors is None or uses_direct is None or not uses_direct(spec) or spec.groups > 64 \
            or (pays is not None and not pays(spec)):
        return False
    g = spec.groups
    wg = np.asarray(w, dtype=spec.dtype).reshape(g, spec.out_shape[1] // g, spec.w_shape[1], *spec.kernel)
    return factors(wg, x[:1, :1, :1]) is not None  # x only for its finiteness, checked already


def _deferred(defer: bool) -> dict[str, str]:
    """The Winograd option that makes its kernels raise on NaN/inf instead of handling them."""
    return {"nonfinite": "raise"} if defer else {}


def _all_finite(a: np.ndarray) -> bool:
    return a.dtype.kind not in "fc" or bool(np.isfinite(a).all())


#: :func:`choose`'s part that depends only on the problem, the threads and the tuning cache (not on
#: the values of ``x`` and ``w``), per float problem: ``auto`` plans on every call, and right after a
#: layer has run (cold caches) planning the stem-7x7 and depthwise layers took 0.23-0.25 ms, 0.18-0.20
#: ms with this kept; auto then took 1.02-1.05x the time of the method it chose on those 3-4 ms layers.
_prepared: dict[tuple, tuple] = {}
_PREPARED_ENTRIES = 256
_prepared_lock = threading.Lock()  # threads may plan at once; the oldest entry goes when it is full


def _prepare(spec: ConvSpec, x: np.ndarray, w: np.ndarray, n_threads: int, direct_only: bool, jit: bool,
             cache: dict[str, Any], facts: tuple) -> tuple[dict[str, str], dict[str, tuple], dict | None]:
    """What :func:`choose` excludes and why, the other methods' estimates, and the tuned winner."""
    from . import tuning

    excluded: dict[str, str] = {}
    for m in METHODS:
        reason = ALGORITHMS[m].unsupported(spec, x, w)
        if reason:
            excluded[m] = reason
        elif direct_only and m not in DIRECT_METHODS:
            excluded[m] = "method='direct' asks for the direct sum"
        elif spec.is_exact and m not in DIRECT_METHODS:
            excluded[m] = "integer input is summed exactly in int64 by a direct method"
    r = rates(cache)
    estimates = dict(_estimates(spec, n_threads, tuple(m for m in METHODS if m not in excluded),
                                tuple(sorted(r.items())), jit, facts))
    return excluded, estimates, tuning.lookup(spec, n_threads, cache)


def choose(spec: ConvSpec, x: np.ndarray, w: np.ndarray, *, direct_only: bool = False,
           threads: int | None = None, report: bool = False, defer_finite: bool = False) -> Plan:
    """Pick a method and its parameters for ``spec`` (``direct_only`` for SciPy's method='direct').

    Parameters
    ----------
    spec : ConvSpec
        The canonical problem.
    x : ndarray of shape (N, C_in, *spatial)
        The input (checked for NaN/inf).
    w : ndarray of shape (C_out, C_in/groups, *k)
        The filters.
    direct_only : bool, default False
        Only methods that evaluate the direct sum.
    threads : int, optional
        Threads for convdot's own loops (default ``$CONVDOT_NUM_THREADS`` or every CPU).
    report : bool, default False
        Check the NaN/inf rule even when no transform would win, so ``Plan.excluded`` is complete
        (``auto`` skips that pass over the input when it cannot change the choice).
    defer_finite : bool, default False
        When the choice is Winograd's compiled kernels or the FFT, which see every input value
        anyway, leave the NaN/inf check of ``x`` and ``w`` to them (both check ``w`` on every call):
        the plan's params then hold ``nonfinite="raise"`` and the caller must re-plan with the
        check when :class:`~convdot.algorithms.NonFiniteInput` is raised. (The pass over a
        resnet-3x3-56 input took 1 ms of auto's 10; over resnet-3x3-14's 2.4 MB weight, 0.15 ms;
        over filter-k31's 2048x2048 float64 image, 2.5-5 ms of auto's 110-170.)

    Returns
    -------
    Plan
        Without ``report``, a plan no value of ``x`` or ``w`` entered is kept and returned again for
        the problem's next call (:func:`_keep`): callers read it and must not change it.
        :func:`plan`, which users get, reports, so it always gets a fresh one.
    """
    from . import tuning

    n_threads = _threads.num_threads(threads, func=spec.func)
    cache = tuning.load()  # read once: rates and the tuned winner both come from it
    facts = (("sliding", (("separable", True),)),) if _separable(spec, x, w) else ()
    jit = _jit_state()
    key = (spec, n_threads, direct_only, jit, facts)
    known = _prepared.get(key) if spec.dtype.kind in "fc" else None  # an integer FFT's exclusion reads values
    if known is None or known[0] is not cache:
        known = (cache, *_prepare(spec, x, w, n_threads, direct_only, jit, cache, facts), {})
        if spec.dtype.kind in "fc":
            with _prepared_lock:
                if len(_prepared) >= _PREPARED_ENTRIES:
                    _prepared.pop(next(iter(_prepared)))
                _prepared[key] = known
    kept = known[4]  # auto's plans that no value entered, by defer_finite (report=False only)
    if not report and defer_finite in kept:
        return kept[defer_finite]
    excluded, estimates, tuned = dict(known[1]), dict(known[2]), known[3]
    # The NaN/inf rule reads the whole input, so it is checked only when a transform could win.
    finite = True
    contenders = {min(estimates, key=lambda m: estimates[m][0])} | ({tuned.get("method")} if tuned else set())
    candidates = [estimates["winograd"][1]] + ([tuned["params"]] if tuned else []) if "winograd" in estimates else []
    # the weight too: winograd.run and fft.run check it on every call anyway, and raise as for x
    deferrable = contenders == {"fft"} or (contenders == {"winograd"} and all(p.get("backend") == "jit"
                                                                              for p in candidates))
    defer = defer_finite and not report and deferrable
    checked = bool((report or contenders & set(TRANSFORM_METHODS)) and not defer)
    if checked:
        finite = _all_finite(x) and _all_finite(w)
        if not finite:
            for m in TRANSFORM_METHODS:
                if m in estimates:
                    del estimates[m]
                    excluded[m] = ("input holds NaN or inf: a transform would spread them; "
                                   "the direct sum keeps them in place")
    usable = tuned is not None and tuned.get("method") in estimates
    if usable and _valid(tuned["method"], spec, tuned.get("params", {})):
        method = tuned["method"]
        params = {**tuned["params"], "threads": n_threads}
        reason = f"fastest when measured by `convdot tune` on this machine ({tuned.get('measured', 'date unknown')})"
        return _keep(kept, Plan(method, reason, spec, {**params, **_deferred(defer)}, estimates, excluded, "tuned"),
                     defer_finite, report or checked)
    method = min(estimates, key=lambda m: estimates[m][0])
    secs, params = estimates[method]
    params = {**params, **_deferred(defer)}
    others = sorted((v[0], m) for m, v in estimates.items() if m != method)
    reason = f"lowest estimated time, {_fmt_time(secs)}"
    if others:
        reason += f" ({others[0][0] / secs:.1f}x faster than the next, {others[0][1]})"
    if spec.is_exact:
        reason += "; integer input: summed exactly in int64"
    elif not finite:
        reason += "; input holds NaN or inf, so no transform method"
    elif direct_only:
        reason += "; method='direct'"
    plan = Plan(method, reason, spec, params, estimates, excluded, "model")
    return _keep(kept, plan, defer_finite, report or checked)


def _keep(kept: dict, plan: Plan, defer_finite: bool, read_values: bool) -> Plan:
    """``plan``, kept for the next :func:`choose` of its problem when no value of ``x`` or ``w`` entered it.

    Right after a layer has run (cold caches) building the plan again took about 0.1 ms of the
    0.15 ms that ``auto`` spent choosing on the stem-7x7 layer (3.5 ms in all).
    """
    if not read_values:
        kept[defer_finite] = plan
    return plan


def plan(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
         groups: int = 1, *, padding_mode: str = "zeros", threads: int | None = None) -> Plan:
    """Which method ``conv(..., method="auto")`` would take for this call, and why.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, padding_mode
        Exactly as for :func:`convdot.conv`.
    threads : int, optional
        Threads for convdot's own loops (default ``$CONVDOT_NUM_THREADS`` or every CPU).

    Returns
    -------
    Plan
        ``plan.method`` is the method chosen, ``plan.params`` how it runs, ``plan.estimates`` the
        cost model's time for every candidate, ``plan.reason`` why; ``print(plan)`` shows it all.

    Notes
    -----
    Each estimate is ``sum over kinds of work of count / rate`` (:func:`estimate`), with counts
    from :data:`COUNTS` and rates from ``convdot tune``'s cache or :data:`MACHINE`.

    Examples
    --------
    >>> import numpy as np, convdot
    >>> p = convdot.plan(np.ones((1, 3, 32, 32)), np.ones((8, 3, 3, 3)), np.full(8, np.nan))
    >>> p.method in convdot.METHODS and p.method != "reference"
    True
    >>> convdot.plan(np.full((1, 1, 8, 8), np.nan), np.ones((1, 1, 3, 3))).method in ("im2col", "sliding")
    True
    """
    from ._spec import parse_conv

    p = parse_conv("plan", x, weight, bias, stride, padding, dilation, groups, padding_mode)
    return choose(p.spec, p.x, p.w, threads=threads, report=True)
