// Argument checks shared by the ABI entry points of several op families (on top of core/tensor.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ops/strided_tensor.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

inline std::string null_text() { return "NULL"; }

// A message part that prints v.
inline auto number(int64_t v) {
    return [v] { return std::to_string(v); };
}

// Tensors an output must not overlap, with their argument names; entries may be NULL (absent).
using NamedTensors = std::vector<std::pair<const tk_tensor*, const char*>>;

// An output of exactly `shape` and `dtype` on device_of's device (named device_of_name), with
// positive strides, written without overlapping itself or any of `inputs`.
const tk_tensor& require_output(const tk_tensor* ptr, const char* name, int32_t rank, const int64_t* shape,
                                const char* layout, tk_dtype dtype, const tk_tensor& device_of,
                                const char* device_of_name, const NamedTensors& inputs);

// Element (i) or (i, j) of a host tensor of dtype i32 or i64 (rank 1 or 2).
int64_t host_index(const tk_tensor& t, int64_t i, int64_t j = 0);

// The backend's view of a validated tensor (its first four strides).
StridedTensor strided(const tk_tensor& t);

void require_index_dtype(const tk_tensor& t, const char* name);  // i32 or i64
// Token counts must fit the i32 indices the ops write.
void require_token_count(int64_t tokens, const char* argument);
// t.shape[0] == batch, the B of ref_name.
void require_batch(const tk_tensor& t, const char* name, int64_t batch, const char* ref_name);
// t.shape[d] == expected, described as `what`.
void require_dim(const tk_tensor& t, const char* name, int d, int64_t expected, const char* what);
// A float tensor of the given rank with a contiguous last dimension.
const tk_tensor& require_features(const tk_tensor* ptr, const char* name, int32_t rank, const char* layout);
// An optional per-item [B] i32 tensor (lengths, item_k) on ref's device (B of ref); host values must
// lie in [0, limit] (limit_text says what limit is). Device values cannot be read without a sync.
void require_per_item(const tk_tensor* ptr, const char* name, const tk_tensor& ref, const char* ref_name, int64_t limit,
                      const char* limit_text);

// A validated workspace for an op that needs `needed` bytes (query names the size query to call):
// NULL with 0 bytes (the op allocates, or needs none), or memory on device_of's device of at least
// `needed` bytes whose workspace_bytes overlap none of `tensors` (every tensor of the call).
void require_workspace(const void* workspace, uint64_t workspace_bytes, uint64_t needed, const tk_tensor& device_of,
                       const char* query, const NamedTensors& tensors);

}  // namespace tk
