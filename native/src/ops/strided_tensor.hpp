// The view of a tensor that a validated plan hands to a backend.
#pragma once

#include <cstdint>

#include "tokenkernels/tokenkernels.h"

namespace tk {

// A tensor of up to four dimensions: data, dtype and the strides (in elements) of each dimension in
// the order the op names them. The last dimension of feature tensors is contiguous.
struct StridedTensor {
    void* data;
    tk_dtype dtype;
    int64_t strides[4];
};

}  // namespace tk
