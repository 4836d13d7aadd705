"""`convdot tune` and its cache: round trip, `auto` taking the cached winner, concurrency, corruption."""

from __future__ import annotations

import json
import multiprocessing
import threading

import numpy as np
import pytest

import convdot
from convdot import tuning
from convdot._spec import parse_conv
from convdot.cli import main


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private cache directory for every test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("CONVDOT_CACHE_DIR", str(d))
    return d / "tune.json"


def _layer(n=2, c=8, h=10):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, c, h, h)).astype(np.float32), rng.standard_normal((c, c, 3, 3)).astype(np.float32)


def _spec(x, w, **kw):
    return parse_conv("t", x, w, None, **kw).spec


def test_round_trip_and_auto_takes_the_winner(cache):
    x, w = _layer()
    result = convdot.tune(x, w, padding=1, repeat=1, threads=1)
    assert cache.exists() and result.path == cache
    assert {m for m, _, _ in result.times} >= {"im2col", "sliding", "winograd"}
    assert "reference" not in {m for m, _, _ in result.times}
    entry = tuning.lookup(_spec(x, w, padding=1), 1)
    assert entry["method"] == result.winner
    assert entry["params"] == {k: v for k, v in result.params.items() if k != "threads"}
    p = convdot.plan(x, w, padding=1, threads=1)
    assert p.source == "tuned" and p.method == result.winner
    assert "convdot tune" in p.reason
    assert "fastest" in str(result) and str(cache) in str(result)
    # another thread count is another problem: the model decides
    assert convdot.plan(x, w, padding=1, threads=2).source == "model"


def test_cached_parameters_reach_the_method(cache):
    x, w = _layer(c=8)
    spec = _spec(x, w, padding=1)
    tuning.record(spec, 1, "winograd", {"tile": 2, "block": 1, "backend": "numpy"}, {})
    p = convdot.plan(x, w, padding=1, threads=1)
    assert (p.method, p.params["tile"], p.params["backend"], p.source) == ("winograd", 2, "numpy", "tuned")
    assert convdot.planner.parameters("winograd", spec, threads=1)["tile"] == 2
    out = convdot.conv(x, w, padding=1)  # auto, with the tuned method and threads from the environment
    np.testing.assert_allclose(out, convdot.conv(x, w, padding=1, method="reference"), rtol=1e-4, atol=1e-4)


def test_a_winner_recorded_after_a_plan_is_taken_by_the_next_plan(cache):
    """The planner keeps each problem's estimates between calls; a changed tuning cache is seen."""
    x, w = _layer(c=8)
    first = convdot.plan(x, w, padding=1, threads=1)
    assert first.source == "model"
    other = "sliding" if first.method != "sliding" else "im2col"
    tuning.record(_spec(x, w, padding=1), 1, other, {}, {})
    again = convdot.plan(x, w, padding=1, threads=1)
    assert (again.method, again.source) == (other, "tuned")
    tuning.clear()
    assert convdot.plan(x, w, padding=1, threads=1).source == "model"


def test_without_a_cache_file_the_planner_keeps_its_estimates(cache, monkeypatch):
    """No tuning cache: load() gives the same empty cache each time, so the planner's per-problem
    memo (keyed on its identity) is used instead of estimating every call again."""
    from convdot import planner

    assert not cache.exists() and tuning.load() is tuning.load()
    x, w = _layer(c=8)
    convdot.plan(x, w, padding=1, threads=1)

    def estimate_again(*args, **kwargs):
        raise AssertionError("the planner estimated the same problem again")

    monkeypatch.setattr(planner, "_prepare", estimate_again)
    assert convdot.plan(x, w, padding=1, threads=1).source == "model"


def test_a_cached_winner_that_cannot_run_is_ignored(cache):
    x, w = _layer()
    tuning.record(_spec(x, w, padding=1), 1, "winograd", {"tile": 4, "block": 1, "backend": "numpy"}, {})
    xn = x.copy()
    xn[0, 0, 0, 0] = np.nan  # same signature, but non-finite: never a transform
    p = convdot.plan(xn, w, padding=1, threads=1)
    assert p.method not in ("winograd", "fft") and p.source == "model"
    tuning.record(_spec(x, w, padding=1), 1, "winograd", {"tile": 3, "block": 1, "backend": "numpy"}, {})
    assert convdot.plan(x, w, padding=1, threads=1).source == "model"  # a tile that does not exist


@pytest.mark.parametrize("content", ["{not json", "[1, 2, 3]", '{"format": 99, "machines": {}}',
                                     '{"format": 1, "machines": {"k": 5}}', "\udcff"])
def test_a_corrupt_cache_is_ignored_with_a_warning(cache, content):
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content.encode("utf-8", "surrogateescape"))
    x, w = _layer()
    with pytest.warns(RuntimeWarning, match="ignoring the tuning cache"):
        p = convdot.plan(x, w, padding=1)
    assert p.source == "model"
    out = convdot.conv(x, w, padding=1)  # never a crash
    assert out.shape == (2, 8, 10, 10)
    with pytest.warns(RuntimeWarning):
        tuning.record(_spec(x, w, padding=1), 2, "im2col", {}, {})
    assert json.loads(cache.read_text())["format"] == tuning.FORMAT  # rewritten whole
    assert tuning.lookup(_spec(x, w, padding=1), 2)["method"] == "im2col"


def _write_many(worker: int, count: int) -> None:
    x = np.ones((1, 1, 5 + worker, 7))
    w = np.ones((1, 1, 3, 3))
    for i in range(count):
        tuning.record(_spec(x, w, padding=i), 1, "im2col", {}, {"im2col": float(i)})


def test_concurrent_writes_from_threads_keep_every_entry(cache):
    threads = [threading.Thread(target=_write_many, args=(k, 10)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    problems = json.loads(cache.read_text())["machines"][tuning.machine_key()]["problems"]
    assert len(problems) == 60
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".tune-")]  # no temp files left


def test_concurrent_writes_from_processes_keep_every_entry(cache):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(k, 5)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    problems = json.loads(cache.read_text())["machines"][tuning.machine_key()]["problems"]
    assert len(problems) == 20


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVDOT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if tuning.sys.platform.startswith("linux"):
        assert tuning.cache_path() == tmp_path / "xdg" / "convdot" / "tune.json"
    monkeypatch.setenv("CONVDOT_CACHE_DIR", str(tmp_path / "mine"))
    assert tuning.cache_path() == tmp_path / "mine" / "tune.json"


def test_signature_is_the_problem_not_the_function():
    x, w = _layer()
    a = parse_conv("conv2d", x, w, None, padding=1).spec
    b = parse_conv("conv", x, w, None, padding=1).spec
    c = parse_conv("conv", x.astype(np.float64), w, None, padding=1).spec
    assert tuning.signature(a, 2) == tuning.signature(b, 2) != tuning.signature(c, 2)
    assert tuning.signature(a, 1) != tuning.signature(a, 2)


def test_measured_rates_are_cached_and_used(cache, monkeypatch):
    fake = {"gemm": 1e9, "numpy": 1e12, "fft": 1e9, "int": 1e9, "calls": 1e6}
    monkeypatch.setattr(tuning, "measure_rates", lambda repeat=5, quick=False: fake)
    assert tuning.tune_rates() == fake
    assert tuning.cached_rates() == fake
    assert convdot.planner.rates()["gemm"] == 1e9
    assert convdot.planner.rates()["jit"] == convdot.planner.MACHINE["rates"]["jit"]  # not measured: built-in


def test_measure_rates_returns_positive_rates():
    rates = tuning.measure_rates(quick=True)
    expected = {"gemm", "numpy", "fft", "int", "calls", "dram", "cgemm"}
    assert expected <= set(rates) <= set(convdot.planner.MACHINE["rates"])
    assert all(v > 0 for v in rates.values())


def test_tune_rejects_bad_arguments():
    x, w = _layer()
    with pytest.raises(ValueError, match="repeat must be an int >= 1"):
        convdot.tune(x, w, repeat=0)
    with pytest.raises(ValueError, match="methods must be names in"):
        convdot.tune(x, w, methods=("fast",))
    with pytest.raises(ValueError, match="none of the methods"):
        convdot.tune(x, w, stride=2, methods=("winograd",))


def test_cli_tune_show_clear(cache, capsys):
    assert main(["tune", "--shape", "1,4,8,8", "--weight-shape", "4,4,3,3", "--padding", "1", "--repeat", "1",
                 "--methods", "im2col,winograd"]) == 0
    out = capsys.readouterr().out
    assert "<- fastest" in out and "winograd" in out
    assert main(["tune", "--show"]) == 0
    out = capsys.readouterr().out
    assert "1 tuned problem" in out and str(cache) in out
    assert main(["tune", "--clear"]) == 0
    assert not cache.exists()
    assert main(["tune", "--shape", "1,4,8,8"]) == 2
    assert "--shape and --weight-shape go together" in capsys.readouterr().err
    assert main(["tune", "--shape", "1,4,x", "--weight-shape", "4,4,3,3"]) == 2
