"""Send Dask arrays given to the in-memory functions to their lazy twins in :mod:`convdot.dask`.

Dask is never imported here: an argument can only be a Dask array if the user already imported
``dask.array``, so its presence in ``sys.modules`` is checked first and costs nothing otherwise.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def dask_aware(func: F) -> F:
    """Wrap a public function so a Dask-array input returns ``convdot.dask.<same name>(...)``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        da = sys.modules.get("dask.array")
        if da is not None and any(isinstance(a, da.Array) for a in (*args[:2], *kwargs.values())):
            from . import dask as lazy

            return getattr(lazy, func.__name__)(*args, **kwargs)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
