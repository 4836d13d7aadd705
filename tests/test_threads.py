"""The ``threads=`` knob of every computing function: it reaches convdot's own loops, leaves the
result alone, and a bad count is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

import convdot
import convdot.dask
from conftest import assert_close
from convdot import _threads


@pytest.fixture
def pools(monkeypatch):
    """Record the thread count of every parallel region convdot runs."""
    seen: list[int] = []
    real = _threads.run_parallel

    def spy(fn, jobs, threads):
        seen.append(threads)
        return real(fn, jobs, threads)

    monkeypatch.setattr(_threads, "run_parallel", spy)
    return seen


def _layer(rng):
    x = rng.standard_normal((2, 8, 20, 20)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    return x, w


def _expected(x, w):
    """The reference output and the scale float32 errors are relative to, ``conv(|x|, |w|)``."""
    return (convdot.conv2d(x, w, padding=1, method="reference"),
            convdot.conv2d(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), padding=1))


@pytest.mark.parametrize("threads", [1, 3])
def test_conv2d_runs_its_loops_on_the_threads_asked_for(threads, pools, rng):
    x, w = _layer(rng)
    out = convdot.conv2d(x, w, padding=1, method="winograd", threads=threads)
    assert pools and set(pools) == {threads}
    assert_close(out, *_expected(x, w))


@pytest.mark.parametrize("threads", [1, 2])
def test_auto_plans_for_the_threads_asked_for(threads, pools, rng):
    x, w = _layer(rng)
    out = convdot.conv2d(x, w, padding=1, threads=threads)
    assert set(pools) <= {threads}
    assert_close(out, *_expected(x, w))
    assert _threads._override.get() is None  # the knob does not outlive the call


def test_every_dialect_takes_threads(rng):
    x = rng.standard_normal((1, 2, 9, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    img, k = x[0, 0], w[0, 0]
    calls = [
        (convdot.conv, (x, w)), (convdot.conv1d, (x[:, :, 0], w[:, :, 0])), (convdot.conv2d, (x, w)),
        (convdot.conv3d, (x[..., None], w[..., None])),
        (convdot.conv_transpose, (x, w.transpose(1, 0, 2, 3))), (convdot.conv_transpose1d, (x[:, :, 0], w[:2, :, 0])),
        (convdot.conv_transpose2d, (x, w[:2])), (convdot.conv_transpose3d, (x[..., None], w[:2, ..., None])),
        (convdot.correlate, (img, k)), (convdot.convolve, (img, k)),
        (convdot.correlate2d, (img, k)), (convdot.convolve2d, (img, k)),
    ]
    for fn, args in calls:
        np.testing.assert_array_equal(fn(*args, threads=1), fn(*args), err_msg=fn.__name__)
    g = convdot.conv2d(x, w)
    for a, b in zip(convdot.conv_backward2d(g, x, w, threads=1), convdot.conv_backward2d(g, x, w)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("threads", "error", "words"), [
    (0, ValueError, "threads must be >= 1, got 0"),
    (-2, ValueError, "threads must be >= 1, got -2"),
    ("2", TypeError, "threads must be an int or None, got '2'"),
    (True, TypeError, "threads must be an int or None, got True"),
    (1.5, TypeError, "threads must be an int or None, got 1.5"),
])
def test_a_bad_thread_count_is_a_clear_error(threads, error, words, rng):
    x, w = _layer(rng)
    with pytest.raises(error, match=f"^conv2d: {words}"):
        convdot.conv2d(x, w, threads=threads)
    with pytest.raises(error, match=f"^correlate2d: {words}"):
        convdot.correlate2d(x[0, 0], w[0, 0], threads=threads)
    with pytest.raises(error, match=f"^conv_backward2d: {words}"):
        convdot.conv_backward2d(convdot.conv2d(x, w), x, w, threads=threads)
    with pytest.raises(error, match=f"^conv2d: {words}"):  # when the graph is built, not inside a task
        convdot.dask.conv2d(x, w, threads=threads)


def test_dask_twins_take_threads(pools, rng):
    da = pytest.importorskip("dask.array")
    x, w = _layer(rng)
    lazy = convdot.conv2d(da.from_array(x, chunks=(1, 8, 10, 10)), w, padding=1, method="winograd", threads=1)
    assert_close(lazy.compute(scheduler="sync"), *_expected(x, w))
    assert pools and set(pools) == {1}
    img = da.from_array(x[0, 0].astype(np.float64), chunks=10)
    np.testing.assert_allclose(convdot.dask.correlate2d(img, w[0, 0], "same", threads=2).compute(scheduler="sync"),
                               convdot.correlate2d(x[0, 0].astype(np.float64), w[0, 0], "same"), rtol=1e-6)


def test_blas_single_sets_one_thread_and_the_last_one_out_restores(monkeypatch):
    class FakeBlas:
        def __init__(self, n):
            self.num_threads = n

        def set_num_threads(self, n):
            self.num_threads = n

    libs = (FakeBlas(2), FakeBlas(4))
    monkeypatch.setattr(_threads, "_blas_libraries", lambda: libs)
    with _threads.blas_single():
        assert [lib.num_threads for lib in libs] == [1, 1]
        with _threads.blas_single():  # a second caller (another thread's call) overlapping the first
            assert [lib.num_threads for lib in libs] == [1, 1]
        assert [lib.num_threads for lib in libs] == [1, 1]  # the first is still inside
    assert [lib.num_threads for lib in libs] == [2, 4]
    with pytest.raises(RuntimeError), _threads.blas_single():
        raise RuntimeError("restored on errors too")
    assert [lib.num_threads for lib in libs] == [2, 4]


def test_blas_single_reaches_the_real_blas():
    """NumPy's BLAS (the one ``np.matmul`` calls) runs on one thread inside, and is restored after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def counts():
        return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    before = counts()
    numpys = {path for path in before if "numpy" in path}  # a pip wheel's own copy, in numpy.libs
    controlled = {lib.filepath for lib in _threads._blas_libraries()}
    assert controlled and (not numpys or controlled == numpys)
    with _threads.blas_single():
        inside = counts()
    assert all(inside[path] == 1 for path in controlled)
    assert counts() == before


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_run_shared_hands_out_every_piece_once(threads):
    """Workers that take pieces as they finish: all of them run, and every index comes out exactly
    once, however unevenly they go (one worker sleeps on each piece)."""
    import threading
    import time

    taken: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(t, take):
        mine = 0
        while (i := take()) < 40:
            if t == 0:
                time.sleep(0.001)
            with lock:
                taken.append((t, i))
            mine += 1
        return mine

    counts = _threads.run_shared(work, threads)
    assert len(counts) == threads and sum(counts) == 40
    assert sorted(i for _, i in taken) == list(range(40))


def test_run_parallel_runs_every_job_once_and_in_order():
    jobs = [(i,) for i in range(23)]
    assert _threads.run_parallel(lambda i: i * i, jobs, 3) == [i * i for i in range(23)]
    assert _threads.run_parallel(lambda i: -i, [(5,)], 2) == [-5]


def test_run_parallel_raises_a_failure_once_the_jobs_taken_have_run():
    import threading
    import time

    running: set[int] = set()
    lock = threading.Lock()

    def job(i):
        if i == 1:
            raise KeyError(i)
        with lock:
            running.add(i)
        time.sleep(0.01)  # a slow job is still waited for: no helper is left on the caller's data
        with lock:
            running.discard(i)
        return i

    with pytest.raises(KeyError, match="1"):
        _threads.run_parallel(job, [(i,) for i in range(6)], 2)
    assert running == set()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_run_phases_starts_a_phase_once_the_one_before_has_ended(threads):
    """Jobs of uneven length: every job of the second phase sees all of the first's work done, and
    each runs on a participant index below ``threads``."""
    import threading
    import time

    done: list[int] = []
    lock = threading.Lock()

    def first(t, i):
        time.sleep(0.002 * (i % 3))
        with lock:
            done.append(i)
        return t

    def second(t, i):
        return len(done), t

    r1, r2 = _threads.run_phases([(first, [(i,) for i in range(7)]), (second, [(i,) for i in range(5)])], threads)
    assert sorted(done) == list(range(7))
    assert all(seen == 7 for seen, _ in r2)
    assert {t for _, t in r2} | set(r1) <= set(range(threads))


def test_run_parallel_nested_inside_a_job_does_not_deadlock():
    def outer(i):
        return sum(_threads.run_parallel(lambda j: i * j, [(j,) for j in range(4)], 2))

    assert _threads.run_parallel(outer, [(i,) for i in range(4)], 2) == [6 * i for i in range(4)]


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_the_caller_and_its_helper_run_on_cpus_of_their_own_and_the_callers_are_restored():
    import os
    import threading

    before = os.sched_getaffinity(0)
    both = threading.Barrier(2, timeout=10)  # two jobs that wait for each other: the caller and a helper
    masks = _threads.run_parallel(lambda i: (both.wait(), os.sched_getaffinity(0))[1], [(0,), (1,)], 2)
    assert os.sched_getaffinity(0) == before
    if len(before) >= 2:
        assert all(len(m) == 1 for m in masks) and masks[0] != masks[1] and set().union(*masks) <= before
    with pytest.raises(ZeroDivisionError):
        _threads.run_parallel(lambda i: 1 // i, [(0,), (1,)], 2)
    assert os.sched_getaffinity(0) == before


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_run_parallel_works_in_a_forked_child():
    import os
    import signal
    import threading

    _threads.run_parallel(abs, [(-1,), (-2,)], 2)  # the parent has helpers before it forks
    pid = os.fork()
    if pid == 0:  # the child: its helpers are new threads, the parent's are not there
        ok = False
        try:
            signal.alarm(20)  # a child that hangs is killed, and the test fails
            both = threading.Barrier(2, timeout=10)  # needs a live helper beside the caller
            ok = _threads.run_parallel(lambda i: (both.wait(), -i)[1], [(-1,), (-2,)], 2) == [1, 2]
        finally:
            os._exit(0 if ok else 1)  # never back into pytest
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_no_helper_keeps_a_jobs_data_alive_after_the_call():
    """A helper that starts after the caller did every job, or is still leaving the last one, holds
    no reference to the jobs' arguments or results: they go when the caller drops them."""
    import weakref

    class Block:  # stands for a large array a job reads
        pass

    for _ in range(200):
        block = Block()
        ref = weakref.ref(block)
        results = _threads.run_parallel(lambda b: Block(), [(block,), (block,)], 2)
        made = weakref.ref(results[0])
        del block, results
        assert ref() is None and made() is None


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_without_sched_getcpu_nothing_is_pinned(monkeypatch):
    """Where the C library has no ``sched_getcpu`` (not glibc), the threads are left where they are."""
    import os
    import threading

    monkeypatch.setattr(_threads, "_getcpu", lambda: (lambda: -1))
    before = os.sched_getaffinity(0)
    both = threading.Barrier(2, timeout=10)
    caller = threading.current_thread()

    def job(i):
        both.wait()
        return threading.current_thread() is caller, os.sched_getaffinity(0)

    seen = dict(_threads.run_parallel(job, [(0,), (1,)], 2))
    assert seen[True] == before  # the caller ran its job unpinned
    assert os.sched_getaffinity(0) == before
