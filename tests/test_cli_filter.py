"""`convdot filter`: Zarr in, Zarr out, chunk by chunk; atomic, never overwriting, clear about bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

import convdot
from convdot.cli import main

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")


@pytest.fixture
def files(tmp_path):
    """An int32 image in 7x5 chunks of 9x8, and a 5x3 kernel."""
    img = np.random.default_rng(0).integers(-1000, 1000, (60, 37)).astype(np.int32)
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=(9, 8), dtype=img.dtype)
    z[:] = img
    k = np.random.default_rng(1).integers(-5, 5, (5, 3)).astype(np.int32)
    np.save(tmp_path / "k.npy", k)
    return tmp_path, img, k


def run(tmp, *extra):
    return main(["filter", "--input", str(tmp / "in.zarr"), "--kernel", str(tmp / "k.npy"),
                 "--output", str(tmp / "out.zarr"), *extra])


def leftovers(tmp):
    return [n for n in os.listdir(tmp) if ".tmp-" in n or ".old-" in n]


@pytest.mark.parametrize(("extra", "expected"), [
    ((), lambda a, k: convdot.correlate(a, k, "same")),
    (("--mode", "full", "--convolve"), lambda a, k: convdot.convolve(a, k, "full")),
    (("--mode", "valid"), lambda a, k: convdot.correlate(a, k, "valid")),
    (("--boundary", "wrap"), lambda a, k: convdot.correlate2d(a, k, "same", "wrap")),
    (("--threads", "1", "--method", "sliding"), lambda a, k: convdot.correlate(a, k, "same")),
    (("--boundary", "symm", "--convolve", "--mode", "full"), lambda a, k: convdot.convolve2d(a, k, "full", "symm")),
])
def test_filter_writes_the_in_memory_result(files, extra, expected, capsys):
    tmp, img, k = files
    assert run(tmp, *extra) == 0
    out = zarr.open_array(str(tmp / "out.zarr"), mode="r")
    np.testing.assert_array_equal(out[:], expected(img, k))
    assert out.chunks == (9, 8)
    captured = capsys.readouterr()
    assert "100% Completed" in captured.err  # dask's progress bar
    assert "wrote" in captured.out and not leftovers(tmp)


def test_existing_output_is_kept_without_force(files, capsys):
    tmp, img, k = files
    (tmp / "out.zarr").mkdir()
    (tmp / "out.zarr" / "precious.txt").write_text("mine")
    assert run(tmp) == 2
    assert "out.zarr already exists; pass --force to replace it" in capsys.readouterr().err
    assert (tmp / "out.zarr" / "precious.txt").read_text() == "mine"
    assert run(tmp, "--force", "--no-progress") == 0
    assert not (tmp / "out.zarr" / "precious.txt").exists() and not leftovers(tmp)
    np.testing.assert_array_equal(zarr.open_array(str(tmp / "out.zarr"))[:], convdot.correlate(img, k, "same"))


def test_missing_input_is_one_clear_line(files, capsys):
    tmp, _, _ = files
    code = main(["filter", "--input", str(tmp / "nope.zarr"), "--kernel", str(tmp / "k.npy"),
                 "--output", str(tmp / "out.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "input not found" in err and "nope.zarr" in err


def test_corrupt_chunk_is_named_and_nothing_is_written(files, capsys):
    tmp, _, _ = files
    (tmp / "in.zarr" / "c" / "2" / "3").write_bytes(b"not a zstd frame")
    assert run(tmp) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "chunk (2, 3) (elements [18:27, 24:32])" in err and "corrupt" in err
    assert not (tmp / "out.zarr").exists() and not leftovers(tmp)


def test_a_bad_thread_count_is_one_clear_line_and_nothing_is_written(files, capsys):
    tmp, _, _ = files
    assert run(tmp, "--threads", "0") == 2
    assert "--threads must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp / "out.zarr").exists() and not leftovers(tmp)


@pytest.mark.parametrize(("setup", "message"), [
    (lambda t: np.save(t / "k.npy", np.ones(3)), "has 1 dimensions (shape (3,)) but the input has 2"),
    (lambda t: os.remove(t / "k.npy"), "kernel not found"),
    (lambda t: zarr.open_group(str(t / "in.zarr"), mode="w").create_array("img", shape=(4, 4), dtype="f8"),
     "is a Zarr group, not an array; give one of its arrays"),
])
def test_bad_inputs_are_reported(files, setup, message, capsys):
    tmp, _, _ = files
    setup(tmp)
    assert run(tmp) == 2
    assert message in capsys.readouterr().err
    assert not (tmp / "out.zarr").exists()


def test_scheduler_address_runs_on_a_cluster(files, capsys):
    distributed = pytest.importorskip("distributed")
    tmp, img, k = files
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
                                  silence_logs=50) as cluster:
        assert run(tmp, "--scheduler", cluster.scheduler_address, "--boundary", "symm") == 0
    out = zarr.open_array(str(tmp / "out.zarr"))[:]
    np.testing.assert_array_equal(out, convdot.correlate2d(img, k, "same", "symm"))


@pytest.mark.parametrize("entry", [["-m", "convdot"], ["-m", "convdot.cli"]])
def test_python_dash_m_reports_usage_errors_as_one_line(entry, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, *entry, "filter", "--input", str(tmp_path / "none.zarr"), "--kernel",
                           str(tmp_path / "k.npy"), "--output", str(tmp_path / "out.zarr"), "--threads", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "convdot filter: error: --threads must be a positive integer, got 0"
