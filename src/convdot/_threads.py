"""How many threads convdot's own loops use, and the pool they run on.

The count is, in order: an explicit ``threads=`` argument, the innermost :func:`using` block, the
``CONVDOT_NUM_THREADS`` environment variable, the CPUs this process may run on. It governs
convdot's thread pool (the Winograd transforms, blocks of images); the BLAS inside ``np.matmul``
keeps its own setting (``OPENBLAS_NUM_THREADS`` and friends). Work is split only where the pieces release the GIL
(compiled kernels, large NumPy operations, ``np.matmul``). Where convdot's threads each call the
BLAS at once, :func:`blas_single` asks the BLAS for one thread per call (with ``threadpoolctl``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

ENV = "CONVDOT_NUM_THREADS"

T = TypeVar("T")

_pools: dict[int, ThreadPoolExecutor] = {}
_lock = threading.Lock()
_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("convdot_threads", default=None)


@contextlib.contextmanager
def using(threads: int | None, *, func: str = "convdot") -> Iterator[None]:
    """Within the block, ``num_threads()`` is ``threads`` (None: unchanged); per thread and task."""
    token = _override.set(None if threads is None else num_threads(threads, func=func))
    try:
        yield
    finally:
        _override.reset(token)


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def num_threads(threads: Any = None, *, func: str = "convdot") -> int:
    """Resolve a thread count: ``threads`` if given, else ``$CONVDOT_NUM_THREADS``, else the CPUs.

    Raises ValueError naming ``func`` for a count that is not a positive integer.
    """
    if threads is None and _override.get() is not None:
        return _override.get()
    if threads is None:
        env = os.environ.get(ENV, "").strip()
        if not env:
            return available_cpus()
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"{func}: environment variable {ENV} must be a positive integer, got {env!r}") from None
        if value < 1:
            raise ValueError(f"{func}: environment variable {ENV} must be a positive integer, got {env!r}")
        return value
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"{func}: threads must be an int or None, got {threads!r}")
    if threads < 1:
        raise ValueError(f"{func}: threads must be >= 1, got {threads}")
    return threads


def split(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` cut into at most ``parts`` contiguous, non-empty, near-equal ranges."""
    parts = max(1, min(parts, hi - lo))
    edges = [lo + (hi - lo) * k // parts for k in range(parts + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def run_parallel(fn: Callable[..., T], jobs: Sequence[tuple], threads: int) -> list[T]:
    """``[fn(*job) for job in jobs]``, on a shared pool of ``threads`` workers when threads > 1."""
    if threads <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    with _lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="convdot")
    # each job in a copy of the caller's context: np.errstate (which execute() sets so that 0 * inf
    # inside a GEMM does not warn) and using() are context variables, which pool threads lack
    ctx = contextvars.copy_context()
    if len(jobs) > threads:
        return list(pool.map(lambda job: ctx.copy().run(fn, *job), jobs))
    # as many jobs as threads: the caller runs the first itself rather than wait idle, which wakes one
    # worker fewer (two trivial jobs: 81 -> 31 us median per call on this 2-vCPU guest)
    futures = [pool.submit(ctx.copy().run, fn, *job) for job in jobs[1:]]
    try:
        first = fn(*jobs[0])
    finally:
        wait(futures)  # never leave a worker on the caller's buffers, even when the first job failed
    return [first] + [f.result() for f in futures]


def run_shared(fn: Callable[[int, Callable[[], int]], T], threads: int) -> list[T]:
    """``fn(t, take)`` on each of ``threads`` workers; ``take()`` hands out 0, 1, 2, ... once each.

    For work in many similar pieces: each worker takes the next piece when it is done with one,
    instead of a fixed share, so a worker on a busier core does less (this 2-vCPU guest's cores
    often run at different speeds: with fixed halves, the resnet-3x3-56 Winograd's threads ended
    1-2 ms apart). ``next`` on an ``itertools.count`` is atomic in CPython.
    """
    counter = itertools.count()
    return run_parallel(fn, [(t, counter.__next__) for t in range(max(1, threads))], threads)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved: list[int] = []


@functools.lru_cache(maxsize=1)
def _blas_libraries() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the loaded BLAS libraries (none without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


@contextlib.contextmanager
def blas_single() -> Iterator[None]:
    """Within the block, the BLAS runs each call on one thread (when ``threadpoolctl`` is installed).

    For GEMMs that convdot's own threads issue at once: OpenBLAS, asked by two callers at once for
    GEMMs large enough to split, split both over its pool (the resnet-3x3-28 Winograd with 84-tile
    chunks ran 1.9x slower). The setting is process-wide: the first caller in sets it, the last one
    out restores it.
    """
    global _blas_users, _blas_saved
    libs = _blas_libraries()
    with _blas_lock:
        _blas_users += 1
        if _blas_users == 1:
            _blas_saved = [lib.num_threads for lib in libs]
            for lib in libs:
                lib.set_num_threads(1)
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for lib, n in zip(libs, _blas_saved):
                    lib.set_num_threads(n)
