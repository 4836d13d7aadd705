"""Run one :class:`~benchmarks.workloads.Case`: interleaved timing, agreement, memory, auto vs methods.

Timing: every contestant (convdot ``auto`` and each peer) runs once as a warm-up -- that output is
the one checked for agreement -- then the contestants take turns, ``repeat`` rounds, and each keeps
its best time; interleaving spreads any slowdown of the machine over everyone alike. The single
convdot methods are timed the same way afterwards, in :data:`METHOD_ROUNDS` times as many rounds
together with ``auto``, every other round in reverse order, except those the planner estimates at
over :data:`SKIP_FACTOR` times the best estimate, which would only burn minutes. The fastest method
is the one with the best time; ``auto_over_fastest`` is the median over rounds of auto's time over
that method's time in the same round (:func:`paired_ratio`).
Peak memory is the largest traced NumPy allocation (``tracemalloc``) during one ``auto`` call.

Before every timed call the harness sleeps ``pause`` seconds: OpenBLAS's worker threads keep
spinning for a while after a GEMM (and OpenMP's after a torch call), and a contestant started
while another library's threads still spin on the same 2 cores was measured here 2-4x slower
(``benchmarks/runner.py``, pointwise layer: convdot 18.8 -> 7.2 ms, torch 39.4 -> 10.1 ms with a
0.3 s pause). Allocations inside compiled (numba) kernels are traced too; buffers a method keeps
between calls (Winograd's transformed tiles) were allocated by the earlier calls, not this one.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from . import peers
from .workloads import Case

#: Single methods estimated slower than this many times the best estimate are not timed.
SKIP_FACTOR = 40.0
#: ``auto`` and the single methods take this many times ``repeat`` rounds: a 10 % comparison needs
#: less noise than best-of-5 gives on a shared 2-core machine (there, best-of-5 of one and the same
#: computation, ``auto`` and the method it picks, differed by up to 36 %).
METHOD_ROUNDS = 2
#: A single method whose warm-up run takes longer than this is timed by that run alone.
SLOW_SECONDS = 5.0

Progress = Callable[[str], None]


#: Seconds to sleep before each timed call, so the previous library's spinning threads go idle.
PAUSE = 0.2


def _timed(fn: Callable[[], object], pause: float = 0.0) -> tuple[float, object]:
    if pause:
        time.sleep(pause)
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _as_tuple(out: object) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(o) for o in out) if isinstance(out, tuple) else (np.asarray(out),)


def max_rel_error(actual: object, expected: object) -> float:
    """``max |actual - expected| / max |expected|`` over every output (a tuple for gradients)."""
    worst = 0.0
    for a, e in zip(_as_tuple(actual), _as_tuple(expected)):
        if a.shape != e.shape:
            return math.inf
        scale = float(np.abs(e).max()) or 1.0
        worst = max(worst, float(np.abs(a.astype(np.float64) - e.astype(np.float64)).max()) / scale)
    return worst


def peak_memory(fn: Callable[[], object]) -> int:
    """Largest traced allocation total while ``fn`` runs (its output included), in bytes."""
    from convdot.algorithms._common import clear_pool

    clear_pool()  # the output is a new allocation, not a block kept from the timed calls
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del out
    return int(peak)


def run_case(case: Case, repeat: int, progress: Progress, pause: float = 0.0) -> dict:
    """Time, check and measure one case; returns its entry of the JSON's ``workloads`` list."""
    entry: dict = {"name": case.name, "problem": case.problem, "dtype": case.dtype, "flops": case.flops,
                   "available": case.available, "note": case.note, "convdot": None, "methods": {},
                   "method_notes": {}, "fastest_method": None, "auto_over_fastest": None, "memory": None,
                   "peers": []}
    if not case.available:
        return entry
    contestants: list[tuple[str, Callable[[], object]]] = [("convdot", lambda: case.convdot("auto"))]
    rows: dict[str, dict] = {}
    for name, build in case.peers:
        row = {"name": name, "status": "ok", "detail": "", "seconds": None, "gflops": None, "ratio": None,
               "max_rel_error": None}
        rows[name] = row
        try:
            contestants.append((name, build()))
        except peers.Unavailable as exc:
            row.update(status=exc.status, detail=str(exc))

    progress(f"{case.name}: warm-up")
    best: dict[str, float] = {}
    outputs: dict[str, object] = {}
    for name, fn in list(contestants):
        try:
            best[name], outputs[name] = _timed(fn, pause)
        except Exception as exc:  # a peer failing must not stop the table; convdot failing is reported too
            if name == "convdot":
                raise
            rows[name].update(status="error", detail=f"{type(exc).__name__}: {exc}")
            contestants.remove((name, fn))
    for name, _ in contestants[1:]:
        err = max_rel_error(outputs[name], outputs["convdot"])
        tol = case.peer_tol.get(name, case.tol)
        rows[name]["max_rel_error"] = err
        if not err <= tol:
            rows[name].update(status="mismatch", detail=f"max relative difference {err:.3g} > {tol:g}")
    outputs.clear()
    for r in range(repeat):
        progress(f"{case.name}: round {r + 1}/{repeat}")
        for name, fn in contestants:
            best[name] = min(best[name], _timed(fn, pause)[0])

    ours = best["convdot"]
    entry["convdot"] = {"method": case.auto_method, "seconds": ours, "gflops": case.flops / ours / 1e9}
    for name, _ in contestants[1:]:
        rows[name].update(seconds=best[name], gflops=case.flops / best[name] / 1e9, ratio=best[name] / ours)
    entry["peers"] = list(rows.values())

    _time_methods(case, entry, repeat, progress, pause)
    progress(f"{case.name}: memory")
    peak = peak_memory(lambda: case.convdot("auto"))
    entry["memory"] = {"peak_bytes": peak, "io_bytes": case.io_bytes, "ratio": peak / case.io_bytes}
    return entry


def _time_methods(case: Case, entry: dict, repeat: int, progress: Progress, pause: float) -> None:
    """Best of ``repeat`` for each single method, in rounds with ``auto`` again, so the two see the same machine."""
    est = {m: case.estimates.get(m, math.inf) for m in case.methods}
    floor = min(est.values(), default=math.inf)
    times: dict[str, float | None] = {}
    rotation: list[tuple[str, Callable[[], object]]] = [("auto", lambda: case.convdot("auto"))]
    for m in case.methods:
        if math.isfinite(floor) and est[m] > SKIP_FACTOR * floor:
            times[m] = None
            entry["method_notes"][m] = f"skipped: the planner estimates {est[m]:.3g} s, over {SKIP_FACTOR:g}x the best"
            continue
        progress(f"{case.name}: method {m} (warm-up)")
        try:
            times[m], _ = _timed(lambda m=m: case.convdot(m), pause)
        except ValueError as exc:
            times[m] = None
            entry["method_notes"][m] = f"cannot run: {exc}"
            continue
        if times[m] < SLOW_SECONDS:
            rotation.append((m, lambda m=m: case.convdot(m)))
        else:
            entry["method_notes"][m] = "one run (slow)"
    rounds = METHOD_ROUNDS * repeat if len(rotation) > 1 else 0
    history: dict[str, list[float]] = {m: [] for m, _ in rotation}  # every round's time, in order
    for r in range(rounds):
        progress(f"{case.name}: methods, round {r + 1}/{rounds}")
        for m, fn in (rotation if r % 2 == 0 else rotation[::-1]):  # nobody always runs first
            t = _timed(fn, pause)[0]
            history[m].append(t)
            if m != "auto":
                times[m] = min(times[m], t)
    entry["methods"] = times
    timed = {m: t for m, t in times.items() if t is not None}
    if timed:
        fastest = min(timed, key=timed.get)
        entry["fastest_method"] = fastest
        if history["auto"] and history.get(fastest):
            entry["auto_over_fastest"] = paired_ratio(history["auto"], history[fastest])
        else:  # the fastest was timed once (slow): against the race's auto time
            entry["auto_over_fastest"] = entry["convdot"]["seconds"] / timed[fastest]


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of ``a[r] / b[r]``: each pair ran back to back, so a slowdown of the
    machine that lasts longer than a round cancels out (the ratio of two best-of-n times does not:
    on a shared 2-core machine, best-of-10 of one and the same computation differed by 20%)."""
    return float(np.median([x / y for x, y in zip(a, b)]))


# --------------------------------------------------------------------------- the document


def validate(doc: dict) -> list[str]:
    """Problems with a ``convdot bench`` JSON document (empty when it matches the documented schema)."""
    problems: list[str] = []

    def need(obj: dict, key: str, kinds: tuple, where: str) -> None:
        if not isinstance(obj, dict) or key not in obj:
            problems.append(f"{where}: missing {key!r}")
        elif not isinstance(obj[key], kinds):
            problems.append(f"{where}.{key}: {type(obj[key]).__name__} is not {'/'.join(k.__name__ for k in kinds)}")

    num, opt_num = (int, float), (int, float, type(None))
    need(doc, "schema", (str,), "doc")
    if doc.get("schema") != "convdot-bench/1":
        problems.append(f"doc.schema: {doc.get('schema')!r} is not 'convdot-bench/1'")
    for key, kinds in (("created", (str,)), ("quick", (bool,)), ("repeat", (int,)), ("machine", (dict,)),
                       ("workloads", (list,)), ("extra", (dict,))):
        need(doc, key, kinds, "doc")
    machine = doc.get("machine", {})
    for key, kinds in (("cpu", (str,)), ("cores", (int,)), ("platform", (str,)), ("python", (str,)),
                       ("versions", (dict,)), ("blas", (list, type(None))), ("env", (dict,))):
        need(machine, key, kinds, "machine")
    for i, w in enumerate(doc.get("workloads", [])):
        where = f"workloads[{i}]"
        for key, kinds in (("name", (str,)), ("problem", (str,)), ("dtype", (str,)), ("flops", num),
                           ("available", (bool,)), ("note", (str,)), ("methods", (dict,)),
                           ("method_notes", (dict,)), ("peers", (list,))):
            need(w, key, kinds, where)
        if not w.get("available", False):
            continue
        need(w, "convdot", (dict,), where)
        for key, kinds in (("method", (str,)), ("seconds", num), ("gflops", num)):
            need(w.get("convdot") or {}, key, kinds, f"{where}.convdot")
        need(w, "memory", (dict,), where)
        for key in ("peak_bytes", "io_bytes", "ratio"):
            need(w.get("memory") or {}, key, num, f"{where}.memory")
        for m, t in w.get("methods", {}).items():
            if not isinstance(t, opt_num):
                problems.append(f"{where}.methods.{m}: {t!r} is not a number or null")
        need(w, "auto_over_fastest", opt_num, where)
        for j, p in enumerate(w.get("peers", [])):
            pw = f"{where}.peers[{j}]"
            for key, kinds in (("name", (str,)), ("status", (str,)), ("detail", (str,)), ("seconds", opt_num),
                               ("gflops", opt_num), ("ratio", opt_num), ("max_rel_error", opt_num)):
                need(p, key, kinds, pw)
            if p.get("status") not in ("ok", "not installed", "mismatch", "error", "skipped"):
                problems.append(f"{pw}.status: {p.get('status')!r} is not a known status")
            if p.get("status") in ("ok", "mismatch") and not isinstance(p.get("ratio"), num):
                problems.append(f"{pw}.ratio: a timed peer needs its ratio")
    return problems
