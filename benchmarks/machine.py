"""What the numbers were measured on: CPU model, cores, versions, the BLAS that ran (threadpoolctl)."""

from __future__ import annotations

import os
import platform
import sys

from . import peers

#: Environment variables that change how fast NumPy/BLAS/torch run; recorded with the numbers.
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "CONVDOT_NUM_THREADS", "CONVDOT_JIT")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def blas() -> list[dict] | None:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries (which kernel, how many threads), if installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    import numpy  # noqa: F401  (load its BLAS so it is listed)
    import scipy.linalg  # noqa: F401

    return [{k: v for k, v in entry.items() if isinstance(v, (str, int, float, type(None)))}
            for entry in threadpool_info()]


def info() -> dict:
    """Everything the JSON's ``machine`` field holds."""
    import convdot

    versions = {name: peers.version(name) for name in ("numpy", "scipy", "torch", "cv2", "numba", "dask")}
    versions["convdot"] = convdot.__version__
    return {"cpu": cpu_model(), "cores": cores(), "platform": platform.platform(), "python": sys.version.split()[0],
            "versions": versions, "blas": blas(), "env": {v: os.environ.get(v) for v in ENV_VARS}}
