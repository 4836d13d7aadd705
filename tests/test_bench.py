"""`convdot bench`: the quick run end to end, its JSON against the documented schema, missing peers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from benchmarks import peers, runner, workloads

import convdot
from convdot.cli import main
from convdot.commands import bench


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "convdot.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_quick_bench_writes_a_valid_json(tmp_path):
    path = tmp_path / "bench.json"
    names = ["pointwise", "depthwise", "filter-k7", "backward-3x3"]
    proc = _cli("bench", "--quick", "--repeat", "1", "--json", str(path), "--workload", *names)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(path.read_text())
    assert runner.validate(doc) == []
    assert [w["name"] for w in doc["workloads"]] == names
    assert doc["quick"] is True and doc["machine"]["cores"] >= 1
    for w in doc["workloads"]:
        if not w["available"]:
            continue
        assert w["convdot"]["seconds"] > 0 and w["memory"]["peak_bytes"] > 0
        assert w["peers"], w["name"]
        for p in w["peers"]:
            assert p["status"] in ("ok", "not installed", "skipped", "error", "mismatch")
            if p["status"] == "ok":
                assert p["ratio"] == pytest.approx(p["seconds"] / w["convdot"]["seconds"])
    assert "ratio = peer time / convdot time" in proc.stdout
    assert "pointwise" in proc.stdout and "targets (measured)" in proc.stdout
    assert "bench 1/4" in proc.stderr  # the progress, plain text when stderr is not a terminal


def test_tables_from_an_earlier_json(tmp_path, capsys):
    entry = runner.run_case(_tiny_filter_case(), 1, lambda label: None)
    doc = {"schema": "convdot-bench/1", "created": "t", "quick": True, "repeat": 1, "extra": {},
           "machine": {"cpu": "x", "cores": 2, "platform": "p", "python": "3", "versions": {}, "blas": None,
                       "env": {}}, "workloads": [entry]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    assert main(["bench", "--from-json", str(path), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| workload | problem |" in out and "| tiny | 32x32 |" in out
    path.write_text("{}")
    assert main(["bench", "--from-json", str(path)]) == 2
    assert "not a convdot bench document" in capsys.readouterr().err


def test_validate_reports_what_is_wrong():
    doc = {"schema": "convdot-bench/1", "created": "now", "quick": True, "repeat": 1, "extra": {},
           "machine": {"cpu": "x", "cores": 2, "platform": "p", "python": "3", "versions": {}, "blas": None, "env": {}},
           "workloads": [{"name": "w", "problem": "p", "dtype": "float32", "flops": 1.0, "available": True,
                          "note": "", "methods": {"fft": "fast"}, "method_notes": {}, "peers": [],
                          "convdot": {"method": "fft", "seconds": 1.0, "gflops": 1.0}, "auto_over_fastest": None,
                          "memory": {"peak_bytes": 1, "io_bytes": 1, "ratio": 1.0}}]}
    assert runner.validate(doc) == ["workloads[0].methods.fft: 'fast' is not a number or null"]
    del doc["machine"]["cpu"]
    doc["schema"] = "other"
    problems = runner.validate(doc)
    assert "machine: missing 'cpu'" in problems and any("schema" in p for p in problems)


def _tiny_filter_case() -> workloads.Case:
    rng = np.random.default_rng(0)
    img, ker = rng.standard_normal((32, 32)), rng.standard_normal((3, 3))
    return workloads.Case("tiny", "32x32", "float64", 2.0 * 32 * 32 * 9, 2 * img.nbytes,
                          lambda m: convdot.correlate2d(img, ker, "same", method=m), ("sliding", "im2col"), {},
                          [("scipy.ndimage.correlate", lambda: peers.scipy_ndimage(img, ker)),
                           ("cv2.filter2D (float32)", lambda: peers.cv2_filter2d(img, ker)),
                           ("broken", lambda: (lambda: 1 / 0))],
                          tol=1e-9, peer_tol={"cv2.filter2D (float32)": 1e-5})


def test_missing_peer_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now fails, as on a machine without it
    entry = runner.run_case(_tiny_filter_case(), 1, lambda label: None)
    status = {p["name"]: p for p in entry["peers"]}
    assert status["cv2.filter2D (float32)"]["status"] == "not installed"
    assert "opencv-python-headless" in status["cv2.filter2D (float32)"]["detail"]
    assert status["scipy.ndimage.correlate"]["status"] == "ok"
    assert status["scipy.ndimage.correlate"]["max_rel_error"] < 1e-12
    assert status["broken"]["status"] == "error" and "ZeroDivisionError" in status["broken"]["detail"]
    assert set(entry["methods"]) == {"sliding", "im2col"} and entry["fastest_method"] in ("sliding", "im2col")
    doc = {"schema": "convdot-bench/1", "created": "t", "quick": True, "repeat": 1, "extra": {},
           "machine": {"cpu": "x", "cores": 2, "platform": "p", "python": "3", "versions": {}, "blas": None,
                       "env": {}}, "workloads": [entry]}
    assert runner.validate(doc) == []
    text = bench.render(doc)
    assert "not installed" in text and "tiny" in text


def test_a_wrong_peer_answer_is_a_mismatch():
    case = _tiny_filter_case()
    case.peers = [("wrong", lambda: (lambda: np.zeros((32, 32))))]
    entry = runner.run_case(case, 1, lambda label: None)
    assert entry["peers"][0]["status"] == "mismatch"


def test_unavailable_workload_is_listed_not_run():
    case = workloads.Case("backward-3x3", "p", "float32", 1.0, 1, lambda m: None, (), {}, available=False,
                          note="convdot.conv_backward is not available in this build")
    entry = runner.run_case(case, 1, lambda label: None)
    doc = {"schema": "convdot-bench/1", "created": "t", "quick": True, "repeat": 1, "extra": {},
           "machine": {"cpu": "x", "cores": 2, "platform": "p", "python": "3", "versions": {}, "blas": None,
                       "env": {}}, "workloads": [entry]}
    assert runner.validate(doc) == []
    assert "not available: convdot.conv_backward" in bench.render(doc)


def test_bench_refuses_unknown_workloads_and_existing_files(tmp_path, capsys):
    assert main(["bench", "--quick", "--workload", "nope"]) == 2
    assert "unknown workload 'nope'" in capsys.readouterr().err
    existing = tmp_path / "keep.json"
    existing.write_text("precious")
    assert main(["bench", "--quick", "--workload", "pointwise", "--json", str(existing)]) == 2
    assert "--force" in capsys.readouterr().err and existing.read_text() == "precious"
    assert main(["bench", "--method", "magic"]) == 2
