"""Reading command-line arrays (files and inline text) and writing files atomically."""

from __future__ import annotations

import numpy as np
import pytest

from convdot._io import parse_ints, parse_matrix, parse_numbers, parse_padding, read_array, write_atomic


def test_inline_matrix_forms():
    np.testing.assert_array_equal(read_array("1,1,1;0,1,1;0,0,1", "--input"), [[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    assert read_array("1 2; 3 4", "--input").dtype == np.int64
    np.testing.assert_array_equal(read_array("[[1.5, 2], [3, 4]]", "--input"), [[1.5, 2], [3, 4]])
    np.testing.assert_array_equal(read_array("1,-2,3", "--input"), [1, -2, 3])  # one row: a 1-D signal
    assert read_array("0.5,1e-3", "--input").dtype == np.float64
    assert read_array("1+2j,3", "--input").dtype == np.complex128


@pytest.mark.parametrize(("text", "pattern"), [
    ("1,2;3", r"--input: every row must have the same number of values; row 1 has 2, row 2 has 1"),
    ("1,a;3,4", r"--input: 'a' is not a number"),
    ("[[1, 2], [3]]", r"--input: the rows of .* do not all have the same length"),
    ("[[1, 2]", r"--input: .* is not a valid nested list of numbers"),
    ("['a']", r"--input: .* must be a non-empty nested list of numbers"),
    ("", r"--input: empty value"),
    (";;", r"--input: no numbers found"),
    ("missing.npy", r"--input: no such file 'missing.npy'"),
    ("dir/missing.csv", r"--input: no such file"),
])
def test_bad_inline_text_or_missing_file(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        read_array(text, "--input")


def test_files_of_every_kind(tmp_path):
    a = np.array([[1, 0, 2], [3, 4, 5]])
    np.save(tmp_path / "a.npy", a)
    (tmp_path / "a.csv").write_text("1,0,2\n3,4,5\n")
    (tmp_path / "a.txt").write_text("# a comment\n1 0 2\n\n3 4 5\n")
    for name in ("a.npy", "a.csv", "a.txt"):
        np.testing.assert_array_equal(read_array(str(tmp_path / name), "--input"), a)
    from PIL import Image

    img = np.array([[0, 128, 255], [10, 20, 30]], dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(np.stack([img] * 3, axis=-1)).save(tmp_path / "rgb.png")
    got = read_array(str(tmp_path / "a.png"), "--input")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, img)
    assert read_array(str(tmp_path / "rgb.png"), "--input").shape == (2, 3)  # grayscale


def test_bad_files(tmp_path):
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (tmp_path / "words.txt").write_text("one two\n")
    (tmp_path / "broken.npy").write_bytes(b"not a numpy file")
    (tmp_path / "fake.png").write_bytes(b"not an image")
    (tmp_path / "data.xyz").write_text("1 2")
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")
    cases = {
        "ragged.csv": r"--input .*ragged.csv: every row must have the same number of values",
        "words.txt": r"'one' is not a number",
        "broken.npy": r"--input: cannot read .*broken.npy' as a .npy file",
        "fake.png": r"--input: cannot read .*fake.png' as an image",
        "data.xyz": r"--input: cannot read .*data.xyz': unknown file type '.xyz'",
        "strings.npy": r"--input: .*strings.npy' must hold a numeric array, got dtype <U1",
        "binary.txt": r"--input: cannot read .*binary.txt': it is not a text file",
    }
    for name, pattern in cases.items():
        with pytest.raises(ValueError, match=pattern):
            read_array(str(tmp_path / name), "--input")
    with pytest.raises(ValueError, match="is a directory"):
        read_array(str(tmp_path), "--input")


def test_unreadable_file(tmp_path, monkeypatch):
    p = tmp_path / "secret.csv"
    p.write_text("1,2")

    def denied(self, *args, **kwargs):  # chmod 0 does not stop root, so fail the read itself
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(p), "read_text", denied)
    with pytest.raises(ValueError, match=r"--input: cannot read .*secret.csv': Permission denied$"):
        read_array(str(p), "--input")


def test_option_values():
    assert parse_ints("0,0", "--index") == (0, 0)
    assert parse_ints("-1, 2", "--index") == (-1, 2)
    with pytest.raises(ValueError, match=r"--index: expected integers separated by commas \(like 0,1\), got '0,x'"):
        parse_ints("0,x", "--index")
    assert parse_padding("1") == 1 and parse_padding("1,2") == (1, 2) and parse_padding("same") == "same"
    assert parse_padding("0:1,2:0") == ((0, 1), (2, 0))
    np.testing.assert_array_equal(parse_numbers("0.5,-1", "--bias"), [0.5, -1])
    np.testing.assert_array_equal(parse_matrix("2", "--fillvalue"), 2)


def test_write_atomic_refuses_to_clobber_without_force(tmp_path):
    target = tmp_path / "out.txt"
    write_atomic(target, lambda fh: fh.write(b"first"), force=False)
    assert target.read_bytes() == b"first"
    with pytest.raises(FileExistsError, match=r"out.txt. already exists; pass --force to replace it"):
        write_atomic(target, lambda fh: fh.write(b"second"), force=False)
    assert target.read_bytes() == b"first"
    write_atomic(target, lambda fh: fh.write(b"second"), force=True)
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def fail(fh):
        fh.write(b"half")
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail, force=True)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # the temp file is gone


def test_write_atomic_bad_targets(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the directory .* does not exist"):
        write_atomic(tmp_path / "nope" / "out.txt", lambda fh: None, force=True)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        write_atomic(tmp_path, lambda fh: None, force=True)
