"""``convdot.tune``: measure this machine, time the candidates for a problem, cache the winner.

The cache is one small JSON file, ``tune.json`` in the user cache directory (``$CONVDOT_CACHE_DIR``
if set, else ``$XDG_CACHE_HOME/convdot`` or ``~/.cache/convdot``; ``~/Library/Caches/convdot`` on
macOS, ``%LOCALAPPDATA%\\convdot\\Cache`` on Windows). It holds one section per machine and
software versions (a key hashed from the CPU model, CPU count, Python, NumPy, SciPy, numba and
convdot versions), each with the measured rates and one entry per problem signature. Writes take
a lock file, re-read the file and replace it atomically (temp file + ``os.replace``), so concurrent
tuners never lose each other's entries and readers never see half a file. A file that cannot be
read or parsed is ignored with a warning (and replaced at the next write), never a crash.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _threads
from ._spec import METHODS, ConvSpec

CACHE_ENV = "CONVDOT_CACHE_DIR"
FORMAT = 1

_memo: dict[str, Any] = {"stamp": None, "data": None}
_memo_lock = threading.Lock()
_write_lock = threading.Lock()


# --------------------------------------------------------------------------- where and who


def cache_dir() -> Path:
    """The directory of the tuning cache (not created until something is written)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "convdot" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "convdot"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convdot"


def cache_path() -> Path:
    """The tuning cache file."""
    return _cache_path(os.environ.get(CACHE_ENV), os.environ.get("XDG_CACHE_HOME"), os.environ.get("HOME"),
                       os.environ.get("LOCALAPPDATA"), os.environ.get("USERPROFILE"))


@functools.lru_cache(maxsize=8)
def _cache_path(*env: str | None) -> Path:
    # memoized on the variables it reads: building the path costs 0.1 ms, and `auto` asks on every call
    return cache_dir() / "tune.json"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _machine() -> tuple[tuple[str, Any], ...]:
    from . import __version__

    return tuple({"cpu": _cpu_model(), "cpus": _threads.available_cpus(), "arch": platform.machine(),
            "system": platform.system(), "python": platform.python_version(), "numpy": np.__version__,
            "scipy": _version("scipy"), "numba": _version("numba"), "convdot": __version__}.items())


def machine() -> dict[str, Any]:
    """What the cache is keyed by: CPU, CPU count, OS and the versions of everything that computes."""
    return dict(_machine())


def machine_key(info: dict[str, Any] | None = None) -> str:
    """A short stable hash of :func:`machine`."""
    if info is None:
        return _machine_key()
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _machine_key() -> str:
    return machine_key(machine())


@functools.lru_cache(maxsize=256)
def signature(spec: ConvSpec, threads: int) -> str:
    """The problem as the cache knows it: shapes, geometry, dtype and thread count (not the function name)."""
    return (f"x{list(spec.x_shape)} w{list(spec.w_shape)} s{list(spec.stride)} d{list(spec.dilation)} "
            f"p{[list(p) for p in spec.pads]} g{spec.groups} {spec.padding_mode} {spec.dtype.name} t{threads}")


# --------------------------------------------------------------------------- reading


def _empty() -> dict[str, Any]:
    return {"format": FORMAT, "machines": {}}


def _parse(text: str, path: Path) -> dict[str, Any]:
    """The cache's content, or an empty cache (with a warning) when it is not a valid cache file."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("machines"), dict):
            raise ValueError(f"not a convdot tuning cache of format {FORMAT}")
        for entry in data["machines"].values():
            if not isinstance(entry, dict) or not isinstance(entry.get("problems", {}), dict):
                raise ValueError("a machine entry is not an object with 'problems'")
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        warnings.warn(f"convdot: ignoring the tuning cache {path}: it is corrupt ({exc}); "
                      "it will be rewritten by the next `convdot tune`", RuntimeWarning, stacklevel=4)
        return _empty()
    return data


def _read(path: Path) -> dict[str, Any]:
    """Parse the file at ``path`` (which exists); unreadable or invalid content warns and reads as empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        warnings.warn(f"convdot: ignoring the tuning cache {path}: cannot read it ({exc})", RuntimeWarning,
                      stacklevel=4)
        return _empty()
    return _parse(text, path)


def load() -> dict[str, Any]:
    """The whole cache (memoized until the file changes, so a bad file warns once); empty when there is none."""
    path = cache_path()
    try:
        st = path.stat()
    except OSError:  # no cache: one empty one, the same object each time (the planner keys its memo on it)
        st = None
    stamp = (str(path), st.st_mtime_ns, st.st_size) if st else (str(path), None, None)
    with _memo_lock:
        if _memo["stamp"] == stamp:
            return _memo["data"]
    data = _read(path) if st else _empty()
    with _memo_lock:
        _memo["stamp"], _memo["data"] = stamp, data
    return data


def _section(data: dict[str, Any]) -> dict[str, Any]:
    entry = data["machines"].get(machine_key())
    return entry if isinstance(entry, dict) else {}


def lookup(spec: ConvSpec, threads: int, data: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The cached winner for ``spec`` on this machine (``{"method", "params", "seconds", "measured"}``), or None.

    ``data`` is the cache as :func:`load` returns it (None: load it).
    """
    entry = _section(load() if data is None else data).get("problems", {}).get(signature(spec, threads))
    if not isinstance(entry, dict) or entry.get("method") not in METHODS:
        return None
    if not isinstance(entry.get("params", {}), dict):
        return None
    return entry


def cached_rates(data: dict[str, Any] | None = None) -> dict[str, float] | None:
    """This machine's measured rates, when ``convdot tune`` has measured them (``data``: as in :func:`lookup`)."""
    found = _section(load() if data is None else data).get("rates")
    if not isinstance(found, dict):
        return None
    return {k: float(v) for k, v in found.items() if isinstance(v, (int, float)) and v > 0}


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path.lock`` (threads of this process and other processes)."""
    with _write_lock:
        try:
            import fcntl
        except ImportError:  # Windows: the atomic replace still keeps the file whole
            yield
            return
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def update(change) -> Path:
    """Apply ``change(section)`` to this machine's section of the cache, atomically; returns the path.

    ``section`` is a dict (``machine``, ``rates``, ``problems``) that ``change`` edits in place.
    """
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        data = _read(path) if path.exists() else _empty()
        info = machine()
        section = data["machines"].setdefault(machine_key(info), {})
        section["machine"] = info
        section.setdefault("problems", {})
        change(section)
        fd, tmp = tempfile.mkstemp(prefix=".tune-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return path


def record(spec: ConvSpec, threads: int, method: str, params: dict[str, Any], seconds: dict[str, float]) -> Path:
    """Cache ``method`` with ``params`` as the winner for ``spec``; ``seconds`` are every candidate's times."""
    entry = {"method": method, "params": {k: v for k, v in params.items() if k != "threads"},
             "seconds": seconds, "measured": _now()}

    def change(section: dict[str, Any]) -> None:
        section["problems"][signature(spec, threads)] = entry

    return update(change)


def clear() -> Path:
    """Delete the tuning cache file (if any); returns its path."""
    path = cache_path()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with _memo_lock:
        _memo["stamp"] = None
    return path


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- measuring


def _best_time(fn, repeat: int) -> float:
    fn()  # warm-up: caches, lazy imports, compilation
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_rates(repeat: int = 5, quick: bool = False) -> dict[str, float]:
    """Measure the rates of :data:`convdot.planner.MACHINE` on this machine (a few seconds).

    The problems are as large as the ones the rates are used for (``quick`` only times each once
    after the warm-up). Returns a dict with the same keys as ``MACHINE["rates"]``; ``jit`` and
    ``direct`` only when numba is installed.
    """
    repeat = 1 if quick else repeat
    rng = np.random.default_rng(0)
    s = 1024
    a = rng.standard_normal((s, s), dtype=np.float32)
    b = rng.standard_normal((s, s), dtype=np.float32)
    out: dict[str, float] = {"gemm": 2.0 * s ** 3 / _best_time(lambda: a @ b, repeat)}
    big = np.ones(1 << 25, dtype=np.float32)  # 128 MiB: read from main memory
    out["dram"] = big.nbytes / _best_time(big.sum, repeat)
    del big
    # the typical NumPy pass: a strided gather into a new array (im2col's columns, 29 MiB)
    img = rng.standard_normal((4, 64, 58, 58), dtype=np.float32)
    win = np.lib.stride_tricks.sliding_window_view(img, (3, 3), axis=(2, 3)).transpose(0, 1, 4, 5, 2, 3)
    out["numpy"] = 2.0 * win.size * win.itemsize / _best_time(lambda: np.ascontiguousarray(win), repeat)
    import scipy.fft as sfft

    f = 1024
    img = rng.standard_normal((4, f, f), dtype=np.float32)
    out["fft"] = 4 * 5.0 * f * f * np.log2(f * f) * 0.5 / _best_time(lambda: sfft.rfft2(img, workers=-1), repeat)
    # the FFT's channel products: per frequency, a few rows times a channel matrix, in complex64
    spec_x = (rng.standard_normal((1800, 8, 64)) + 1j).astype(np.complex64)
    spec_w = (rng.standard_normal((1800, 64, 64)) + 1j).astype(np.complex64)
    out["cgemm"] = 8.0 * 1800 * 8 * 64 * 64 / _best_time(lambda: np.matmul(spec_x, spec_w), repeat)
    ints = rng.integers(-8, 8, size=(64, 256))
    intw = rng.integers(-8, 8, size=(256, 256))
    out["int"] = 64.0 * 256 * 256 / _best_time(lambda: ints @ intw, repeat)
    small = np.ones((2, 2))
    loops = 2000
    out["calls"] = loops / _best_time(lambda: [small @ small for _ in range(loops)], repeat)
    from .algorithms import winograd

    if winograd.jit_available():
        out["jit"] = _measure_jit(rng, repeat, quick)
        direct = _measure_direct(rng, repeat)
        if direct is not None:
            out["direct"] = direct
    return out


def _measure_direct(rng: np.random.Generator, repeat: int) -> float | None:
    """Work/s of sliding's compiled direct path (its cost()'s ``work``; one 1024x1024 float32 image, 7x7 kernel)."""
    from ._spec import parse_conv
    from .algorithms import ALGORITHMS

    sliding = ALGORITHMS["sliding"]
    p = parse_conv("tune", rng.standard_normal((1, 1, 1024, 1024), dtype=np.float32),
                   rng.standard_normal((1, 1, 7, 7), dtype=np.float32), padding=3)
    cost = getattr(sliding, "cost", None)
    if cost is None or not cost(p.spec).get("jit"):
        return None
    return cost(p.spec).get("work", p.spec.macs) / _best_time(lambda: sliding.run(p.x, p.w, p.spec), repeat)


def _measure_jit(rng: np.random.Generator, repeat: int, quick: bool) -> float:
    """Bytes/s of the compiled F(4,3) transforms (input and output) on a CNN-layer-sized problem."""
    from ._spec import parse_conv
    from .algorithms import _winograd_jit as jit
    from .algorithms import winograd

    n, c, h = 4, 64, 56
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    spec = parse_conv("tune", x, np.ones((c, c, 3, 3), np.float32), padding=1).spec
    th, tw = winograd.tile_grid(spec, 4)
    v = np.empty((c, 36, n * th * tw), np.float32)
    out = np.empty(spec.out_shape, np.float32)
    k = jit.constants(np.dtype(np.float32))
    threads = _threads.num_threads()
    parts = _threads.split(0, c, threads)

    def both() -> None:
        _threads.run_parallel(lambda c0, c1: jit.input_f43(x, v, k, 0, n, c0, c1, -1, 1, th, tw, 1, tw), parts, threads)
        _threads.run_parallel(lambda c0, c1: jit.output_f43(v, out, k, 0, n, c0, c1, 0, th, tw, 1, tw), parts, threads)

    moved = 2.0 * v.nbytes + x.nbytes + out.nbytes
    return moved / _best_time(both, repeat)


def tune_rates(repeat: int = 5, quick: bool = False) -> dict[str, float]:
    """Measure this machine's rates and cache them; returns them."""
    measured = measure_rates(repeat, quick)

    def change(section: dict[str, Any]) -> None:
        section["rates"] = measured
        section["rates_measured"] = _now()

    update(change)
    return measured


# --------------------------------------------------------------------------- tuning one problem


@dataclass(frozen=True)
class TuneResult:
    """What ``tune`` measured for one problem: every candidate's best time, the winner, the cache file."""

    spec: ConvSpec
    winner: str
    params: dict[str, Any]
    times: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)  # (method, params, seconds)
    path: Path | None = None

    def __str__(self) -> str:
        from .planner import _describe, _fmt_time

        s = self.spec
        lines = [f"tuned: x {s.x_shape} {s.dtype}, weight {s.w_shape}, stride {s.stride}, padding {list(s.pads)}, "
                 f"dilation {s.dilation}, groups {s.groups}"]
        best = min(t for _, _, t in self.times)
        for m, p, t in sorted(self.times, key=lambda item: item[2]):
            mark = "  <- fastest" if t == best else f"  {t / best:.2f}x"
            lines.append(f"  {m:<10} {_fmt_time(t):>10}  {_describe(p, s, m)}{mark}")
        if self.path is not None:
            lines.append(f"cached in {self.path}: method='auto' now takes {self.winner} for this problem")
        return "\n".join(lines)


def candidates(spec: ConvSpec, x: np.ndarray, w: np.ndarray, threads: int,
               methods: tuple[str, ...] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every (method, parameters) worth timing: what ``auto`` may choose, Winograd with each tile,
    back end and a few block sizes; ``reference`` only when asked for."""
    from . import planner

    plan = planner.choose(spec, x, w, threads=threads)
    allowed = [m for m in (methods or METHODS) if m not in plan.excluded and (methods or m != "reference")]
    out: list[tuple[str, dict[str, Any]]] = []
    for m in allowed:
        for p in planner.options(m, spec, threads):
            if m == "winograd":  # the default block and half of it (larger ones would break the memory bound)
                blocks = {p["block"], max(1, p["block"] // 2)} if p["block"] > 0 else {p["block"]}
                out.extend((m, {**p, "block": b}) for b in sorted(blocks))
            else:
                out.append((m, p))
    return out


def tune(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
         groups: int = 1, *, padding_mode: str = "zeros", methods: tuple[str, ...] | None = None,
         repeat: int = 5, threads: int | None = None, save: bool = True) -> TuneResult:
    """Time every candidate method on this problem and cache the fastest for ``method="auto"``.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, padding_mode
        Exactly as for :func:`convdot.conv` (the bias does not change the choice).
    methods : tuple of str, optional
        Only these methods (default: every method ``auto`` may choose, without ``reference``).
    repeat : int, default 5
        Each candidate runs once to warm up, then this many times; the best time counts.
    threads : int, optional
        Threads for convdot's own loops; the winner is cached for this thread count.
    save : bool, default True
        Write the winner to the cache. (The machine's rates are measured by :func:`tune_rates`,
        ``convdot tune`` without a problem.)

    Returns
    -------
    TuneResult
        ``str(result)`` is a table of the times.

    Notes
    -----
    Every candidate's output is checked against the first one's before it is timed, within a
    tolerance scaled to the problem, so a broken method cannot win.

    Examples
    --------
    >>> import numpy as np, convdot
    >>> r = convdot.tune(np.ones((1, 2, 8, 8)), np.ones((2, 2, 3, 3)), padding=1, repeat=1, save=False)
    >>> r.winner in convdot.METHODS
    True
    """
    from ._run import execute
    from ._spec import parse_conv
    from .algorithms import ALGORITHMS

    p = parse_conv("tune", x, weight, None, stride, padding, dilation, groups, padding_mode)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"tune: repeat must be an int >= 1, got {repeat!r}")
    if methods is not None:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"tune: methods must be names in {METHODS}, got {unknown}")
    n_threads = _threads.num_threads(threads, func="tune")
    spec = p.spec
    cands = candidates(spec, p.x, p.w, n_threads, methods)
    if not cands:
        raise ValueError(f"tune: none of the methods {methods} can run this problem")
    ref = None
    times: list[tuple[str, dict[str, Any], float]] = []
    for method, params in cands:
        if method == "winograd":
            def call(params=params):
                return ALGORITHMS["winograd"].run(p.x, p.w, spec, **params)
        else:
            def call(method=method):
                return execute(p, method)
        out = call()
        if ref is None:
            ref, scale = out, float(np.max(np.abs(out))) if out.size else 0.0
        else:
            tol = 1e-3 * scale if spec.dtype.kind in "fc" else 0
            if out.shape != ref.shape or not np.allclose(out, ref, rtol=0, atol=tol, equal_nan=True):
                raise RuntimeError(f"tune: method {method!r} {params} disagrees with {cands[0][0]!r}; not tuning")
        times.append((method, params, _best_time(call, repeat)))
    method, params, _ = min(times, key=lambda item: item[2])
    path = None
    if save:
        by_candidate = {f"{m} {_key(q)}".strip(): t for m, q, t in times}
        path = record(spec, n_threads, method, params, by_candidate)
    return TuneResult(spec, method, params, times, path)


def _key(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "threads")
