"""``convdot bench``: race convdot against PyTorch, SciPy and OpenCV on the same arrays.

The workloads and peers live in the ``benchmarks`` package installed with convdot; the peers are
the ``convdot[bench]`` extra, and a missing one is reported as "not installed" in its column.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import tempfile

from ..cli import UsageError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench",
        help="time convdot against torch, scipy and cv2 on CNN layers and image filters",
        description="Runs each workload with convdot (method auto) and every installed peer, interleaved, best of "
                    "--repeat after a warm-up, on the same arrays; checks the outputs agree; prints times, GFLOP/s, "
                    "peer_time / convdot_time, auto against every single method, and convdot's peak extra memory "
                    "against the input+output size. Peers come with `pip install convdot[bench]`.",
        epilog="Examples: convdot bench --quick | convdot bench --workload filter-k7 --json out.json",
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes: the whole table in under a minute (CI smoke)")
    p.add_argument("--json", metavar="FILE", help="also write every number, with the machine's details, as JSON")
    p.add_argument("--force", action="store_true", help="overwrite the --json FILE if it exists")
    p.add_argument("--workload", metavar="NAME", nargs="+", action="extend",
                   help="run only these workloads (default: all of the table; dask-filter only when named)")
    p.add_argument("--method", default="auto", metavar="auto|NAME",
                   help="convdot's method for the race (default auto; single methods are timed too)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed rounds after the warm-up (default 5, quick 3; auto against the single methods: "
                        "twice as many)")
    p.add_argument("--pause", type=float, default=None, metavar="SECONDS",
                   help="sleep before each timed call so other libraries' spinning threads go idle "
                        "(default 0.2, quick 0.02)")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for a README)")
    p.add_argument("--from-json", metavar="FILE", help="print the tables of an earlier --json run instead of running")
    return p


class _Bar:
    """A progress line on stderr: redrawn in place on a terminal, one plain line per step otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.tty = sys.stderr.isatty()

    def step(self) -> None:
        self.done += 1

    def __call__(self, label: str) -> None:
        if self.tty:
            width = 24
            filled = round(width * self.done / max(self.total, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label[:60]:<60}")
        else:
            sys.stderr.write(f"bench {self.done + 1}/{self.total}: {label}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def _selected(args: argparse.Namespace) -> list[str]:
    from benchmarks.workloads import OPTIONAL, WORKLOADS

    names = args.workload or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS and n not in OPTIONAL]
    if unknown:
        raise UsageError(f"unknown workload {unknown[0]!r}; choose from {', '.join([*WORKLOADS, *OPTIONAL])}")
    return list(dict.fromkeys(names))


def _check_args(args: argparse.Namespace) -> None:
    from .._spec import METHODS

    if args.method != "auto" and args.method not in METHODS:
        raise UsageError(f"--method must be 'auto' or one of {', '.join(METHODS)}, got {args.method!r}")
    if args.pause is not None and not 0 <= args.pause <= 10:
        raise UsageError(f"--pause must be between 0 and 10 seconds, got {args.pause}")
    if args.repeat is not None and args.repeat < 1:
        raise UsageError(f"--repeat must be >= 1, got {args.repeat}")
    if args.json and os.path.exists(args.json) and not args.force:
        raise UsageError(f"{args.json} exists; pass --force to overwrite it")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise UsageError(f"cannot write {args.json}: its directory does not exist")


def run(args: argparse.Namespace) -> int:
    if args.from_json:
        with open(args.from_json) as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{args.from_json} is not JSON: {exc}") from None
        import benchmarks.runner as runner

        problems = runner.validate(doc)
        if problems:
            raise UsageError(f"{args.from_json} is not a convdot bench document: {problems[0]}")
        print(render_markdown(doc) if args.markdown else render(doc))
        return 0
    try:
        import benchmarks.runner as runner
        from benchmarks import machine
        from benchmarks.workloads import WORKLOADS
    except ImportError as exc:  # pragma: no cover - the package ships with convdot
        raise UsageError(f"the benchmarks package is missing ({exc}); reinstall convdot") from None
    _check_args(args)
    names = _selected(args)
    repeat = args.repeat or (3 if args.quick else 5)
    pause = args.pause if args.pause is not None else (0.02 if args.quick else runner.PAUSE)
    bar = _Bar(len(names))
    doc: dict = {"schema": "convdot-bench/1", "created": datetime.datetime.now(datetime.UTC).isoformat(),
                 "quick": bool(args.quick), "repeat": repeat, "pause": pause, "machine": machine.info(),
                 "workloads": [], "extra": {}}
    try:
        for name in names:
            bar(f"{name}: setting up")
            if name == "dask-filter":
                doc["extra"][name] = _dask(args.quick, bar)
            else:
                case = WORKLOADS[name](args.quick)
                if args.method != "auto":
                    case = _forced(case, args.method)
                doc["workloads"].append(runner.run_case(case, repeat, bar, pause))
            bar.step()
    finally:
        bar.close()
    print(render_markdown(doc) if args.markdown else render(doc))
    if args.json:
        _write_json(args.json, doc)
        print(f"\nwrote {args.json}")
    return 0


def _forced(case, method: str):
    """The same case raced with one convdot method instead of auto."""
    base = case.convdot
    case.convdot = lambda m: base(method if m == "auto" else m)
    case.auto_method = method
    return case


def _dask(quick: bool, progress) -> dict:
    """The Dask workload (benchmarks/dask_filter.py), when dask and dask-image are installed."""
    import importlib.util

    missing = [m for m in ("dask", "distributed", "dask_image", "zarr") if importlib.util.find_spec(m) is None]
    if missing:
        return {"available": False, "note": f"not installed: {', '.join(missing)} (pip install convdot[bench,dask])"}
    from benchmarks import dask_filter

    kwargs = {"size": 2048, "chunk": 512, "sinks": ("discard",)} if quick else {}
    rows = dask_filter.run(log=lambda msg: progress(f"dask-filter: {msg}"), **kwargs)
    return {"available": True, "rows": rows, "table": dask_filter.table(rows)}


def _write_json(path: str, doc: dict) -> None:
    """Write atomically: a temporary file in the same directory, then rename over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".convdot-bench-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, default=_jsonable, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


# --------------------------------------------------------------------------- the tables


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def render(doc: dict) -> str:
    """The text tables: the race, then auto vs the single methods and memory, then the machine."""
    m = doc["machine"]
    lines = [f"convdot bench{' --quick' if doc['quick'] else ''}: best of {doc['repeat']} after a warm-up; "
             f"{m['cpu']}, {m['cores']} cores; numpy {m['versions'].get('numpy')}, scipy {m['versions'].get('scipy')}, "
             f"torch {m['versions'].get('torch') or 'not installed'}, "
             f"cv2 {m['versions'].get('cv2') or 'not installed'}",
             "", "ratio = peer time / convdot time (> 1: convdot is faster)", ""]
    head = f"{'workload':<14} {'contestant':<30} {'time':>10} {'GFLOP/s':>8} {'ratio':>7}  agreement"
    lines += [head, "-" * len(head)]
    for w in doc["workloads"]:
        if not w["available"]:
            lines.append(f"{w['name']:<14} {'not available: ' + w['note']}")
            continue
        c = w["convdot"]
        lines.append(f"{w['name']:<14} {'convdot (' + c['method'] + ')':<30} {_ms(c['seconds']):>10} "
                     f"{c['gflops']:>8.1f} {'':>7}  {w['problem']}")
        for p in w["peers"]:
            if p["status"] in ("not installed", "skipped", "error"):
                lines.append(f"{'':<14} {p['name']:<30} {p['status']:>10}  {p['detail']}")
                continue
            agree = f"{p['max_rel_error']:.1e}" + ("" if p["status"] == "ok" else " MISMATCH")
            lines.append(f"{'':<14} {p['name']:<30} {_ms(p['seconds']):>10} {_cell(p['gflops'], '8.1f'):>8} "
                         f"{_cell(p['ratio'], '.2f') + 'x':>7}  {agree}")
    lines += ["", _methods_table(doc), "", summary(doc)]
    for name, extra in doc.get("extra", {}).items():
        lines += ["", f"{name}:", extra.get("table") or f"not available: {extra.get('note', '')}"]
    return "\n".join(lines)


def render_markdown(doc: dict) -> str:
    """The race as one Markdown table, then the targets."""
    m = doc["machine"]
    lines = [f"{m['cpu']}, {m['cores']} cores; numpy {m['versions'].get('numpy')}, scipy {m['versions'].get('scipy')}, "
             f"torch {m['versions'].get('torch')}, cv2 {m['versions'].get('cv2')}; best of {doc['repeat']} after a "
             "warm-up; ratio = peer time / convdot time (> 1: convdot is faster).", "",
             "| workload | problem | convdot (auto: method) | GFLOP/s | peers: time (ratio) | fastest method "
             "(auto/fastest) | peak mem / (in+out) |", "|---|---|---|---|---|---|---|"]
    for w in doc["workloads"]:
        if not w["available"]:
            lines.append(f"| {w['name']} | {w['problem']} | not available: {w['note']} | | | | |")
            continue
        c = w["convdot"]
        cells = []
        for p in w["peers"]:
            if p["status"] in ("ok", "mismatch"):
                cells.append(f"{p['name']} {_ms(p['seconds'])} ({p['ratio']:.2f}x)"
                             + ("" if p["status"] == "ok" else " MISMATCH"))
            else:
                cells.append(f"{p['name']}: {p['status']}")
        fast = w["fastest_method"]
        fast_s = f"{fast} {_ms(w['methods'][fast])} ({w['auto_over_fastest']:.2f})" if fast else "-"
        lines.append(f"| {w['name']} | {w['problem']} | {_ms(c['seconds'])} ({c['method']}) | {c['gflops']:.1f} | "
                     f"{'<br>'.join(cells)} | {fast_s} | {w['memory']['ratio']:.2f}x |")
    return "\n".join([*lines, "", "```", summary(doc), "```"])


def _methods_table(doc: dict) -> str:
    head = (f"{'workload':<14} {'auto':>9} {'fastest single method':>26} {'auto/fastest':>12} "
            f"{'peak mem / (in+out)':>20}")
    lines = ["auto/fastest: median over rounds of auto's time / the fastest method's time in the same round", "",
             head, "-" * len(head)]
    for w in doc["workloads"]:
        if not w["available"]:
            continue
        fast = w["fastest_method"]
        fast_s = f"{fast} {_ms(w['methods'][fast])}" if fast else "-"
        lines.append(f"{w['name']:<14} {_ms(w['convdot']['seconds']):>9} {fast_s:>26} "
                     f"{_cell(w['auto_over_fastest'], '.2f'):>12} {w['memory']['ratio']:>19.2f}x")
    return "\n".join(lines)


def _geomean(values: list[float]) -> float | None:
    vals = [v for v in values if v and math.isfinite(v)]
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else None


def summary(doc: dict) -> str:
    """The issue's targets, each with the measured value."""
    from benchmarks.workloads import CNN_OTHER, FILTERS

    by = {w["name"]: w for w in doc["workloads"] if w["available"]}

    def ratio(w: dict, prefix: str) -> float | None:
        vals = [p["ratio"] for p in w["peers"] if p["name"].startswith(prefix) and p["ratio"]]
        return min(vals) if vals else None

    out = ["targets (measured):"]
    for name in ("resnet-3x3-56", "resnet-3x3-28", "resnet-3x3-14"):
        if name in by and ratio(by[name], "torch") is not None:
            r = ratio(by[name], "torch")
            out.append(f"  {name}: {r:.2f}x torch (target >= 1.25) {'met' if r >= 1.25 else 'MISSED'}")
    cnn = [ratio(by[n], "torch") for n in CNN_OTHER if n in by]
    g = _geomean([c for c in cnn if c])
    if g:
        out.append(f"  other CNN layers: geometric mean {g:.2f}x torch (target >= 1.0) "
                   f"{'met' if g >= 1.0 else 'MISSED'}")
    cv = []
    for name in FILTERS:
        if name in by:
            r = ratio(by[name], "scipy")
            if r is not None:
                out.append(f"  {name}: {r:.2f}x the best SciPy function (target >= 1.5) "
                           f"{'met' if r >= 1.5 else 'MISSED'}")
            cv.append(ratio(by[name], "cv2"))
    g = _geomean([c for c in cv if c])
    if g:
        out.append(f"  filters: geometric mean {g:.2f}x cv2.filter2D (target >= 0.5) {'met' if g >= 0.5 else 'MISSED'}")
    slow = [(n, w) for n, w in by.items() if w["auto_over_fastest"] is not None and w["auto_over_fastest"] > 1.1]
    out.append(f"  auto within 10% of the fastest single method: {len(by) - len(slow)}/{len(by)} workloads"
               + ("" if not slow else " -- MISSED on " + ", ".join(
                   f"{n} ({w['auto_over_fastest']:.2f}x {w['fastest_method']})" for n, w in slow)))
    big = [(n, w) for n, w in by.items() if w["memory"]["ratio"] > 2]
    out.append(f"  peak memory <= 2 x (input + output): {len(by) - len(big)}/{len(by)} workloads"
               + ("" if not big else " -- MISSED on "
                  + ", ".join(f"{n} ({w['memory']['ratio']:.2f}x)" for n, w in big)))
    return "\n".join(out)
