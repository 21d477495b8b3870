"""DLPack round trips between PyTorch and TokenKernels (docs/SPEC.md, "DLPack"), checked by --quick runs.

torch -> tk: torch.utils.dlpack.to_dlpack(t) gives a "dltensor" capsule holding a DLManagedTensor*; its
address (PyCapsule_GetPointer) goes to tk_tensor_from_dlpack_managed. The view must describe t exactly
(data_ptr, dtype, device, shape, element strides; a dimension of size 1 with the compact row-major
stride, whatever PyTorch wrote there). Then tk_gather runs with x, indices and out all taken through
DLPack (out a slice of a larger torch buffer), and must equal torch's gather and leave the rest of the
buffer alone.

tk -> torch: tk_gather writes into memory described by a tk_tensor; tk_tensor_to_dlpack describes that
memory as a library-allocated DLManagedTensor, which goes to torch.utils.dlpack.from_dlpack in a
"dltensor" capsule. The torch tensor must be that memory (same data_ptr, shape and strides, the gather's
values, a write on either side seen on the other), and the library's deleter must run exactly once, when
torch frees the tensor (the deleter is wrapped in a counting one that calls it).

Every TokenKernels dtype (f32, f16, bf16, i32, i64: tk_gather takes each), contiguous, transposed, sliced
and size-1 layouts, on the harness's device.
"""
import ctypes
import fnmatch
import gc
from dataclasses import dataclass
from typing import Callable

import torch
import torch.utils.dlpack

import tokenkernels_abi as tk

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "i32": torch.int32, "i64": torch.int64}
# DLPack's (code, bits) of each: kDLFloat 2, kDLBfloat 4, kDLInt 0.
DLPACK_DTYPES = {torch.float32: (2, 32), torch.float16: (2, 16), torch.bfloat16: (4, 16), torch.int32: (0, 32),
                 torch.int64: (0, 64)}

B, N, C, K = 2, 7, 5, 4

_CAPSULE_NAME = b"dltensor"  # kept alive here: a capsule holds the pointer to its name
_capsule_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get_pointer.restype = ctypes.c_void_p
_capsule_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


@dataclass(frozen=True)
class RoundTrip:
    name: str
    method: str
    # run(library, device, dtype) -> (problems: list of str, elements checked, shape)
    run: Callable


def random_values(shape, dtype, device):
    """Distinct-looking non-zero values of dtype (integers for the integer dtypes)."""
    if dtype.is_floating_point:
        return (torch.randn(shape, device=device) + 3.0).to(dtype)
    return torch.randint(1, 1000, shape, device=device, dtype=dtype)


def x_layout(layout, dtype, device):
    """x [B, N, C] in the given layout, as a view of a torch buffer."""
    if layout == "contiguous":
        return random_values((B, N, C), dtype, device)
    if layout == "transposed":  # token-major storage: strides (C, B*C, 1)
        return random_values((N, B, C), dtype, device).transpose(0, 1)
    if layout == "sliced":  # a token and channel slice of a wider buffer, not at its start
        return random_values((B, N + 3, C + 4), dtype, device)[:, 2:2 + N, 1:1 + C]
    if layout == "size1":  # B = 1 and C = 1, with strides there that a packed tensor would not have
        return random_values((3 * N + 2,), dtype, device).as_strided((1, N, 1), (5, 3, 7), 1)
    raise ValueError(layout)


def indices_for(x, index_dtype, transposed):
    """indices [B, K] into x's tokens with a -1 (a zero row) in the last item, i32 or i64."""
    batch, tokens = x.shape[0], x.shape[1]
    rows = [torch.randperm(tokens)[:K] if tokens >= K else torch.randint(0, tokens, (K,)) for _ in range(batch)]
    indices = torch.stack(rows).to(index_dtype)
    indices[-1, -1] = -1
    if transposed:
        indices = indices.t().contiguous().t()  # strides (1, B)
    return indices.to(x.device)


def gather_reference(x, indices):
    safe = indices.long().clamp(min=0)
    reference = torch.gather(x, 1, safe[..., None].expand(-1, -1, x.shape[2])).clone()
    reference[indices < 0] = 0
    return reference


def expected_strides(tensor):
    """The strides a TokenKernels view of tensor has: torch's, with a size-1 dimension's replaced by the
    compact row-major one (the product of the later sizes)."""
    strides = []
    for d, (size, stride) in enumerate(zip(tensor.shape, tensor.stride())):
        compact = 1
        for later in tensor.shape[d + 1:]:
            compact *= max(later, 1)
        strides.append(compact if size == 1 else stride)
    return strides


def describe_problems(view, tensor, what):
    """Where the tk_tensor view differs from what tensor's DLPack capsule must give."""
    problems = []
    device_kind = tk.TK_DEVICE_CUDA if tensor.is_cuda else tk.TK_DEVICE_CPU
    ordinal = tensor.device.index if tensor.is_cuda else 0
    fields = {
        "data": (view.data or 0, tensor.data_ptr()),
        "dtype": (view.dtype, tk.DTYPE_CODES[tensor.dtype]),
        "device": ((view.device_kind, view.device_ordinal), (device_kind, ordinal)),
        "shape": (list(view.shape[:view.rank]), list(tensor.shape)),
        "strides": (list(view.strides[:view.rank]), expected_strides(tensor)),
    }
    for field, (got, expected) in fields.items():
        if got != expected:
            problems.append(f"{what}.{field}: view has {got}, expected {expected}")
    return problems


def view_through_dlpack(library, tensor):
    """(capsule, view): torch's DLPack capsule of tensor (which keeps its DLManagedTensor alive) and the
    TokenKernels view of it."""
    capsule = torch.utils.dlpack.to_dlpack(tensor)
    address = _capsule_get_pointer(capsule, _CAPSULE_NAME)
    return capsule, library.tensor_from_dlpack_managed(address)


def torch_to_tk(layout, index_dtype):
    def run(library, device, dtype):
        x = x_layout(layout, dtype, device)
        indices = indices_for(x, index_dtype, transposed=layout != "contiguous")
        buffer = torch.full((x.shape[0], K + 2, x.shape[2] + 3), 7, dtype=dtype, device=device)
        out = buffer[:, 1:1 + K, 2:2 + x.shape[2]]
        problems = []
        capsules = []
        views = []
        for name, tensor in (("x", x), ("indices", indices), ("out", out)):
            capsule, view = view_through_dlpack(library, tensor)
            capsules.append(capsule)
            views.append(view)
            problems += describe_problems(view, tensor, name)
        if not problems:
            library.check(library.native.tk_gather(*(ctypes.byref(v) for v in views), tk.current_stream(device)))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            reference = gather_reference(x, indices)
            if not torch.equal(out, reference):
                problems.append(f"gather through DLPack views: {int((out != reference).sum())} of {out.numel()} "
                                "elements differ from torch's")
            untouched = buffer.clone()
            untouched[:, 1:1 + K, 2:2 + x.shape[2]] = 7
            if not torch.equal(untouched, torch.full_like(buffer, 7)):
                problems.append("gather wrote outside out's slice of its buffer")
        del views, capsules  # the capsules call torch's deleters
        return problems, out.numel(), tuple(x.shape)
    return run


def tk_to_torch(layout):
    def run(library, device, dtype):
        x = x_layout("contiguous", dtype, device)
        indices = indices_for(x, torch.int32, transposed=False)
        # The memory the tk_tensor describes: torch-allocated, as any caller's memory would be, and
        # strided unless contiguous.
        if layout == "contiguous":
            owner = torch.zeros((B, K, C), dtype=dtype, device=device)
            out = owner
        elif layout == "sliced":
            owner = torch.zeros((B, K + 3, C + 2), dtype=dtype, device=device)
            out = owner[:, 3:, 1:1 + C]
        else:  # size1: one item, so dimension 0 has size 1 and a stride no packed tensor has
            owner = torch.zeros((K, 3, C), dtype=dtype, device=device)
            out = owner[:, 1:2, :].transpose(0, 1)
            x, indices = x[:1], indices[:1]
        x_view, indices_view, out_view = tk.tensor_view(x), tk.tensor_view(indices), tk.tensor_view(out)
        library.check(library.native.tk_gather(ctypes.byref(x_view), ctypes.byref(indices_view),
                                                ctypes.byref(out_view), tk.current_stream(device)))

        managed = library.tensor_to_dlpack(out_view)
        deleter_calls = []
        library_deleter = tk.DLPACK_DELETER(managed.contents.deleter)

        def counting_deleter(address):
            deleter_calls.append(address)
            library_deleter(address)

        counting = tk.DLPACK_DELETER(counting_deleter)
        managed.contents.deleter = ctypes.cast(counting, ctypes.c_void_p).value
        address = ctypes.cast(managed, ctypes.c_void_p).value
        problems = []
        dl = managed.contents.dl_tensor
        if (dl.dtype.code, dl.dtype.bits, dl.dtype.lanes) != DLPACK_DTYPES[dtype] + (1,):
            problems.append(f"exported dtype (code {dl.dtype.code}, {dl.dtype.bits} bits, {dl.dtype.lanes} lanes)")
        try:
            shared = torch.utils.dlpack.from_dlpack(_capsule_new(address, _CAPSULE_NAME, None))
        except Exception:
            counting_deleter(address)  # torch did not take it: the library's struct is still ours to free
            raise
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        expected_layout = (out.data_ptr(), tuple(out.shape), tuple(out.stride()), out.dtype, out.device)
        got_layout = (shared.data_ptr(), tuple(shared.shape), tuple(shared.stride()), shared.dtype, shared.device)
        if got_layout != expected_layout:
            problems.append(f"from_dlpack gave {got_layout}, expected {expected_layout}")
        reference = gather_reference(x, indices)
        if not torch.equal(shared, reference):
            problems.append("from_dlpack's tensor does not hold what tk_gather wrote")
        shared[0, 0, 0] = 5
        if out[0, 0, 0].item() != 5:
            problems.append("a write through torch's tensor is not seen in the tk_tensor's memory")
        out[-1, -1, -1] = 9
        if shared[-1, -1, -1].item() != 9:
            problems.append("a write to the tk_tensor's memory is not seen through torch's tensor")
        if deleter_calls:
            problems.append(f"the deleter ran {len(deleter_calls)} times while torch's tensor was alive")
        del shared
        gc.collect()
        if deleter_calls != [address]:
            problems.append(f"the deleter ran {len(deleter_calls)} times after torch freed its tensor, expected once")
        return problems, out.numel(), tuple(out.shape)
    return run


ROUND_TRIPS = (
    [RoundTrip(f"dlpack_torch_to_tk_{layout}", f"torch.utils.dlpack.to_dlpack -> tk_tensor, tk_gather ({index} indices)",
               torch_to_tk(layout, index_dtype))
     for layout, index, index_dtype in (("contiguous", "i64", torch.int64), ("transposed", "i32", torch.int32),
                                        ("sliced", "i64", torch.int64), ("size1", "i32", torch.int32))]
    + [RoundTrip(f"dlpack_tk_to_torch_{layout}", "tk_tensor_to_dlpack -> torch.utils.dlpack.from_dlpack",
                 tk_to_torch(layout))
       for layout in ("contiguous", "sliced", "size1")])


def selected(patterns):
    return [r for r in ROUND_TRIPS if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)]


def run(round_trip, library, device, dtype_name):
    """One round trip at one dtype, as a result row of the harness: passed when no problem was found, the
    problems listed under "problems"."""
    problems, elements, shape = round_trip.run(library, device, DTYPES[dtype_name])
    return _result(round_trip, device, dtype_name, problems, elements, shape)


def failed(round_trip, device, dtype_name, error):
    """The result row of a round trip that raised error (a TokenKernels refusal, a PyTorch error)."""
    return _result(round_trip, device, dtype_name, [error], 0, ())


def _result(round_trip, device, dtype_name, problems, elements, shape):
    return {
        "case": round_trip.name,
        "method": round_trip.method,
        "input_shape": list(shape),
        "dtype": dtype_name,
        "device": str(device),
        "layout": round_trip.name.rsplit("_", 1)[1],
        "baseline_native": False,
        "baseline_check": None,
        "problems": problems,
        "check": {"passed": not problems, "mismatches": len(problems), "elements": elements,
                  "max_abs_error": 0.0 if not problems else float("inf"),
                  "worst_error_over_tolerance": 0.0 if not problems else float("inf")},
    }
