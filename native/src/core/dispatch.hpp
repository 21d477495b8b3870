// The one place that turns a runtime floating dtype into a compile-time constant. Each backend maps
// the constant to its own storage type (float / tk::cpu::Half / __half ...).
#pragma once

#include <type_traits>

#include "core/error.hpp"

namespace tk {

template <tk_dtype D>
using DtypeTag = std::integral_constant<tk_dtype, D>;

template <class Fn>
decltype(auto) dispatch_float(tk_dtype dtype, Fn&& fn) {
    switch (dtype) {
        case TK_DTYPE_F32: return fn(DtypeTag<TK_DTYPE_F32>{});
        case TK_DTYPE_F16: return fn(DtypeTag<TK_DTYPE_F16>{});
        case TK_DTYPE_BF16: return fn(DtypeTag<TK_DTYPE_BF16>{});
        default: throw Error(TK_STATUS_INTERNAL, "dispatch_float: dtype not validated at the boundary");
    }
}

}  // namespace tk
