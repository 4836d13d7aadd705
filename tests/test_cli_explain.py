"""The installed ``convdot`` command: explain, compare, plan and demo --figures, run as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

CONVDOT = shutil.which("convdot") or shutil.which("convdot", path=os.path.dirname(sys.executable))
A3 = "1,1,1;0,1,1;0,0,1"
B2 = "1,0,0;0,1,0;1,0,1"
A = "1,1,1,0,0;0,1,1,1,0;0,0,1,1,1;0,0,1,1,0;0,1,1,0,0"
B = "1,0,1;0,1,0;1,0,1"


def convdot(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    assert CONVDOT, "the convdot console script is not installed (pip install -e .)"
    full_env = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run([CONVDOT, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120)


def ok(*args: str, **kw) -> subprocess.CompletedProcess:
    r = convdot(*args, **kw)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r


def fails(*args: str, **kw) -> str:
    """A bad input: exit status 2 and exactly one line on stderr, no traceback."""
    r = convdot(*args, **kw)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_seed_cnn_value_3_and_convolution_value_4():
    r = ok("explain", "--input", A3, "--kernel", B2, "--index", "0,0")
    assert r.stdout.startswith("conv2d(x, weight): output[0, 0] = 3\n")
    assert "1 + 0 + 0 + 0 + 1 + 0 + 0 + 0 + 1 = 3" in r.stdout and r.stderr == ""
    r = ok("explain", "--input", A3, "--kernel", B2, "--index", "0,0", "--convolve")
    assert "output[0, 0] = 4" in r.stdout
    assert "Without the flip (what a CNN layer computes) this window gives 3" in r.stdout
    r = ok("explain", "-i", A3, "-k", B2, "--index", "0,0", "--mode", "valid", "--convolve")
    assert r.stdout.startswith("convolve2d(in1, in2, mode='valid'): output[0, 0] = 4\n")
    r = ok("explain", "-i", A, "-k", B, "--index=-1,-1", "--mode", "valid")
    assert r.stdout.startswith("correlate2d(in1, in2, mode='valid'): output[2, 2] = 4\n")


def test_files_layer_options_and_rich(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(-3, 4, (1, 4, 7, 7)))
    np.save(tmp_path / "w.npy", rng.integers(-2, 3, (4, 2, 3, 3)))
    r = ok("explain", "-i", "x.npy", "-k", "w.npy", "--index", "0,3,0,2", "--stride", "2", "--padding", "1",
           "--dilation", "1,2", "--groups", "2", "--padding-mode", "reflect", "--bias", "1,2,3,4", "--format", "rich",
           cwd=tmp_path)
    import convdot

    x, w = np.load(tmp_path / "x.npy"), np.load(tmp_path / "w.npy")
    want = convdot.conv2d(x, w, [1, 2, 3, 4], stride=2, padding=1, dilation=(1, 2), groups=2, padding_mode="reflect")
    assert f"output[0, 3, 0, 2] = {want[0, 3, 0, 2]}" in r.stdout
    assert "group 1 of 2" in r.stdout and "\x1b[" not in r.stdout  # not a terminal: no colour codes


def test_html_png_gif_outputs_and_force(tmp_path):
    ok("explain", "-i", "0,1,2,3,4,5", "-k", "1,-1", "--index", "1", "--stride", "2", "--output", "t.html",
       "--animate", "s.gif", "--fps", "5", cwd=tmp_path)
    page = (tmp_path / "t.html").read_text()
    parser = HTMLParser()
    parser.feed(page)
    assert page.startswith("<!DOCTYPE html>") and "output[1] = <span" in page
    from PIL import Image

    with Image.open(tmp_path / "s.gif") as im:
        assert im.n_frames == 3  # one frame per output element
    r = ok("explain", "-i", A3, "-k", B2, "--index", "0,0", "--output", "seed.png", cwd=tmp_path)
    png = (tmp_path / "seed.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "wrote seed.png (png)" in r.stderr
    # an existing file is kept without --force, replaced with it
    line = fails("explain", "-i", A3, "-k", B2, "--index", "0,0", "--convolve", "--output", "seed.png", cwd=tmp_path)
    assert line == "convdot explain: error: 'seed.png' already exists; pass --force to replace it"
    assert (tmp_path / "seed.png").read_bytes() == png
    ok("explain", "-i", A3, "-k", B2, "--index", "0,0", "--convolve", "-o", "seed.png", "--force", cwd=tmp_path)
    assert (tmp_path / "seed.png").read_bytes() != png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.gif", "seed.png", "t.html"]  # no temp files left


@pytest.mark.parametrize(("args", "message"), [
    (["-i", "nope.npy", "-k", B2, "--index", "0,0"], "--input: no such file 'nope.npy'"),
    (["-i", "1,2;3", "-k", B2, "--index", "0,0"], "--input: every row must have the same number of values"),
    (["-i", A3, "-k", B2, "--index", "1,0"],
     "explain: index (1, 0) is out of range for the output of shape (1, 1): axis 0 has size 1"),
    (["-i", A3, "-k", B2, "--index", "a,b"], "--index: expected integers separated by commas"),
    (["-i", B2, "-k", A, "--index", "0,0"], "explain: output size (-1, -1) is not positive"),
    (["-i", "1,2,3;4,5,6", "-k", "1;2;3", "--index", "0,0", "--mode", "valid"],
     "explain2d: for mode='valid' one input must be at least as large as the other"),
    (["-i", A3, "-k", B2, "--index", "0,0", "--format", "png"], "--format png draws a figure: give --output"),
    (["-i", A3, "-k", B2, "--index", "0,0", "--mode", "full", "--stride", "2"],
     "--mode/--boundary/--fillvalue explain scipy.signal's convolve2d/correlate2d, which has no --stride"),
    (["-i", A3, "-k", B2, "--index", "0,0", "--padding", "3", "--padding-mode", "reflect"],
     "explain: padding_mode='reflect' needs padding < input size"),
    (["-i", A3, "-k", B2, "--index", "0,0", "-o", "no/such/dir/x.txt"], "the directory 'no/such/dir' does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    line = fails("explain", *args, cwd=tmp_path)
    assert line.startswith("convdot explain: error: ") and message in line, line


def test_unreadable_and_malformed_files(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    (tmp_path / "pic.png").write_bytes(b"garbage")
    assert "cannot read 'bad.npy' as a .npy file" in fails("explain", "-i", "bad.npy", "-k", B2, "--index", "0,0",
                                                            cwd=tmp_path)
    assert "cannot read 'pic.png' as an image" in fails("plan", "-i", "pic.png", "-k", B2, cwd=tmp_path)


def test_compare_and_plan():
    r = ok("compare", "-i", A, "-k", B, "--repeat", "1")
    import convdot

    for m in convdot.METHODS:
        assert m in r.stdout
    assert "max |error| vs reference" in r.stdout
    r = ok("plan", "-i", A, "-k", B, "--padding", "1")
    a = np.array([[int(v) for v in row.split(",")] for row in A.split(";")])
    b = np.array([[int(v) for v in row.split(",")] for row in B.split(";")])
    assert convdot.plan(a[None], b[None, None], padding=1).method in r.stdout  # str(Plan) is the planner report
    assert "compare: methods must be names in" in fails("compare", "-i", A, "-k", B, "--methods", "magic")


@pytest.mark.parametrize("command", ["explain", "compare", "plan", "demo"])
def test_every_command_has_help_with_an_example(command):
    r = ok(command, "--help")
    assert "example" in r.stdout.lower() and f"convdot {command}" in r.stdout


def test_missing_plot_extra_says_what_to_install(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "matplotlib.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {"PYTHONPATH": str(fake) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    line = fails("explain", "-i", A3, "-k", B2, "--index", "0,0", "-o", "x.png", cwd=tmp_path, env=env)
    assert line.endswith("needs matplotlib, which is not installed: pip install convdot[plot]")
    assert not (tmp_path / "x.png").exists()
    assert ok("explain", "-i", A3, "-k", B2, "--index", "0,0", cwd=tmp_path, env=env).stdout  # text needs nothing


def test_demo_figures(tmp_path):
    from convdot.commands.demo import FIGURES, save_figures

    paths = save_figures(str(tmp_path / "slides"), force=False)
    assert [p.name for p in paths] == list(FIGURES)
    from PIL import Image

    with Image.open(paths[0]) as im:
        assert im.format == "PNG" and im.size[0] > 1200  # wide enough for a slide
    with Image.open(paths[2]) as im:
        assert im.n_frames == 9  # the 3x3 output of the 5x5 seed example
    line = fails("demo", "--figures", "slides", cwd=tmp_path)  # refuses before the long demo runs
    assert "already holds the figures; pass --force" in line
