"""Command-line input and output: arrays from files or inline text, option lists, atomic file writes.

Inputs: ``.npy``, ``.csv``, ``.txt``, images (``.png``, ``.jpg``, ... through Pillow, read as
grayscale) and inline matrix text such as ``"1,1,1;0,1,1;0,0,1"`` or ``"[[1, 0], [0, 1]]"``.
Every problem is a ValueError/OSError with one line naming the option and the file or text.
Outputs are written to a temporary file beside the target and renamed over it, so a target is
never half-written, and an existing file is only replaced when asked to.
"""

from __future__ import annotations

import argparse
import ast
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._spec import parse_bare_layer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TEXT_SUFFIXES = (".csv", ".txt")
SUFFIXES = (".npy", *TEXT_SUFFIXES, *IMAGE_SUFFIXES)


# --------------------------------------------------------------------------- reading arrays


def _number(token: str, where: str) -> int | float | complex:
    for kind in (int, float, complex):
        try:
            return kind(token)
        except ValueError:
            continue
    raise ValueError(f"{where}: {token!r} is not a number")


def _rows(lines: list[str], where: str, separators: str) -> np.ndarray:
    """Rows of numbers -> an array: 1-D for a single row, 2-D otherwise; ragged rows are an error."""
    rows = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for sep in separators:
            line = line.replace(sep, " ")
        rows.append([_number(tok, where) for tok in line.split()])
    if not rows or not any(rows):
        raise ValueError(f"{where}: no numbers found")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        first = len(rows[0])
        bad = next(i for i, r in enumerate(rows) if len(r) != first)
        raise ValueError(f"{where}: every row must have the same number of values; row 1 has {first}, "
                         f"row {bad + 1} has {len(rows[bad])}")
    arr = np.array(rows)
    return arr[0] if len(rows) == 1 else arr


def parse_matrix(text: str, where: str) -> np.ndarray:
    """Inline matrix text: ``"1,2;3,4"`` (rows split by ``;`` or newlines) or a nested list ``"[[1,2],[3,4]]"``."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"{where}: {text!r} is not a valid nested list of numbers") from None
        try:
            arr = np.array(value)
        except ValueError:
            raise ValueError(f"{where}: the rows of {text!r} do not all have the same length") from None
        if arr.dtype.kind not in "biufc" or arr.size == 0:
            raise ValueError(f"{where}: {text!r} must be a non-empty nested list of numbers")
        return arr
    return _rows(text.replace(";", "\n").splitlines(), where, ",")


def _read_image(path: Path, where: str) -> np.ndarray:
    from .explain._extras import require

    image = require("PIL.Image", f"reading the image {path.name}")
    try:
        with image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.int64)  # (H, W), grayscale 0..255
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{where}: cannot read {str(path)!r} as an image: {exc}") from None


def read_array(value: str, option: str) -> np.ndarray:
    """An array from a file path (.npy, .csv, .txt, an image) or inline matrix text.

    Parameters
    ----------
    value : str
        What the user typed after ``option``.
    option : str
        The option's name, for messages (``"--input"``).

    Examples
    --------
    >>> read_array("1,1,1;0,1,1;0,0,1", "--input")
    array([[1, 1, 1],
           [0, 1, 1],
           [0, 0, 1]])
    """
    if not value.strip():
        raise ValueError(f"{option}: empty value; give a file (.npy, .csv, .txt, an image) or a matrix like '1,2;3,4'")
    path = Path(value)
    looks_like_file = path.suffix.lower() in SUFFIXES or os.sep in value or (os.altsep or os.sep) in value
    if not path.exists():
        if looks_like_file:
            raise ValueError(f"{option}: no such file {value!r}")
        try:
            return parse_matrix(value, option)
        except ValueError as exc:
            raise ValueError(f"{exc} (give a file: {', '.join(SUFFIXES[:3])}, an image, "
                             f"or a matrix like '1,2;3,4')") from None
    if path.is_dir():
        raise ValueError(f"{option}: {value!r} is a directory, not a file")
    suffix = path.suffix.lower()
    where = f"{option} {value}"
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path, option)
    if suffix not in (".npy", *TEXT_SUFFIXES):
        raise ValueError(f"{option}: cannot read {value!r}: unknown file type {suffix or '(none)'!r}; "
                         f"use {', '.join(SUFFIXES)}")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            text = path.read_text(encoding="utf-8")
            return _rows(text.splitlines(), where, "," if suffix == ".csv" else ",;")
    except OSError as exc:
        raise ValueError(f"{option}: cannot read {value!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{option}: cannot read {value!r}: it is not a text file") from None
    except ValueError as exc:
        raise ValueError(f"{option}: cannot read {value!r} as a .npy file: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biufc":
        raise ValueError(f"{option}: {value!r} must hold a numeric array, got dtype {getattr(arr, 'dtype', '?')}")
    return arr


# --------------------------------------------------------------------------- option values


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """``"0,0"`` -> ``(0, 0)``; ``"2"`` -> ``(2,)``."""
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"{option}: expected integers separated by commas (like 0,1), got {text!r}") from None


def parse_per_axis(text: str | None, option: str) -> Any:
    """``"2"`` -> 2, ``"2,1"`` -> (2, 1); None stays None."""
    if text is None:
        return None
    vals = parse_ints(text, option)
    return vals[0] if len(vals) == 1 else vals


def parse_padding(text: str | None, option: str = "--padding") -> Any:
    """``"1"``, ``"1,2"``, ``"same"``, ``"valid"`` or ``(lo, hi)`` pairs ``"0:1,1:0"``."""
    if text is None:
        return None
    t = text.strip()
    if t in ("same", "valid"):
        return t
    if ":" in t:
        pairs = []
        for part in t.split(","):
            lo, _, hi = part.partition(":")
            pairs.append(parse_ints(f"{lo},{hi}", option))
        return tuple(pairs)
    return parse_per_axis(t, option)


def parse_numbers(text: str | None, option: str) -> np.ndarray | None:
    """``"0.5"`` or ``"1,-2"`` -> a 1-D array."""
    if text is None:
        return None
    arr = _rows([text], option, ",;")
    return np.atleast_1d(arr)


# --------------------------------------------------------------------------- writing files


def _mode(target: Path) -> int:
    """The replaced file's permissions, or what the umask gives a new file."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *, force: bool) -> Path:
    """Write a file through a temporary file in the same directory, then rename it into place.

    ``write`` receives the open binary temp file. Without ``force`` an existing ``path`` is left
    untouched and FileExistsError says to pass ``--force``. If ``write`` fails, the temp file is
    removed and ``path`` is as it was.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise IsADirectoryError(f"{str(target)!r} is a directory; give a file name")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {str(target)!r}: the directory {str(folder)!r} does not exist")
    if target.exists() and not force:
        raise FileExistsError(f"{str(target)!r} already exists; pass --force to replace it")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, _mode(target))  # mkstemp makes 0600; give the file the mode a plain open() would
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if the target appeared meanwhile: never clobber without --force
            except FileExistsError:
                raise FileExistsError(f"{str(target)!r} already exists; pass --force to replace it") from None
            except OSError:  # a file system without hard links
                os.replace(tmp, target)
            else:
                os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


# --------------------------------------------------------------------------- shared command-line options

INPUT_HELP = ("a .npy, .csv or .txt file, an image (.png, .jpg, ...; read as grayscale), or a matrix "
              "written inline with rows split by ';' like '1,1,1;0,1,1;0,0,1'")


def add_input_options(p: argparse.ArgumentParser) -> None:
    """``--input`` and ``--kernel``."""
    p.add_argument("--input", "-i", required=True, metavar="ARRAY", help=f"the input x: {INPUT_HELP}")
    p.add_argument("--kernel", "-k", required=True, metavar="ARRAY",
                   help="the kernel, in the same forms; a 2-D input with a 2-D kernel is a one-channel image "
                        "and filter; from .npy files any layer: x (N, C_in, *spatial), weight (C_out, C_in/groups, *k)")


def add_layer_options(p: argparse.ArgumentParser) -> None:
    """The PyTorch-dialect layer options, all given as text and parsed here (one-line errors)."""
    g = p.add_argument_group("layer options (as torch.nn.functional.conv2d)")
    g.add_argument("--convolve", action="store_true",
                   help="flip the kernel first: mathematical convolution, as scipy.signal.convolve2d "
                        "(default: cross-correlation, what a CNN layer computes)")
    g.add_argument("--stride", metavar="S", help="step between windows: one int, or one per axis like 2,1")
    g.add_argument("--padding", metavar="P",
                   help="implicit padding: an int, one per axis like 1,2, 'same', 'valid', or lo:hi pairs like 0:1,1:0")
    g.add_argument("--dilation", metavar="D", help="spacing between kernel taps: one int, or one per axis")
    g.add_argument("--groups", metavar="G", help="split the channels into G independent groups")
    g.add_argument("--padding-mode", choices=("zeros", "reflect", "replicate", "circular"),
                   help="what the padding holds (default zeros)")
    g.add_argument("--bias", metavar="B", help="one number per output channel, like 0.5 or 1,-1")


def layer_options(args: argparse.Namespace) -> dict[str, Any]:
    """The layer options the user gave, parsed, as keyword arguments of ``convdot.conv``."""
    kw: dict[str, Any] = {}
    if args.stride is not None:
        kw["stride"] = parse_per_axis(args.stride, "--stride")
    if args.padding is not None:
        kw["padding"] = parse_padding(args.padding)
    if args.dilation is not None:
        kw["dilation"] = parse_per_axis(args.dilation, "--dilation")
    if args.groups is not None:
        groups = parse_ints(args.groups, "--groups")
        if len(groups) != 1:
            raise ValueError(f"--groups: expected one integer, got {args.groups!r}")
        kw["groups"] = groups[0]
    if args.padding_mode is not None:
        kw["padding_mode"] = args.padding_mode
    if args.bias is not None:
        kw["bias"] = parse_numbers(args.bias, "--bias")
    return kw


def read_layer(args: argparse.Namespace, func: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """``--input`` and ``--kernel`` as a layer's x and weight (a bare image and kernel get channel axes)."""
    x = read_array(args.input, "--input")
    w = read_array(args.kernel, "--kernel")
    return parse_bare_layer(func, x, w)
