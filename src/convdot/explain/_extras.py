"""Optional dependencies of the renderers, imported only when a renderer runs."""

from __future__ import annotations

import importlib
from types import ModuleType

#: The distribution that provides each optional module.
_PACKAGES = {"matplotlib": "matplotlib", "rich": "rich", "PIL": "Pillow"}


class MissingExtraError(ImportError):
    """An optional renderer's package is not installed; the message says how to install it."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.figure"``) or say which extra provides it.

    Raises
    ------
    MissingExtraError
        ``"<feature> needs matplotlib, which is not installed: pip install convdot[plot]"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        package = _PACKAGES.get(top, top)
        raise MissingExtraError(f"{feature} needs {package}, which is not installed: "
                                f"pip install convdot[plot]") from None
