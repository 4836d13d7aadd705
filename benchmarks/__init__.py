"""Workloads and peers for ``convdot bench``: convdot raced against PyTorch, SciPy and OpenCV.

Installed with convdot (``pip install convdot[bench]`` adds the peers: torch, opencv-python-headless,
dask-image). Modules, one job each:

- :mod:`benchmarks.workloads`: the problems (CNN layers, image filters, a backward pass), full and
  ``quick`` sizes, each a :class:`~benchmarks.workloads.Case` with its arrays and contestants.
- :mod:`benchmarks.peers`: adapters that run a peer library on the same arrays (or say why not).
- :mod:`benchmarks.runner`: interleaved best-of-N timing, agreement checks, peak memory,
  ``auto`` against every single method, the JSON document and its validator.
- :mod:`benchmarks.machine`: CPU, cores, versions, BLAS (threadpoolctl) for the JSON.
- :mod:`benchmarks.dask_filter`: the Dask workload (``--workload dask-filter``).

JSON document (``convdot bench --json FILE``), schema ``"convdot-bench/1"``::

    {"schema": "convdot-bench/1", "created": ISO time, "quick": bool, "repeat": int, "pause": seconds,
     "machine": {"cpu": str, "cores": int, "platform": str, "python": str,
                 "versions": {package: version or null}, "blas": [threadpoolctl entries] or null,
                 "env": {variable: value or null}},
     "workloads": [
       {"name": str, "problem": str, "dtype": str, "flops": float, "available": bool, "note": str,
        "convdot": {"method": str, "seconds": float, "gflops": float},
        "methods": {method: seconds or null},          # each single convdot method (null: skipped)
        "method_notes": {method: why skipped or failed},
        "fastest_method": str, "auto_over_fastest": float,   # median of auto / fastest, round by round
        "memory": {"peak_bytes": int, "io_bytes": int, "ratio": float},  # peak / (input + output)
        "peers": [{"name": str, "status": "ok" | "not installed" | "mismatch" | "error" | "skipped",
                   "detail": str, "seconds": float or null, "gflops": float or null,
                   "ratio": float or null,             # peer seconds / convdot seconds
                   "max_rel_error": float or null}]}],
     "extra": {name: workload-specific rows, e.g. "dask-filter": [...]}}

:func:`benchmarks.runner.validate` checks a document against this description.
"""
