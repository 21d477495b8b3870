#!/usr/bin/python3
"""Side-by-side harness: TokenKernels against the published methods' PyTorch eager code, on the same
buffers, in one process.

Each case is checked first: our output against the baseline's on the same inputs (for float16 and
bfloat16, the baseline run on float32 copies of them), with the tolerance of the dtype; the
baseline's own half-precision output gets the same test, for information. Then both are timed on
fresh random inputs: warm-up, then the median of many runs (CPU: time.perf_counter; CUDA: events on
PyTorch's current stream, which is also the stream our op is given). Memory-bound cases are also
judged against the copy bandwidth of the machine, measured in the same run on a tensor of the
input's size.

    /usr/bin/python3 bench/harness/run.py --quick                  # CI: small cases, correctness only
    /usr/bin/python3 bench/harness/run.py --threads 2 --json cpu.json --markdown cpu.md
    python3 bench/harness/run.py --device cuda --dtypes bf16 f32   # on a GPU machine

Debian's /usr/bin/python3 is named because its python3-torch is the PyTorch meant here; another
interpreter works if it has PyTorch.
"""
import argparse
import fnmatch
import math
import os
import shlex
import sys

import torch

import measure
import pool_cases
import report
import tokenkernels_abi as tk

# Every family's cases; a new op adds its module here.
CASE_FAMILIES = [pool_cases.CASES]

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lib", help=f"native library (default: ${tk.LIBRARY_ENVIRONMENT_VARIABLE}, else "
                                      f"{os.path.relpath(tk.DEFAULT_LIBRARY, tk.REPOSITORY_ROOT)} in this repository)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES),
                        help="default: f32 (timed), f32 bf16 f16 (--quick)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPU threads for both sides (default: every usable core)")
    parser.add_argument("--quick", action="store_true",
                        help="small case of each op, packed and strided inputs, correctness only")
    parser.add_argument("--cases", nargs="+", default=["*"], metavar="PATTERN", help="case names (shell patterns)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, help="timed runs per contender (default: 15 CPU, 50 CUDA)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the environment and every result here")
    parser.add_argument("--markdown", help="write the conditions and the table here, as Markdown")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    args.dtypes = args.dtypes or (["f32", "bf16", "f16"] if args.quick else ["f32"])
    return args


def selected_cases(patterns):
    cases = [case for family in CASE_FAMILIES for case in family]
    return [case for case in cases if any(fnmatch.fnmatchcase(case.name, p) for p in patterns)]


def tensor_bytes(tensor):
    return tensor.numel() * tensor.element_size()


def run_baseline(case, inputs):
    """The baseline's output at the inputs' dtype, or None where PyTorch has no kernel for that dtype on
    this device (PyTorch 1.13 lacks CPU float16 kernels for several of these ops)."""
    try:
        return case.baseline(*inputs)
    except RuntimeError as error:
        if "not implemented for" not in str(error):
            raise
        return None


def run_case(case, library, device, dtype_name, strided, args):
    dtype = DTYPES[dtype_name]
    shape = case.quick_shape if args.quick else case.full_shape
    inputs = case.make_inputs(shape, dtype, device, strided)
    # The baseline on float32 inputs: for float32 the baseline itself; for half types the function the
    # method defines before its final rounding, which PyTorch's own half kernels do not always reach.
    reference = case.baseline(*[t.float() if t.is_floating_point() else t for t in inputs])
    input_scale = max(float(t.abs().max()) for t in inputs if t.is_floating_point())
    out, run = case.prepare_ours(library, *inputs)
    out.fill_(math.nan)  # an element the op fails to write stays NaN and fails the check
    run()
    measure.synchronize(device)
    baseline = run_baseline(case, inputs)
    result = {
        "case": case.name,
        "method": case.method,
        "input_shape": list(shape),
        "output_shape": list(out.shape),
        "dtype": dtype_name,
        "device": str(device),
        "layout": "strided" if strided else "packed",
        "threads": args.threads,
        "baseline_native": baseline is not None,
        "check": measure.compare(out.reshape(reference.shape), reference, input_scale),
        # The same test applied to the baseline at this dtype: informative, PyTorch is not under test.
        "baseline_check": (measure.compare(baseline, reference, input_scale) if baseline is not None else None),
    }
    if args.quick or not result["check"]["passed"]:
        return result
    del out, run, reference, baseline

    input_bytes = sum(tensor_bytes(t) for t in inputs)
    input_sets = [inputs] + [case.make_inputs(shape, dtype, device, strided)
                             for _ in range(measure.input_set_count(input_bytes, device) - 1)]
    prepared = [case.prepare_ours(library, *s) for s in input_sets]
    contenders = {"ours_s": [run for _, run in prepared]}
    if result["baseline_native"]:
        contenders["baseline_s"] = [lambda s=s: case.baseline(*s) for s in input_sets]
    if case.memory_bound:
        copy_sources = [max(s, key=tensor_bytes) for s in input_sets]
        copy_destination = torch.empty_like(copy_sources[0])
        contenders["copy_s"] = [lambda src=src: copy_destination.copy_(src) for src in copy_sources]
    seconds = measure.time_interleaved(contenders, device, args.warmup, args.repeats)
    result["input_sets"] = len(input_sets)
    result["calls_per_sample"] = measure.CUDA_CALLS_PER_SAMPLE if device.type == "cuda" else 1
    result["timing"] = {name: measure.summarize(s) for name, s in seconds.items()}
    if case.memory_bound:
        ours_s = result["timing"]["ours_s"]["median"]
        moved = input_bytes + tensor_bytes(prepared[0][0])
        copy_bytes_per_s = 2 * tensor_bytes(copy_destination) / result["timing"]["copy_s"]["median"]
        floor_s = moved / copy_bytes_per_s
        result["bandwidth"] = {
            "bytes_moved": moved,  # every input byte read once, every output byte written once
            "ours_bytes_per_s": moved / ours_s,
            "copy_bytes_per_s": copy_bytes_per_s,  # counting bytes read plus bytes written
            "floor_s": floor_s,
            "ours_over_floor": ours_s / floor_s,
        }
    return result


def open_device(name, library):
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {name}: PyTorch {torch.__version__} sees no CUDA device")
        if library.cuda_device_count() == 0:
            raise SystemExit(f"--device {name}: {library.path} has no usable CUDA backend "
                             "(built without CUDA, or no driver/device)")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise SystemExit(f"--device {name}: expected cpu or cuda[:N]")
    return device


def main(argv):
    args = parse_args(argv)
    cases = selected_cases(args.cases)
    if args.list:
        for case in cases:
            print(f"{case.name:28} {case.method}")
        return 0
    if not cases:
        raise SystemExit(f"no case matches {args.cases}")
    try:
        library = tk.Library(tk.resolve_library_path(args.lib))
    except (OSError, tk.TokenKernelsError) as error:
        raise SystemExit(f"cannot use the TokenKernels library: {error}")
    device = open_device(args.device, library)
    args.repeats = args.repeats or (50 if device.type == "cuda" else 15)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    library.set_num_threads(args.threads)
    command = shlex.join([sys.executable] + sys.argv)

    env = report.environment(library, device, args.threads)
    print(f"TokenKernels {env['library_version']} ({env['library']}), PyTorch {env['torch']}, "
          f"{env['cpu']}, {args.threads} threads, device {device}" +
          (f" ({env['gpu']}, driver {env['driver']})" if device.type == "cuda" else ""))
    warning = report.blas_warning(env)
    if warning:
        print(warning)

    runs = [(case, dtype, strided) for case in cases for dtype in args.dtypes
            for strided in ((False, True) if args.quick else (False,))]
    results = []
    for index, (case, dtype, strided) in enumerate(runs, 1):
        label = f"[{index}/{len(runs)}] {case.name} {dtype} {'strided' if strided else 'packed'}"
        try:
            result = run_case(case, library, device, dtype, strided, args)
        except (RuntimeError, ValueError) as error:
            # A failed call is a failed case; the others still run, so one report shows every failure.
            shape = case.quick_shape if args.quick else case.full_shape
            result = {"case": case.name, "method": case.method, "input_shape": list(shape), "dtype": dtype,
                      "device": str(device), "layout": "strided" if strided else "packed",
                      "baseline_native": False, "baseline_check": None, "error": f"{type(error).__name__}: {error}",
                      "check": {"passed": False, "mismatches": 0, "elements": 0, "max_abs_error": math.inf,
                                "worst_error_over_tolerance": math.inf}}
            print(f"{label}: {result['error']}", file=sys.stderr)
        print(f"{label}: {'pass' if result['check']['passed'] else 'FAIL'}", file=sys.stderr, flush=True)
        results.append(result)

    columns = report.QUICK_COLUMNS if args.quick else report.TIMED_COLUMNS
    print()
    print(report.text_table(results, columns))
    if args.json:
        report.write_json(args.json, env, results, command)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(report.markdown(env, results, columns, command))
    failed = sum(not r["check"]["passed"] for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
