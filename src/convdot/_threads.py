"""How many threads convdot's own loops use, and the pool they run on.

The count is, in order: an explicit ``threads=`` argument, the innermost :func:`using` block, the
``CONVDOT_NUM_THREADS`` environment variable, the CPUs this process may run on. It governs
convdot's thread pool (the Winograd transforms, blocks of images); the BLAS inside ``np.matmul``
keeps its own setting (``OPENBLAS_NUM_THREADS`` and friends). Work is split only where the pieces release the GIL
(compiled kernels, large NumPy operations, ``np.matmul``). Where convdot's threads each call the
BLAS at once, :func:`blas_single` asks the BLAS for one thread per call (with ``threadpoolctl``).
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import functools
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

ENV = "CONVDOT_NUM_THREADS"

T = TypeVar("T")

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


class _Helper:
    """A worker thread of convdot's pool: runs the tasks put on its queue, then offers itself again."""

    def __init__(self) -> None:
        self.tasks: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self.cpus: set[int] | None = None  # the CPUs it may run on, as last set
        started = threading.Event()
        # a daemon: one blocked on its queue must not hold up the interpreter's exit
        threading.Thread(target=self._loop, args=(started,), name="convdot", daemon=True).start()
        started.wait()

    def _loop(self, started: threading.Event) -> None:
        self.tid = threading.get_native_id()
        started.set()
        while True:
            self.tasks.get()()
            with _lock:
                _idle.append(self)

    def pin(self, cpus: set[int]) -> None:
        """Let the thread run only on ``cpus``."""
        if cpus != self.cpus:
            with contextlib.suppress(OSError):  # a CPU taken away since
                os.sched_setaffinity(self.tid, cpus)
            self.cpus = cpus


_idle: list[_Helper] = []


def _reset_after_fork() -> None:
    """In a forked child the helpers' threads are gone and the lock may be held by a thread that is too."""
    global _lock
    _lock = threading.Lock()
    _idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


@functools.lru_cache(maxsize=1)
def _getcpu() -> Callable[[], int]:
    """``sched_getcpu()`` of the C library (Linux), or a function returning -1 elsewhere."""
    import ctypes  # here, not at import: most calls never get this far

    try:
        return ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError, TypeError):  # no C library by that name, or no such function
        return lambda: -1


@contextlib.contextmanager
def _helpers(count: int) -> Iterator[list[_Helper]]:
    """``count`` idle helpers (made as needed), the caller and each of them held to a CPU of its own
    while the block runs (the caller's CPUs are restored after it).

    Left free, the scheduler of this 2-vCPU guest often ran the caller and its helper on one CPU
    for a whole call while the other idled: a thread that waits for the GIL is woken by the one
    that drops it, on that one's CPU. Resnet-3x3-56 (Winograd, 30 calls 50 ms apart): median 9.9 ms
    free, 6.1 with only the helper kept off the caller's CPU (the caller then followed it at
    times), 5.6 with both held; back to back, where the threads mostly stayed apart, 3.9, 4.1, 3.7.
    """
    with _lock:
        got = [_idle.pop() for _ in range(min(count, len(_idle)))]
    got += [_Helper() for _ in range(count - len(got))]
    mine = None
    if got and hasattr(os, "sched_setaffinity") and (cpu := _getcpu()()) >= 0:
        with contextlib.suppress(OSError):
            allowed = sorted(os.sched_getaffinity(0))
            if len(allowed) > 1 and cpu in allowed:
                os.sched_setaffinity(0, {cpu})
                mine = allowed
                at = allowed.index(cpu)
                for k, helper in enumerate(got):  # the CPUs after the caller's, in turn
                    helper.pin({allowed[(at + 1 + k) % len(allowed)]})
    try:
        yield got
    finally:
        if mine is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, mine)


def run_parallel(fn: Callable[..., T], jobs: Sequence[tuple], threads: int) -> list[T]:
    """``[fn(*job) for job in jobs]``, on the caller and ``threads - 1`` helper threads when threads > 1.

    The caller and the helpers take the next job as they finish one (:func:`run_phases`, one phase).
    """
    if threads <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    return run_phases([(lambda _, *job: fn(*job), jobs)], threads)[0]


def run_phases(phases: Sequence[tuple[Callable[..., Any], Sequence[tuple]]], threads: int) -> list[list]:
    """``fn(t, *job)`` for the jobs of each phase ``(fn, jobs)``, a phase's jobs only once every job of
    the phase before has finished; returns each phase's results in job order.

    The caller (``t = 0``) and ``threads - 1`` helpers (``t = 1, 2, ...``: an index for scratch of
    their own) take the jobs of all phases from one counter, in order, and one that takes a job of
    the next phase early waits for the phase to end. So the caller works rather than wait idle (it
    wakes one thread fewer: two trivial jobs, 81 -> 31 us a call on this 2-vCPU guest), a helper
    that starts late finds the jobs taken and returns, and phases share one start and one join
    (each cost 0.1-0.3 ms in a call after idle time on this guest). The call returns when every
    job taken has run, never leaving a helper on the caller's buffers; after a job fails the
    remaining ones are skipped, and its exception is raised.
    """
    sizes = [len(jobs) for _, jobs in phases]
    starts = list(itertools.accumulate(sizes, initial=0))  # the first job of each phase, and the end
    results: list[list] = [[None] * n for n in sizes]
    left = list(sizes)  # unfinished jobs of each phase
    order, finished = itertools.count(), threading.Condition()
    # what the participants reach the caller's data through, emptied when the call ends: a helper
    # that starts late must not keep the jobs' arrays alive (a channel block of im2col's input
    # outlived its loop iteration and the memory bound broke by it)
    shared: dict[str, Any] = {"phases": phases, "results": results, "errors": [], "active": 0}

    def participate(t: int) -> None:
        with finished:
            if not shared:  # the call is over
                return
            shared["active"] += 1
        try:
            while (i := next(order)) < starts[-1]:  # next() on an itertools.count is atomic in CPython
                ph = bisect.bisect_right(starts, i) - 1
                if ph and left[ph - 1]:
                    with finished:
                        finished.wait_for(lambda ph=ph: not left[ph - 1])
                if not shared["errors"]:
                    fn, jobs = shared["phases"][ph]
                    try:
                        shared["results"][ph][i - starts[ph]] = fn(t, *jobs[i - starts[ph]])
                    except BaseException as exc:  # kept for the caller, once the jobs taken have run
                        shared["errors"].append(exc)
                    del fn, jobs
                with finished:
                    left[ph] -= 1
                    if not left[ph]:
                        finished.notify_all()
        finally:
            with finished:
                shared["active"] -= 1
                finished.notify_all()

    # each helper in a copy of the caller's context: np.errstate (which execute() sets so that
    # 0 * inf inside a GEMM does not warn) and using() are context variables, which threads lack
    ctx = contextvars.copy_context()
    with _helpers(min(threads, max(sizes, default=0)) - 1) as helpers:
        for t, helper in enumerate(helpers, 1):
            helper.tasks.put(functools.partial(ctx.copy().run, participate, t))
        participate(0)
        with finished:  # every job run, and no helper still inside a job's frame
            finished.wait_for(lambda: not any(left) and not shared["active"])
            errors = shared["errors"]
            shared.clear()
    if errors:
        raise errors[0]
    return results


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
    """threadpoolctl's controllers of NumPy's BLAS (of every loaded BLAS when none is NumPy's own
    copy, as with a system or conda BLAS); none without threadpoolctl.

    Only ``np.matmul`` runs inside :func:`blas_single`, so SciPy's copy of OpenBLAS is left alone:
    each controller's first call after idle time cost 20-50 us here, twice per block.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    libs = tuple(ThreadpoolController().select(user_api="blas").lib_controllers)
    package = os.path.dirname(os.path.abspath(np.__file__))
    # a wheel's copy sits in numpy.libs beside the package (Linux, Windows) or inside it (macOS)
    places = (os.path.join(os.path.dirname(package), "numpy.libs") + os.sep, package + os.sep)
    mine = tuple(lib for lib in libs if os.path.abspath(lib.filepath).startswith(places))
    return mine or libs


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
