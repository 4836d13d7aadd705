"""Dask workload: filter a large float32 image (k x k kernel) on a LocalCluster, convdot vs dask-image.

Interface for the ``convdot bench`` harness
-------------------------------------------
``run(size=16384, kernel=7, workers=2, chunk=2048, sinks=("discard", "zarr"), workdir=None, log=print)
-> list[dict]``

Writes a ``size x size`` float32 image to a Zarr store (``chunk x chunk`` chunks) in ``workdir`` (a
temporary directory by default, removed afterwards), then for each sink and each implementation
starts a fresh ``LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)`` and times
one run of

- ``convdot``:    ``convdot.dask.correlate2d(x, w, "same")`` (boundary fill 0)
- ``dask-image``: ``dask_image.ndfilters.correlate(x, w, mode="constant", cval=0)``

on the same chunks. Sink ``discard`` reads the input from Zarr, filters, and drops each output
chunk (the filter and the read); sink ``zarr`` writes the output to a Zarr store (end to end).
Each returned row is a dict with keys ``workload`` ("dask-filter"), ``impl``, ``sink``, ``size``,
``kernel``, ``chunk``, ``workers``, ``seconds`` (wall time of the compute), ``peak_rss_mib`` (the
largest resident memory of any worker process during the run, sampled every 5 ms), ``idle_rss_mib`` (that
worker's memory after start-up and a warm-up run) and ``peak_chunks`` (``(peak - idle) / chunk
bytes``: how many chunks' worth of memory a worker needed at most). The two outputs are checked
against each other on a few chunks before any number is reported. Dask-image must be installed
(``pip install convdot[bench]``).

Run alone: ``python benchmarks/dask_filter.py --size 8192`` prints the rows as a table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable

import numpy as np

WORKER_ENV = {  # one thread per worker process everywhere: the workers are the parallelism
    "CONVDOT_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class _Discard:
    """A store that drops what it is given (``da.store`` needs ``__setitem__``)."""

    def __setitem__(self, key, value) -> None:
        pass


def _filters(kernel: np.ndarray) -> dict[str, Callable]:
    import dask_image.ndfilters as dndi

    import convdot.dask as cdask

    return {
        "convdot": lambda x: cdask.correlate2d(x, kernel, "same"),
        "dask-image": lambda x: dndi.correlate(x, kernel, mode="constant", cval=0.0),
    }


def _start_sampler(dask_worker, every: float = 0.005) -> int:
    """Sample this worker process's resident memory every ``every`` s in a thread, keeping the maximum.

    (``getrusage``'s ru_maxrss is no use here: it survives fork and exec, so a worker inherits its parent's.)
    """
    import threading

    import psutil

    proc = psutil.Process()
    state = {"peak": proc.memory_info().rss, "stop": threading.Event()}

    def sample() -> None:
        while not state["stop"].wait(every):
            state["peak"] = max(state["peak"], proc.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    dask_worker._convdot_bench_rss = state
    return state["peak"]


def _stop_sampler(dask_worker) -> int:
    state = dask_worker._convdot_bench_rss
    state["stop"].set()
    return state["peak"]


def _warm(impl: str, kernel: np.ndarray, chunk: int) -> None:
    """One small run on chunk-sized blocks, so imports and JIT compiles are not timed."""
    import dask.array as da

    _filters(kernel)[impl](da.ones((chunk + 8, chunk), chunks=chunk, dtype=np.float32)).compute(scheduler="sync")


def _write_input(path: str, size: int, chunk: int) -> None:
    import dask
    import dask.array as da

    rng = da.random.default_rng(0)
    x = rng.standard_normal((size, size), chunks=chunk, dtype=np.float32)
    with dask.config.set(scheduler="threads"):
        da.to_zarr(x, path, overwrite=True)


def _one(impl: str, sink: str, src: str, dst: str, kernel: np.ndarray, workers: int, chunk: int) -> dict:
    import sys

    import cloudpickle
    import dask.array as da
    from distributed import Client, LocalCluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not find this file on their path
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40, env=WORKER_ENV) as cluster, Client(cluster) as client:
        client.run(_warm, impl, kernel, chunk)  # imports and any JIT compile happen here, on every worker
        idle = client.run(_start_sampler)
        fn = _filters(kernel)[impl]
        x = da.from_zarr(src)
        y = fn(x)
        target = _Discard() if sink == "discard" else None
        start = time.perf_counter()
        if target is None:
            da.to_zarr(y, dst, overwrite=True, compute=True)
        else:
            da.store(y, target, lock=False, compute=True)
        seconds = time.perf_counter() - start
        peaks = client.run(_stop_sampler)
    worst = max(peaks, key=peaks.get)
    chunk_bytes = int(np.prod(x.chunksize)) * x.dtype.itemsize
    return {"impl": impl, "sink": sink, "seconds": seconds, "peak_rss_mib": peaks[worst] / 2**20,
            "idle_rss_mib": idle[worst] / 2**20, "peak_chunks": (peaks[worst] - idle[worst]) / chunk_bytes}


def _check(kernel: np.ndarray, src: str, chunk: int) -> None:
    """Both implementations agree on the corners and a middle chunk (run on the local threads)."""
    import dask.array as da

    x = da.from_zarr(src)
    n = x.shape[0]
    fns = _filters(kernel)
    for sl in [(slice(0, chunk), slice(0, chunk)), (slice(n // 2 - chunk // 2, n // 2 + chunk // 2),) * 2,
               (slice(n - chunk, n), slice(n - chunk, n))]:
        a = fns["convdot"](x)[sl].compute(scheduler="threads")
        b = fns["dask-image"](x)[sl].compute(scheduler="threads")
        scale = float(np.abs(kernel).sum()) * float(np.abs(x[sl]).max().compute())
        err = float(np.abs(a.astype(np.float64) - b).max())
        if err > 1e-5 * scale:
            raise AssertionError(f"convdot and dask-image disagree by {err:.3g} on {sl}")


def run(size: int = 16384, kernel: int = 7, workers: int = 2, chunk: int = 2048, sinks=("discard", "zarr"),
        workdir: str | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Run the workload; see the module docstring for the rows returned."""
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="convdot-dask-bench-")
    src, dst = os.path.join(workdir, "in.zarr"), os.path.join(workdir, "out.zarr")
    w = np.random.default_rng(1).standard_normal((kernel, kernel)).astype(np.float32)
    rows = []
    try:
        log(f"writing a {size}x{size} float32 input in {chunk}x{chunk} chunks to {src}")
        _write_input(src, size, chunk)
        _check(w, src, chunk)
        for sink in sinks:
            for impl in ("convdot", "dask-image"):
                row = {"workload": "dask-filter", "size": size, "kernel": kernel, "chunk": chunk, "workers": workers,
                       **_one(impl, sink, src, dst, w, workers, chunk)}
                log(f"  {impl:10s} {sink:8s} {row['seconds']:7.2f} s  peak worker RSS {row['peak_rss_mib']:7.0f} MiB "
                    f"(idle {row['idle_rss_mib']:.0f} MiB, +{row['peak_chunks']:.1f} chunks)")
                rows.append(row)
                shutil.rmtree(dst, ignore_errors=True)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table with the time ratio dask-image / convdot per sink."""
    lines = ["| impl | sink | size | chunk | k | workers | time (s) | peak worker RSS (MiB) | idle (MiB) | "
             "peak - idle (chunks) | speed vs dask-image |", "|" + "---|" * 11]
    base = {r["sink"]: r["seconds"] for r in rows if r["impl"] == "dask-image"}
    for r in rows:
        ratio = base.get(r["sink"], float("nan")) / r["seconds"]
        lines.append(f"| {r['impl']} | {r['sink']} | {r['size']} | {r['chunk']} | {r['kernel']} | {r['workers']} | "
                     f"{r['seconds']:.2f} | {r['peak_rss_mib']:.0f} | {r['idle_rss_mib']:.0f} | "
                     f"{r['peak_chunks']:.1f} | {ratio:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=16384)
    p.add_argument("--kernel", type=int, default=7)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=2048)
    p.add_argument("--sinks", default="discard,zarr", help="comma-separated: discard, zarr")
    p.add_argument("--workdir", default=None, help="where the Zarr stores go (default: a temporary directory)")
    args = p.parse_args(argv)
    rows = run(args.size, args.kernel, args.workers, args.chunk, tuple(args.sinks.split(",")), args.workdir)
    print(table(rows))


if __name__ == "__main__":
    main()
