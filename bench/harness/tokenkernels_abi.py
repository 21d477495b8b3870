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

TK_REDUCE_MEAN = 0
TK_REDUCE_SUM = 1

TK_DISTANCE_COSINE = 0
TK_DISTANCE_L2 = 1

TK_FIRST_MOST_ISOLATED = 0
TK_FIRST_INDEX = 1
TK_FIRST_SCORE = 2

TK_DIVERSITY_MAX_MIN = 0
TK_DIVERSITY_MAX_SUM = 1

TK_DPP_WEIGHT_RELEVANCE = 0
TK_DPP_WEIGHT_EXP = 1
TK_KMEANS_INIT_PLUS_PLUS = 0
TK_KMEANS_INIT_GIVEN = 1

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


class TkImportanceParams(ctypes.Structure):
    _fields_ = [
        ("query_begin", ctypes.c_int64),
        ("query_end", ctypes.c_int64),
        ("key_begin", ctypes.c_int64),
        ("key_end", ctypes.c_int64),
        ("head_reduce", ctypes.c_int32),
        ("query_reduce", ctypes.c_int32),
        ("scale", ctypes.c_float),
        ("causal", ctypes.c_int32),
    ]


class TkTopkParams(ctypes.Structure):
    _fields_ = [("k", ctypes.c_int32)]


class TkDiversityParams(ctypes.Structure):
    _fields_ = [
        ("k", ctypes.c_int32),
        ("distance", ctypes.c_int32),
        ("first", ctypes.c_int32),
        ("objective", ctypes.c_int32),
    ]


class TkRelevanceParams(ctypes.Structure):
    _fields_ = [("negate", ctypes.c_int32)]


class TkDppParams(ctypes.Structure):
    _fields_ = [
        ("k", ctypes.c_int32),
        ("weighting", ctypes.c_int32),
        ("theta", ctypes.c_float),
    ]


class TkEvsParams(ctypes.Structure):
    _fields_ = [
        ("pruning_rate", ctypes.c_double),
        ("height", ctypes.c_int32),
        ("width", ctypes.c_int32),
    ]


class TkDycokeParams(ctypes.Structure):
    _fields_ = [
        ("merging_ratio", ctypes.c_double),
        ("height", ctypes.c_int32),
        ("width", ctypes.c_int32),
    ]


class TkVidcom2Params(ctypes.Structure):
    _fields_ = [
        ("retention_ratio", ctypes.c_double),
        ("channel_ratio", ctypes.c_double),
        ("temperature", ctypes.c_double),
        ("height", ctypes.c_int32),
        ("width", ctypes.c_int32),
    ]


class TkKmeansParams(ctypes.Structure):
    _fields_ = [
        ("seed", ctypes.c_uint64),
        ("tolerance", ctypes.c_double),
        ("clusters", ctypes.c_int32),
        ("max_iterations", ctypes.c_int32),
        ("init", ctypes.c_int32),
    ]


class TkFramefusionParams(ctypes.Structure):
    _fields_ = [
        ("similarity_threshold", ctypes.c_float),
        ("max_merges", ctypes.c_int32),
    ]


class TkDpcKnnParams(ctypes.Structure):
    _fields_ = [
        ("clusters", ctypes.c_int32),
        ("neighbours", ctypes.c_int32),
    ]


class TkClusterMergeParams(ctypes.Structure):
    _fields_ = [
        ("clusters", ctypes.c_int32),
        ("mode", ctypes.c_int32),
        ("beta", ctypes.c_float),
    ]


class TkClusterAssignParams(ctypes.Structure):
    _fields_ = [("clusters", ctypes.c_int32)]


# DLPack (docs/SPEC.md, "DLPack"): mirrors of dlpack.h's structs, under the header's names. The deleters are
# held as plain pointers (c_void_p); DLPACK_DELETER calls one.
class TkDlpackDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class TkDlpackDtype(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class TkDlpackTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", TkDlpackDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", TkDlpackDtype),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class TkDlpackManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", TkDlpackTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class TkDlpackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class TkDlpackManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("version", TkDlpackVersion),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", TkDlpackTensor),
    ]


# void (*)(DLManagedTensor*): the type of a DLManagedTensor's deleter.
DLPACK_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


# C name of each bound struct, for the layout check.
BOUND_STRUCTS = {"tk_tensor": TkTensor, "tk_pool_params": TkPoolParams, "tk_merge_params": TkMergeParams,
                 "tk_importance_params": TkImportanceParams, "tk_topk_params": TkTopkParams,
                 "tk_diversity_params": TkDiversityParams, "tk_evs_params": TkEvsParams,
                 "tk_dycoke_params": TkDycokeParams, "tk_vidcom2_params": TkVidcom2Params,
                 "tk_framefusion_params": TkFramefusionParams, "tk_dpc_knn_params": TkDpcKnnParams,
                 "tk_cluster_merge_params": TkClusterMergeParams, "tk_cluster_assign_params": TkClusterAssignParams,
                 "tk_relevance_params": TkRelevanceParams, "tk_dpp_params": TkDppParams,
                 "tk_kmeans_params": TkKmeansParams, "tk_dlpack_device": TkDlpackDevice,
                 "tk_dlpack_dtype": TkDlpackDtype, "tk_dlpack_tensor": TkDlpackTensor,
                 "tk_dlpack_managed_tensor": TkDlpackManagedTensor, "tk_dlpack_version": TkDlpackVersion,
                 "tk_dlpack_managed_tensor_versioned": TkDlpackManagedTensorVersioned}


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
    _declare(library, "tk_tensor_from_dlpack_managed", status, [p(TkDlpackManagedTensor), p(TkTensor)])
    _declare(library, "tk_tensor_to_dlpack", status, [p(TkTensor), p(p(TkDlpackManagedTensor))])
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
    _declare(library, "tk_attention_importance", status,
             [p(TkImportanceParams), p(TkTensor), p(TkTensor), ctypes.c_void_p])
    _declare(library, "tk_qk_importance_workspace_size", status,
             [p(TkImportanceParams), p(TkTensor), p(TkTensor), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_qk_importance", status,
             [p(TkImportanceParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p,
              ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_topk_workspace_size", status, [p(TkTopkParams), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_topk", status,
             [p(TkTopkParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p,
              ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_gather", status, [p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p])
    _declare(library, "tk_visionzip_contextual_workspace_size", status,
             [ctypes.c_int32, p(TkTensor), p(TkTensor), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_visionzip_contextual", status,
             [ctypes.c_int32, p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p, ctypes.c_uint64,
              ctypes.c_void_p])
    _declare(library, "tk_diversity_workspace_size", status, [p(TkDiversityParams), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_diversity_select", status,
             [p(TkDiversityParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor),
              p(TkTensor), ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_query_relevance", status,
             [p(TkRelevanceParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p])
    _declare(library, "tk_conditional_dpp_workspace_size", status, [p(TkDppParams), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_conditional_dpp_select", status,
             [p(TkDppParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor),
              ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_kmeans_workspace_size", status, [p(TkKmeansParams), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_kmeans", status,
             [p(TkKmeansParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor),
              p(TkTensor), p(TkTensor), ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_temporal_similarity", status, [p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p])
    _declare(library, "tk_segment_similarity", status, [p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p])
    _declare(library, "tk_evs_retained_tokens", status, [p(TkEvsParams), ctypes.c_int64, p(ctypes.c_int64)])
    _declare(library, "tk_evs_workspace_size", status, [p(TkEvsParams), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_evs", status,
             [p(TkEvsParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p,
              ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_dpc_knn_workspace_size", status, [p(TkDpcKnnParams), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_dpc_knn", status,
             [p(TkDpcKnnParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor),
              p(TkTensor), ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_cluster_merge", status,
             [p(TkClusterMergeParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor),
              ctypes.c_void_p])
    _declare(library, "tk_cluster_assign", status,
             [p(TkClusterAssignParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p])
    _declare(library, "tk_framefusion_workspace_size", status, [p(TkFramefusionParams), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_framefusion_merge", status,
             [p(TkFramefusionParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p,
              ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_dycoke_retained_tokens", status, [p(TkDycokeParams), ctypes.c_int64, p(ctypes.c_int64)])
    _declare(library, "tk_dycoke_workspace_size", status, [p(TkDycokeParams), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_dycoke_ttm", status,
             [p(TkDycokeParams), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p,
              ctypes.c_uint64, ctypes.c_void_p])
    _declare(library, "tk_vidcom2_retained_tokens", status, [p(TkVidcom2Params), ctypes.c_int64, p(ctypes.c_int64)])
    _declare(library, "tk_vidcom2_workspace_size", status, [p(TkVidcom2Params), p(TkTensor), p(ctypes.c_uint64)])
    _declare(library, "tk_vidcom2", status,
             [p(TkVidcom2Params), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), p(TkTensor), ctypes.c_void_p,
              ctypes.c_uint64, ctypes.c_void_p])


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

    def tensor_from_dlpack_managed(self, address):
        """The tk_tensor view of the DLManagedTensor at address (a capsule's pointer); it stays the caller's."""
        view = TkTensor()
        self.check(self.native.tk_tensor_from_dlpack_managed(ctypes.cast(address, ctypes.POINTER(TkDlpackManagedTensor)),
                                                             ctypes.byref(view)))
        return view

    def tensor_to_dlpack(self, view):
        """A new DLManagedTensor, allocated by the library, describing the memory of the tk_tensor view: a
        pointer to it, whose deleter must be called once (by the consumer it is handed to)."""
        managed = ctypes.POINTER(TkDlpackManagedTensor)()
        self.check(self.native.tk_tensor_to_dlpack(ctypes.byref(view), ctypes.byref(managed)))
        return managed

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

    def prepare_attention_importance(self, params, attn, out):
        """A zero-argument call of tk_attention_importance (attn [B, H, Nq, Nk] -> out [B, key_end -
        key_begin] f32), with descriptors and stream settled now, as prepare_pool."""
        views = (tensor_view(attn), tensor_view(out))
        arguments = (ctypes.byref(params), ctypes.byref(views[0]), ctypes.byref(views[1]), current_stream(attn.device))
        importance = self.native.tk_attention_importance
        return PreparedCall(lambda: self.check(importance(*arguments)), (attn, out, views, params))

    def prepare_qk_importance(self, params, q, k, out, lse=None):
        """A zero-argument call of tk_qk_importance (q [B, H, Nq, d], k [B, Hk, Nk, d], the row
        log-sum-exp lse [B, H, Nq] or None -> out [B, key_end - key_begin] f32), with descriptors,
        workspace and stream settled now."""
        views = [tensor_view(t) if t is not None else None for t in (q, k, lse, out)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_qk_importance_workspace_size(ctypes.byref(params), refs[0], refs[1], refs[2],
                                                               ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=q.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(q.device))
        importance = self.native.tk_qk_importance
        return PreparedCall(lambda: self.check(importance(*arguments)), (q, k, lse, out, workspace, views, params))

    def prepare_topk(self, params, scores, indices, lengths=None, item_k=None, ranked=None):
        """A zero-argument call of tk_topk (scores [B, N] -> indices [B, k] i32 in increasing position,
        ranked [B, k] by descending score when given; lengths, item_k [B] i32 or None), with
        descriptors, workspace and stream settled now."""
        views = [tensor_view(t) if t is not None else None for t in (scores, lengths, item_k, indices, ranked)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_topk_workspace_size(ctypes.byref(params), refs[0], ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=scores.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(scores.device))
        topk = self.native.tk_topk
        tensors = (scores, lengths, item_k, indices, ranked, workspace, views, params)
        return PreparedCall(lambda: self.check(topk(*arguments)), tensors)

    def prepare_gather(self, x, indices, out):
        """A zero-argument call of tk_gather (out[b, i] = x[b, indices[b, i]], a zero row for -1)."""
        views = (tensor_view(x), tensor_view(indices), tensor_view(out))
        arguments = (*(ctypes.byref(v) for v in views), current_stream(x.device))
        gather = self.native.tk_gather
        return PreparedCall(lambda: self.check(gather(*arguments)), (x, indices, out, views))

    def prepare_visionzip_contextual(self, contextual, metric, x, kept, out):
        """A zero-argument call of tk_visionzip_contextual (metric [B, N, Cm], x [B, N, C], the kept
        positions kept [B, K] -> out [B, contextual, C]), with descriptors, workspace and stream settled
        now. On the CPU the library validates kept's values in the workspace query too, so kept must
        already hold K distinct positions in [0, N) here."""
        views = (tensor_view(metric), tensor_view(x), tensor_view(kept), tensor_view(out))
        refs = [ctypes.byref(v) for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_visionzip_contextual_workspace_size(contextual, refs[0], refs[1], refs[2],
                                                                      ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (contextual, *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(x.device))
        contextual_tokens = self.native.tk_visionzip_contextual
        return PreparedCall(lambda: self.check(contextual_tokens(*arguments)), (metric, x, kept, out, workspace, views))

    def prepare_diversity(self, params, x, order, sorted_indices=None, lengths=None, item_k=None, first_index=None,
                          first_score=None):
        """A zero-argument call of tk_diversity_select (x [B, N, C] -> order [B, k] i32, the tokens in the
        order chosen, and sorted_indices [B, k] i32, the same ascending, when given; lengths, item_k,
        first_index [B] i32 and first_score [B, N] or None), with descriptors, workspace and stream
        settled now."""
        views = [tensor_view(t) if t is not None else None
                 for t in (x, lengths, item_k, first_index, first_score, order, sorted_indices)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_diversity_workspace_size(ctypes.byref(params), refs[0],
                                                           ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(x.device))
        select = self.native.tk_diversity_select
        tensors = (x, lengths, item_k, first_index, first_score, order, sorted_indices, workspace, views, params)
        return PreparedCall(lambda: self.check(select(*arguments)), tensors)

    def prepare_relevance(self, params, visual, text, relevance, lengths=None, text_lengths=None):
        """A zero-argument call of tk_query_relevance (visual [B, N, C], text [B, T, C] -> relevance [B, N]
        f32; lengths and text_lengths [B] i32 or None)."""
        views = [tensor_view(t) if t is not None else None for t in (visual, text, lengths, text_lengths, relevance)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        arguments = (ctypes.byref(params), *refs, current_stream(visual.device))
        relevance_call = self.native.tk_query_relevance
        tensors = (visual, text, lengths, text_lengths, relevance, views, params)
        return PreparedCall(lambda: self.check(relevance_call(*arguments)), tensors)

    def prepare_conditional_dpp(self, params, x, order, relevance=None, sorted_indices=None, lengths=None,
                                item_k=None):
        """A zero-argument call of tk_conditional_dpp_select (x [B, N, C] and relevance [B, N] f32 or None
        -> order [B, k] i32, the tokens in the order chosen, and sorted_indices [B, k] i32 when given),
        with descriptors and workspace settled now."""
        views = [tensor_view(t) if t is not None else None
                 for t in (x, relevance, lengths, item_k, order, sorted_indices)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_conditional_dpp_workspace_size(ctypes.byref(params), refs[0],
                                                                 ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(x.device))
        select = self.native.tk_conditional_dpp_select
        tensors = (x, relevance, lengths, item_k, order, sorted_indices, workspace, views, params)
        return PreparedCall(lambda: self.check(select(*arguments)), tensors)

    def prepare_kmeans(self, params, x, centres, assignment, lengths=None, item_clusters=None, initial_centres=None,
                       sizes=None, iterations=None):
        """A zero-argument call of tk_kmeans (x [B, N, C] -> centres [B, K, C] f32 and assignment [B, N] i32;
        lengths, item_clusters [B] i32, initial_centres [B, K, C] f32 (TK_KMEANS_INIT_GIVEN), sizes [B, K]
        f32 and iterations [B] i32 or None), with descriptors, workspace and stream settled now."""
        views = [tensor_view(t) if t is not None else None
                 for t in (x, lengths, item_clusters, initial_centres, centres, assignment, sizes, iterations)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_kmeans_workspace_size(ctypes.byref(params), refs[0], ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(x.device))
        kmeans = self.native.tk_kmeans
        tensors = (x, lengths, item_clusters, initial_centres, centres, assignment, sizes, iterations, workspace, views,
                   params)
        return PreparedCall(lambda: self.check(kmeans(*arguments)), tensors)

    def evs_retained_tokens(self, params, frames):
        return self._retained_tokens(self.native.tk_evs_retained_tokens, params, frames)

    def dycoke_retained_tokens(self, params, frames):
        return self._retained_tokens(self.native.tk_dycoke_retained_tokens, params, frames)

    def prepare_evs(self, params, x, out=None, indices=None, positions=None, mask=None):
        """A zero-argument call of tk_evs (x [B, T, P, C] -> the kept tokens out [B, K, C], their flat
        positions indices [B, K] i32, grid coordinates positions [B, K, 3] i32 and mask [B, T * P] i32,
        each optional), with descriptors, workspace and stream settled now."""
        return self._prepare_video_method(self.native.tk_evs_workspace_size, self.native.tk_evs, params, x,
                                          (out, indices, positions, mask))

    def prepare_dycoke(self, params, x, out=None, indices=None, positions=None, mask=None):
        """tk_dycoke_ttm as prepare_evs prepares tk_evs."""
        return self._prepare_video_method(self.native.tk_dycoke_workspace_size, self.native.tk_dycoke_ttm, params, x,
                                          (out, indices, positions, mask))

    def vidcom2_retained_tokens(self, params, frames):
        return self._retained_tokens(self.native.tk_vidcom2_retained_tokens, params, frames)

    def prepare_vidcom2(self, params, x, out=None, indices=None, positions=None, mask=None):
        """tk_vidcom2 as prepare_evs prepares tk_evs."""
        return self._prepare_video_method(self.native.tk_vidcom2_workspace_size, self.native.tk_vidcom2, params, x,
                                          (out, indices, positions, mask))

    def prepare_framefusion(self, params, x, out, merge_count, out_size=None, source_map=None):
        """A zero-argument call of tk_framefusion_merge (x [B, T, P, C] -> out [B, T * P, C], the remaining
        tokens then zero rows, merge_count [B] i32; out_size and source_map [B, T * P] when given)."""
        views = [tensor_view(t) if t is not None else None for t in (x, out, out_size, source_map, merge_count)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_framefusion_workspace_size(ctypes.byref(params), refs[0], ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(x.device))
        merge = self.native.tk_framefusion_merge
        return PreparedCall(lambda: self.check(merge(*arguments)), (x, out, out_size, source_map, merge_count, workspace, views, params))

    def prepare_dpc_knn(self, params, x, centres, assignment, lengths=None, item_clusters=None, density=None,
                        delta=None):
        """A zero-argument call of tk_dpc_knn (x [B, N, C] -> centres [B, K] i32, assignment [B, N] i32;
        lengths and item_clusters [B] i32, density and delta [B, N] f32, or None), with descriptors,
        workspace and stream settled now."""
        views = [tensor_view(t) if t is not None else None
                 for t in (x, lengths, item_clusters, centres, assignment, density, delta)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(self.native.tk_dpc_knn_workspace_size(ctypes.byref(params), refs[0], ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(x.device))
        cluster = self.native.tk_dpc_knn
        tensors = (x, lengths, item_clusters, centres, assignment, density, delta, workspace, views, params)
        return PreparedCall(lambda: self.check(cluster(*arguments)), tensors)

    def prepare_segment_similarity(self, x, segment_lengths, out):
        """A zero-argument call of tk_segment_similarity (x [T, N, C], segment_lengths [S] i32 -> out [S, N] f32)."""
        views = [tensor_view(t) for t in (x, segment_lengths, out)]
        arguments = (*(ctypes.byref(v) for v in views), current_stream(x.device))
        similarity = self.native.tk_segment_similarity
        return PreparedCall(lambda: self.check(similarity(*arguments)), (x, segment_lengths, out, views))

    def prepare_cluster_merge(self, params, x, assignment, out, out_size=None, sizes=None, centres=None):
        """A zero-argument call of tk_cluster_merge (x [B, N, C] and assignment [B, N] i32 -> out [B, K, C],
        out_size [B, K] f32 when given; sizes [B, N] f32 and centres [B, K] i32 or None)."""
        views = [tensor_view(t) if t is not None else None for t in (x, assignment, sizes, centres, out, out_size)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        arguments = (ctypes.byref(params), *refs, current_stream(x.device))
        merge = self.native.tk_cluster_merge
        return PreparedCall(lambda: self.check(merge(*arguments)), (x, assignment, sizes, centres, out, out_size, views, params))

    def prepare_cluster_assign(self, params, x, centres, assignment, lengths=None):
        """A zero-argument call of tk_cluster_assign (x [B, N, C], centres [B, K] i32 and lengths [B] i32 or
        None -> assignment [B, N] i32)."""
        views = [tensor_view(t) if t is not None else None for t in (x, lengths, centres, assignment)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        arguments = (ctypes.byref(params), *refs, current_stream(x.device))
        assign = self.native.tk_cluster_assign
        return PreparedCall(lambda: self.check(assign(*arguments)), (x, lengths, centres, assignment, views, params))

    def _retained_tokens(self, query, params, frames):
        retained = ctypes.c_int64()
        self.check(query(ctypes.byref(params), frames, ctypes.byref(retained)))
        return retained.value

    def _prepare_video_method(self, workspace_query, method, params, x, outputs):
        views = [tensor_view(t) if t is not None else None for t in (x, *outputs)]
        refs = [ctypes.byref(v) if v is not None else None for v in views]
        workspace_bytes = ctypes.c_uint64()
        self.check(workspace_query(ctypes.byref(params), refs[0], ctypes.byref(workspace_bytes)))
        workspace = torch.empty(workspace_bytes.value, dtype=torch.uint8, device=x.device)
        arguments = (ctypes.byref(params), *refs, workspace.data_ptr() if workspace_bytes.value else None,
                     workspace_bytes.value, current_stream(x.device))
        return PreparedCall(lambda: self.check(method(*arguments)), (x, outputs, workspace, views, params))


class PreparedCall:
    """A native call with its arguments marshalled once. It holds the tensors that the descriptors
    point into, so that their memory lives as long as the call can run."""

    def __init__(self, call, tensors):
        self._call = call
        self.tensors = tensors

    def __call__(self):
        self._call()


def chained(*calls):
    """One zero-argument call that runs the given prepared calls in order: a pipeline of ops."""
    def run():
        for call in calls:
            call()
    return PreparedCall(run, calls)


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


def importance_params(query_begin, query_end, key_begin, key_end, head_reduce=TK_REDUCE_MEAN,
                      query_reduce=TK_REDUCE_MEAN, scale=0.0, causal=False):
    """tk_importance_params: the query and key ranges, the two reductions, and (tk_qk_importance only)
    the softmax scale and the causal mask."""
    params = TkImportanceParams()
    params.query_begin = query_begin
    params.query_end = query_end
    params.key_begin = key_begin
    params.key_end = key_end
    params.head_reduce = head_reduce
    params.query_reduce = query_reduce
    params.scale = scale
    params.causal = 1 if causal else 0
    return params


def topk_params(k):
    params = TkTopkParams()
    params.k = k
    return params


def diversity_params(k, distance=TK_DISTANCE_COSINE, first=TK_FIRST_MOST_ISOLATED, objective=TK_DIVERSITY_MAX_MIN):
    """tk_diversity_params: k tokens, the distance, the first-center policy and the objective
    (DivPrune's defaults: cosine, most isolated, max-min)."""
    params = TkDiversityParams()
    params.k = k
    params.distance = distance
    params.first = first
    params.objective = objective
    return params


TK_CLUSTER_MERGE_MEAN = 0
TK_CLUSTER_MERGE_SIZE_WEIGHTED = 1
TK_CLUSTER_MERGE_CENTRE_BLEND = 2
TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND = 3


def cluster_assign_params(clusters):
    """tk_cluster_assign_params: K centre columns per item."""
    params = TkClusterAssignParams()
    params.clusters = clusters
    return params


def dpc_knn_params(clusters, neighbours=5):
    """tk_dpc_knn_params: K centres, the k of the kNN density (LightCompress's default 5)."""
    params = TkDpcKnnParams()
    params.clusters = clusters
    params.neighbours = neighbours
    return params


def cluster_merge_params(clusters, mode=TK_CLUSTER_MERGE_MEAN, beta=0.0):
    """tk_cluster_merge_params: K rows per item, the mode, and the centre's weight of the blend."""
    params = TkClusterMergeParams()
    params.clusters = clusters
    params.mode = mode
    params.beta = beta
    return params


def relevance_params(negate):
    """tk_relevance_params: negate the mean cosine (CLIP-style towers, as CDPruner's LLaVA code)."""
    params = TkRelevanceParams()
    params.negate = 1 if negate else 0
    return params


def dpp_params(k, weighting=None, theta=0.5):
    """tk_dpp_params: k tokens; the weight w = r (TK_DPP_WEIGHT_RELEVANCE, CDPruner's released code, the
    default) or exp(theta / (2 (1 - theta)) r) (TK_DPP_WEIGHT_EXP)."""
    params = TkDppParams()
    params.k = k
    params.weighting = TK_DPP_WEIGHT_RELEVANCE if weighting is None else weighting
    params.theta = theta
    return params


def kmeans_params(clusters, max_iterations=300, tolerance=1e-4, init=TK_KMEANS_INIT_GIVEN, seed=0):
    """tk_kmeans_params: K clusters, sklearn's max_iter and tol (its defaults), the initialisation
    (given centres, or k-means++ on the seed's stream)."""
    params = TkKmeansParams()
    params.seed = seed
    params.tolerance = tolerance
    params.clusters = clusters
    params.max_iterations = max_iterations
    params.init = init
    return params


def evs_params(pruning_rate, height, width):
    params = TkEvsParams()
    params.pruning_rate = pruning_rate
    params.height = height
    params.width = width
    return params


def dycoke_params(merging_ratio, height, width):
    params = TkDycokeParams()
    params.merging_ratio = merging_ratio
    params.height = height
    params.width = width
    return params


def vidcom2_params(retention_ratio, height, width, channel_ratio=0.5, temperature=0.01):
    params = TkVidcom2Params()
    params.retention_ratio = retention_ratio
    params.channel_ratio = channel_ratio
    params.temperature = temperature
    params.height = height
    params.width = width
    return params


def framefusion_params(similarity_threshold, max_merges=-1):
    params = TkFramefusionParams()
    params.similarity_threshold = similarity_threshold
    params.max_merges = max_merges
    return params
