"""``convdot tune``: measure this machine's rates, or time every method on a problem and cache the winner."""

from __future__ import annotations

import argparse

from .._io import add_layer_options, layer_options, parse_ints

_EXAMPLES = """examples:
  convdot tune                                   # measure this machine's rates for the cost model
  convdot tune --shape 8,64,56,56 --weight-shape 64,64,3,3 --padding 1
  convdot tune --shape 1,1,2048,2048 --weight-shape 1,1,7,7 --padding same --dtype float64
  convdot tune --show                            # what is cached for this machine
  convdot tune --clear                           # forget everything
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "tune",
        help='measure this machine, time every method on a problem and cache the fastest for method="auto"',
        description='Without --shape: measure the rates of the cost model (GEMM, FFT, memory passes, compiled '
                    'kernels) and cache them. With --shape and --weight-shape: time every method that can run '
                    'that layer (random data, best of --repeat after a warm-up) and cache the fastest; '
                    'method="auto" then takes it for that problem on this machine. The cache is a small JSON '
                    'file in the user cache directory ($CONVDOT_CACHE_DIR overrides it).',
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--shape", metavar="N,C,...", help="shape of x: (N, C_in, *spatial)")
    p.add_argument("--weight-shape", metavar="O,C,...", help="shape of the weight: (C_out, C_in/groups, *k)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64", "complex64", "complex128", "int64"),
                   help="dtype of the random data (default float32)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per candidate after a warm-up (default 5)")
    p.add_argument("--threads", type=int, help="threads for convdot's own loops (default $CONVDOT_NUM_THREADS "
                                               "or every CPU)")
    p.add_argument("--methods", metavar="M,M", help="only these methods, like winograd,im2col")
    p.add_argument("--quick", action="store_true", help="measure the rates on smaller problems (about a second)")
    p.add_argument("--show", action="store_true", help="print the cache file's path and this machine's entries")
    p.add_argument("--clear", action="store_true", help="delete the cache file")
    add_layer_options(p)
    return p


def _random(shape: tuple[int, ...], dtype: str):
    import numpy as np

    rng = np.random.default_rng(0)
    if dtype == "int64":
        return rng.integers(-8, 8, size=shape)
    data = rng.standard_normal(shape)
    if dtype.startswith("complex"):
        data = data + 1j * rng.standard_normal(shape)
    return data.astype(dtype)


def _show() -> str:
    from .. import planner, tuning

    section = tuning.load()["machines"].get(tuning.machine_key(), {})
    lines = [f"cache: {tuning.cache_path()}"]
    rates = section.get("rates")
    if rates:
        lines.append(f"rates measured {section.get('rates_measured', '?')} (built-in: {planner.MACHINE['measured']}):")
        lines += [f"  {k:<7} {v:10.3g}   built-in {planner.MACHINE['rates'].get(k, float('nan')):10.3g}"
                  for k, v in sorted(rates.items())]
    else:
        lines.append("rates: not measured here; the cost model uses the built-in ones")
    problems = section.get("problems", {})
    lines.append(f"{len(problems)} tuned problem{'s' if len(problems) != 1 else ''}:")
    lines += [f"  {sig}  ->  {e.get('method')} {e.get('params', {})}" for sig, e in sorted(problems.items())]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .. import planner, tuning

    if args.clear:
        print(f"deleted {tuning.clear()}")
        return 0
    if args.show:
        print(_show())
        return 0
    if (args.shape is None) != (args.weight_shape is None):
        raise ValueError("--shape and --weight-shape go together (x and weight shapes of the layer to tune)")
    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    if args.shape is None:
        rates = tuning.tune_rates(quick=args.quick)
        print(f"measured this machine's rates (built-in ones: {planner.MACHINE['machine']}, "
              f"{planner.MACHINE['measured']}):")
        for k, v in sorted(rates.items()):
            print(f"  {k:<7} {v:10.3g}   built-in {planner.MACHINE['rates'].get(k, float('nan')):10.3g}")
        print(f"cached in {tuning.cache_path()}")
        return 0
    x_shape = parse_ints(args.shape, "--shape")
    w_shape = parse_ints(args.weight_shape, "--weight-shape")
    if any(v < 1 for v in x_shape + w_shape):
        raise ValueError(f"--shape and --weight-shape must be positive, got {x_shape} and {w_shape}")
    methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods else None
    kw = layer_options(args)
    kw.pop("bias", None)
    result = tuning.tune(_random(x_shape, args.dtype), _random(w_shape, args.dtype), methods=methods,
                         repeat=args.repeat, threads=args.threads, **kw)
    print(result)
    return 0
