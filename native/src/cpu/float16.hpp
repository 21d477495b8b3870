// 16-bit float storage types of the CPU backend and their conversions to and from float32.
// Branch-light bit manipulation (after F. Giesen's half conversions), so loops over C vectorise.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dispatch.hpp"

namespace tk::cpu {

struct Half {
    uint16_t bits;
};
struct BFloat16 {
    uint16_t bits;
};

inline float bits_to_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
inline uint32_t float_to_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float to_float(float v) { return v; }

inline float to_float(Half h) {
    // Move exponent and mantissa into place and rescale by 2^112: exact for normals and subnormals.
    const uint32_t magnitude = static_cast<uint32_t>(h.bits & 0x7fffu) << 13;
    float f = bits_to_float(magnitude) * bits_to_float(0x77800000u);
    uint32_t u = float_to_bits(f);
    if (f >= 65536.0f) u |= 0x7f800000u;  // Inf and NaN keep their payload
    return bits_to_float(u | (static_cast<uint32_t>(h.bits & 0x8000u) << 16));
}

inline float to_float(BFloat16 b) { return bits_to_float(static_cast<uint32_t>(b.bits) << 16); }

template <class T>
T from_float(float v);

template <>
inline float from_float<float>(float v) {
    return v;
}

// Round to nearest even; overflow gives Inf, NaN stays a (quiet) NaN.
template <>
inline Half from_float<Half>(float v) {
    uint32_t u = float_to_bits(v);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint16_t h;
    if (u >= (143u << 23)) {  // at least 65536: beyond the largest half after rounding, or Inf/NaN
        h = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (u < (113u << 23)) {  // below the smallest normal half: let float addition round
        const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
        h = static_cast<uint16_t>(float_to_bits(bits_to_float(u) + bits_to_float(denorm_magic)) - denorm_magic);
    } else {
        const uint32_t mantissa_odd = (u >> 13) & 1u;
        u += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + mantissa_odd;
        h = static_cast<uint16_t>(u >> 13);
    }
    return Half{static_cast<uint16_t>(h | (sign >> 16))};
}

template <>
inline BFloat16 from_float<BFloat16>(float v) {
    const uint32_t u = float_to_bits(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
    return BFloat16{static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

template <tk_dtype D>
struct Storage;
template <>
struct Storage<TK_DTYPE_F32> {
    using type = float;
};
template <>
struct Storage<TK_DTYPE_F16> {
    using type = Half;
};
template <>
struct Storage<TK_DTYPE_BF16> {
    using type = BFloat16;
};
// The CPU storage type of a dispatch_float tag.
template <class Tag>
using storage_t = typename Storage<Tag::value>::type;

}  // namespace tk::cpu
