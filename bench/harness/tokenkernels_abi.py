"""ctypes binding of the TokenKernels C ABI (native/include/tokenkernels/tokenkernels.h).

Only what the harness calls is declared. The structs are checked against the layout the library
reports through tk_struct_layout when it is loaded, so a header change that this file missed fails
loudly instead of passing garbage. PyTorch tensors cross as views of their own memory: data_ptr()
and the element strides of tensor.stride(), never a copy.
"""
import ctypes
import os

import torch

TK_MAX_RANK = 8

TK_STATUS_OK = 0

TK_DEVICE_CPU = 0
TK_DEVICE_CUDA = 1

DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.int32: 3, torch.int64: 4}

TK_POOL_WINDOW_AVG = 0
TK_POOL_WINDOW_MAX = 1
TK_POOL_ADAPTIVE_AVG = 2
TK_POOL_ADAPTIVE_MAX = 3
TK_POOL_BILINEAR = 4

TK_MERGE_WEIGHTED_MEAN = 0
TK_MERGE_MEAN = 1
TK_MERGE_SUM = 2
TK_MERGE_AMAX = 3
TK_MERGE_DROP = 4

TK_MERGE_ORDER_POSITIONAL = 0
TK_MERGE_ORDER_TOME = 1

# The test preset's build output, in the repository that holds this file.
REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_LIBRARY = os.path.join(REPOSITORY_ROOT, "build", "test", "lib", "libtokenkernels.so")
LIBRARY_ENVIRONMENT_VARIABLE = "TOKENKERNELS_NATIVE_LIBRARY"


class TkTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("device_kind", ctypes.c_int32),
        ("device_ordinal", ctypes.c_int32),
        ("rank", ctypes.c_int32),
        ("shape", ctypes.c_int64 * TK_MAX_RANK),
        ("strides", ctypes.c_int64 * TK_MAX_RANK),
    ]


class TkPoolParams(ctypes.Structure):
    _fields_ = [
        ("mode", ctypes.c_int32),
        ("kernel", ctypes.c_int32 * 3),
        ("stride", ctypes.c_int32 * 3),
        ("output_size", ctypes.c_int32 * 3),
    ]


class TkMergeParams(ctypes.Structure):
    _fields_ = [
        ("r", ctypes.c_int32),
        ("use_threshold", ctypes.c_int32),
        ("threshold", ctypes.c_float),
        ("protect_first", ctypes.c_int32),
        ("protect_second", ctypes.c_int32),
        ("mode", ctypes.c_int32),
        ("order", ctypes.c_int32),
    ]


# C name of each bound struct, for the layout check.
BOUND_STRUCTS = {"tk_tensor": TkTensor, "tk_pool_params": TkPoolParams, "tk_merge_params": TkMergeParams}


class TokenKernelsError(RuntimeError):
    """A TokenKernels call returned an error status; the message is the library's own."""


def _declare(library, name, restype, argtypes):
    function = getattr(library, name)
    function.restype = restype
    function.argtypes = argtypes


def _declare_functions(library):
    status = ctypes.c_int32
    p = ctypes.POINTER
    _declare(library, "tk_version_string", ctypes.c_char_p, [])
    _declare(library, "tk_status_name", ctypes.c_char_p, [status])
    _declare(library, "tk_last_error", ctypes.c_char_p, [])
    _declare(library, "tk_struct_layout", status, [ctypes.c_char_p, ctypes.c_char_p, p(ctypes.c_uint64)])
    _declare(library, "tk_set_num_threads", status, [ctypes.c_int32])
    _declare(library, "tk_get_num_threads", ctypes.c_int32, [])
    _declare(library, "tk_cuda_is_built", ctypes.c_int32, [])
    _declare(library, "tk_cuda_device_count", status, [p(ctypes.c_int32)])
    _declare(library, "tk_pool_output_shape", status, [p(TkPoolParams), p(ctypes.c_int64), p(ctypes.c_int64)])
    _declare(library, "tk_pool_workspace_size", status,
             [p(TkPoolParams), p(TkTensor), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_pool", status,
             [p(TkPoolParams), p(TkTensor), p(TkTensor), ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_merge_output_tokens", status,
             [p(TkMergeParams), ctypes.c_int64, p(ctypes.c_int64), p(ctypes.c_int64)])
    _declare(library, "tk_merge_workspace_size", status,
             [p(TkMergeParams), p(TkTensor), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_merge", status,
             [p(TkMergeParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor),
              p(TkTensor), ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p])


def resolve_library_path(cli_path):
    """--lib, else $TOKENKERNELS_NATIVE_LIBRARY, else the test preset's build output."""
    return cli_path or os.environ.get(LIBRARY_ENVIRONMENT_VARIABLE) or DEFAULT_LIBRARY


class Library:
    """The loaded native library, with its functions declared and its struct layout checked."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(
                f"TokenKernels native library not found at {self.path}: build it "
                "(cmake --workflow --preset test) or pass --lib / set " + LIBRARY_ENVIRONMENT_VARIABLE)
        self.native = ctypes.CDLL(self.path)
        _declare_functions(self.native)
        self._check_struct_layout()

    def check(self, status):
        if status != TK_STATUS_OK:
            name = self.native.tk_status_name(status).decode()
            raise TokenKernelsError(f"{name}: {self.native.tk_last_error().decode()}")

    def _layout(self, struct_name, field):
        value = ctypes.c_uint64()
        self.check(self.native.tk_struct_layout(struct_name.encode(), field.encode() if field else None,
                                                ctypes.byref(value)))
        return value.value

    def _check_struct_layout(self):
        for c_name, struct in BOUND_STRUCTS.items():
            expected = {None: ctypes.sizeof(struct)}
            expected.update({field: getattr(struct, field).offset for field, _ in struct._fields_})
            for field, offset in expected.items():
                actual = self._layout(c_name, field)
                if actual != offset:
                    what = f"offsetof({c_name}, {field})" if field else f"sizeof({c_name})"
                    raise TokenKernelsError(f"binding out of date with {self.path}: {what} is {actual} "
                                            f"in the library, {offset} in tokenkernels_abi.py")

    @property
    def version(self):
        return self.native.tk_version_string().decode()

    def set_num_threads(self, threads):
        self.check(self.native.tk_set_num_threads(threads))

    def num_threads(self):
        return self.native.tk_get_num_threads()

    def cuda_device_count(self):
        if not self.native.tk_cuda_is_built():
            return 0
        count = ctypes.c_int32()
        self.check(self.native.tk_cuda_device_count(ctypes.byref(count)))
        return count.value

    def pool_output_shape(self, params, input_shape):
        shape_in = (ctypes.c_int64 * 5)(*input_shape)
        shape_out = (ctypes.c_int64 * 5)()
        self.check(self.native.tk_pool_output_shape(ctypes.byref(params), shape_in, shape_out))
        return tuple(shape_out)

    def prepare_pool(self, params, x, out):
        """A zero-argument call of tk_pool on these tensors, with descriptors, workspace and stream
        settled now so that timing it measures the op, not the argument marshalling."""
        x_view = tensor_view(x)
        out_view = tensor_view(out)
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_pool_workspace_size(ctypes.byref(params), ctypes.byref(x_view),
                                                      ctypes.byref(out_view), ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (ctypes.byref(params), ctypes.byref(x_view), ctypes.byref(out_view),
                     workspace.data_ptr() if workspace_bytes.value else None, workspace_bytes.value,
                     current_stream(x.device))
        pool = self.native.tk_pool
        return PreparedCall(lambda: self.check(pool(*arguments)), (x, out, workspace))

    def merge_output_tokens(self, params, tokens):
        """(effective r, output rows) of tk_merge for N = tokens."""
        effective_r = ctypes.c_int64()
        rows = ctypes.c_int64()
        self.check(self.native.tk_merge_output_tokens(ctypes.byref(params), tokens, ctypes.byref(effective_r),
                                                      ctypes.byref(rows)))
        return effective_r.value, rows.value

    def prepare_merge(self, params, metric, x, out, size=None, out_size=None, source_map=None, merge_count=None):
        """A zero-argument call of tk_merge on these tensors (the optional ones NULL when None), with
        descriptors, workspace and stream settled now, as prepare_pool."""
        views = [tensor_view(t) if t is not None else None for t in (metric, x, size, out, out_size, source_map,
                                                                       merge_count)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_merge_workspace_size(ctypes.byref(params), refs[0], refs[1],
                                                       ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(x.device))
        merge = self.native.tk_merge
        tensors = (metric, x, size, out, out_size, source_map, merge_count, workspace, views, params)
        return PreparedCall(lambda: self.check(merge(*arguments)), tensors)


class PreparedCall:
    """A native call with its arguments marshalled once. It holds the tensors that the descriptors
    point into, so that their memory lives as long as the call can run."""

    def __init__(self, call, tensors):
        self._call = call
        self.tensors = tensors

    def __call__(self):
        self._call()


def tensor_view(tensor):
    """A tk_tensor describing tensor's own memory (shape, element strides, device)."""
    if tensor.dim() > TK_MAX_RANK:
        raise ValueError(f"rank {tensor.dim()} exceeds TK_MAX_RANK = {TK_MAX_RANK}")
    if tensor.dtype not in DTYPE_CODES:
        raise ValueError(f"no TokenKernels dtype for {tensor.dtype}")
    view = TkTensor()
    view.data = tensor.data_ptr()
    view.dtype = DTYPE_CODES[tensor.dtype]
    if tensor.is_cuda:
        view.device_kind = TK_DEVICE_CUDA
        view.device_ordinal = tensor.device.index if tensor.device.index is not None else torch.cuda.current_device()
    else:
        view.device_kind = TK_DEVICE_CPU
        view.device_ordinal = 0
    view.rank = tensor.dim()
    for d, (size, stride) in enumerate(zip(tensor.shape, tensor.stride())):
        view.shape[d] = size
        view.strides[d] = stride
    return view


def current_stream(device):
    """The tk_stream that orders our work with PyTorch's: its current CUDA stream; NULL on the CPU."""
    if device.type == "cuda":
        return ctypes.c_void_p(torch.cuda.current_stream(device).cuda_stream)
    return None


def pool_params(mode, kernel=(0, 0, 0), stride=(0, 0, 0), output_size=(0, 0, 0)):
    params = TkPoolParams()
    params.mode = mode
    params.kernel[:] = kernel
    params.stride[:] = stride
    params.output_size[:] = output_size
    return params


def merge_params(r, mode=TK_MERGE_WEIGHTED_MEAN, order=TK_MERGE_ORDER_POSITIONAL, protect_first=0, protect_second=0,
                 threshold=None):
    """tk_merge_params: fixed r, or threshold mode (r = the cap r_max) when threshold is given."""
    params = TkMergeParams()
    params.r = r
    params.use_threshold = 0 if threshold is None else 1
    params.threshold = 0.0 if threshold is None else threshold
    params.protect_first = protect_first
    params.protect_second = protect_second
    params.mode = mode
    params.order = order
    return params
