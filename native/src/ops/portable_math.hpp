// Float32 functions whose every operation rounds alike on both backends (-ffp-contract=off, nvcc
// -fmad=false), for results the SPEC fixes bit for bit where libm's and CUDA's differ in the last place.
#pragma once

#include <cmath>

#include "core/host_device.hpp"

namespace tk {

// exp(x) in float32 with operations both backends round alike: n = rint(x / ln 2), r = x - n ln 2 in
// two parts (Cody-Waite; ln2_hi has 9 significant bits, so n * ln2_hi is exact), a degree-7 Taylor
// polynomial in Horner form, scaled by 2^n as two exact powers of two. Below ln(FLT_MIN) the result is
// 0; above ln(FLT_MAX), +inf.
TK_HOST_DEVICE float portable_exp(float x) {
    if (x != x) return x;
    if (x < -87.33654f) return 0.0f;
    if (x > 88.72283f) return INFINITY;
    const float n = rintf(x * 1.44269504f);
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int e = static_cast<int>(n);  // in [-126, 128]: each half's power of two is exact
    const int half = e / 2;
    return p * ldexpf(1.0f, half) * ldexpf(1.0f, e - half);
}

}  // namespace tk
