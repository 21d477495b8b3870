"""Correctness comparison and timing, the same for every case.

Timing interleaves the contenders (baseline, ours, copy) within each repetition, so that a change in
machine load during a run shifts them alike, and takes the median. On the CPU each contender's timed
call follows a pause and then an untimed call of its own: the pause lets the threads the contender
before left spinning go idle (OpenBLAS waits up to 2^28 cycles, about 0.1 s, after each BLAS call;
OpenMP and our pool spin too), which would otherwise run beside the next contender (ours always came
straight after the baseline); the untimed call wakes the idle cores (a VM's halted vCPUs are slow for
the first milliseconds), so every contender is timed in its own steady state. On CUDA the samples are bracketed by events recorded on the current
stream, the stream both sides enqueue on.
"""
import math
import os
import statistics
import time

import torch

# Outputs are compared with the baseline run on float32 inputs; both sides compute in float32, so
# they may differ by float32 rounding of the method's intermediate values (bilinear source
# coordinates, sums in another order). That error scales with the inputs, not with the result, which
# can cancel to near zero: allow this fraction of the result's magnitude plus the largest input's.
F32_RELATIVE_TOLERANCE = 1e-5
# float16 / bfloat16 results are rounded once from float32: allow this many units in the last place
# of the output dtype on top.
HALF_ULP_TOLERANCE = 2
# The CPU's pause before each timed call: longer than OpenBLAS's default THREAD_TIMEOUT spin.
CPU_SETTLE_SECONDS = 0.25


def compare(values, reference, input_scale):
    """Elementwise check of values (float32, float16 or bfloat16) against the float32 reference, with
    the tolerance of values' dtype. NaN anywhere fails: the inputs are finite, and our output was
    poisoned with NaN before the op ran."""
    values64 = values.double()
    reference = reference.double()
    error = (values64 - reference).abs()
    allowed = F32_RELATIVE_TOLERANCE * (reference.abs() + input_scale)
    if values.dtype != torch.float32:
        allowed = allowed + HALF_ULP_TOLERANCE * ulp(reference.float(), values.dtype).double()
    finite = torch.isfinite(values64) & torch.isfinite(reference)
    bad = ~finite | (error > allowed)
    error = torch.where(finite, error, torch.full_like(error, math.inf))
    return {
        "passed": not bool(bad.any()),
        "mismatches": int(bad.sum()),
        "elements": reference.numel(),
        "max_abs_error": float(error.max()) if error.numel() else 0.0,
        # Worst error as a fraction of what is allowed at that element: <= 1 passes.
        "worst_error_over_tolerance": float((error / allowed).max()) if error.numel() else 0.0,
    }


def ulp(values, dtype):
    """Spacing of dtype's representable numbers at each of values (a float32 tensor)."""
    info = torch.finfo(dtype)
    magnitude = values.abs().clamp_min(info.tiny)
    _, exponent = torch.frexp(magnitude)  # magnitude = m * 2**exponent, m in [0.5, 1)
    return info.eps * torch.pow(2.0, (exponent - 1).float())


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# On CUDA each sample times this many back-to-back calls between two events, so that the host's
# launch overhead (Python, ctypes, PyTorch dispatch) overlaps the device work instead of being counted
# as device time, as it overlaps in a model that keeps the GPU busy.
CUDA_CALLS_PER_SAMPLE = 10


def time_interleaved(contenders, device, warmup, repeats):
    """contenders: {name: [call, ...]}, one zero-argument call per input set, cycled through so that
    repeated runs do not all hit one cached buffer. Returns {name: [seconds per call, one per sample]}."""
    names = list(contenders)
    for i in range(warmup):
        for name in names:
            calls = contenders[name]
            calls[i % len(calls)]()
    synchronize(device)
    if device.type == "cuda":
        events = {name: [] for name in names}
        for i in range(repeats):
            for name in names:
                calls = contenders[name]
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                for j in range(CUDA_CALLS_PER_SAMPLE):
                    calls[(i * CUDA_CALLS_PER_SAMPLE + j) % len(calls)]()
                end.record()
                events[name].append((start, end))
        torch.cuda.synchronize(device)
        return {name: [start.elapsed_time(end) / 1e3 / CUDA_CALLS_PER_SAMPLE for start, end in pairs]
                for name, pairs in events.items()}
    seconds = {name: [] for name in names}
    for i in range(repeats):
        for name in names:
            calls = contenders[name]
            time.sleep(CPU_SETTLE_SECONDS)
            calls[(i - 1) % len(calls)]()  # untimed, on another input set: wakes the cores it runs on
            begin = time.perf_counter()
            calls[i % len(calls)]()
            seconds[name].append(time.perf_counter() - begin)
    return seconds


def summarize(seconds):
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds), "runs": len(seconds)}


def cache_bytes(device):
    """The last-level cache that repeated runs over one buffer could be served from."""
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return getattr(properties, "L2_cache_size", 0) or DEFAULT_CACHE_BYTES
    return cpu_last_level_cache_bytes() or DEFAULT_CACHE_BYTES


# Assumed when the cache size cannot be read.
DEFAULT_CACHE_BYTES = 64 << 20


def cpu_last_level_cache_bytes(root="/sys/devices/system/cpu/cpu0/cache"):
    """Largest cache of CPU 0 as sysfs reports it ("266240K"), or 0 where it does not."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    largest = 0
    try:
        for index in (name for name in os.listdir(root) if name.startswith("index")):
            with open(os.path.join(root, index, "size")) as size_file:
                size = size_file.read().strip()
            if size:
                largest = max(largest, int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size))
    except (OSError, ValueError):
        return 0
    return largest


def input_set_count(input_bytes, device, limit=8):
    """Input sets to rotate among so that together they are at least twice the last-level cache."""
    return max(1, min(limit, math.ceil(2 * cache_bytes(device) / max(1, input_bytes))))
