"""What a run records: the conditions (machine, versions, BLAS, threads, date) and the result table,
as text on stdout, Markdown for bench/RESULTS.md, and JSON."""
import datetime
import json
import os
import platform
import subprocess

import torch


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loaded_blas_libraries():
    """The BLAS/LAPACK shared objects mapped into this process (PyTorch's), by resolved path."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if line.rstrip().endswith(".so") or ".so." in line}
    except OSError:
        return []
    return sorted(p for p in paths if "blas" in os.path.basename(p).lower() or "lapack" in os.path.basename(p).lower())


def nvidia_driver_version():
    try:
        completed = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=30, check=True)
        return completed.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def environment(library, device, threads):
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "blas": loaded_blas_libraries(),
        "library": library.path,
        "library_version": library.version,
        "library_threads": library.num_threads(),
        "device": device.type,
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        env.update({
            "gpu": properties.name,
            "gpu_multiprocessors": properties.multi_processor_count,
            "gpu_memory_gib": round(properties.total_memory / 2**30, 1),
            "cuda_runtime_torch": torch.version.cuda,
            "driver": nvidia_driver_version(),
        })
    return env


def blas_warning(env):
    """PyTorch built against the reference BLAS runs its CPU baselines many times slower than a
    normal install; such numbers must not be published."""
    if env["device"] == "cpu" and not any("openblas" in path.lower() or "mkl" in path.lower() for path in env["blas"]):
        return ("WARNING: PyTorch has no optimised BLAS loaded (" + (", ".join(env["blas"]) or "none found") +
                "): install libopenblas0-pthread; do not publish these CPU timings")
    return None


def _ms(seconds):
    return f"{seconds * 1e3:.3f}" if seconds is not None else "-"


def _shape(shape):
    return "x".join(str(s) for s in shape)


def _verdict(check):
    """pass/FAIL and the worst error as a fraction of the tolerance."""
    verdict = "pass" if check["passed"] else f"FAIL ({check['mismatches']}/{check['elements']})"
    return f"{verdict} {check['worst_error_over_tolerance']:.2f}"


def row_cells(result):
    timing = result.get("timing") or {}
    baseline = timing.get("baseline_s", {}).get("median")
    ours = timing.get("ours_s", {}).get("median")
    cells = {
        "case": result["case"],
        "shape": _shape(result["input_shape"]),
        "dtype": result["dtype"],
        "device": result["device"],
        "layout": result["layout"],
        "check": _verdict(result["check"]),
        "baseline check": _verdict(result["baseline_check"]) if result["baseline_check"] else "n/a",
        "baseline ms": _ms(baseline) if result["baseline_native"] else "n/a",
        "ours ms": _ms(ours),
        "speedup": f"{baseline / ours:.2f}x" if baseline and ours else "-",
        "ours GB/s": "-",
        "copy GB/s": "-",
        "ours/floor": "-",
    }
    if "bandwidth" in result:
        bandwidth = result["bandwidth"]
        cells["ours GB/s"] = f"{bandwidth['ours_bytes_per_s'] / 1e9:.1f}"
        cells["copy GB/s"] = f"{bandwidth['copy_bytes_per_s'] / 1e9:.1f}"
        cells["ours/floor"] = f"{bandwidth['ours_over_floor']:.2f}"
    return cells


QUICK_COLUMNS = ["case", "shape", "dtype", "device", "layout", "check", "baseline check"]
TIMED_COLUMNS = ["case", "shape", "dtype", "device", "check", "baseline check", "baseline ms", "ours ms", "speedup",
                 "ours GB/s", "copy GB/s", "ours/floor"]


def text_table(results, columns):
    rows = [row_cells(r) for r in results]
    widths = {c: max([len(c)] + [len(row[c]) for row in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(lines)


def markdown(env, results, columns, command):
    lines = [f"Measured {env['date']} with `{command}`.", ""]
    conditions = [
        ("CPU", f"{env['cpu']}, {env['usable_cpus']} usable of {env['logical_cpus']} logical CPUs"),
        ("threads", f"{env['threads']} (torch.set_num_threads and tk_set_num_threads)"),
        ("PyTorch", f"{env['torch']} (Python {env['python']})"),
        ("BLAS", ", ".join(env["blas"]) or "none loaded"),
        ("TokenKernels", f"{env['library_version']}, {env['library']}"),
    ]
    if env["device"] == "cuda":
        conditions.insert(0, ("GPU", f"{env['gpu']}, driver {env['driver']}, CUDA {env['cuda_runtime_torch']} (PyTorch's)"))
    lines += [f"- {name}: {value}" for name, value in conditions]
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for result in results:
        cells = row_cells(result)
        lines.append("| " + " | ".join(cells[c] for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_json(path, env, results, command):
    with open(path, "w") as out:
        json.dump({"command": command, "environment": env, "results": results}, out, indent=2)
        out.write("\n")
