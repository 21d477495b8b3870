// Checks on tk_tensor descriptors, shared by every op's boundary validation. Each check throws
// tk::Error(TK_STATUS_INVALID_ARGUMENT) with a message naming the argument.
#pragma once

#include <cstdint>
#include <string>

#include "tokenkernels/tokenkernels.h"

namespace tk {

std::string dtype_name(tk_dtype dtype);
std::string device_name(const tk_tensor& t);
std::string shape_string(const tk_tensor& t);

// Non-null descriptor with a known dtype and device, rank in [1, TK_MAX_RANK], non-negative sizes,
// and, unless the tensor is empty, a non-null aligned data pointer and strides under which every
// element's byte offset from data fits in ptrdiff_t without wrapping the address space; for CUDA, a
// device that exists and a pointer that device can address.
const tk_tensor& require_tensor(const tk_tensor* t, const char* name);
// Everything require_tensor checks of a descriptor but the CUDA device itself (that it exists, runs
// this library's code and can address data): for descriptors translated to or from another format
// (DLPack), whose device the ops check when the tensor is passed to one.
void require_tensor_layout(const tk_tensor& t, const char* name);
void require_rank(const tk_tensor& t, const char* name, int32_t rank, const char* layout);
void require_float_dtype(const tk_tensor& t, const char* name);
void require_same_dtype(const tk_tensor& t, const char* name, const tk_tensor& ref, const char* ref_name);
void require_same_device(const tk_tensor& t, const char* name, const tk_tensor& ref, const char* ref_name);
// Every dimension of size > 1 has a positive stride, and every element offset fits in int64.
void require_positive_strides(const tk_tensor& t, const char* name);
// require_positive_strides, and the last dimension has stride 1.
void require_channels_contiguous(const tk_tensor& t, const char* name);
// Shape equal to `shape` (rank entries), naming the first differing dimension and what it means.
void require_shape(const tk_tensor& t, const char* name, int32_t rank, const int64_t* shape, const char* layout);
// No two elements of t share memory (it is written to).
void require_non_self_overlapping(const tk_tensor& t, const char* name);
// The bytes [begin, end) from a tensor's lowest to its highest element; begin == end when it is empty.
struct ByteSpan {
    uintptr_t begin;
    uintptr_t end;
};
// t must have passed require_tensor (its span is then free of overflow).
ByteSpan byte_span(const tk_tensor& t);

// The memory spans of an output and an input (or of a workspace and a tensor) do not intersect.
void require_disjoint(const tk_tensor& out, const char* out_name, const tk_tensor& in, const char* in_name);
void require_disjoint(const ByteSpan& written, const char* written_name, const ByteSpan& other, const char* other_name);

int64_t numel(const tk_tensor& t);

// What a backend is given of a validated tensor. An empty CPU tensor's data may be NULL and its
// strides anything, yet a backend forms row pointers from them (rows of zero channels, say) before
// finding nothing to read: it gets a non-null base and zero strides, so that arithmetic is defined.
tk_tensor backend_view(const tk_tensor& t);

}  // namespace tk
