"""``convdot filter``: filter a Zarr array chunk by chunk with Dask, into a new Zarr array.

The input is never read whole: each task reads one input chunk (plus the halo from its
neighbours), filters it and writes one output chunk. The output is written to a temporary store
beside the destination and renamed into place only when every chunk is written, so a failed or
interrupted run leaves no half-written output, and an existing output is replaced only with --force.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import uuid
from typing import Any

import numpy as np

from ..cli import UsageError

SCHEDULERS = ("threads", "processes", "synchronous")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "filter",
        help="correlate (or convolve) a Zarr array with a kernel, chunk by chunk, with Dask",
        description="Filters an N-d Zarr array with a kernel from a .npy file, as scipy.signal.correlate "
                    "(or convolve) would, without ever holding the whole array in memory: each chunk is "
                    "filtered with exactly the halo it needs from its neighbours. Runs on Dask's threads, or "
                    "on a dask.distributed cluster with --scheduler tcp://HOST:PORT (the paths must then be "
                    "readable and writable by the workers). Needs: pip install 'convdot[dask]'.",
        epilog="Example: convdot filter --input big.zarr --kernel k.npy --output out.zarr --mode same",
    )
    p.add_argument("--input", required=True, metavar="IN.zarr", help="path of the input Zarr array")
    p.add_argument("--kernel", required=True, metavar="K.npy", help="the kernel, a .npy file with the input's ndim")
    p.add_argument("--output", required=True, metavar="OUT.zarr", help="path of the Zarr array to write")
    p.add_argument("--mode", choices=("same", "full", "valid"), default="same",
                   help="output size, as in scipy.signal (default: same, chunked like the input)")
    p.add_argument("--convolve", action="store_true", help="flip the kernel (convolution) instead of correlating")
    p.add_argument("--boundary", choices=("fill", "wrap", "symm"), default=None,
                   help="what lies outside a 2-D input, as scipy.signal.correlate2d (default: fill)")
    p.add_argument("--fillvalue", type=float, default=0.0, help="the value outside the input with --boundary fill")
    p.add_argument("--method", default="auto", help="convdot method per chunk (default: auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="convdot's threads inside each task (default $CONVDOT_NUM_THREADS or every CPU; "
                        "with the threads scheduler, 1 keeps one thread per core)")
    p.add_argument("--scheduler", default="threads", metavar="ADDRESS",
                   help="threads (default), processes, synchronous, or a dask.distributed scheduler address")
    p.add_argument("--force", action="store_true", help="replace OUT.zarr if it exists")
    p.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    return p


class ZarrChunks:
    """Reads an input Zarr array for ``dask.array.from_array``, naming the chunk when one cannot be decoded.

    Only the path is pickled, so tasks on other processes or machines open the store themselves.
    """

    def __init__(self, path: str, shape: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...]):
        self.path, self.shape, self.dtype, self.chunks = path, shape, np.dtype(dtype), chunks
        self.ndim = len(shape)
        self._array = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        import zarr

        if self._array is None:
            self._array = zarr.open_array(self.path, mode="r")
        try:
            return np.asarray(self._array[index])
        except Exception as exc:  # a codec error names no chunk: say which one, as an OSError the CLI reports
            where = tuple(s.start // c for s, c in zip(index, self.chunks))
            span = ", ".join(f"{s.start}:{s.stop}" for s in index)
            raise OSError(f"chunk {where} (elements [{span}]) of {self.path} is corrupt or unreadable: "
                          f"{type(exc).__name__}: {exc}") from None


def _open_input(path: str):
    try:
        import zarr
    except ImportError:
        raise UsageError("convdot filter needs zarr and dask; install them with: pip install 'convdot[dask]'") from None
    if not os.path.exists(path):
        raise FileNotFoundError(f"input not found: {path}")
    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:
        raise OSError(f"{path} is not a Zarr array ({type(exc).__name__}: {exc})") from None
    if not hasattr(node, "shape"):
        names = sorted(node.array_keys())
        hint = f"; give one of its arrays, e.g. {os.path.join(path, names[0])}" if names else " with no arrays"
        raise UsageError(f"{path} is a Zarr group, not an array{hint}")
    return node


def _load_kernel(path: str, ndim: int) -> np.ndarray:
    if not os.path.exists(path):
        raise FileNotFoundError(f"kernel not found: {path}")
    try:
        k = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise OSError(f"{path} is not a .npy array ({exc})") from None
    if not isinstance(k, np.ndarray):
        raise UsageError(f"{path} holds several arrays (an .npz); give a .npy file with one kernel")
    if k.ndim != ndim:
        raise UsageError(f"the kernel in {path} has {k.ndim} dimensions (shape {k.shape}) but the input has {ndim}; "
                         f"they must match")
    return k


def _replace(tmp: str, out: str) -> None:
    """Move the finished temporary store onto ``out``; an old ``out`` is removed only once the new one is there."""
    if not os.path.lexists(out):
        os.replace(tmp, out)
        return
    old = os.path.join(os.path.dirname(out) or ".", f".{os.path.basename(out)}.old-{uuid.uuid4().hex[:8]}")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old, out)
        raise
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old)
    else:
        os.remove(old)


def _compute(store, scheduler: str, progress: bool) -> None:
    import dask

    if scheduler in SCHEDULERS:
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar(out=sys.stderr):
                dask.compute(store, scheduler=scheduler)
        else:
            dask.compute(store, scheduler=scheduler)
        return
    try:
        from distributed import Client
        from distributed import progress as show_progress
    except ImportError:
        raise UsageError("--scheduler ADDRESS needs dask.distributed: pip install 'convdot[dask]'") from None
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as exc:
        raise OSError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        future = client.compute(store)
        if progress:
            show_progress(future)
            print(file=sys.stderr)
        future.result()


def run(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be a positive integer, got {args.threads}")
    src, out = os.path.abspath(args.input), os.path.abspath(args.output)
    if src == out:
        raise UsageError("--output must differ from --input (the input is read while the output is written)")
    if os.path.lexists(out) and not args.force:
        raise UsageError(f"output {args.output} already exists; pass --force to replace it")
    z = _open_input(src)
    kernel = _load_kernel(args.kernel, z.ndim)
    import dask.array as da

    from .. import dask as cdask

    chunks = tuple(z.chunks)
    reader = ZarrChunks(src, tuple(z.shape), z.dtype, chunks)
    x = da.from_array(reader, chunks=chunks, lock=False, name=f"convdot-filter-read-{uuid.uuid4().hex}",
                      meta=np.empty((0,) * z.ndim, dtype=z.dtype))
    if args.boundary is not None:
        if z.ndim != 2:
            raise UsageError(f"--boundary needs a 2-D input (scipy.signal.correlate2d); "
                             f"{args.input} has shape {z.shape}")
        fn = cdask.convolve2d if args.convolve else cdask.correlate2d
        y = fn(x, kernel, args.mode, args.boundary, args.fillvalue, method=args.method, threads=args.threads)
    else:
        fn = cdask.convolve if args.convolve else cdask.correlate
        y = fn(x, kernel, args.mode, method=args.method, threads=args.threads)
    y = y.rechunk(tuple(min(c, max(n, 1)) for c, n in zip(chunks, y.shape)))  # Zarr wants regular chunks

    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.tmp-{uuid.uuid4().hex[:8]}")
    start = time.perf_counter()
    try:
        store = da.to_zarr(y, tmp, compute=False)
        _compute(store, args.scheduler, progress=not args.no_progress)
        _replace(tmp, out)
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - start
    print(f"wrote {args.output}: shape {y.shape}, dtype {y.dtype}, chunks {y.chunksize}, "
          f"{'convolved' if args.convolve else 'correlated'} with a {kernel.shape} kernel (mode={args.mode}) "
          f"in {seconds:.1f} s")
    return 0
