// Reference spatio-temporal pooling (SPEC section 1), written for clarity from the SPEC rather than
// from the library's code: one output element at a time, straight from the definitions.
#pragma once

#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {

// [B, T', H', W', C] for params applied to an input of shape in, from the SPEC's formulas.
Shape5 reference_output_shape(const tk_pool_params& params, const Shape5& in);

// Pools x in the arithmetic of Real, giving the output in row-major [B, T', H', W', C] order.
// Real = double is the high-precision reference. Real = float is the same-precision reference: it
// accumulates in float32 as the SPEC prescribes and computes the bilinear source coordinate in
// float32 as PyTorch does; a caller rounds its results to the dtype.
template <class Real>
std::vector<Real> reference_pool(const tk_pool_params& params, const HostTensor& x);

extern template std::vector<double> reference_pool<double>(const tk_pool_params&, const HostTensor&);
extern template std::vector<float> reference_pool<float>(const tk_pool_params&, const HostTensor&);

}  // namespace tkt
