#include "pool_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tkt {

namespace {

bool is_window_mode(tk_pool_mode mode) { return mode == TK_POOL_WINDOW_AVG || mode == TK_POOL_WINDOW_MAX; }
bool is_max_mode(tk_pool_mode mode) { return mode == TK_POOL_WINDOW_MAX || mode == TK_POOL_ADAPTIVE_MAX; }

// Input indices [begin, end) that output index i covers along one dimension.
struct Span {
    int64_t begin;
    int64_t end;
};

Span window_span(int64_t i, int32_t kernel, int32_t stride) { return {i * stride, i * stride + kernel}; }

// [floor(i * In / Out), ceil((i + 1) * In / Out)), evaluated in double (exact for these sizes).
Span adaptive_span(int64_t i, int64_t in, int64_t out) {
    const double in_d = static_cast<double>(in);
    const double out_d = static_cast<double>(out);
    return {static_cast<int64_t>(std::floor(static_cast<double>(i) * in_d / out_d)),
            static_cast<int64_t>(std::ceil(static_cast<double>(i + 1) * in_d / out_d))};
}

template <class Real>
Real max_propagating_nan(Real acc, Real v) {
    if (std::isnan(acc) || std::isnan(v)) return std::numeric_limits<Real>::quiet_NaN();
    return std::max(acc, v);
}

// The two taps and the weight of the upper one for output index i of a bilinear resize from in to
// out with align_corners = False: s = max(0, (i + 0.5) * In / Out - 0.5).
template <class Real>
struct Taps {
    int64_t lo;
    int64_t hi;
    Real weight_hi;
};

template <class Real>
Taps<Real> bilinear_taps(int64_t i, int64_t in, int64_t out) {
    // PyTorch forms scale = In / Out first, in the accumulation type; in double the order is moot.
    const Real scale = static_cast<Real>(in) / static_cast<Real>(out);
    const Real source = std::max(Real(0), (static_cast<Real>(i) + Real(0.5)) * scale - Real(0.5));
    const auto lo = static_cast<int64_t>(std::floor(source));
    return {lo, std::min(lo + 1, in - 1), source - static_cast<Real>(lo)};
}

template <class Real>
Real input(const HostTensor& x, int64_t b, int64_t t, int64_t h, int64_t w, int64_t c) {
    return static_cast<Real>(x.get(b, t, h, w, c));  // exact: x holds dtype values
}

}  // namespace

Shape5 reference_output_shape(const tk_pool_params& params, const Shape5& in) {
    Shape5 out = in;
    for (int d = 0; d < 3; ++d) {
        out[1 + d] = is_window_mode(params.mode) ? (in[1 + d] - params.kernel[d]) / params.stride[d] + 1
                                                 : params.output_size[d];
    }
    return out;
}

template <class Real>
std::vector<Real> reference_pool(const tk_pool_params& params, const HostTensor& x) {
    const Shape5 in = x.shape();
    const Shape5 out = reference_output_shape(params, in);
    const int64_t C = in[4];
    std::vector<Real> result;
    result.reserve(static_cast<size_t>(out[0] * out[1] * out[2] * out[3] * C));
    std::vector<Real> acc(static_cast<size_t>(C));

    for (int64_t b = 0; b < out[0]; ++b)
        for (int64_t ot = 0; ot < out[1]; ++ot)
            for (int64_t oh = 0; oh < out[2]; ++oh)
                for (int64_t ow = 0; ow < out[3]; ++ow) {
                    if (params.mode == TK_POOL_BILINEAR) {
                        const Taps<Real> th = bilinear_taps<Real>(oh, in[2], out[2]);
                        const Taps<Real> tw = bilinear_taps<Real>(ow, in[3], out[3]);
                        for (int64_t c = 0; c < C; ++c) {
                            const Real top = (1 - tw.weight_hi) * input<Real>(x, b, ot, th.lo, tw.lo, c) +
                                             tw.weight_hi * input<Real>(x, b, ot, th.lo, tw.hi, c);
                            const Real bottom = (1 - tw.weight_hi) * input<Real>(x, b, ot, th.hi, tw.lo, c) +
                                                tw.weight_hi * input<Real>(x, b, ot, th.hi, tw.hi, c);
                            result.push_back((1 - th.weight_hi) * top + th.weight_hi * bottom);
                        }
                        continue;
                    }
                    const int64_t o[3] = {ot, oh, ow};
                    Span span[3];
                    for (int d = 0; d < 3; ++d)
                        span[d] = is_window_mode(params.mode) ? window_span(o[d], params.kernel[d], params.stride[d])
                                                              : adaptive_span(o[d], in[1 + d], out[1 + d]);
                    const bool max = is_max_mode(params.mode);
                    std::fill(acc.begin(), acc.end(), max ? -std::numeric_limits<Real>::infinity() : Real(0));
                    int64_t count = 0;
                    for (int64_t t = span[0].begin; t < span[0].end; ++t)
                        for (int64_t h = span[1].begin; h < span[1].end; ++h)
                            for (int64_t w = span[2].begin; w < span[2].end; ++w, ++count)
                                for (int64_t c = 0; c < C; ++c) {
                                    const Real v = input<Real>(x, b, t, h, w, c);
                                    Real& a = acc[static_cast<size_t>(c)];
                                    a = max ? max_propagating_nan(a, v) : a + v;
                                }
                    for (int64_t c = 0; c < C; ++c)
                        result.push_back(max ? acc[static_cast<size_t>(c)] : acc[static_cast<size_t>(c)] / static_cast<Real>(count));
                }
    return result;
}

template std::vector<double> reference_pool<double>(const tk_pool_params&, const HostTensor&);
template std::vector<float> reference_pool<float>(const tk_pool_params&, const HostTensor&);

}  // namespace tkt
