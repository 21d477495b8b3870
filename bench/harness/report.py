"""What a run records: the conditions (machine, versions, BLAS, threads, date) and the result table,
as text on stdout, Markdown for bench/RESULTS.md, and JSON."""
import datetime
import json
import os
import platform
import re
import subprocess

import torch

REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def lscpu_machine():
    """(model name, physical cores) from lscpu, e.g. ("Intel(R) Xeon(R) Processor", 2); None where unknown."""
    try:
        completed = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30, check=True,
                                   env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    fields = {}
    for line in completed.stdout.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    try:
        cores = int(fields["Core(s) per socket"]) * int(fields.get("Socket(s)", "1"))
    except (KeyError, ValueError):
        cores = None
    return fields.get("Model name"), cores


def machine_description(device_type, gpu=None):
    """The machine column of the results page: lscpu's model name and core count, the GPU first on CUDA."""
    model, cores = lscpu_machine()
    model = model or cpu_model()
    cores = cores or os.cpu_count()
    cpu = f"{model}, {cores} cores" if cores else model
    return f"{gpu}; host {cpu}" if device_type == "cuda" and gpu else cpu


def git_commit(repository=REPOSITORY_ROOT):
    """`git rev-parse --short HEAD` of the repository the harness runs from, with "+dirty" when tracked
    files differ from it (untracked ones are ignored, as `git describe --dirty` does); None outside git."""
    def git(*arguments):
        return subprocess.run(["git", "-C", repository, *arguments], capture_output=True, text=True, timeout=30,
                              check=True).stdout
    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment(library, device, threads):
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
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
    env["machine"] = machine_description(device.type, env.get("gpu"))
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


# ---- The results page (bench/RESULTS.md) ------------------------------------------------------------

RESULTS_COLUMNS = ["case", "shape", "dtype", "machine", "date", "commit", "baseline", "ours", "ratio"]


def _ms_unit(seconds):
    return f"{seconds * 1e3:.3f} ms" if seconds is not None else "-"


def results_cells(result, env):
    """One row of the results page: baseline and ours are medians; ratio is baseline / ours (above 1: ours
    is faster)."""
    timing = result.get("timing") or {}
    baseline = timing.get("baseline_s", {}).get("median") if result.get("baseline_native") else None
    ours = timing.get("ours_s", {}).get("median")
    return {
        "case": result["case"] + (" (strided)" if result.get("layout") == "strided" else ""),
        "shape": _shape(result["input_shape"]),
        "dtype": result["dtype"],
        "machine": env.get("machine") or env["cpu"],
        "date": env["date"],
        "commit": env.get("commit") or "unknown",
        "baseline": _ms_unit(baseline) if result.get("baseline_native") else "n/a",
        "ours": _ms_unit(ours),
        "ratio": f"{baseline / ours:.2f}x" if baseline and ours else "-",
    }


def floor_notes(results):
    """One line per memory-bound case: our bandwidth against the copy bandwidth of the same run."""
    notes = []
    for result in results:
        if "bandwidth" in result:
            b = result["bandwidth"]
            notes.append(f"{result['case']} {result['dtype']}: {b['bytes_moved'] / 1e6:.1f} MB moved, ours "
                         f"{b['ours_bytes_per_s'] / 1e9:.1f} GB/s, copy {b['copy_bytes_per_s'] / 1e9:.1f} GB/s, "
                         f"ours/floor {b['ours_over_floor']:.2f}")
    return notes


def results_markdown(env, results, command, notes=()):
    """The harness's part of bench/RESULTS.md: how it was measured, the table, then the notes (reference
    calls, copy floors), and what did not pass."""
    lines = [f"Measured by the side-by-side harness: `{command}`.",
             f"Threads: {env['threads']} on both sides. PyTorch {env['torch']} (Python {env['python']}); BLAS: " +
             (", ".join(env["blas"]) or "none loaded") + f"; TokenKernels {env['library_version']}.",
             ("Baseline and ours are medians; ratio is baseline / ours." if any(r.get("timing") for r in results)
              else "Correctness only (`--quick`): nothing was timed."), ""]
    warning = blas_warning(env)
    if warning:
        lines += [warning, ""]
    lines += ["| " + " | ".join(RESULTS_COLUMNS) + " |", "|" + "|".join(" --- " for _ in RESULTS_COLUMNS) + "|"]
    for result in results:
        cells = results_cells(result, env)
        lines.append("| " + " | ".join(cells[c] for c in RESULTS_COLUMNS) + " |")
    extra = list(notes) + floor_notes(results)
    extra += [f"{r['case']} {r['dtype']} {r['layout']}: did not pass the check ({_verdict(r['check'])})"
              for r in results if not r["check"]["passed"]]
    if extra:
        lines.append("")
        lines += [f"- {note}" for note in extra]
    return "\n".join(lines) + "\n"


def _markers(section):
    return f"<!-- harness:{section} begin -->", f"<!-- harness:{section} end -->"


def _section_span(path, section):
    """The page's text and the span [start, stop) of the section's markers' contents, begin marker
    included; raises ValueError (OSError) when the markers (the file) are missing."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", section):
        raise ValueError(f"results section {section!r}: use letters, digits, '_', '.' and '-'")
    begin, end = _markers(section)
    with open(path) as page:
        content = page.read()
    start = content.find(begin)
    stop = content.find(end, start + len(begin)) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise ValueError(f"{path} has no lines '{begin}' ... '{end}' to replace")
    return content, start, stop


def check_results_section(path, section):
    """Before a run: raises ValueError or OSError when write_results(path, ..., section) would fail."""
    if section is not None:
        _section_span(path, section)


def write_results(path, text, section=None):
    """Writes text to path; with section, replaces only what lies between the section's markers in path
    (`<!-- harness:NAME begin -->` and `<!-- harness:NAME end -->`), which must be there."""
    if section is None:
        with open(path, "w") as out:
            out.write(text)
        return
    content, start, stop = _section_span(path, section)
    content = content[:start] + _markers(section)[0] + "\n" + text + content[stop:]
    with open(path, "w") as out:
        out.write(content)
