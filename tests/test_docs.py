"""Every public function has a numpydoc docstring whose Example runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import inspect

import numpy as np
import pytest

import convdot

MODULES = sorted({inspect.getmodule(getattr(convdot, n)).__name__ for n in convdot.__all__
                  if callable(getattr(convdot, n)) and inspect.getmodule(getattr(convdot, n)) is not None})


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    with np.printoptions(legacy=False):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("name", [n for n in convdot.__all__ if inspect.isfunction(getattr(convdot, n))])
def test_public_functions_are_documented(name):
    doc = inspect.getdoc(getattr(convdot, name)) or ""
    for section in ("Parameters", "Returns", "Examples"):
        assert section in doc, f"{name} lacks a {section} section"
    assert ">>>" in doc
