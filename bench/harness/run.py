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
    /usr/bin/python3 bench/harness/run.py --threads 2 --cases 'llava*' 'pllava*' 'video_chatgpt*' \
        --results-markdown bench/RESULTS.md --results-section cpu-pooling   # regenerate a results table
    python3 bench/harness/run.py --device cuda --dtypes bf16 f32   # on a GPU machine

Debian's /usr/bin/python3 is named because its python3-torch is the PyTorch meant here; another
interpreter works if it has PyTorch.
"""
import argparse
import ctypes
import fnmatch
import math
import os
import shlex
import subprocess
import sys


def choose_openblas_coretype():
    """Debian's OpenBLAS 0.3.21 does not know recent Xeons (Sapphire Rapids class, with AVX-512): it
    names the core "Prescott" and runs its SSE3 kernels, 4-5x slower than its AVX-512 ones. That
    would make every baseline that calls BLAS (ToMe's similarity matmul) look slow for a reason that
    is no part of the method. So, before PyTorch loads OpenBLAS (the variable is read only then): ask
    a child process which core OpenBLAS detects, and where it is Prescott or unknown on a CPU with
    AVX-512F (AVX2), set OPENBLAS_CORETYPE=SkylakeX (Haswell). A value the user set is left alone.
    Returns the override made, or None. Pooling calls no BLAS and is unaffected."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return None
    probe = ("import ctypes, ctypes.util\n"
             "name = ctypes.util.find_library('openblas') or 'libopenblas.so.0'\n"
             "f = ctypes.CDLL(name).openblas_get_corename\n"
             "f.restype = ctypes.c_char_p\n"
             "print(f().decode())")
    try:
        detected = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.strip()
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except (OSError, subprocess.SubprocessError):
        return None
    if detected.lower() not in ("prescott", "unknown", ""):
        return None
    coretype = "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else None
    if coretype:
        os.environ["OPENBLAS_CORETYPE"] = coretype
        return f"{detected or 'unknown'} detected, OPENBLAS_CORETYPE={coretype} set"
    return None


OPENBLAS_OVERRIDE = choose_openblas_coretype()

import torch  # noqa: E402 (after the OpenBLAS core choice)

import attention_cases  # noqa: E402
import cluster_cases  # noqa: E402
import diversity_cases  # noqa: E402
import dlpack_roundtrips  # noqa: E402
import kmeans_cases  # noqa: E402
import measure  # noqa: E402
import merge_cases  # noqa: E402
import pool_cases  # noqa: E402
import relevance_cases  # noqa: E402
import segment_similarity_cases  # noqa: E402
import temporal_cases  # noqa: E402
import report  # noqa: E402
import tokenkernels_abi as tk  # noqa: E402

# Every family's cases; a new op adds its module here.
CASE_FAMILIES = [pool_cases.CASES, merge_cases.CASES, attention_cases.CASES, diversity_cases.CASES, temporal_cases.CASES,
                 cluster_cases.CASES,
                 relevance_cases.CASES,
                 kmeans_cases.CASES,
                 segment_similarity_cases.CASES]


def openblas_core(blas_paths):
    """The core OpenBLAS chose in this process ("SkylakeX", "Prescott", ...), or None."""
    for path in blas_paths:
        if "openblas" in os.path.basename(path).lower():
            try:
                function = ctypes.CDLL(path).openblas_get_corename
            except (OSError, AttributeError):
                continue
            function.restype = ctypes.c_char_p
            return function().decode()
    return None

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
    parser.add_argument("--results-markdown", metavar="FILE",
                        help="write the table of the results page (bench/RESULTS.md) here: case, shape, dtype, "
                             "machine, date, commit, baseline, ours, ratio, with the command and the notes")
    parser.add_argument("--results-section", metavar="NAME",
                        help="with --results-markdown: replace only the lines between '<!-- harness:NAME begin -->' "
                             "and '<!-- harness:NAME end -->' in FILE (e.g. bench/RESULTS.md), keeping the rest")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.results_section and not args.results_markdown:
        parser.error("--results-section needs --results-markdown FILE")
    args.dtypes = args.dtypes or (["f32", "bf16", "f16"] if args.quick else ["f32"])
    return args


def selected_cases(patterns, device_type, quick):
    cases = [case for family in CASE_FAMILIES for case in family if quick or device_type in case.full_on]
    return [case for case in cases if any(fnmatch.fnmatchcase(case.name, p) for p in patterns)]


def tensor_bytes(tensor):
    return tensor.numel() * tensor.element_size()


def as_tuple(outputs):
    """A case's outputs: one tensor, or a tuple of them (merging: the tokens and their sizes)."""
    return outputs if isinstance(outputs, tuple) else (outputs,)


def compare_all(values, references, input_scale):
    """measure.compare of each output against its reference, combined: passes when all pass."""
    checks = [measure.compare(v.reshape(r.shape), r, input_scale) for v, r in zip(values, references)]
    return {
        "passed": all(c["passed"] for c in checks),
        "mismatches": sum(c["mismatches"] for c in checks),
        "elements": sum(c["elements"] for c in checks),
        "max_abs_error": max(c["max_abs_error"] for c in checks),
        "worst_error_over_tolerance": max(c["worst_error_over_tolerance"] for c in checks),
    }


def run_baseline(case, inputs):
    """The baseline's outputs at the inputs' dtype, or None where PyTorch has no kernel for that dtype on
    this device (PyTorch 1.13 lacks CPU float16 kernels for several of these ops)."""
    try:
        return as_tuple(case.baseline(*inputs))
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
    reference = as_tuple(case.baseline(*[t.float() if t.is_floating_point() else t for t in inputs]))
    input_scale = max(float(t.abs().max()) for t in inputs if t.is_floating_point())
    out, run = case.prepare_ours(library, *inputs)
    out = as_tuple(out)
    for tensor in out:
        tensor.fill_(math.nan)  # an element the op fails to write stays NaN and fails the check
    run()
    measure.synchronize(device)
    baseline = run_baseline(case, inputs)
    result = {
        "case": case.name,
        "method": case.method,
        "input_shape": list(shape),
        "output_shape": list(out[0].shape),
        "dtype": dtype_name,
        "device": str(device),
        "layout": "strided" if strided else "packed",
        "threads": args.threads,
        "baseline_native": baseline is not None,
        "check": compare_all(out, reference, input_scale),
        # The same test applied to the baseline at this dtype: informative, PyTorch is not under test.
        "baseline_check": (compare_all(baseline, reference, input_scale) if baseline is not None else None),
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
    # Reference calls a case names (a GEMM of the op's size), timed alongside on the same input sets.
    for name, prepare_reference in getattr(case, "references", {}).items():
        contenders[f"reference_{name}_s"] = [prepare_reference(*s) for s in input_sets]
    # Every input set's own buffers (our workspace and outputs, a reference's product) written once before
    # timing, as a host's are after its first call: otherwise a sample that first meets a set also times
    # the page faults of its fresh memory (100 MB of workspace for DivPrune at 10,816 tokens). The baseline
    # allocates its buffers in every call, as the method does.
    for name, calls in contenders.items():
        if name != "baseline_s":
            for call in calls:
                call()
    measure.synchronize(device)
    warmup = min(args.warmup, case.max_warmup) if case.max_warmup is not None else args.warmup
    repeats = min(args.repeats, case.max_repeats) if case.max_repeats is not None else args.repeats
    seconds = measure.time_interleaved(contenders, device, warmup, repeats)
    result["input_sets"] = len(input_sets)
    result["calls_per_sample"] = measure.CUDA_CALLS_PER_SAMPLE if device.type == "cuda" else 1
    result["timing"] = {name: measure.summarize(s) for name, s in seconds.items()}
    if case.memory_bound:
        ours_s = result["timing"]["ours_s"]["median"]
        moved = input_bytes + sum(tensor_bytes(t) for t in as_tuple(prepared[0][0]))
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


def reference_notes(results):
    """One line per reference call timed with a case: its time, and ours as a multiple of it."""
    notes = []
    for result in results:
        timing = result.get("timing") or {}
        ours = timing.get("ours_s", {}).get("median")
        for key, summary in timing.items():
            if key.startswith("reference_") and ours:
                name = key[len("reference_"):-len("_s")]
                notes.append(f"{result['case']} {result['dtype']}: reference {name} {summary['median'] * 1e3:.3f} ms, "
                             f"ours = {ours / summary['median']:.2f}x {name}")
    return notes


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
    cases = selected_cases(args.cases, args.device.split(":")[0], args.quick)
    # The DLPack round trips are correctness checks only: they run with --quick, in every dtype of the ABI.
    round_trips = dlpack_roundtrips.selected(args.cases) if args.quick else []
    if args.list:
        for case in cases + round_trips:
            print(f"{case.name:28} {case.method}")
        return 0
    if not cases and not round_trips:
        raise SystemExit(f"no case matches {args.cases}")
    if args.results_markdown:
        try:
            report.check_results_section(args.results_markdown, args.results_section)
        except (OSError, ValueError) as error:
            raise SystemExit(f"--results-markdown: {error}")
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
    env["blas_core"] = openblas_core(env["blas"])
    env["blas_core_override"] = OPENBLAS_OVERRIDE
    if env["blas_core"]:
        # Shown with the library's path wherever the conditions are written (the Markdown header too).
        env["blas"] = [f"{path} (OpenBLAS core {env['blas_core']}" +
                       (f"; {OPENBLAS_OVERRIDE})" if OPENBLAS_OVERRIDE else ")")
                       if "openblas" in os.path.basename(path).lower() else path for path in env["blas"]]
    print(f"TokenKernels {env['library_version']} ({env['library']}), PyTorch {env['torch']}, "
          f"{env['cpu']}, {args.threads} threads, device {device}" +
          (f" ({env['gpu']}, driver {env['driver']})" if device.type == "cuda" else ""))
    print("BLAS: " + (", ".join(env["blas"]) or "none loaded"))
    warning = report.blas_warning(env)
    if warning:
        print(warning)

    runs = [(case, dtype, strided) for case in cases for dtype in args.dtypes
            for strided in ((False, True) if args.quick else (False,))]
    round_trip_runs = [(round_trip, dtype) for round_trip in round_trips for dtype in dlpack_roundtrips.DTYPES]
    total = len(runs) + len(round_trip_runs)
    results = []
    for index, (case, dtype, strided) in enumerate(runs, 1):
        label = f"[{index}/{total}] {case.name} {dtype} {'strided' if strided else 'packed'}"
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
    for index, (round_trip, dtype) in enumerate(round_trip_runs, len(runs) + 1):
        label = f"[{index}/{total}] {round_trip.name} {dtype}"
        try:
            result = dlpack_roundtrips.run(round_trip, library, device, dtype)
        except (RuntimeError, ValueError, TypeError, BufferError) as error:
            result = dlpack_roundtrips.failed(round_trip, device, dtype, f"{type(error).__name__}: {error}")
        for problem in result["problems"]:
            print(f"{label}: {problem}", file=sys.stderr)
        print(f"{label}: {'pass' if result['check']['passed'] else 'FAIL'}", file=sys.stderr, flush=True)
        results.append(result)

    columns = report.QUICK_COLUMNS if args.quick else report.TIMED_COLUMNS
    print()
    print(report.text_table(results, columns))
    notes = reference_notes(results)
    if notes:
        print()
        print("\n".join(notes))
    if args.json:
        report.write_json(args.json, env, results, command)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(report.markdown(env, results, columns, command))
            if notes:
                out.write("\n" + "\n".join(f"- {note}" for note in notes) + "\n")
    if args.results_markdown:
        try:
            report.write_results(args.results_markdown, report.results_markdown(env, results, command, notes),
                                 args.results_section)
        except (OSError, ValueError) as error:
            raise SystemExit(f"--results-markdown: {error}")
    failed = sum(not r["check"]["passed"] for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
